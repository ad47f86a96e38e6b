//! The HTTP head reader and the server loop on arbitrary client bytes.
//!
//! The first byte picks how the rest is cut into reads. Checks: the incremental scanner finds
//! the same end of head whatever the cuts (and never past the bytes it was given), the parser
//! never panics and its results agree with the head (a `Content-Length` it accepts is the
//! value sent), and the whole server loop over those reads ends without waiting, writing only
//! well-formed responses, at most one per request head, none after one that closes.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use xenia_http::head::{parse_head, HeadScanner};
use xenia_http::{get, post, Clock, Limits, Request, Response, Router, Server, Status};

/// A clock that stands still: in-memory reads never wait, so no deadline passes.
struct Still;

impl Clock for Still {
    fn now(&self) -> Duration {
        Duration::ZERO
    }

    fn sleep_until(&self, _: Duration) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

/// The client's bytes in reads of the given sizes (cycled); what the server wrote.
struct Conn<'a> {
    input: &'a [u8],
    cuts: &'a [usize],
    n: usize,
    out: Vec<u8>,
}

impl embedded_io_async::ErrorType for Conn<'_> {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for Conn<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let cut = self.cuts[self.n % self.cuts.len()];
        self.n += 1;
        let k = buf.len().min(cut).min(self.input.len());
        buf[..k].copy_from_slice(&self.input[..k]);
        self.input = &self.input[k..];
        Ok(k)
    }
}

impl embedded_io_async::Write for Conn<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let cuts: Vec<usize> = match pick % 4 {
        0 => vec![1],
        1 => vec![usize::MAX],
        2 => vec![1 + usize::from(pick >> 2), 3, 7],
        _ => vec![usize::from(pick), 1],
    }
    .into_iter()
    .map(|c| c.max(1))
    .collect();

    // The scanner: one pass over the whole, or the same bytes fed as they arrive.
    let whole = HeadScanner::new().scan(input);
    let mut s = HeadScanner::new();
    let mut at = 0;
    let mut i = 0;
    let mut found = None;
    while at < input.len() && found.is_none() {
        at = (at + cuts[i % cuts.len()]).min(input.len());
        i += 1;
        found = s.scan(&input[..at]);
        assert!(s.scanned() <= at);
    }
    assert_eq!(found, whole);
    if let Some(len) = whole {
        assert!(len <= input.len());
        assert_eq!(input[len - 1], b'\n');
        if let Ok(h) = parse_head(&input[..len]) {
            let text = String::from_utf8_lossy(&input[..len]).to_ascii_lowercase();
            assert!(h.content_length == 0 || text.contains("content-length"));
            assert!(h.headers.len() <= xenia_http::head::MAX_HEADERS);
        }
    }

    // The server loop.
    let app = Router::new()
        .route("/", get(|_| async { Response::text(Status::OK, "hi") }))
        .route(
            "/echo",
            post(|r: Request| async move { Response::bytes(Status::OK, r.into_body()) }),
        );
    let limits = Limits {
        max_head: 1024,
        max_body: 4096,
        max_body_total: 8192,
        ..Limits::default()
    };
    let server = Server::new(app, limits);
    let mut conn = Conn {
        input,
        cuts: &cuts,
        n: 0,
        out: Vec::new(),
    };
    {
        let mut f = pin!(server.serve(&mut conn, &Still));
        let Poll::Ready(_) = f.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("the server waited on an in-memory stream");
        };
    }
    let mut out = &conn.out[..];
    let mut responses = 0;
    while !out.is_empty() {
        let mut h = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut h);
        let n = match r.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("bad response: {other:?}"),
        };
        let len: usize = r
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("a Content-Length");
        let close = r.headers.iter().any(|h| h.name == "Connection" && h.value == b"close");
        out = &out[n + len..];
        responses += 1;
        assert!(!close || out.is_empty(), "a response after Connection: close");
    }
    assert!(responses as u64 <= server.stats().requests);
});
