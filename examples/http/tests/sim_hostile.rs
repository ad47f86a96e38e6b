//! The http example against hostile clients through the simulator, with its own limits and
//! listener budgets: slowloris clients (more than the connection cap, each sending a head one
//! byte every 2 s, reconnecting when closed) and clients that announce 1 MiB bodies and send
//! nothing, while a normal client asks `/health` once a second. Virtual time: the simulator's
//! clock jumps to the next timer when every task waits.
//!
//! Memory: `xenia::heap_in_use()` is 0 on the host, so this binary counts the process's heap
//! with its own global allocator (guest, simulated netback and the peer's sockets together).
//! One test: the runtime boots once a process.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use http::SystemInfo;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use xenia::net::{IpConfig, TcpListener};
use xenia_http::Server;
use xenia_sim::peer_host::PeerHost;
use xenia_sim::runtime::{boot_with_peer, Rig};

#[global_allocator]
static ALLOC: xenia_sim::heap::Counting = xenia_sim::heap::Counting;

fn heap() -> usize {
    xenia_sim::heap::in_use()
}

/// Slowloris clients: more than the server's cap.
const SLOW_CLIENTS: usize = http::MAX_CONNECTIONS + 72;
/// Clients that announce a 1 MiB body and send nothing.
const HUGE_BODY_CLIENTS: usize = 100;
/// The peer's buffers for each attacking socket.
const PEER_BUF: usize = 1024;

/// A client of the peer's, connecting to the guest's port 80.
fn connect(peer: &Rc<RefCell<PeerHost>>, buf: usize) -> SocketHandle {
    peer.borrow_mut()
        .connect((IpAddress::v4(10, 0, 0, 2), 80), buf)
}

/// Resets and frees a peer socket (after the reset went out).
async fn drop_socket(peer: &Rc<RefCell<PeerHost>>, h: SocketHandle) {
    peer.borrow_mut().sockets.get_mut::<tcp::Socket>(h).abort();
    xenia::sleep(Duration::from_millis(5)).await;
    peer.borrow_mut().sockets.remove(h);
}

/// What the attackers saw.
#[derive(Debug, Default)]
struct Seen {
    /// Connections made.
    connects: usize,
    /// 408 answers received.
    answers_408: usize,
    /// Connections the server closed or reset.
    closed: usize,
    /// Seconds from a huge-body head to the server's 408, each.
    body_close_secs: Vec<f64>,
}

/// A slowloris client: a head one byte every 2 s, never finished; reconnects when the server
/// closes the connection.
async fn slowloris(peer: Rc<RefCell<PeerHost>>, stop: Rc<Cell<bool>>, seen: Rc<RefCell<Seen>>) {
    let head = b"GET / HTTP/1.1\r\nX-Slow: ";
    while !stop.get() {
        let h = connect(&peer, PEER_BUF);
        seen.borrow_mut().connects += 1;
        let mut sent = 0;
        let mut got = Vec::new();
        while !stop.get() {
            let closed = {
                let mut p = peer.borrow_mut();
                let s = p.sockets.get_mut::<tcp::Socket>(h);
                let byte = [*head.get(sent).unwrap_or(&b'a')];
                let mut one = 0;
                xenia_sim::peer::exchange(s, &byte, &mut one, &mut got);
                sent += one;
                !s.may_recv() && s.state() != tcp::State::SynSent
            };
            if closed {
                let mut seen = seen.borrow_mut();
                seen.closed += 1;
                seen.answers_408 += usize::from(got.starts_with(b"HTTP/1.1 408"));
                break;
            }
            xenia::sleep(Duration::from_secs(2)).await;
        }
        drop_socket(&peer, h).await;
    }
}

/// A client that announces a 1 MiB body, sends none of it, and waits to be closed.
async fn huge_body(peer: Rc<RefCell<PeerHost>>, seen: Rc<RefCell<Seen>>) {
    let req = b"POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n";
    let h = connect(&peer, PEER_BUF);
    seen.borrow_mut().connects += 1;
    let mut sent = 0;
    let mut got = Vec::new();
    let mut head_sent_at = None;
    let start = xenia::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let closed = {
            let mut p = peer.borrow_mut();
            let s = p.sockets.get_mut::<tcp::Socket>(h);
            xenia_sim::peer::exchange(s, req, &mut sent, &mut got);
            if sent == req.len() && head_sent_at.is_none() {
                head_sent_at = Some(xenia::time::Instant::now());
            }
            !s.may_recv() && s.state() != tcp::State::SynSent
        };
        if closed {
            break;
        }
        xenia::sleep(Duration::from_millis(10)).await;
    }
    {
        let mut seen = seen.borrow_mut();
        seen.closed += 1;
        if got.starts_with(b"HTTP/1.1 408") {
            seen.answers_408 += 1;
            if let Some(t) = head_sent_at {
                seen.body_close_secs.push(t.elapsed().as_secs_f64());
            }
        }
    }
    drop_socket(&peer, h).await;
}

