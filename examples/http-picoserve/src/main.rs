//! The `http-picoserve` example: the `http` example's service on picoserve, port 80.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use http::SystemInfo;
use xenia::net::{NetError, TcpListener};

/// When main started (ns of Xen system time).
static START: AtomicU64 = AtomicU64::new(0);

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
        tcp_sockets: st.sockets,
    }
}

#[xenia::main]
async fn main() -> Result<(), NetError> {
    START.store(xenia::time::Instant::now().as_nanos(), Ordering::Relaxed);
    xenia::println!("http-picoserve: starting");
    let stack = xenia::net::init().await?;
    let app = Box::leak(Box::new(http_picoserve::app(info)));
    let listener = TcpListener::bind_with(80, http_picoserve::listen_config())?;
    match stack.ipv4() {
        Some((addr, prefix)) => {
            xenia::println!("http-picoserve: listening on {addr}/{prefix} port 80")
        }
        None => xenia::println!("http-picoserve: listening on port 80"),
    }
    http_picoserve::run(app, listener).await
}
