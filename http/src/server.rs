//! The connection loop: read a head within its deadline, a body at a minimum rate into memory
//! that grows with what arrives, answer through the router, keep the connection for the next
//! request (pipelined or not) until the client closes, an error, or the idle timeout.

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;
use embedded_io_async::{Read, Write};

use crate::clock::Clock;
use crate::head::{parse_head, HeadScanner};
use crate::input::{Fill, Input};
use crate::{Limits, Request, Response, Router, Status};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client closed the connection (between requests).
    ClientClosed,
    /// We closed it: `Connection: close`, HTTP/1.0, or after an error response.
    Closed,
    /// A deadline passed: idle between requests (closed without an answer), or a head or body
    /// too slow (closed after a 408).
    TimedOut,
    /// Reading or writing failed, or the client left in the middle of a request.
    Io,
    /// The server was full and a new connection needed this one's slot: it was waiting for a
    /// request (closed without an answer) or receiving one (closed after a 408).
    Evicted,
}

/// A server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections served so far.
    pub connections: u64,
    /// Connections being served now.
    pub open_connections: u64,
    /// Requests answered (or being answered) so far, error responses included.
    pub requests: u64,
    /// Connections closed because a deadline passed.
    pub timeouts: u64,
    /// Connections closed to make room for a new one while the server was full.
    pub evictions: u64,
    /// Body bytes held now, all connections together.
    pub body_bytes: usize,
    /// Keep-alive connections now waiting for their next request.
    pub waiting: u64,
    /// Connections now receiving a request head (new ones waiting for their first byte
    /// included).
    pub reading_head: u64,
    /// Connections now receiving a body.
    pub reading_body: u64,
    /// Connections now in a handler or writing a response.
    pub busy: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    open: AtomicU64,
    requests: AtomicU64,
    timeouts: AtomicU64,
    evictions: AtomicU64,
    body_bytes: AtomicUsize,
}

/// How long a connection must have been in its phase (idle, or at its head or body) before a
/// newcomer to a full server may evict it. Shorter than any slow client's stall (slowloris sends
/// a byte every few seconds), longer than the moment a busy keep-alive client spends between
/// its response and its next request: with 256 keep-alive clients on 128 slots, evicting those
/// turned every newcomer into the next victim's killer and nothing was answered.
pub const EVICT_MIN_STALL: Duration = Duration::from_millis(250);

/// Where a connection is in its request, for choosing whom to evict when the server is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Between requests of a keep-alive connection, waiting for the next one's first byte
    /// (evicted first).
    Idle,
    /// Receiving a head (or, on a new connection, waiting for its first byte).
    Head,
    /// Receiving a body.
    Body,
    /// In the handler or writing the response (never evicted).
    Busy,
}

/// A connection being served.
struct Slot {
    phase: Phase,
    /// When the phase began.
    since: Duration,
    evict: bool,
    waker: Option<Waker>,
}

/// What a wait for I/O came to.
enum Waited<T> {
    Done(T),
    Deadline,
    Evicted,
}

/// An app: a router and its limits. [`serve`](Server::serve) runs one connection over any
/// `embedded_io_async` stream; with the `xenia` feature, [`run`](Server::run) accepts
/// connections from a `xenia::net::TcpListener`.
pub struct Server {
    router: Router,
    limits: Limits,
    counters: Counters,
    slots: RefCell<Vec<Option<Slot>>>,
    /// Connections served at once before a newcomer evicts a stalled one: `max_connections`,
    /// or the listener's own cap when the domain's heap made it smaller (set by `run`).
    cap: Cell<usize>,
    /// Body bytes all connections may hold at once: `max_body_total`, or less when the
    /// listener that `run` serves was granted less by the domain's memory budget.
    body_total: Cell<usize>,
    /// Connections in each [`Phase`] now (kept as phases change, so the counters a request
    /// carries cost the same whatever the number of connections).
    by_phase: Cell<[u64; 4]>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("router", &self.router)
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why a body was not read whole.
enum BodyError {
    /// Slower than the minimum rate.
    Slow,
    /// Evicted to make room.
    Evicted,
    /// All bodies together would hold more than `max_body_total`.
    Budget,
    /// The stream ended or failed.
    Gone,
}

/// A body being received: its bytes, and the share of `max_body_total` its capacity holds
/// (given back on drop).
struct Body<'a> {
    bytes: Vec<u8>,
    reserved: usize,
    pool: &'a AtomicUsize,
    max: usize,
}

