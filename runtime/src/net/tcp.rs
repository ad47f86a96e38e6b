//! TCP: listeners with a backlog, and streams implementing `embedded_io_async`.

use super::stack::Stack;
use super::{Ipv4Addr, NetError};
use alloc::vec;
use core::future::poll_fn;
use core::task::Poll;
use core::time::Duration;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// Buffer sizes and budgets of a [`TcpListener`] (and buffer sizes of a connecting
/// [`TcpStream`]).
///
/// Every socket of a listener counts against one of its budgets, so its memory is bounded:
/// at most `1 + max_half_open + backlog + max_connections + max_orphans` sockets of
/// `rx_buffer + tx_buffer` bytes each (one listening socket, handshakes in progress,
/// connections waiting for [`TcpListener::accept`], accepted streams, and closing sockets of
/// dropped streams). Past a budget, new connections are dropped or refused, never allocated.
/// With the defaults: 1 + 64 + 16 + 256 + 64 = 401 sockets of 32 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// Established connections kept waiting for [`TcpListener::accept`] (1 ..= 1024, default
    /// 16). A connection that completes its handshake while the queue is full waits for room
    /// among the half-open ones (counted against `max_half_open`) until `half_open_timeout`
    /// after its SYN, and is reset then.
    pub backlog: usize,
    /// Receive buffer of each connection, bytes (1 KiB ..= 1 MiB, default 16 KiB).
    pub rx_buffer: usize,
    /// Send buffer of each connection, bytes (1 KiB ..= 1 MiB, default 16 KiB).
    pub tx_buffer: usize,
    /// Connections in SYN-RECEIVED (handshake not complete) kept at once (1 ..= 1024, default
    /// 64). A SYN that arrives while the budget is full takes the place of the oldest one,
    /// which is dropped silently: a SYN flood cannot hold the port, and a client whose ACK
    /// follows its SYN within that many other SYNs still connects.
    pub max_half_open: usize,
    /// How long a handshake may take before it is dropped (10 ms ..= 120 s, default 3 s).
    pub half_open_timeout: Duration,
    /// Accepted streams alive at once (1 ..= 65536, default 256). While this many are alive,
    /// [`TcpListener::accept`] waits (new connections wait in the accept queue, and beyond
    /// it are reset).
    pub max_connections: usize,
    /// Sockets of dropped streams still closing (1 ..= 65536, default 64). One more dropped
    /// stream resets the oldest. Each is reset after a grace period (10 s) by a timer.
    pub max_orphans: usize,
    /// Heap bytes the app holds for each accepted stream beyond its socket, at most (for
    /// example an HTTP server's request-head buffer; 0 ..= 16 MiB, default 0). The domain's
    /// memory budget counts them with the stream's socket, so a small domain takes fewer
    /// connections rather than running out of heap.
    pub app_bytes_per_connection: usize,
    /// Heap bytes the app holds for all of this listener's streams together, at most (for
    /// example the request bodies an HTTP server keeps in memory; 0 ..= 1 GiB, default 0).
    /// The domain's memory budget may grant less: the app reads what it got from
    /// [`TcpListener::config`] and keeps within it.
    pub app_bytes_shared: usize,
}

impl Default for ListenConfig {
    /// Backlog 16, 16 KiB buffers each way, 64 half-open connections for 3 s at most,
    /// 256 connections, 64 orphans, no app bytes counted.
    fn default() -> Self {
        ListenConfig {
            backlog: 16,
            rx_buffer: 16 * 1024,
            tx_buffer: 16 * 1024,
            max_half_open: 64,
            half_open_timeout: Duration::from_secs(3),
            max_connections: 256,
            max_orphans: 64,
            app_bytes_per_connection: 0,
            app_bytes_shared: 0,
        }
    }
}