/// The normal client: `GET /health`, `Connection: close`; the time to a 200, or why not.
async fn health(peer: &Rc<RefCell<PeerHost>>) -> Result<Duration, String> {
    let req = b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n";
    let start = xenia::time::Instant::now();
    let h = connect(peer, 4096);
    let mut sent = 0;
    let mut got = Vec::new();
    let result = loop {
        if start.elapsed() > Duration::from_secs(15) {
            break Err(format!("no answer in 15 s (sent {sent}, got {got:?})"));
        }
        {
            let mut p = peer.borrow_mut();
            let s = p.sockets.get_mut::<tcp::Socket>(h);
            xenia_sim::peer::exchange(s, req, &mut sent, &mut got);
            if got.ends_with(b"{\"status\":\"ok\"}\n") {
                break if got.starts_with(b"HTTP/1.1 200") {
                    Ok(start.elapsed())
                } else {
                    Err(String::from_utf8_lossy(&got).into())
                };
            }
            if s.state() == tcp::State::Closed {
                break Err(format!("reset (got {got:?})"));
            }
        }
        xenia::sleep(Duration::from_millis(1)).await;
    };
    drop_socket(peer, h).await;
    result
}

fn info() -> SystemInfo {
    SystemInfo::default()
}

/// Asks `/health` once a second for `secs` seconds; the latencies, all of which must be 200s.
async fn normal_client(peer: &Rc<RefCell<PeerHost>>, secs: u64) -> Vec<Duration> {
    let mut lat = Vec::new();
    let t0 = xenia::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let t = xenia::time::Instant::now();
        match health(peer).await {
            Ok(d) => lat.push(d),
            Err(e) => panic!(
                "the normal client was not served at {:?}: {e}",
                t0.elapsed()
            ),
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(t.elapsed()) {
            xenia::sleep(rest).await;
        }
    }
    lat
}

