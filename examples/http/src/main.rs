//! The `http` example: an async web service on port 80 (see the library for the routes).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use http::SystemInfo;
use xenia::net::NetError;
use xenia_http::Server;

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
    xenia::println!("http: starting");
    let stack = xenia::net::init().await?;
    let server: &'static Server = Box::leak(Box::new(Server::new(http::app(info), http::limits())));
    let listener = server.listen(80, http::listen_config())?;
    match stack.ipv4() {
        Some((addr, prefix)) => xenia::println!("http: listening on {addr}/{prefix} port 80"),
        None => xenia::println!("http: listening on port 80"),
    }
    server.run(listener).await
}