impl ListenConfig {
    fn validate(&self) -> Result<(), NetError> {
        let ok_buf = |b: usize| (1024..=1 << 20).contains(&b);
        let ok = (1..=1024).contains(&self.backlog)
            && ok_buf(self.rx_buffer)
            && ok_buf(self.tx_buffer)
            && (1..=1024).contains(&self.max_half_open)
            && (Duration::from_millis(10)..=Duration::from_secs(120))
                .contains(&self.half_open_timeout)
            && (1..=65536).contains(&self.max_connections)
            && (1..=65536).contains(&self.max_orphans)
            && self.app_bytes_per_connection <= 16 << 20
            && self.app_bytes_shared <= 1 << 30;
        if !ok {
            return Err(NetError::BadConfig(alloc::format!("{self:?}")));
        }
        Ok(())
    }

    pub(super) fn socket(&self) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.rx_buffer]),
            tcp::SocketBuffer::new(vec![0; self.tx_buffer]),
        );
        // Requests and responses are small writes: send them at once.
        s.set_nagle_enabled(false);
        s
    }
}

/// A TCP port that accepts connections.
pub struct TcpListener {
    stack: &'static Stack,
    slot: usize,
    port: u16,
}

impl core::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpListener")
            .field("port", &self.port)
            .finish()
    }
}

impl TcpListener {
    /// Listens on `port` of the default stack ([`init`](super::init) must have run) with the
    /// default backlog and buffers.
    pub fn bind(port: u16) -> Result<TcpListener, NetError> {
        Self::bind_with(port, ListenConfig::default())
    }

    /// Listens on `port` of the default stack with `config`.
    pub fn bind_with(port: u16, config: ListenConfig) -> Result<TcpListener, NetError> {
        let stack = super::stack().ok_or(NetError::NotInitialized)?;
        Self::bind_on(stack, port, config)
    }

