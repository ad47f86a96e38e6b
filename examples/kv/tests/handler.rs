//! The kv HTTP front end over in-memory streams and an in-memory disk: routes, keep-alive,
//! requests split across reads, 1 MiB values, errors, and what a reboot keeps.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use xenia_http::{Clock, End, Server};
use xenia_kv::mem::{Faults, MemDisk};
use xenia_kv::{Options, Store};

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
        Poll::Pending => panic!("an in-memory future waited"),
    }
}

/// A connection: the client's bytes come in pieces of `piece` bytes; the answers collect.
struct Conn {
    input: Vec<u8>,
    at: usize,
    piece: usize,
    output: Vec<u8>,
}

impl embedded_io_async::ErrorType for Conn {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for Conn {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.piece).min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl embedded_io_async::Write for Conn {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
}

/// Sends `requests` on one connection; returns (status, body, Link header) of each response
/// and the end.
#[allow(clippy::type_complexity)]
fn exchange(
    store: &'static Store<MemDisk>,
    requests: &[u8],
    piece: usize,
) -> (Vec<(u16, Vec<u8>, Option<String>)>, End) {
    let mut c = Conn {
        input: requests.to_vec(),
        at: 0,
        piece,
        output: Vec::new(),
    };
    let server = Server::new(kv::app(store), kv::limits());
    let end = run(server.serve(&mut c, &Still));
    let mut out = Vec::new();
    let mut rest = &c.output[..];
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let n = match r.parse(rest).expect("a valid response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response"),
        };
        let len: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("content-length");
        let link = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("link"))
            .map(|h| String::from_utf8(h.value.to_vec()).unwrap());
        out.push((r.code.unwrap(), rest[n..n + len].to_vec(), link));
        rest = &rest[n + len..];
    }
    (out, end)
}

