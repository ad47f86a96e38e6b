//! `xenia::net`'s TCP listener against hostile clients, through the simulator: a flood of
//! spoofed SYNs from off-link addresses (never a handshake) while a well-behaved client keeps
//! connecting, and a client that leaks sockets (gets its answer, never sends FIN). The guest
//! serves a line echo on port 80; the clients are a smoltcp interface at 10.0.0.1 (the
//! guest's router) and raw frames from `xenia_sim::attack`.
//!
//! Memory: `xenia::heap_in_use()` is the guest allocator's count, and on the host it is 0, so
//! this binary counts the process's heap with its own global allocator (guest, simulated
//! netback and peer together; the peer's share is small and bounded the same way).
//! One test: the runtime boots once a process.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, Ipv4Address};
use xenia::net::{self, IpConfig, ListenConfig, Stack, TcpListener};
use xenia_sim::attack::{SynFlood, SynFloodConfig};
use xenia_sim::peer::PEER_MAC;
use xenia_sim::peer_host::{free_closed, PeerHost};
use xenia_sim::runtime::{boot_with_peer, Rig};

#[global_allocator]
static ALLOC: xenia_sim::heap::Counting = xenia_sim::heap::Counting;

fn heap() -> usize {
    xenia_sim::heap::in_use()
}

const GUEST_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0x01];
/// The listener's buffers: 4 KiB each way.
const BUF: usize = 4096;
const MAX_HALF_OPEN: usize = 32;
const MAX_ORPHANS: usize = 32;
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(3);
/// The stack's grace period for orphans (runtime/src/net/stack.rs).
const ORPHAN_GRACE: Duration = Duration::from_secs(10);

thread_local! {
    /// Connections the leaky client left open (the peer frees each once the guest reset it).
    static LEAKED: RefCell<Vec<SocketHandle>> = const { RefCell::new(Vec::new()) };
}

/// One request from the peer: connect to port 80, send a line, read it back. A leaky client
/// then keeps its socket open for ever (never sends FIN, although it acknowledges what
/// arrives); a good one closes. Returns the time to the answer (simulated).
async fn exchange(peer: &Rc<RefCell<PeerHost>>, n: u32, leak: bool) -> Result<Duration, String> {
    let start = xenia::time::Instant::now();
    let h = peer
        .borrow_mut()
        .connect((IpAddress::v4(10, 0, 0, 2), 80), 1024);
    let req = format!("hello {n}\n").into_bytes();
    let mut sent = 0;
    let mut got = Vec::new();
    let result = loop {
        if start.elapsed() > Duration::from_secs(5) {
            break Err(format!(
                "request {n}: no answer in 5 s (sent {sent}, got {got:?})"
            ));
        }
        {
            let mut p = peer.borrow_mut();
            let s = p.sockets.get_mut::<tcp::Socket>(h);
            xenia_sim::peer::exchange(s, &req, &mut sent, &mut got);
            if got.ends_with(b"\n") {
                break if got == req {
                    Ok(start.elapsed())
                } else {
                    Err(format!("request {n}: answer {got:?}"))
                };
            }
            if s.state() == tcp::State::Closed {
                break Err(format!("request {n}: reset (got {got:?})"));
            }
        }
        xenia::sleep(Duration::from_millis(1)).await;
    };
    if leak && result.is_ok() {
        LEAKED.with(|l| l.borrow_mut().push(h));
        return result;
    }
    peer.borrow_mut().sockets.get_mut::<tcp::Socket>(h).close();
    xenia::sleep(Duration::from_millis(5)).await;
    peer.borrow_mut().sockets.remove(h);
    result
}

/// The guest's service: echoes the first line of each connection, then closes.
async fn serve(listener: TcpListener) {
    loop {
        let mut c = listener.accept().await.unwrap();
        xenia::spawn(async move {
            c.set_idle_timeout(Some(Duration::from_secs(60)));
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.contains(&b'\n') {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if c.write_all(&got).await.is_ok() {
                let _ = c.close().await;
            }
        });
    }
}

/// Highest socket counts and heap seen by [`sample`].
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    sockets: usize,
    half_open: usize,
    orphans: usize,
    heap: usize,
}

