//! The web service of the `http` example, generic over any `embedded_io_async` stream so it
//! runs over a `xenia::net::TcpStream` in the guest and over in-memory streams in host tests.
//!
//! Routes: `GET /` (an HTML page), `GET /health` (`{"status":"ok"}`), `GET /stats` (JSON
//! counters), `POST /echo` (the body back, byte for byte). HTTP/1.1 keep-alive (and
//! pipelining), `Content-Length` bodies up to [`MAX_BODY`]; 400 on a malformed request, 404 on
//! an unknown path, 405 on a wrong method, 413 on a body too large, 501 on chunked bodies.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use embedded_io_async::{Read, Write};

pub mod head;
pub mod input;

/// The largest request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// What `/stats` reports besides the service's own counters.
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
}

/// The service's state, shared by all connections.
pub struct Service<F: Fn() -> SystemInfo> {
    info: F,
    requests: AtomicU64,
    connections: AtomicU64,
    open: AtomicU64,
}

pub use head::End;
use head::{parse_head, Parsed};
use input::Input;

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>xenia</title></head><body>\n\
<h1>Hello from a Xenia unikernel</h1>\n\
<p>An async Rust web service running as a Xen PV guest.</p>\n\
<ul><li><a href=\"/health\">/health</a></li><li><a href=\"/stats\">/stats</a></li>\
<li>POST /echo</li></ul>\n</body></html>\n";

impl<F: Fn() -> SystemInfo> Service<F> {
    /// A service whose `/stats` asks `info` for the system's numbers.
    pub const fn new(info: F) -> Self {
        Service {
            info,
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The `/stats` document.
    pub fn stats_json(&self) -> String {
        let i = (self.info)();
        format!(
            "{{\"uptime_ms\":{},\"requests\":{},\"connections\":{},\"open_connections\":{},\
             \"heap_in_use\":{},\"rx_packets\":{},\"tx_packets\":{},\"packets_dropped\":{},\
             \"tcp_half_open\":{},\"tcp_syn_dropped\":{},\"tcp_orphans\":{},\"tcp_reaped\":{}}}\n",
            i.uptime_ms,
            self.requests(),
            self.connections.load(Ordering::Relaxed),
            self.open.load(Ordering::Relaxed),
            i.heap_in_use,
            i.rx_packets,
            i.tx_packets,
            i.packets_dropped,
            i.tcp_half_open,
            i.tcp_syn_dropped,
            i.tcp_orphans,
            i.tcp_reaped
        )
    }

    /// Serves the requests of one connection until it ends.
    pub async fn serve<S: Read + Write>(&self, s: &mut S) -> End {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        let end = self.serve_inner(s).await;
        self.open.fetch_sub(1, Ordering::Relaxed);
        end
    }

    async fn serve_inner<S: Read + Write>(&self, s: &mut S) -> End {
        let mut input = Input::new(MAX_HEAD);
        loop {
            // Read a complete head.
            let head = loop {
                if !input.is_empty() {
                    match parse_head(input.pending(), MAX_BODY) {
                        Parsed::Complete(h) => break h,
                        Parsed::Bad(code, reason) => {
                            return self.error(s, code, reason).await;
                        }
                        Parsed::Partial => {}
                    }
                }
                match input.fill(s).await {
                    Ok(Some(0)) if input.is_empty() => return End::ClientClosed,
                    Ok(Some(0)) => return self.error(s, 400, "Bad Request").await,
                    Ok(Some(_)) => {}
                    Ok(None) => return self.error(s, 431, "Request Header Fields Too Large").await,
                    Err(_) => return End::Io,
                }
            };
            input.consume(head.head_len);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let ka = head.keep_alive;
            let r = match (head.method.as_str(), head.path.as_str()) {
                ("POST", "/echo") => self.echo(s, &mut input, head.content_length, ka).await,
                (m, p) => {
                    // Consume any body so the next request starts where it should.
                    if !input.skip(s, head.content_length).await {
                        return End::Io;
                    }
                    match (m, p) {
                        ("GET", "/") => {
                            respond(s, 200, "OK", "text/html", INDEX.as_bytes(), ka).await
                        }
                        ("GET", "/health") => {
                            respond(
                                s,
                                200,
                                "OK",
                                "application/json",
                                b"{\"status\":\"ok\"}\n",
                                ka,
                            )
                            .await
                        }
                        ("GET", "/stats") => {
                            let doc = self.stats_json();
                            respond(s, 200, "OK", "application/json", doc.as_bytes(), ka).await
                        }
                        (_, "/" | "/health" | "/stats" | "/echo") => {
                            respond(
                                s,
                                405,
                                "Method Not Allowed",
                                "text/plain",
                                b"method not allowed\n",
                                ka,
                            )
                            .await
                        }
                        _ => respond(s, 404, "Not Found", "text/plain", b"not found\n", ka).await,
                    }
                }
            };
            if r.is_err() {
                return End::Io;
            }
            if !ka {
                return End::Closed;
            }
        }
    }

    /// Sends an error response and ends the connection.
    async fn error<S: Write>(&self, s: &mut S, code: u16, reason: &str) -> End {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = format!("{code} {reason}\n");
        match respond(s, code, reason, "text/plain", body.as_bytes(), false).await {
            Ok(()) => End::Closed,
            Err(()) => End::Io,
        }
    }

    /// Streams `len` body bytes back as the response body.
    async fn echo<S: Read + Write>(
        &self,
        s: &mut S,
        input: &mut Input,
        len: usize,
        ka: bool,
    ) -> Result<(), ()> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n{}\r\n",
            conn_header(ka)
        );
        s.write_all(head.as_bytes()).await.map_err(drop)?;
        let mut left = len;
        while left > 0 {
            if !input.refill(s).await {
                return Err(());
            }
            let chunk = &input.pending()[..left.min(input.pending().len())];
            s.write_all(chunk).await.map_err(drop)?;
            let n = chunk.len();
            input.consume(n);
            left -= n;
        }
        s.flush().await.map_err(drop)
    }
}

fn conn_header(ka: bool) -> &'static str {
    if ka {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    }
}

async fn respond<S: Write>(
    s: &mut S,
    code: u16,
    reason: &str,
    ctype: &str,
    body: &[u8],
    ka: bool,
) -> Result<(), ()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        conn_header(ka)
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    s.write_all(&out).await.map_err(drop)?;
    s.flush().await.map_err(drop)
}