#[test]
fn slowloris_and_huge_bodies_leave_a_normal_client_served_in_bounded_memory() {
    let Rig { peer, .. } = boot_with_peer(256, 13, 20000);
    let server: &'static Server = Box::leak(Box::new(Server::new(http::app(info), http::limits())));
    let listen = http::listen_config();
    let limits = http::limits();

    xenia::block_on(async move {
        let stack = xenia::net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        let listener = TcpListener::bind_on(stack, 80, limits.listen_config(listen)).unwrap();
        xenia::spawn(server.run(listener));
        // Warm up, then the baseline.
        normal_client(&peer, 3).await;
        xenia::sleep(Duration::from_secs(1)).await;
        let base_heap = heap();
        let base = stack.stats();

        // Bound: every guest socket the listener may hold (its budgets) with its buffers
        // and < 2 KiB of state, each connection's largest read buffer and a slot, the peer's
        // attacking sockets (buffers and state), and 1 MiB for tables and frames in flight.
        let guest_sockets =
            1 + listen.max_half_open + listen.backlog + listen.max_connections + listen.max_orphans;
        let guest = guest_sockets * (listen.rx_buffer + listen.tx_buffer + 2048)
            + listen.max_connections * (limits.max_head + 512);
        let peer_bytes = (SLOW_CLIENTS + HUGE_BODY_CLIENTS + 4) * (2 * PEER_BUF + 2048);
        let bound = guest + peer_bytes + (1 << 20);

        // (1) Slowloris: SLOW_CLIENTS clients, a byte every 2 s each, for 40 s.
        let stop = Rc::new(Cell::new(false));
        let seen = Rc::new(RefCell::new(Seen::default()));
        let peak = Rc::new(Cell::new(0usize));
        let peak_sockets = Rc::new(Cell::new(0usize));
        {
            let (stop, peak, peak_sockets) = (stop.clone(), peak.clone(), peak_sockets.clone());
            xenia::spawn(async move {
                while !stop.get() {
                    peak.set(peak.get().max(heap()));
                    peak_sockets.set(peak_sockets.get().max(stack.stats().sockets));
                    xenia::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        for _ in 0..SLOW_CLIENTS {
            xenia::spawn(slowloris(peer.clone(), stop.clone(), seen.clone()));
        }
        xenia::sleep(Duration::from_secs(2)).await;
        let lat = normal_client(&peer, 40).await;
        let during = server.stats();
        stop.set(true);
        xenia::sleep(Duration::from_secs(3)).await;
        let max = lat.iter().max().copied().unwrap_or_default();
        let mean = lat.iter().sum::<Duration>() / lat.len().max(1) as u32;
        eprintln!(
            "slowloris: {SLOW_CLIENTS} clients, {seen:?}; normal client {} requests, latency max {max:?} mean {mean:?}; \
             heap peak +{} KiB (bound +{} KiB), guest sockets peak {} (baseline {}); server {during:?}",
            lat.len(),
            peak.get().saturating_sub(base_heap) / 1024,
            bound / 1024,
            peak_sockets.get(),
            base.sockets,
        );
        assert!(lat.len() >= 35, "{} requests", lat.len());
        assert!(max < Duration::from_secs(1), "latency max {max:?}");
        assert!(
            peak.get().saturating_sub(base_heap) < bound,
            "heap +{} > {bound}",
            peak.get() - base_heap
        );
        assert!(
            during.evictions > 0 && during.open_connections <= http::MAX_CONNECTIONS as u64,
            "{during:?}"
        );
        assert!(
            peak_sockets.get() <= base.sockets + guest_sockets,
            "{}",
            peak_sockets.get()
        );
        let seen_slow = std::mem::take(&mut *seen.borrow_mut());
        assert!(seen_slow.answers_408 > 0, "{seen_slow:?}");

        // (2) 100 clients announce 1 MiB bodies (100 MiB promised) and send nothing.
        let stop = Rc::new(Cell::new(false));
        peak.set(0);
        {
            let (stop, peak) = (stop.clone(), peak.clone());
            xenia::spawn(async move {
                while !stop.get() {
                    peak.set(peak.get().max(heap()));
                    xenia::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        let base_heap2 = heap();
        let mut tasks = Vec::new();
        for _ in 0..HUGE_BODY_CLIENTS {
            tasks.push(xenia::spawn(huge_body(peer.clone(), seen.clone())));
        }
        let lat = normal_client(&peer, 10).await;
        for t in tasks {
            t.await;
        }
        stop.set(true);
        let max = lat.iter().max().copied().unwrap_or_default();
        let seen = std::mem::take(&mut *seen.borrow_mut());
        let secs = &seen.body_close_secs;
        let (lo, hi) = secs
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        eprintln!(
            "huge bodies: {HUGE_BODY_CLIENTS} clients, {} answered 408, closed after {lo:.2}..{hi:.2} s; \
             normal client latency max {max:?}; heap peak +{} KiB (bound +{} KiB); server {:?}",
            seen.answers_408,
            peak.get().saturating_sub(base_heap2) / 1024,
            bound / 1024,
            server.stats(),
        );
        assert_eq!(seen.answers_408, HUGE_BODY_CLIENTS, "{seen:?}");
        let rate = limits.body_rate.per.as_secs_f64();
        assert!(
            lo >= rate && hi < rate + 1.0,
            "closed after {lo}..{hi} s, want {rate} s"
        );
        // The 100 clients connect at once, more than the listener's 64 half-open slots: the
        // normal client's SYN can be displaced by the burst (no SYN cookies) and then comes
        // back with its first retransmission 1 s later. Served within that, never later.
        assert!(max < Duration::from_millis(1500), "latency max {max:?}");
        assert!(peak.get().saturating_sub(base_heap2) < bound);
        assert_eq!(server.stats().body_bytes, 0);

        // After: everything closed, the heap back near its baseline.
        xenia::sleep(Duration::from_secs(15)).await;
        let st = stack.stats();
        let after = heap();
        eprintln!(
            "after: heap {} KiB (baseline {} KiB), sockets {} (baseline {}), server {:?}",
            after / 1024,
            base_heap / 1024,
            st.sockets,
            base.sockets,
            server.stats()
        );
        assert_eq!(server.stats().open_connections, 0);
        assert!(st.sockets <= base.sockets + 1, "{st:?}");
        // The tables keep the capacity they grew to (the guest's and the peer's smoltcp
        // socket sets, 464-byte slots grown by doubling; per connection the server's slot and
        // the executor's queues; the listener's queues); nothing else may remain.
        let peer_sockets = SLOW_CLIENTS + HUGE_BODY_CLIENTS + 4;
        let tables = (guest_sockets.next_power_of_two() + peer_sockets.next_power_of_two()) * 464
            + listen.max_connections * 256
            + 256 * 1024;
        assert!(
            after < base_heap + tables,
            "heap {after} after, {base_heap} before, tables may keep {tables}"
        );
    });
}