impl Body<'_> {
    /// Appends `data`, growing the buffer (towards `total`, the announced length) only as far
    /// as received bytes need, within the shared budget.
    fn extend(&mut self, data: &[u8], total: usize) -> Result<(), BodyError> {
        let need = self.bytes.len() + data.len();
        if need > self.reserved {
            let want = need.max(self.reserved * 2).max(4096).min(total.max(need));
            let extra = want - self.reserved;
            self.pool
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                    (cur + extra <= self.max).then_some(cur + extra)
                })
                .map_err(|_| BodyError::Budget)?;
            self.reserved = want;
            self.bytes.reserve_exact(want - self.bytes.len());
        }
        self.bytes.extend_from_slice(data);
        Ok(())
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.reserved, Ordering::Relaxed);
    }
}

impl Server {
    /// A server answering with `router` within `limits`.
    pub fn new(router: Router, limits: Limits) -> Self {
        Server {
            router,
            limits,
            counters: Counters::default(),
            slots: RefCell::new(Vec::new()),
            cap: Cell::new(limits.max_connections),
            body_total: Cell::new(limits.max_body_total),
            by_phase: Cell::new([0; 4]),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connections served at once: [`Limits::max_connections`], or fewer when the listener
    /// that `run` (feature `xenia`) serves holds fewer (its budgets follow the domain's heap).
    /// When this many are open, a newcomer evicts a stalled one.
    pub fn max_connections(&self) -> usize {
        self.cap.get()
    }

    /// Body bytes all connections may hold at once: [`Limits::max_body_total`], or less when
    /// the listener that `run` (feature `xenia`) serves was granted less by the domain's
    /// memory budget. A body that would go past it gets 503.
    pub fn max_body_total(&self) -> usize {
        self.body_total.get()
    }

    /// The counters now.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let by_phase = self.by_phase.get();
        ServerStats {
            waiting: by_phase[Phase::Idle as usize],
            reading_head: by_phase[Phase::Head as usize],
            reading_body: by_phase[Phase::Body as usize],
            busy: by_phase[Phase::Busy as usize],
            connections: c.connections.load(Ordering::Relaxed),
            open_connections: c.open.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            body_bytes: c.body_bytes.load(Ordering::Relaxed),
        }
    }

    /// Serves the requests of one connection until it ends (the caller closes the stream).
    ///
    /// When this connection fills the server (`max_connections` served at once, this one
    /// included), another is evicted to make room for the next: a keep-alive connection idle
    /// between requests (the longest idle), else the one longest at its head (a new
    /// connection counts from its start, so the newest goes last), else the one longest at
    /// its body. Slow clients cannot keep a full server from new ones. Only a connection
    /// stalled in its phase for at least [`EVICT_MIN_STALL`] can go: busy keep-alive clients
    /// (idle or mid-head for a moment between requests) are never evicted for newcomers, which
    /// then wait in the listener's backlog as they would without eviction.
    pub async fn serve<S: Read + Write, C: Clock>(&self, s: &mut S, clock: &C) -> End {
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let open = self.counters.open.fetch_add(1, Ordering::Relaxed) + 1;
        let now = clock.now();
        let id = self.add_slot(now);
        if open >= self.cap.get() as u64 {
            self.evict_one(id, now);
        }
        let end = self.serve_requests(s, clock, id).await;
        if let Some(s) = self.slots.borrow_mut()[id].take() {
            self.count_phase(s.phase, None);
        }
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
        match end {
            End::TimedOut => self.counters.timeouts.fetch_add(1, Ordering::Relaxed),
            End::Evicted => self.counters.evictions.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        end
    }

    fn add_slot(&self, now: Duration) -> usize {
        let slot = Slot {
            phase: Phase::Idle,
            since: now,
            evict: false,
            waker: None,
        };
        let mut n = self.by_phase.get();
        n[Phase::Idle as usize] += 1;
        self.by_phase.set(n);
        let mut slots = self.slots.borrow_mut();
        match slots.iter().position(Option::is_none) {
            Some(i) => {
                slots[i] = Some(slot);
                i
            }
            None => {
                slots.push(Some(slot));
                slots.len() - 1
            }
        }
    }

    fn set_phase(&self, id: usize, phase: Phase, now: Duration) {
        if let Some(s) = self.slots.borrow_mut()[id].as_mut() {
            self.count_phase(s.phase, Some(phase));
            s.phase = phase;
            s.since = now;
        }
    }

    /// A connection left phase `from` for `to` (`None`: it ended).
    fn count_phase(&self, from: Phase, to: Option<Phase>) {
        let mut n = self.by_phase.get();
        n[from as usize] = n[from as usize].saturating_sub(1);
        if let Some(to) = to {
            n[to as usize] += 1;
        }
        self.by_phase.set(n);
    }

    /// Marks the stalest evictable connection other than `me` for eviction and wakes it (none
    /// when no connection has been stalled for [`EVICT_MIN_STALL`] at `now`).
    fn evict_one(&self, me: usize, now: Duration) {
        let mut slots = self.slots.borrow_mut();
        let victim = slots
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .filter_map(|(_, s)| s.as_mut())
            .filter(|s| s.phase != Phase::Busy && !s.evict)
            .filter(|s| now.saturating_sub(s.since) >= EVICT_MIN_STALL)
            .min_by_key(|s| (s.phase, s.since));
        if let Some(v) = victim {
            v.evict = true;
            if let Some(w) = v.waker.take() {
                w.wake();
            }
        }
    }

    /// Runs `f` until `deadline`, or until this connection is evicted.
    async fn wait<C: Clock, F: Future>(
        &self,
        id: usize,
        clock: &C,
        deadline: Duration,
        f: F,
    ) -> Waited<F::Output> {
        let mut f = pin!(f);
        let mut timer = pin!(clock.sleep_until(deadline));
        poll_fn(|cx| {
            {
                let mut slots = self.slots.borrow_mut();
                if let Some(s) = slots[id].as_mut() {
                    if s.evict {
                        return Poll::Ready(Waited::Evicted);
                    }
                    s.waker = Some(cx.waker().clone());
                }
            }
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(Waited::Done(v));
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Waited::Deadline);
            }
            Poll::Pending
        })
        .await
    }

