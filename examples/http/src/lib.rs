//! The web service of the `http` example: its routes on `xenia-http`, so the same app runs
//! over a `xenia::net::TcpStream` in the guest and over in-memory streams in host tests.
//!
//! Routes: `GET /` (an HTML page), `GET /health` (`{"status":"ok"}`), `GET /stats` (JSON
//! counters), `POST /echo` (the body back, byte for byte). HTTP/1.1 keep-alive (and
//! pipelining), `Content-Length` bodies up to [`MAX_BODY`]; the status codes of a bad request
//! are `xenia-http`'s (400, 404, 405, 408, 413, 431, 501, 503).
#![no_std]

extern crate alloc;

use alloc::string::String;
use core::time::Duration;
use xenia::net::ListenConfig;
use xenia_http::{get, post, Json, Limits, Request, Response, Router, ServerStats, Status};

/// Connections served at once (at `memory=16`; a smaller domain's listener holds fewer, see
/// [`listen_config`]); more wait in the listener's backlog (and beyond it are refused), so
/// memory stays bounded. 256: a load generator's 256 keep-alive connections are all served
/// (with 128, half of them waited in the backlog or were reset and reconnected, and the
/// reconnects cost the server two thirds of its throughput).
pub const MAX_CONNECTIONS: usize = 256;
/// Each connection's receive and send buffer (its TCP window, and the response bytes in
/// flight): 8 KiB, one largest request head.
pub const SOCKET_BUFFER: usize = 8 * 1024;
/// The largest request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body.
pub const MAX_BODY: usize = 1 << 20;
/// Body bytes held by all connections at once (one largest echo): with the listener's
/// sockets (~8 MiB) and the heads (256 × 8 KiB), 11 MiB, within the memory budget's three
/// quarters of the 16 MiB domain's ~15 MiB heap, so nothing shrinks there. A smaller domain
/// grants less (`xenia::net::budget`; the server reads it back).
pub const MAX_BODY_TOTAL: usize = 1 << 20;

/// The listener's budgets: at most 1 + 64 + 64 + 256 + 64 sockets of 16 KiB of buffers
/// (~8 MiB with their state, of the ~15 MiB heap of the 16 MiB domain) whatever clients do:
/// spoofed SYNs stay half-open for 3 s at most and never reach the app; past
/// [`MAX_CONNECTIONS`] (the server's cap) new connections wait in the backlog. In a smaller
/// domain the runtime shrinks these counts in proportion to fit its heap
/// (`xenia::net::budget`), and the server evicts at the listener's smaller cap.
pub fn listen_config() -> ListenConfig {
    ListenConfig {
        backlog: 64,
        rx_buffer: SOCKET_BUFFER,
        tx_buffer: SOCKET_BUFFER,
        max_half_open: 64,
        half_open_timeout: Duration::from_secs(3),
        max_connections: MAX_CONNECTIONS,
        max_orphans: 64,
        // The server declares its heads and bodies when it binds (`Limits::listen_config`).
        ..ListenConfig::default()
    }
}

/// The service's limits.
pub fn limits() -> Limits {
    Limits {
        max_connections: MAX_CONNECTIONS,
        max_head: MAX_HEAD,
        max_body: MAX_BODY,
        max_body_total: MAX_BODY_TOTAL,
        // The deadlines and rates: xenia-http's defaults.
        ..Limits::default()
    }
}

/// What `/stats` reports besides the server's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// Milliseconds since boot.
    pub uptime_ms: u64,
    /// Heap bytes in use.
    pub heap_in_use: usize,
    /// Packets received by the interface.
    pub rx_packets: u64,
    /// Packets sent by the interface.
    pub tx_packets: u64,
    /// Packets dropped or refused by the network stack.
    pub packets_dropped: u64,
    /// TCP connections in SYN-RECEIVED now (handshake not complete).
    pub tcp_half_open: usize,
    /// SYNs dropped (half-open connections timed out or displaced by newer ones).
    pub tcp_syn_dropped: u64,
    /// Sockets of closed connections still closing now (orphans).
    pub tcp_orphans: usize,
    /// Orphans freed so far.
    pub tcp_reaped: u64,
    /// TCP sockets in the stack now (listening, half-open, connected, closing).
    pub tcp_sockets: usize,
}

/// The page `GET /` answers (HTML).
pub const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>xenia</title></head><body>\n\
<h1>Hello from a Xenia unikernel</h1>\n\
<p>An async Rust web service running as a Xen PV guest.</p>\n\
<ul><li><a href=\"/health\">/health</a></li><li><a href=\"/stats\">/stats</a></li>\
<li>POST /echo</li></ul>\n</body></html>\n";

/// The `/stats` document.
pub fn stats_json(s: ServerStats, i: SystemInfo) -> String {
    Json::new()
        .num("uptime_ms", i.uptime_ms)
        .num("requests", s.requests)
        .num("connections", s.connections)
        .num("open_connections", s.open_connections)
        .num("heap_in_use", i.heap_in_use as u64)
        .num("rx_packets", i.rx_packets)
        .num("tx_packets", i.tx_packets)
        .num("packets_dropped", i.packets_dropped)
        .num("tcp_half_open", i.tcp_half_open as u64)
        .num("tcp_syn_dropped", i.tcp_syn_dropped)
        .num("tcp_orphans", i.tcp_orphans as u64)
        .num("tcp_reaped", i.tcp_reaped)
        .num("tcp_sockets", i.tcp_sockets as u64)
        .num("timeouts", s.timeouts)
        .num("evictions", s.evictions)
        .num("body_bytes", s.body_bytes as u64)
        .num("waiting", s.waiting)
        .num("reading_head", s.reading_head)
        .num("reading_body", s.reading_body)
        .num("busy", s.busy)
        .finish()
}

/// The routes; `/stats` asks `info` for the system's numbers.
pub fn app(info: fn() -> SystemInfo) -> Router {
    Router::new()
        .route("/", get(|_| async { Response::html(Status::OK, INDEX) }))
        .route(
            "/health",
            get(|_| async { Response::json(Status::OK, "{\"status\":\"ok\"}\n") }),
        )
        .route(
            "/stats",
            get(move |r: Request| async move {
                Response::json(Status::OK, stats_json(r.server(), info()))
            }),
        )
        .route(
            "/echo",
            post(|r: Request| async move { Response::bytes(Status::OK, r.into_body()) }),
        )
}
