//! TCP bulk sender or receiver (used by `scripts/bench net`).
//!
//! By default (`bench_mode=send`) it connects to `bench_dst=ADDR:PORT` (a sink in dom0), sends
//! `bench_mib` MiB from one buffer, closes the connection and prints
//! `BENCH send bytes=N secs=S mibps=R`: the time from the established connection until the
//! sink acknowledged the last byte and the FIN, measured by the guest.
//!
//! With `bench_mode=recv` it listens on `bench_port` (default 5003) with a 1 MiB receive
//! buffer (so the window, scaled, is not what bounds the rate), takes one connection, reads
//! until EOF, closes and prints `BENCH recv bytes=N secs=S mibps=R` (from accept to EOF).
//!
//! Either way it then prints `BENCH net ...` (frames, bytes, GSO frames, ring slots and
//! notifications each way) and powers off. The address comes from `ip=` on the command line
//! (or DHCP), like every `xenia::net` guest.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use xenia::net::Ipv4Addr;

/// Bytes handed to the socket per write.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
const CHUNK: usize = 64 * 1024;

/// `ADDR:PORT` of `bench_dst`.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn destination(v: &str) -> Result<(Ipv4Addr, u16), String> {
    let (a, p) = v
        .split_once(':')
        .ok_or(format!("bench_dst={v}: want ADDR:PORT"))?;
    let addr = a
        .parse()
        .map_err(|_| format!("bench_dst={v}: bad address"))?;
    let port = p
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or(format!("bench_dst={v}: bad port"))?;
    Ok((addr, port))
}

/// Seconds with three decimals.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn secs(d: core::time::Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// MiB per second with two decimals.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn mibps(bytes: u64, d: core::time::Duration) -> String {
    let ns = d.as_nanos().max(1);
    let hundredths = u128::from(bytes) * 100 * 1_000_000_000 / ns / (1 << 20);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

#[cfg(target_os = "none")]
async fn bench() -> Result<(), String> {
    let stack = xenia::net::init().await.map_err(|e| format!("net: {e}"))?;
    match xenia::cmdline_arg("bench_mode").unwrap_or("send") {
        "send" => send(stack).await?,
        "recv" => recv().await?,
        m => return Err(format!("bench_mode={m}: want send or recv")),
    }
    print_net_stats(stack);
    Ok(())
}

/// `bench_mib` from the command line (default 64).
#[cfg(target_os = "none")]
fn bench_mib() -> Result<u64, String> {
    match xenia::cmdline_arg("bench_mib") {
        None => Ok(64),
        Some(v) => v
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("bench_mib={v}: bad number")),
    }
}

/// Receives one connection's bytes until EOF.
#[cfg(target_os = "none")]
async fn recv() -> Result<(), String> {
    use alloc::vec;
    use xenia::net::{ListenConfig, TcpListener};
    use xenia::time::Instant;

    let port: u16 = match xenia::cmdline_arg("bench_port") {
        None => 5003,
        Some(v) => v
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(format!("bench_port={v}: bad port"))?,
    };
    let config = ListenConfig {
        backlog: 1,
        rx_buffer: 1 << 20,
        tx_buffer: 4 * 1024,
        ..ListenConfig::default()
    };
    let listener = TcpListener::bind_with(port, config).map_err(|e| format!("listen: {e}"))?;
    xenia::println!("BENCH listening port={port}");
    let mut conn = listener
        .accept()
        .await
        .map_err(|e| format!("accept: {e}"))?;
    let t0 = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        match conn.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => return Err(format!("read after {got} bytes: {e}")),
        }
    }
    let took = t0.elapsed();
    conn.close().await.map_err(|e| format!("close: {e}"))?;
    xenia::println!(
        "BENCH recv bytes={got} secs={} mibps={}",
        secs(took),
        mibps(got, took)
    );
    Ok(())
}

/// Sends `bench_mib` MiB to `bench_dst`.
#[cfg(target_os = "none")]
async fn send(stack: &'static xenia::net::Stack) -> Result<(), String> {
    use alloc::vec;
    use core::time::Duration;
    use xenia::net::{ListenConfig, TcpStream};
    use xenia::time::Instant;

    let (addr, port) = destination(xenia::cmdline_arg("bench_dst").unwrap_or("10.0.0.1:5001"))?;
    let mib = bench_mib()?;
    let config = ListenConfig {
        backlog: 1,
        rx_buffer: 16 * 1024,
        // Room for several 64 KiB super-frames in flight (TSO).
        tx_buffer: 512 * 1024,
        ..ListenConfig::default()
    };
    // The sink is normally listening already; give it a few seconds if not.
    let mut tries = 0;
    let mut conn = loop {
        match TcpStream::connect_on(stack, addr, port, config).await {
            Ok(c) => break c,
            Err(e) if tries < 20 => {
                tries += 1;
                xenia::println!("netbench: connect {addr}:{port}: {e}; retrying");
                xenia::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("connect {addr}:{port}: {e}")),
        }
    };
    let buf = vec![b'x'; CHUNK];
    let total = mib << 20;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(CHUNK as u64) as usize;
        conn.write_all(&buf[..n])
            .await
            .map_err(|e| format!("send after {sent} bytes: {e}"))?;
        sent += n as u64;
    }
    conn.close().await.map_err(|e| format!("close: {e}"))?;
    let took = t0.elapsed();
    xenia::println!(
        "BENCH send bytes={sent} secs={} mibps={}",
        secs(took),
        mibps(sent, took)
    );
    Ok(())
}

/// Where the time may go: frames and bytes each way, how many were GSO super-frames (a
/// bulk send at Linux's speed hands netback ~64 KiB frames, not MTU segments), ring slots
/// per frame, events to the backend, stack polls, and sends that found no tx page.
#[cfg(target_os = "none")]
fn print_net_stats(stack: &xenia::net::Stack) {
    let st = stack.stats();
    let d = &st.device;
    xenia::println!(
        "BENCH net tx_packets={} tx_bytes={} tx_gso_frames={} tx_slots={} tx_notifications={} \
         rx_packets={} rx_bytes={} rx_gso_frames={} rx_slots={} rx_notifications={} \
         polls={} tx_no_buffers={} tx_still_mapped={} tso={}",
        d.tx_packets,
        d.tx_bytes,
        d.tx_gso_frames,
        d.tx_slots,
        d.tx_notifications,
        d.rx_packets,
        d.rx_bytes,
        d.rx_gso_frames,
        d.rx_slots,
        d.rx_notifications,
        st.polls,
        d.tx_no_buffers,
        d.tx_still_mapped,
        u8::from(st.tso)
    );
}

#[xenia::main]
async fn main() -> Result<(), String> {
    #[cfg(target_os = "none")]
    if let Err(e) = bench().await {
        xenia::println!("BENCH error {e}");
        return Err(e);
    }
    xenia::println!("BENCH done");
    Ok(())
}
