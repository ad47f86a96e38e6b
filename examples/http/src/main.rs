//! The `http` example: an async web service on port 80 (see the library for the routes).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use http::SystemInfo;
use xenia::net::{ListenConfig, NetError};
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
    }
}

xenia::main! {
    async fn main() -> Result<(), NetError> {
        START.store(xenia::time::Instant::now().as_nanos(), Ordering::Relaxed);
        xenia::println!("http: starting");
        let stack = xenia::net::init().await?;
        let server: &'static Server = Box::leak(Box::new(Server::new(http::app(info), http::limits())));
        let listener = server.listen(
            80,
            // At most 1 + 64 + 64 + 128 + 64 sockets of 32 KiB (~10 MiB) whatever clients
            // do: spoofed SYNs stay half-open for 3 s at most and never reach the app; past
            // 128 connections (the server's cap) new ones wait in the backlog.
            ListenConfig {
                backlog: 64,
                rx_buffer: 16 * 1024,
                tx_buffer: 16 * 1024,
                max_half_open: 64,
                half_open_timeout: Duration::from_secs(3),
                max_connections: http::MAX_CONNECTIONS,
                max_orphans: 64,
            },
        )?;
        match stack.ipv4() {
            Some((addr, prefix)) => xenia::println!("http: listening on {addr}/{prefix} port 80"),
            None => xenia::println!("http: listening on port 80"),
        }
        server.run(listener).await
    }
}
