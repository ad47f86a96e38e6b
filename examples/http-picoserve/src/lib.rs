//! The `http` example's service on [picoserve](https://crates.io/crates/picoserve) instead of
//! `xenia-http`, to compare the two (issue 12): the same routes and bodies (`GET /`,
//! `GET /health`, `GET /stats`, `POST /echo`), the same listener budgets, and picoserve's own
//! limits set to the closest equivalents of the `http` example's `Limits`:
//!
//! | xenia-http `Limits`              | here                                                  |
//! |----------------------------------|-------------------------------------------------------|
//! | `max_connections` 128            | the listener's `max_connections` 128: one task each   |
//! | `max_head` 8 KiB                 | picoserve's request buffer, [`HTTP_BUFFER`] per task  |
//! | `max_body` 1 MiB (413)           | `/echo` answers 413 past [`MAX_BODY`]                 |
//! | `max_body_total` 2 MiB (503)     | `/echo` answers 503 past [`MAX_BODY_TOTAL`]           |
//! | `idle_timeout` 60 s              | `persistent_start_read_request` 60 s                  |
//! | `head_timeout` 10 s              | `start_read_request` and `read_request` 10 s          |
//! | `body_rate` 1 KiB / 5 s (408)    | none: the body shares `read_request`'s 10 s           |
//! | `write_timeout` 30 s             | `write` 30 s                                          |
//! | `error_timeout` 2 s              | none: error answers get `write`'s 30 s                |
//! | eviction of stalled connections  | none: picoserve has no notion of it                   |
#![no_std]

extern crate alloc;

pub mod socket;

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http::SystemInfo;
use picoserve::io::Read;
use picoserve::request::Request;
use picoserve::response::{Content, Response, ResponseWriter, StatusCode};
use picoserve::routing::{get, post_service, PathRouter, RequestHandlerService};
use picoserve::time::Duration;
use picoserve::{Config, ResponseSent, Router, Timeouts};
use xenia::net::{NetError, TcpListener, TcpStream};
use xenia_http::ServerStats;

pub use socket::{Connection, XeniaTimer};

/// Connections served at once (the listener's cap; one task and one request buffer each).
pub const MAX_CONNECTIONS: usize = http::MAX_CONNECTIONS;
/// picoserve's per-connection request buffer: the request line and headers must fit (the
/// `http` example's `max_head`), and the first body bytes are read into what is left.
pub const HTTP_BUFFER: usize = http::MAX_HEAD;
/// The largest request body.
pub const MAX_BODY: usize = http::MAX_BODY;
/// Body bytes held by all connections at once.
pub const MAX_BODY_TOTAL: usize = http::MAX_BODY_TOTAL;

/// picoserve's configuration: keep-alive, and timeouts as close to the `http` example's
/// limits as picoserve's four can be (see the crate's docs).
pub static CONFIG: Config = Config::new(Timeouts {
    start_read_request: Duration::from_secs(10),
    persistent_start_read_request: Duration::from_secs(60),
    read_request: Duration::from_secs(10),
    write: Duration::from_secs(30),
})
.keep_connection_alive();

/// The listener's budgets: the `http` example's.
pub fn listen_config() -> xenia::net::ListenConfig {
    http::listen_config()
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static OPEN: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static BODY_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The counters in `xenia-http`'s shape (for the same `/stats` document). `requests` counts
/// the routed requests (picoserve answers 404s and 400s itself); picoserve tells nothing of a
/// connection's phase, so `waiting`, `reading_head`, `reading_body` and `busy` are 0, and it
/// never evicts.
pub fn stats() -> ServerStats {
    ServerStats {
        connections: CONNECTIONS.load(Ordering::Relaxed),
        open_connections: OPEN.load(Ordering::Relaxed),
        requests: REQUESTS.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
        evictions: 0,
        body_bytes: BODY_BYTES.load(Ordering::Relaxed),
        waiting: 0,
        reading_head: 0,
        reading_body: 0,
        busy: 0,
    }
}

/// A body with the content type the `http` example sends.
struct Typed<B> {
    content_type: &'static str,
    body: B,
}

impl<B: AsRef<[u8]>> Content for Typed<B> {
    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn content_length(&self) -> usize {
        self.body.as_ref().len()
    }

    async fn write_content<W: picoserve::io::Write>(self, mut writer: W) -> Result<(), W::Error> {
        writer.write_all(self.body.as_ref()).await
    }
}

fn typed<B: AsRef<[u8]>>(
    status: StatusCode,
    content_type: &'static str,
    body: B,
) -> impl picoserve::response::IntoResponse {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    Response::new(status, Typed { content_type, body })
}

/// `POST /echo`: the body back. It grows with the bytes received (never with
/// `Content-Length`), within [`MAX_BODY`] (else 413) and the shared [`MAX_BODY_TOTAL`] (else
/// 503); picoserve's `read_request` timeout bounds how long it may take.
struct Echo;

/// A share of [`MAX_BODY_TOTAL`], given back on drop.
struct Reserved(usize);

impl Reserved {
    fn grow(&mut self, to: usize) -> bool {
        let extra = to.saturating_sub(self.0);
        let ok = BODY_BYTES
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                (cur + extra <= MAX_BODY_TOTAL).then_some(cur + extra)
            })
            .is_ok();
        if ok {
            self.0 += extra;
        }
        ok
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        BODY_BYTES.fetch_sub(self.0, Ordering::Relaxed);
    }
}