/// Samples the stack's counters and the heap every millisecond until `stop`.
fn sample(stack: &'static Stack, stop: Rc<Cell<bool>>, peaks: Rc<Cell<Peaks>>) {
    xenia::spawn(async move {
        while !stop.get() {
            let st = stack.stats();
            let mut p = peaks.get();
            p.sockets = p.sockets.max(st.sockets);
            p.half_open = p.half_open.max(st.tcp_half_open);
            p.orphans = p.orphans.max(st.tcp_orphans);
            p.heap = p.heap.max(heap());
            peaks.set(p);
            xenia::sleep(Duration::from_millis(1)).await;
        }
    });
}

#[test]
fn tcp_listener_survives_syn_floods_and_leaky_clients() {
    let Rig {
        sim,
        netback: nb,
        peer,
    } = boot_with_peer(64, 11, 20000);
    peer.borrow_mut().after_poll(|sockets| {
        LEAKED.with(|l| free_closed(sockets, &mut l.borrow_mut()));
    });

    let sim2 = sim.clone();
    xenia::block_on(async move {
        let sim = sim2;
        let stack = net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        let listener = TcpListener::bind_on(
            stack,
            80,
            ListenConfig {
                backlog: 16,
                rx_buffer: BUF,
                tx_buffer: BUF,
                max_half_open: MAX_HALF_OPEN,
                half_open_timeout: HALF_OPEN_TIMEOUT,
                max_connections: 64,
                max_orphans: MAX_ORPHANS,
                ..ListenConfig::default()
            },
        )
        .unwrap();
        xenia::spawn(serve(listener));
        // Warm up (ARP, the first connection's allocations), then take the baseline.
        for n in 0..3 {
            exchange(&peer, n, false).await.unwrap();
        }
        xenia::sleep(Duration::from_secs(1)).await;
        let base = stack.stats();
        let base_heap = heap();
        eprintln!(
            "baseline: {} sockets, heap {} KiB, {base:?}",
            base.sockets,
            base_heap / 1024
        );

        // (1) 10 000 spoofed SYNs at 5000/s while a client keeps asking every 20 ms.
        let flood = SynFlood::start(
            &sim,
            nb.clone(),
            SynFloodConfig {
                src_mac: PEER_MAC,
                dst_mac: GUEST_MAC,
                dst_ip: Ipv4Address::new(10, 0, 0, 2),
                dst_port: 80,
                rate: 5000,
                total: 10_000,
                seed: 0x5eed,
            },
        );
        let stop = Rc::new(Cell::new(false));
        let peaks = Rc::new(Cell::new(Peaks::default()));
        sample(stack, stop.clone(), peaks.clone());
        let t0 = xenia::time::Instant::now();
        let mut latencies = Vec::new();
        let mut n = 100;
        while !flood.is_done() {
            latencies.push(exchange(&peer, n, false).await);
            n += 1;
            xenia::sleep(Duration::from_millis(20)).await;
        }
        let flood_time = t0.elapsed();
        stop.set(true);
        xenia::sleep(Duration::from_millis(2)).await;
        let during = peaks.get();
        let st = stack.stats();
        let ok: Vec<Duration> = latencies.iter().filter_map(|r| r.clone().ok()).collect();
        let failed: Vec<&String> = latencies.iter().filter_map(|r| r.as_ref().err()).collect();
        let max_latency = ok.iter().max().copied().unwrap_or_default();
        let mean_latency = ok.iter().sum::<Duration>() / ok.len().max(1) as u32;
        eprintln!(
            "flood: {} SYNs in {flood_time:?}; client: {}/{} answered, latency mean {mean_latency:?} max {max_latency:?}; \
             peaks: {during:?} (heap +{} KiB); {st:?}",
            flood.sent(),
            ok.len(),
            latencies.len(),
            during.heap.saturating_sub(base_heap) / 1024,
        );
        assert_eq!(flood.sent(), 10_000);
        assert!(failed.is_empty(), "the client was not served: {failed:?}");
        assert!(ok.len() >= 50, "{} requests in the flood", ok.len());
        assert!(max_latency < Duration::from_millis(100), "{max_latency:?}");
        // Sockets: the baseline (with its listening socket), the half-open budget, and the
        // client's one connection (accepted, then an orphan while it closes).
        let bound = base.sockets + MAX_HALF_OPEN + 3;
        assert!(
            during.sockets <= bound,
            "{} sockets > {bound}",
            during.sockets
        );
        assert!(during.half_open <= MAX_HALF_OPEN, "{during:?}");
        assert!(
            st.tcp_syn_dropped >= 10_000 - MAX_HALF_OPEN as u64,
            "{st:?}"
        );
        // Heap: each socket is 8 KiB of buffers plus its state (< 2 KiB); 256 KiB for the
        // queues and frames in flight.
        let heap_bound = base_heap + (MAX_HALF_OPEN + 3) * (2 * BUF + 2048) + 256 * 1024;
        assert!(
            during.heap <= heap_bound,
            "heap {} KiB > {} KiB",
            during.heap / 1024,
            heap_bound / 1024
        );
        // After the half-open timeout, with no more traffic: back to the baseline.
        xenia::sleep(HALF_OPEN_TIMEOUT + Duration::from_secs(1)).await;
        let after = stack.stats();
        let after_heap = heap();
        eprintln!(
            "{:?} after the flood: {} sockets, {} half-open, heap {} KiB",
            HALF_OPEN_TIMEOUT + Duration::from_secs(1),
            after.sockets,
            after.tcp_half_open,
            after_heap / 1024
        );
        assert_eq!(after.tcp_half_open, 0, "{after:?}");
        assert_eq!(after.sockets, base.sockets, "{after:?}");
        assert!(
            after_heap <= base_heap + 64 * 1024,
            "heap {} KiB after the flood, {} KiB before",
            after_heap / 1024,
            base_heap / 1024
        );
        assert_eq!(
            after.tcp_accepted - base.tcp_accepted,
            latencies.len() as u64
        );

        // (2) A client that leaks its sockets: 300 requests, each answered, none closed.
        let stop = Rc::new(Cell::new(false));
        let peaks = Rc::new(Cell::new(Peaks::default()));
        sample(stack, stop.clone(), peaks.clone());
        let before = stack.stats();
        let before_heap = heap();
        for i in 0..300 {
            exchange(&peer, 1000 + i, true).await.unwrap();
        }
        // Let the last answers' closes go out.
        xenia::sleep(Duration::from_millis(50)).await;
        stop.set(true);
        xenia::sleep(Duration::from_millis(2)).await;
        let during = peaks.get();
        let st = stack.stats();
        eprintln!(
            "leaks: 300 answered; peaks {during:?} (heap +{} KiB); {st:?}",
            during.heap.saturating_sub(before_heap) / 1024
        );
        assert!(during.orphans <= MAX_ORPHANS, "{during:?}");
        // Orphans, plus the connections still being served: the server's close waits for the
        // peer's ACK of the answer, which smoltcp delays by 10 ms, while the client asks every
        // 2 ms or so (about 6 at once); plus the ones reset for the budget and not freed yet
        // (freed on the next poll).
        let bound = before.sockets + MAX_ORPHANS + 10;
        assert!(
            during.sockets <= bound,
            "{} sockets > {bound}",
            during.sockets
        );
        // Guest sockets (8 KiB + state) and the peer's (2 KiB + state) for each.
        let heap_bound = before_heap + (MAX_ORPHANS + 10) * (2 * BUF + 2048 + 4096) + 256 * 1024;
        assert!(
            during.heap <= heap_bound,
            "heap {} KiB > {} KiB",
            during.heap / 1024,
            heap_bound / 1024
        );
        assert!(st.tcp_orphans > 0, "the client's sockets linger: {st:?}");
        // No more traffic: the orphans' timer resets them after the grace period.
        let rx = st.device.rx_packets;
        xenia::sleep(ORPHAN_GRACE + Duration::from_secs(1)).await;
        let after = stack.stats();
        let after_heap = heap();
        eprintln!(
            "{:?} later: {} sockets, {} orphans, {} reaped, {} aborted, heap {} KiB (before {} KiB)",
            ORPHAN_GRACE + Duration::from_secs(1),
            after.sockets,
            after.tcp_orphans,
            after.tcp_reaped - before.tcp_reaped,
            after.tcp_aborted - before.tcp_aborted,
            after_heap / 1024,
            before_heap / 1024
        );
        assert_eq!(
            after.device.rx_packets, rx,
            "the peer sent something: the reaping was not by timer alone"
        );
        assert_eq!(after.tcp_orphans, 0, "{after:?}");
        assert_eq!(after.sockets, before.sockets, "{after:?}");
        assert!(after.tcp_reaped - before.tcp_reaped >= 300, "{after:?}");
        assert!(
            after_heap <= before_heap + 64 * 1024,
            "heap {} KiB after the leaks, {} KiB before",
            after_heap / 1024,
            before_heap / 1024
        );
    });
}