    async fn serve_requests<S: Read + Write, C: Clock>(
        &self,
        s: &mut S,
        clock: &C,
        id: usize,
    ) -> End {
        let l = &self.limits;
        let mut input = Input::new(l.max_head);
        // A new connection's first request must arrive whole within the head timeout of the
        // connection's start; later ones within it of their first byte.
        let start = clock.now();
        let first_deadline = start + l.head_timeout;
        let mut first = true;
        loop {
            // Wait for the next request's first byte (empty lines before it are skipped).
            let idle_deadline = if first {
                first_deadline
            } else {
                clock.now() + l.idle_timeout
            };
            // A new connection counts as a head begun at its start (for eviction, the
            // newest is the last to go; it may not even have been read yet); a keep-alive
            // one between requests as idle (the first to go).
            if first {
                self.set_phase(id, Phase::Head, start);
            } else {
                self.set_phase(id, Phase::Idle, clock.now());
            }
            loop {
                let blank = input
                    .pending()
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                input.consume(blank);
                if !input.is_empty() {
                    break;
                }
                match self.wait(id, clock, idle_deadline, input.fill(s)).await {
                    Waited::Deadline => return End::TimedOut,
                    Waited::Evicted => return End::Evicted,
                    Waited::Done(Ok(Fill::Read(_) | Fill::Full)) => {}
                    Waited::Done(Ok(Fill::End)) => return End::ClientClosed,
                    Waited::Done(Err(_)) => return End::Io,
                }
            }
            // The whole head, within its deadline from its first byte.
            let head_deadline = if core::mem::take(&mut first) {
                first_deadline
            } else {
                self.set_phase(id, Phase::Head, clock.now());
                clock.now() + l.head_timeout
            };
            let mut scanner = HeadScanner::new();
            let head_len = loop {
                if let Some(n) = scanner.scan(input.pending()) {
                    break n;
                }
                match self.wait(id, clock, head_deadline, input.fill(s)).await {
                    Waited::Deadline => return self.error(s, clock, Status::REQUEST_TIMEOUT).await,
                    Waited::Evicted => return self.evicted(s, clock).await,
                    Waited::Done(Ok(Fill::Read(_))) => {}
                    Waited::Done(Ok(Fill::End)) => {
                        return self.error(s, clock, Status::BAD_REQUEST).await
                    }
                    Waited::Done(Ok(Fill::Full)) => {
                        return self.error(s, clock, Status::HEADER_FIELDS_TOO_LARGE).await
                    }
                    Waited::Done(Err(_)) => return End::Io,
                }
            };
            let head = parse_head(&input.pending()[..head_len]);
            input.consume(head_len);
            let head = match head {
                Ok(h) => h,
                Err(status) => return self.error(s, clock, status).await,
            };
            // A body larger than all bodies together may hold could never be taken whole.
            if head.content_length > l.max_body.min(self.body_total.get()) {
                return self.error(s, clock, Status::PAYLOAD_TOO_LARGE).await;
            }
            self.set_phase(id, Phase::Body, clock.now());
            let mut body = match self
                .read_body(s, clock, id, &mut input, head.content_length)
                .await
            {
                Ok(b) => b,
                Err(BodyError::Slow) => return self.error(s, clock, Status::REQUEST_TIMEOUT).await,
                Err(BodyError::Evicted) => return self.evicted(s, clock).await,
                Err(BodyError::Budget) => {
                    return self.error(s, clock, Status::SERVICE_UNAVAILABLE).await
                }
                Err(BodyError::Gone) => return End::Io,
            };
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.set_phase(id, Phase::Busy, clock.now());
            let keep_alive = head.keep_alive;
            let req = Request::from_head(head, core::mem::take(&mut body.bytes), self.stats());
            let resp = self.router.handle(req).await;
            let wrote = self
                .write(s, clock, &resp, keep_alive, l.write_timeout, true)
                .await;
            drop(resp);
            drop(body);
            if let Some(end) = wrote {
                return end;
            }
            if !keep_alive {
                return End::Closed;
            }
        }
    }