fn req(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: kv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn routes_keep_alive_and_reboot() {
    let (store, _) = run(Store::open(MemDisk::new(16384, 512), Options::default())).unwrap();
    let store: &'static Store<MemDisk> = Box::leak(Box::new(store));
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let mut reqs = Vec::new();
    reqs.extend(req("PUT", "/kv/alpha", b"first"));
    reqs.extend(req("PUT", "/kv/alpha", b"second"));
    reqs.extend(req("PUT", "/kv/a%20b%2Fc", b"spaced"));
    reqs.extend(req("PUT", "/kv/big", &big));
    reqs.extend(req("GET", "/kv/alpha", b""));
    reqs.extend(req("GET", "/kv/a%20b%2Fc", b""));
    reqs.extend(req("GET", "/kv/missing", b""));
    reqs.extend(req("PUT", "/kv/gone", b"x"));
    reqs.extend(req("DELETE", "/kv/gone", b""));
    reqs.extend(req("DELETE", "/kv/gone", b""));
    reqs.extend(req("GET", "/kv", b""));
    reqs.extend(req("POST", "/kv/alpha", b"no"));
    reqs.extend(req("GET", "/other", b""));
    reqs.extend(req("GET", "/kv/big", b""));
    for piece in [1 << 20, 7] {
        let (rs, end) = exchange(store, &reqs, piece);
        assert_eq!(end, End::ClientClosed);
        let codes: Vec<u16> = rs.iter().map(|r| r.0).collect();
        assert_eq!(
            codes,
            [201, 201, 201, 201, 200, 200, 404, 201, 204, 404, 200, 405, 404, 200],
            "pieces of {piece}"
        );
        assert_eq!(rs[4].1, b"second");
        assert_eq!(rs[5].1, b"spaced");
        assert_eq!(rs[10].1, b"a%20b%2Fc\nalpha\nbig\n");
        assert_eq!(rs[13].1, big);
    }

    // Errors: too large, bad encoding, chunked bodies, Connection: close.
    let too_big = format!(
        "PUT /kv/x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    let (rs, end) = exchange(store, too_big.as_bytes(), 4096);
    assert_eq!((rs[0].0, end), (413, End::Closed));
    let (rs, _) = exchange(store, &req("GET", "/kv/%zz", b""), 4096);
    assert_eq!(rs[0].0, 400);
    let chunked = b"PUT /kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(exchange(store, chunked, 4096).0[0].0, 501);
    let close = b"GET /kv/alpha HTTP/1.1\r\nConnection: close\r\n\r\nGET /kv HTTP/1.1\r\n\r\n";
    let (rs, end) = exchange(store, close, 4096);
    assert_eq!((rs.len(), end), (1, End::Closed));

    // A device failure on PUT is a 500 and the key is not served.
    store.device().set_faults(Faults {
        fail_flush: true,
        ..Faults::default()
    });
    let (rs, _) = exchange(store, &req("PUT", "/kv/unlucky", b"v"), 4096);
    assert_eq!(rs[0].0, 500);
    let (rs, _) = exchange(store, &req("GET", "/kv/unlucky", b""), 4096);
    assert_eq!(rs[0].0, 404);

    // A corrupted record is a 500, never its bytes.
    let image = store.device().image();
    let at = image
        .windows(6)
        .rposition(|w| w == b"second")
        .expect("the value is on disk");
    store.device().poke(at, b"SECOND");
    let (rs, _) = exchange(store, &req("GET", "/kv/alpha", b""), 4096);
    assert_eq!(rs[0].0, 500);
    store.device().poke(at, b"second");

    // After a "reboot" on the same bytes, the acknowledged state is back.
    let (s2, rec) = run(Store::open(
        MemDisk::from_image(store.device().image(), 512),
        Options::default(),
    ))
    .unwrap();
    let s2: &'static Store<MemDisk> = Box::leak(Box::new(s2));
    assert!(!rec.formatted);
    let mut reqs = req("GET", "/kv", b"");
    reqs.extend(req("GET", "/kv/alpha", b""));
    let (rs, _) = exchange(s2, &reqs, 4096);
    // "unlucky" is back: its record was written whole before the flush failed, so after a
    // reboot it is intact on disk. A 500 on PUT means "outcome unknown", as a timeout would.
    assert_eq!(rs[0].1, b"a%20b%2Fc\nalpha\nbig\nunlucky\n");
    assert_eq!(rs[1].1, b"second");
}

/// `GET /kv` pages (memory bounded by the page, a `Link` to the next), and a PUT of a new key
/// past the index budget is a 507 that writes nothing while overwrites still work.
#[test]
fn listing_pages_and_index_budget() {
    let per = xenia_kv::index::entry_bytes(4);
    let opts = Options {
        index_budget: 25 * per,
        ..Options::default()
    };
    let (store, _) = run(Store::open(MemDisk::new(16384, 512), opts)).unwrap();
    let store: &'static Store<MemDisk> = Box::leak(Box::new(store));
    let mut reqs = Vec::new();
    for i in 0..26 {
        reqs.extend(req("PUT", &format!("/kv/k{i:03}"), b"v"));
    }
    let (rs, _) = exchange(store, &reqs, 4096);
    let codes: Vec<u16> = rs.iter().map(|r| r.0).collect();
    assert_eq!(codes[..25], [201; 25]);
    assert_eq!(rs[25].0, 507, "{}", String::from_utf8_lossy(&rs[25].1));
    assert!(String::from_utf8_lossy(&rs[25].1).contains("memory budget"));
    let log = store.stats().log_bytes;
    let (rs, _) = exchange(store, &req("PUT", "/kv/k000", b"overwritten"), 4096);
    assert_eq!(rs[0].0, 201);
    assert!(store.stats().log_bytes > log);

    // Walk the listing 10 keys at a time, following the Link header.
    let mut got = Vec::new();
    let mut path = String::from("/kv?limit=10");
    let mut pages = 0;
    loop {
        let (rs, _) = exchange(store, &req("GET", &path, b""), 4096);
        assert_eq!(rs[0].0, 200);
        pages += 1;
        got.extend(
            String::from_utf8(rs[0].1.clone())
                .unwrap()
                .lines()
                .map(String::from),
        );
        match &rs[0].2 {
            Some(link) => {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                path = link[1..link.find('>').unwrap()].to_string();
            }
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("k{i:03}")).collect();
    assert_eq!((got, pages), (want, 3));
    let (rs, _) = exchange(store, &req("GET", "/kv?limit=0", b""), 4096);
    assert_eq!(rs[0].0, 400);
    let (rs, _) = exchange(store, &req("GET", "/kv?after=k023", b""), 4096);
    assert_eq!(
        (rs[0].1.as_slice(), rs[0].2.as_deref()),
        (&b"k024\n"[..], None)
    );
}
