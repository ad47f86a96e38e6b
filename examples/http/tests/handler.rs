//! The HTTP handler over in-memory streams: routes, keep-alive, pipelining, errors, echo.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use std::time::Duration;

use http::{SystemInfo, MAX_BODY};
use xenia_http::{Clock, End, Server};

/// A client's bytes, delivered in chunks of at most `chunk` bytes; what the server wrote.
struct Mem {
    input: VecDeque<u8>,
    chunk: usize,
    output: Vec<u8>,
}

impl embedded_io_async::ErrorType for Mem {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Mem {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk).min(self.input.len());
        for b in buf.iter_mut().take(n) {
            *b = self.input.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl embedded_io_async::Write for Mem {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk.max(1000));
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A clock that stands still (in-memory streams never wait, so no deadline can pass).
struct Still;

impl Clock for Still {
    fn now(&self) -> Duration {
        Duration::ZERO
    }

    fn sleep_until(&self, _: Duration) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory streams never wait"),
    }
}

fn info() -> SystemInfo {
    SystemInfo {
        uptime_ms: 1234,
        heap_in_use: 5678,
        rx_packets: 9,
        tx_packets: 10,
        packets_dropped: 3,
        tcp_half_open: 4,
        tcp_syn_dropped: 5,
        tcp_orphans: 6,
        tcp_reaped: 7,
        tcp_sockets: 8,
    }
}

/// Serves `input` (read in chunks of `chunk` bytes); returns how it ended and the responses.
fn serve(svc: &Server, input: &[u8], chunk: usize) -> (End, Vec<Response>) {
    let mut m = Mem {
        input: input.iter().copied().collect(),
        chunk,
        output: Vec::new(),
    };
    let end = run(svc.serve(&mut m, &Still));
    (end, parse_responses(&m.output))
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_responses(mut out: &[u8]) -> Vec<Response> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut h);
        let n = match r.parse(out).expect("valid response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response"),
        };
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .expect("content-length")
            .1
            .parse()
            .unwrap();
        v.push(Response {
            status: r.code.unwrap(),
            headers,
            body: out[n..n + len].to_vec(),
        });
        out = &out[n + len..];
    }
    v
}

fn svc() -> Server {
    Server::new(http::app(info), http::limits())
}

#[test]
fn routes() {
    let s = svc();
    let (end, r) = serve(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\n\r\nGET /stats HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nDELETE /health HTTP/1.1\r\n\r\n",
        7,
    );
    assert_eq!(end, End::ClientClosed);
    let codes: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 200, 200, 404, 405]);
    assert_eq!(r[0].header("content-type"), Some("text/html"));
    assert!(String::from_utf8_lossy(&r[0].body).contains("<h1>Hello from a Xenia unikernel</h1>"));
    assert_eq!(r[1].body, b"{\"status\":\"ok\"}\n");
    assert_eq!(r[1].header("content-type"), Some("application/json"));
    let stats = String::from_utf8(r[2].body.clone()).unwrap();
    assert_eq!(
        stats,
        "{\"uptime_ms\":1234,\"requests\":3,\"connections\":1,\"open_connections\":1,\"heap_in_use\":5678,\"rx_packets\":9,\"tx_packets\":10,\"packets_dropped\":3,\"tcp_half_open\":4,\"tcp_syn_dropped\":5,\"tcp_orphans\":6,\"tcp_reaped\":7,\"tcp_sockets\":8,\"timeouts\":0,\"evictions\":0,\"body_bytes\":0,\"waiting\":0,\"reading_head\":0,\"reading_body\":0,\"busy\":1}\n"
    );
    assert!(r
        .iter()
        .all(|r| r.header("connection") == Some("keep-alive")));
    assert_eq!(s.stats().requests, 5);
}

#[test]
fn echo_large_bodies_byte_for_byte() {
    for (len, chunk) in [
        (0usize, 1usize),
        (1, 3),
        (100_000, 1460),
        (MAX_BODY, 16 * 1024),
    ] {
        let body: Vec<u8> = (0..len).map(|i| (i * 131 + i / 7) as u8).collect();
        let mut req = format!("POST /echo HTTP/1.1\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        req.extend_from_slice(&body);
        // A second request on the same connection after the body.
        req.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
        let (end, r) = serve(&svc(), &req, chunk);
        assert_eq!(end, End::ClientClosed);
        assert_eq!(r.len(), 2, "len {len}");
        assert_eq!(r[0].status, 200);
        assert!(r[0].body == body, "echo of {len} bytes differs");
        assert_eq!(r[1].status, 200);
    }
}

#[test]
fn malformed_and_oversized_requests() {
    for (req, code) in [
        (&b"GARBAGE\r\n\r\n"[..], 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            413,
        ),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (b"GET / HTTP/1.1\r\n", 400), // the client closed mid-head
    ] {
        let (end, r) = serve(&svc(), req, 5);
        assert_eq!(end, End::Closed, "{:?}", String::from_utf8_lossy(req));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, code, "{:?}", String::from_utf8_lossy(req));
        assert_eq!(r[0].header("connection"), Some("close"));
    }
    // A head larger than the buffer.
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    let (_, r) = serve(&svc(), &big, 4096);
    assert_eq!(r[0].status, 431);
}

#[test]
fn connection_close_and_http10() {
    let (end, r) = serve(
        &svc(),
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
        100,
    );
    assert_eq!(end, End::Closed);
    assert_eq!(r.len(), 1, "nothing after Connection: close");
    let (end, r) = serve(&svc(), b"GET /health HTTP/1.0\r\n\r\n", 100);
    assert_eq!((end, r.len()), (End::Closed, 1));
    let (end, r) = serve(
        &svc(),
        b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        100,
    );
    assert_eq!((end, r.len()), (End::Closed, 2));
    // A body sent with a GET is skipped, not taken for the next request.
    let (_, r) = serve(
        &svc(),
        b"GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /xGET /nope HTTP/1.1\r\n\r\n",
        3,
    );
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 404]);
}