    /// Receives a `len`-byte body at the minimum rate, within the shared budget.
    async fn read_body<S: Read, C: Clock>(
        &self,
        s: &mut S,
        clock: &C,
        id: usize,
        input: &mut Input,
        len: usize,
    ) -> Result<Body<'_>, BodyError> {
        let rate = self.limits.body_rate;
        let mut body = Body {
            bytes: Vec::new(),
            reserved: 0,
            pool: &self.counters.body_bytes,
            max: self.body_total.get(),
        };
        let mut window_deadline = clock.now() + rate.per;
        let mut window = 0;
        while body.bytes.len() < len {
            if input.is_empty() {
                match self.wait(id, clock, window_deadline, input.fill(s)).await {
                    Waited::Deadline => return Err(BodyError::Slow),
                    Waited::Evicted => return Err(BodyError::Evicted),
                    Waited::Done(Ok(Fill::Read(_) | Fill::Full)) => {}
                    Waited::Done(Ok(Fill::End) | Err(_)) => return Err(BodyError::Gone),
                }
            }
            let n = (len - body.bytes.len()).min(input.pending().len());
            body.extend(&input.pending()[..n], len)?;
            input.consume(n);
            window += n;
            if window >= rate.bytes {
                window = 0;
                window_deadline = clock.now() + rate.per;
            }
        }
        Ok(body)
    }

    /// Writes `resp` within `limit` (waiting until the client acknowledged it if `flush`);
    /// `Some(end)` if the connection is done for.
    async fn write<S: Write, C: Clock>(
        &self,
        s: &mut S,
        clock: &C,
        resp: &Response,
        keep_alive: bool,
        limit: Duration,
        flush: bool,
    ) -> Option<End> {
        let deadline = clock.now() + limit;
        let w = write_response(s, resp, keep_alive, flush);
        match crate::clock::until(clock, deadline, w).await {
            None => Some(End::TimedOut),
            Some(Err(())) => Some(End::Io),
            Some(Ok(())) => None,
        }
    }

    /// Tells an evicted client its request was too slow (408) and ends the connection.
    async fn evicted<S: Write, C: Clock>(&self, s: &mut S, clock: &C) -> End {
        match self.error(s, clock, Status::REQUEST_TIMEOUT).await {
            End::TimedOut => End::Evicted,
            other => other,
        }
    }

    /// Sends an error response (counted as a request) and ends the connection. A 408 (a slow
    /// or evicted client) is not waited for: it goes into the send buffer, and the stack sends
    /// it before the FIN once the stream is dropped, so the slot is free at once. Other errors
    /// wait until acknowledged (the client may still be sending; a stream dropped with unread
    /// bytes is reset, which could lose the answer).
    async fn error<S: Write, C: Clock>(&self, s: &mut S, clock: &C, status: Status) -> End {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let limit = self.limits.error_timeout.min(self.limits.write_timeout);
        let flush = status != Status::REQUEST_TIMEOUT;
        let ended = self
            .write(s, clock, &Response::error(status), false, limit, flush)
            .await;
        match ended {
            Some(end) => end,
            None if status == Status::REQUEST_TIMEOUT => End::TimedOut,
            None => End::Closed,
        }
    }
}