impl RequestHandlerService<()> for Echo {
    async fn call_request_handler_service<R: Read, W: ResponseWriter<Error = R::Error>>(
        &self,
        (): &(),
        (): (),
        mut request: Request<'_, R>,
        response_writer: W,
    ) -> Result<ResponseSent, W::Error> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let len = request.body_connection.content_length();
        let error = |status: StatusCode, text: &'static str| {
            Response::new(
                status,
                Typed {
                    content_type: "text/plain",
                    body: text,
                },
            )
            .with_header("Connection", "close")
        };
        if len > MAX_BODY {
            let c = request.body_connection.finalize().await?;
            return response_writer
                .write_response(c, error(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"))
                .await;
        }
        let mut reserved = Reserved(0);
        let mut body: Vec<u8> = Vec::new();
        let mut reader = request.body_connection.body().reader();
        let mut chunk = [0u8; 1024];
        let mut over_budget = false;
        while body.len() < len {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            let need = body.len() + n;
            if need > body.capacity() {
                let want = need.max(body.capacity() * 2).max(4096).min(len);
                if !reserved.grow(want) {
                    over_budget = true;
                    break;
                }
                body.reserve_exact(want - body.len());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let c = request.body_connection.finalize().await?;
        if over_budget {
            drop(body);
            return response_writer
                .write_response(c, error(StatusCode::SERVICE_UNAVAILABLE, "busy\n"))
                .await;
        }
        let sent = response_writer
            .write_response(
                c,
                Response::new(
                    StatusCode::OK,
                    Typed {
                        content_type: "application/octet-stream",
                        body: &body,
                    },
                ),
            )
            .await;
        drop(reserved);
        sent
    }
}

/// The routes; `/stats` asks `info` for the system's numbers.
pub fn app(info: fn() -> SystemInfo) -> Router<impl PathRouter> {
    Router::new()
        .route(
            "/",
            get(|| async { typed(StatusCode::OK, "text/html", http::INDEX) }),
        )
        .route(
            "/health",
            get(|| async { typed(StatusCode::OK, "application/json", "{\"status\":\"ok\"}\n") }),
        )
        .route(
            "/stats",
            get(move || async move {
                typed(
                    StatusCode::OK,
                    "application/json",
                    http::stats_json(stats(), info()),
                )
            }),
        )
        .route("/echo", post_service(Echo))
}

/// Serves one connection with picoserve until it ends (its own request buffer of
/// [`HTTP_BUFFER`] bytes); the stream is closed or reset when this returns.
pub async fn serve<P: PathRouter>(app: &Router<P>, stream: TcpStream) {
    CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    OPEN.fetch_add(1, Ordering::Relaxed);
    let mut buffer = vec![0u8; HTTP_BUFFER];
    let end = picoserve::Server::custom(app, XeniaTimer, &CONFIG, &mut buffer)
        .serve(Connection::new(stream))
        .await;
    if let Err(picoserve::Error::ReadTimeout(_) | picoserve::Error::WriteTimeout(_)) = end {
        TIMEOUTS.fetch_add(1, Ordering::Relaxed);
    }
    OPEN.fetch_sub(1, Ordering::Relaxed);
}

/// Accepts connections from `listener` for ever, each served by [`serve`] in its own task
/// (at most the listener's `max_connections` at once; more wait in its backlog).
pub async fn run<P: PathRouter + 'static>(
    app: &'static Router<P>,
    listener: TcpListener,
) -> Result<(), NetError> {
    loop {
        let c = listener.accept().await?;
        xenia::spawn(serve(app, c));
    }
}