    /// Listens on `port` of `stack` with `config`.
    pub fn bind_on(
        stack: &'static Stack,
        port: u16,
        config: ListenConfig,
    ) -> Result<TcpListener, NetError> {
        config.validate()?;
        let config = super::budget::listener(config);
        if port == 0 {
            return Err(NetError::Unaddressable);
        }
        let slot = stack.borrow().add_listener(port, config)?;
        Ok(TcpListener { stack, slot, port })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The budgets in force: the configuration asked for, shrunk to the domain's heap
    /// (see [`budget`](super::budget)) where it did not fit. A server whose connection cap
    /// must match the listener's reads `max_connections` here.
    pub fn config(&self) -> ListenConfig {
        let g = self.stack.borrow();
        g.listeners
            .get(self.slot)
            .and_then(Option::as_ref)
            .map_or_else(ListenConfig::default, |l| l.config)
    }

    /// Waits for the next connection: one that completed its handshake (connections still
    /// in SYN-RECEIVED never reach the app). While [`ListenConfig::max_connections`] streams
    /// from this listener are alive, waits for one of them to be dropped.
    pub async fn accept(&self) -> Result<TcpStream, NetError> {
        poll_fn(|cx| {
            let mut guard = self.stack.borrow();
            let g = &mut *guard;
            let Some(l) = g.listeners.get_mut(self.slot).and_then(Option::as_mut) else {
                return Poll::Ready(Err(NetError::NotConnected));
            };
            if l.live >= l.config.max_connections {
                l.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            match l.ready.pop_front() {
                Some(h) => {
                    l.live += 1;
                    // A connection may be waiting for room in the queue: let the driver move it.
                    let waiting = !l.half_open.is_empty();
                    let owner = Some(l.id);
                    g.stats.tcp_accepted += 1;
                    if waiting {
                        g.kick();
                    }
                    on_accept(self.port(), g.stats.tcp_accepted);
                    Poll::Ready(Ok(TcpStream {
                        stack: self.stack,
                        handle: Some(h),
                        idle: None,
                        owner,
                    }))
                }
                None => {
                    l.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// Runs once per accepted connection, with the listener's port and the number of connections
/// accepted so far: a stable place for a debugger's breakpoint
/// (`break xenia::net::tcp::on_accept`, then `p $rdi` is the port), never inlined.
#[inline(never)]
fn on_accept(port: u16, accepted: u64) {
    core::hint::black_box((port, accepted));
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.stack.borrow().remove_listener(self.slot);
    }
}

/// A TCP connection. Reads and writes are async ([`embedded_io_async::Read`] and
/// [`Write`](embedded_io_async::Write) too); dropping it closes the connection.
pub struct TcpStream {
    stack: &'static Stack,
    handle: Option<SocketHandle>,
    /// Longest wait of one read, write or flush (see [`TcpStream::set_idle_timeout`]).
    idle: Option<Duration>,
    /// The id of the listener that accepted it (its budgets apply), if any.
    owner: Option<u64>,
}

impl core::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpStream")
            .field("remote", &self.remote())
            .finish()
    }
}

impl TcpStream {
    /// Connects to `addr:port` through the default stack with default buffers.
    pub async fn connect(addr: Ipv4Addr, port: u16) -> Result<TcpStream, NetError> {
        let stack = super::stack().ok_or(NetError::NotInitialized)?;
        Self::connect_on(stack, addr, port, ListenConfig::default()).await
    }

    /// Connects to `addr:port` through `stack` with `config`'s buffer sizes.
    pub async fn connect_on(
        stack: &'static Stack,
        addr: Ipv4Addr,
        port: u16,
        config: ListenConfig,
    ) -> Result<TcpStream, NetError> {
        config.validate()?;
        if port == 0 || addr.is_unspecified() {
            return Err(NetError::Unaddressable);
        }
        let handle = {
            let mut guard = stack.borrow();
            let g = &mut *guard;
            let mut s = config.socket();
            let local = g.ephemeral_port();
            s.connect(g.iface.context(), (IpAddress::Ipv4(addr), port), local)
                .map_err(|_| NetError::Unaddressable)?;
            g.stats.tcp_connects += 1;
            let h = g.sockets.add(s);
            g.kick();
            h
        };
        let stream = TcpStream {
            stack,
            handle: Some(handle),
            idle: None,
            owner: None,
        };
        poll_fn(|cx| {
            let mut g = stack.borrow();
            let s = g.sockets.get_mut::<tcp::Socket>(handle);
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed | tcp::State::TimeWait => {
                    Poll::Ready(Err(NetError::ConnectionRefused))
                }
                _ => Poll::Ready(Ok(())),
            }
        })
        .await?;
        Ok(stream)
    }

    fn h(&self) -> SocketHandle {
        self.handle.expect("TcpStream used after close")
    }

    /// The peer's address and port.
    pub fn remote(&self) -> Option<(Ipv4Addr, u16)> {
        let g = self.stack.borrow();
        let e: IpEndpoint = g.sockets.get::<tcp::Socket>(self.h()).remote_endpoint()?;
        match e.addr {
            IpAddress::Ipv4(a) => Some((a, e.port)),
            // Only if smoltcp has IPv6 compiled in; never: the stack has no IPv6 address.
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The local port.
    pub fn local_port(&self) -> Option<u16> {
        let g = self.stack.borrow();
        g.sockets
            .get::<tcp::Socket>(self.h())
            .local_endpoint()
            .map(|e| e.port)
    }

    /// Resets the connection if the peer does not acknowledge data for `limit` (`None`:
    /// never).
    pub fn set_timeout(&mut self, limit: Option<Duration>) {
        let mut g = self.stack.borrow();
        g.sockets
            .get_mut::<tcp::Socket>(self.h())
            .set_timeout(limit.map(|d| smoltcp::time::Duration::from_micros(d.as_micros() as u64)));
    }

    /// Makes a read, write or flush that waits longer than `limit` fail with
    /// [`NetError::IdleTimeout`] (`None`, the default: wait as long as it takes). A server
    /// sets this so that a client that goes quiet does not hold a connection for ever.
    pub fn set_idle_timeout(&mut self, limit: Option<Duration>) {
        self.idle = limit;
    }

    /// Reads what is there (at least one byte, waiting for it); `Ok(0)` at the end of the
    /// peer's data (or for an empty `buf`).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let idle = self.idle;
        within_idle(idle, self.read_now(buf)).await
    }

    async fn read_now(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let h = self.h();
        let stack = self.stack;
        poll_fn(|cx| {
            let mut guard = stack.borrow();
            let g = &mut *guard;
            let s = g.sockets.get_mut::<tcp::Socket>(h);
            if s.can_recv() {
                let before = s.recv_capacity() - s.recv_queue();
                let n = s.recv_slice(buf).unwrap_or(0);
                // A window that was (nearly) closed opens again: tell the peer soon.
                if before < s.recv_capacity() / 4 {
                    g.kick();
                }
                return Poll::Ready(Ok(n));
            }
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {}
                tcp::State::Closed if s.remote_endpoint().is_none() => {
                    return Poll::Ready(Err(NetError::ConnectionReset))
                }
                _ if !s.may_recv() => return Poll::Ready(Ok(0)),
                _ => {}
            }
            s.register_recv_waker(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Writes some of `buf` (waiting for room in the send buffer); returns how much.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        let idle = self.idle;
        within_idle(idle, self.write_now(buf)).await
    }

    async fn write_now(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let h = self.h();
        let stack = self.stack;
        poll_fn(|cx| {
            let mut guard = stack.borrow();
            let g = &mut *guard;
            let s = g.sockets.get_mut::<tcp::Socket>(h);
            if s.can_send() {
                let n = s.send_slice(buf).unwrap_or(0);
                if n > 0 {
                    g.kick();
                    return Poll::Ready(Ok(n));
                }
            }
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {}
                tcp::State::Closed => return Poll::Ready(Err(NetError::ConnectionReset)),
                _ if !s.may_send() => return Poll::Ready(Err(NetError::NotConnected)),
                _ => {}
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until the peer has acknowledged everything written.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        let idle = self.idle;
        within_idle(idle, self.flush_now()).await
    }

    async fn flush_now(&mut self) -> Result<(), NetError> {
        let h = self.h();
        let stack = self.stack;
        poll_fn(|cx| {
            let mut g = stack.borrow();
            let s = g.sockets.get_mut::<tcp::Socket>(h);
            if s.send_queue() == 0 {
                return Poll::Ready(Ok(()));
            }
            if s.state() == tcp::State::Closed {
                return Poll::Ready(Err(NetError::ConnectionReset));
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Sends what was written, then a FIN, and waits until the peer acknowledged the data;
    /// the socket is freed once the connection has closed.
    pub async fn close(mut self) -> Result<(), NetError> {
        {
            let mut g = self.stack.borrow();
            g.sockets.get_mut::<tcp::Socket>(self.h()).close();
            g.kick();
        }
        self.flush().await
    }

    /// Resets the connection at once.
    pub fn abort(mut self) {
        if let Some(h) = self.handle.take() {
            let mut g = self.stack.borrow();
            g.sockets.get_mut::<tcp::Socket>(h).abort();
            g.stream_dropped(h, self.owner);
        }
    }
}

/// Runs one I/O step of a stream, failing it with [`NetError::IdleTimeout`] after `idle`.
async fn within_idle<T>(
    idle: Option<Duration>,
    step: impl core::future::Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    match idle {
        None => step.await,
        Some(limit) => crate::timeout(limit, step)
            .await
            .unwrap_or(Err(NetError::IdleTimeout)),
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.stack.borrow().stream_dropped(h, self.owner);
        }
    }
}

impl embedded_io_async::ErrorType for TcpStream {
    type Error = NetError;
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        TcpStream::read(self, buf).await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        TcpStream::write(self, buf).await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        TcpStream::flush(self).await
    }
}