async fn write_response<S: Write>(
    s: &mut S,
    r: &Response,
    keep_alive: bool,
    flush: bool,
) -> Result<(), ()> {
    let head = r.head(keep_alive);
    // A small response goes out in one write (one segment).
    if r.body.len() <= 1024 {
        let mut out = Vec::with_capacity(head.len() + r.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&r.body);
        s.write_all(&out).await.map_err(drop)?;
    } else {
        s.write_all(head.as_bytes()).await.map_err(drop)?;
        s.write_all(&r.body).await.map_err(drop)?;
    }
    if flush {
        s.flush().await.map_err(drop)?;
    }
    Ok(())
}

#[cfg(feature = "xenia")]
mod guest {
    use super::Server;
    use crate::clock::XeniaClock;
    use xenia::net::{ListenConfig, NetError, TcpListener};

    impl crate::Limits {
        /// `config` with this server's connection cap (`max_connections`): past it, new
        /// connections wait in the listener's backlog. It also declares what the server holds
        /// beside the sockets (a head buffer of up to `max_head` per connection,
        /// `max_body_total` of bodies), so that the domain's memory budget counts them.
        pub fn listen_config(&self, config: ListenConfig) -> ListenConfig {
            ListenConfig {
                max_connections: self.max_connections,
                app_bytes_per_connection: self.max_head,
                app_bytes_shared: self.max_body_total,
                ..config
            }
        }
    }

    impl Server {
        /// Listens on `port` of the default stack with `config` and this server's connection
        /// cap.
        pub fn listen(&self, port: u16, config: ListenConfig) -> Result<TcpListener, NetError> {
            TcpListener::bind_with(port, self.limits.listen_config(config))
        }

        /// Accepts connections for ever, serving each in its own task. The listener's
        /// `max_connections` is the cap: bind it with [`listen`](Server::listen) or
        /// [`Limits::listen_config`](crate::Limits::listen_config). Where the domain's heap
        /// shrank the listener's cap below
        /// [`Limits::max_connections`](crate::Limits::max_connections), the server evicts at
        /// the listener's cap (else a full listener would never let it evict). Likewise the
        /// bodies keep within the listener's granted
        /// [`app_bytes_shared`](ListenConfig::app_bytes_shared) when the budget shrank it
        /// (see [`max_body_total`](Server::max_body_total)).
        pub async fn run(&'static self, listener: TcpListener) -> Result<(), NetError> {
            let granted = listener.config();
            let cap = granted.max_connections.min(self.limits.max_connections);
            self.cap.set(cap.max(1));
            if granted.app_bytes_shared != 0 {
                let total = granted.app_bytes_shared.min(self.limits.max_body_total);
                self.body_total.set(total);
            }
            loop {
                let mut c = listener.accept().await?;
                xenia::spawn(async move {
                    // A backstop under the deadlines: no single read or write waits longer.
                    let l = &self.limits;
                    c.set_idle_timeout(Some(l.idle_timeout.max(l.write_timeout)));
                    self.serve(&mut c, &XeniaClock).await;
                    // Every response was flushed (acknowledged) already, but a last 408.
                    // Dropping the stream frees the connection's slot now and hands the
                    // socket to the stack, which sends what is left and the FIN and frees it
                    // once closed (or resets it: unread bytes, its orphan budget, its grace
                    // period), so a client that never acknowledges holds no slot.
                    drop(c);
                });
            }
        }
    }
}
