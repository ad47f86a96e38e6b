//! The `http` example: an async web service on port 80 (see the library for the routes).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;
use http::{Service, SystemInfo};
use xenia::net::{ListenConfig, NetError, TcpListener};

/// When main started (ns of Xen system time).
static START: AtomicU64 = AtomicU64::new(0);
/// A connection with no traffic for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Connections served at once; while this many are open, new ones wait in the listener's
/// backlog (and beyond it are refused), so memory stays bounded: about 45 KiB each.
const MAX_CONNECTIONS: usize = 128;

/// Counts open connections and wakes the accept loop when one ends.
#[derive(Default)]
struct Limiter {
    open: Cell<usize>,
    waiter: RefCell<Option<Waker>>,
}

impl Limiter {
    /// Waits until fewer than [`MAX_CONNECTIONS`] are open, then counts one more.
    async fn acquire(&self) {
        poll_fn(|cx| {
            if self.open.get() < MAX_CONNECTIONS {
                self.open.set(self.open.get() + 1);
                Poll::Ready(())
            } else {
                *self.waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    fn release(&self) {
        self.open.set(self.open.get() - 1);
        if let Some(w) = self.waiter.borrow_mut().take() {
            w.wake();
        }
    }
}

fn info() -> SystemInfo {
    let st = xenia::net::stats();
    let now = xenia::time::Instant::now().as_nanos();
    SystemInfo {
        uptime_ms: now.saturating_sub(START.load(Ordering::Relaxed)) / 1_000_000,
        heap_in_use: xenia::heap_in_use(),
        rx_packets: st.device.rx_packets,
        tx_packets: st.device.tx_packets,
        packets_dropped: st.drops(),
        tcp_half_open: st.tcp_half_open,
        tcp_syn_dropped: st.tcp_syn_dropped,
        tcp_orphans: st.tcp_orphans,
        tcp_reaped: st.tcp_reaped,
    }
}

static SERVICE: Service<fn() -> SystemInfo> = Service::new(info);

#[xenia::main]
async fn main() -> Result<(), NetError> {
    START.store(xenia::time::Instant::now().as_nanos(), Ordering::Relaxed);
    xenia::println!("http: starting");
    let stack = xenia::net::init().await?;
    let listener = TcpListener::bind_with(
        80,
        // At most 1 + 64 + 64 + 128 + 64 sockets of 32 KiB (~10 MiB) whatever clients
        // do: spoofed SYNs stay half-open for 3 s at most and never reach the app.
        ListenConfig {
            backlog: 64,
            rx_buffer: 16 * 1024,
            tx_buffer: 16 * 1024,
            max_half_open: 64,
            half_open_timeout: Duration::from_secs(3),
            max_connections: MAX_CONNECTIONS,
            max_orphans: 64,
        },
    )?;
    match stack.ipv4() {
        Some((addr, prefix)) => xenia::println!("http: listening on {addr}/{prefix} port 80"),
        None => xenia::println!("http: listening on port 80"),
    }
    let limiter = Rc::new(Limiter::default());
    loop {
        limiter.acquire().await;
        let conn = listener.accept().await?;
        let limiter = limiter.clone();
        xenia::spawn(async move {
            let mut c = conn;
            c.set_idle_timeout(Some(IDLE));
            SERVICE.serve(&mut c).await;
            let _ = xenia::timeout(IDLE, c.close()).await;
            limiter.release();
        });
    }
}
