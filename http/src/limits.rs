//! What a server allows each client: the limits that keep hostile clients (slow ones, ones
//! that promise huge bodies) from holding connections or memory.

use core::time::Duration;

/// A minimum rate: at least `bytes` every `per` (else the request gets 408 and the connection
/// closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes that must arrive ...
    pub bytes: usize,
    /// ... within this long, again and again until the body is in.
    pub per: Duration,
}

/// A server's limits. Memory per connection is its read buffer (at most `max_head`, grown as
/// bytes arrive) and the body received so far; all bodies together hold at most
/// `max_body_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once (default 128). More wait in the listener's backlog (bounded
    /// by its `ListenConfig`), never in memory of ours.
    pub max_connections: usize,
    /// The largest request head (request line and headers; default 8 KiB). Larger: 431.
    pub max_head: usize,
    /// The largest request body (default 1 MiB). Larger (or larger than the body bytes the
    /// server may hold, see [`Server::max_body_total`](crate::Server::max_body_total)): 413,
    /// without reading it.
    pub max_body: usize,
    /// Body bytes all connections may hold at once (default 4 MiB). A body that would go
    /// past it gets 503 and its connection closes.
    pub max_body_total: usize,
    /// How long a keep-alive connection may wait for the first byte of its next request
    /// (default 60 s); then it closes without an answer.
    pub idle_timeout: Duration,
    /// How long a whole request head may take from its first byte, and a new connection's
    /// first head from the connection's start (default 10 s). Later: 408 (or, before any
    /// byte, closed without an answer).
    pub head_timeout: Duration,
    /// The slowest a body may arrive (default 1 KiB every 5 s). Slower: 408.
    pub body_rate: MinRate,
    /// How long writing one response may take (default 30 s); then the connection closes.
    pub write_timeout: Duration,
    /// How long writing an error response the server sends before closing (400, 408, 413,
    /// 431, 501, 503) may take (default 2 s): the client misbehaved, it gets no more time.
    pub error_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 128,
            max_head: 8 * 1024,
            max_body: 1 << 20,
            max_body_total: 4 << 20,
            idle_timeout: Duration::from_secs(60),
            head_timeout: Duration::from_secs(10),
            body_rate: MinRate {
                bytes: 1024,
                per: Duration::from_secs(5),
            },
            write_timeout: Duration::from_secs(30),
            error_timeout: Duration::from_secs(2),
        }
    }
}
