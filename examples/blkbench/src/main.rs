//! Block benchmark guest (used by `scripts/bench block`): on its disk `xvda`, one request at a
//! time, it measures
//!
//! * sequential write of `bench_mib` MiB in 1 MiB requests, then a flush,
//! * sequential read of the same MiB in 1 MiB requests (checking the pattern written),
//! * 4 KiB reads at random offsets within those MiB for `bench_secs` seconds,
//! * the same with `bench_qd` (default 32) reads in flight: as many tasks, each issuing its
//!   next read when its last one completes (its own xorshift64 sequence, seeded as benchtool
//!   seeds its threads),
//!
//! and prints `BENCH blk ...` lines with the counts, the times it measured and the rates, in
//! the format of the Linux side (bench/tools/benchtool.c, same xorshift64 offsets and seed).
//! It overwrites the disk's first `bench_mib` MiB. Then it powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

/// The `bench_*` settings from the command line, with their defaults.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn setting(key: &str, default: u64) -> Result<u64, alloc::string::String> {
    match xenia::cmdline_arg(key) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(alloc::format!("{key}={v} is not a positive number")),
        },
    }
}

/// xorshift64, the generator of the random-read offsets (the same as benchtool's).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn xorshift64(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Seconds with three decimals, for the result lines.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
struct Secs(core::time::Duration);

impl core::fmt::Display for Secs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ms = self.0.as_millis();
        write!(f, "{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// `num / secs` with two decimals (num per second).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
struct Rate(u64, core::time::Duration);

impl core::fmt::Display for Rate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ns = self.1.as_nanos().max(1);
        let hundredths = u128::from(self.0) * 100 * 1_000_000_000 / ns;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

#[cfg(target_os = "none")]
async fn bench() -> Result<(), alloc::string::String> {
    use alloc::format;
    use alloc::vec;
    use core::time::Duration;
    use xenia::time::Instant;

    const BIG: usize = 1 << 20;
    const SMALL: usize = 4096;
    let mib = setting("bench_mib", 64)?;
    let secs = setting("bench_secs", 10)?;

    let disk = xenia::block::open("xvda")
        .await
        .map_err(|e| format!("open xvda: {e}"))?;
    let ss = u64::from(disk.sector_size());
    if ss == 0 || !(BIG as u64).is_multiple_of(ss) || !(SMALL as u64).is_multiple_of(ss) {
        return Err(format!("sector size {ss} does not divide 4 KiB"));
    }
    if disk.size() < mib * BIG as u64 {
        return Err(format!(
            "disk has {} bytes, the benchmark needs {mib} MiB",
            disk.size()
        ));
    }
    xenia::println!("BENCH disk bytes={} sector={ss}", disk.size());
    let per_big = BIG as u64 / ss;
    let mut buf = vec![0u8; BIG];

    let t0 = Instant::now();
    for i in 0..mib {
        buf.fill((i & 0xff) as u8 ^ 0x5a);
        disk.write(i * per_big, &buf)
            .await
            .map_err(|e| format!("write MiB {i}: {e}"))?;
    }
    disk.flush().await.map_err(|e| format!("flush: {e}"))?;
    let write = t0.elapsed();

    let t0 = Instant::now();
    for i in 0..mib {
        disk.read(i * per_big, &mut buf)
            .await
            .map_err(|e| format!("read MiB {i}: {e}"))?;
        let want = (i & 0xff) as u8 ^ 0x5a;
        if buf[0] != want || buf[BIG - 1] != want {
            return Err(format!("MiB {i} reads back wrong data"));
        }
    }
    let read = t0.elapsed();

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let blocks = mib * (BIG / SMALL) as u64;
    let per_small = SMALL as u64 / ss;
    let small = &mut buf[..SMALL];
    let mut ops = 0u64;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mut now;
    loop {
        let b = xorshift64(&mut seed) % blocks;
        disk.read(b * per_small, small)
            .await
            .map_err(|e| format!("random read {b}: {e}"))?;
        ops += 1;
        now = Instant::now();
        if now.as_nanos() >= end.as_nanos() {
            break;
        }
    }
    let rand = now.duration_since(t0);

    let qd = setting("bench_qd", 32)?;
    let (qd_ops, qd_time) = random_reads_in_flight(disk, qd, blocks, per_small, secs).await?;

    xenia::println!(
        "BENCH blk mib={mib} write_secs={} read_secs={} randread_ops={ops} randread_secs={}",
        Secs(write),
        Secs(read),
        Secs(rand)
    );
    xenia::println!(
        "BENCH blk qd={qd} randread_qd_ops={qd_ops} randread_qd_secs={}",
        Secs(qd_time)
    );
    xenia::println!(
        "BENCH blk seq_write_mibps={} seq_read_mibps={} randread_iops={} randread_qd_iops={}",
        Rate(mib, write),
        Rate(mib, read),
        Rate(ops, rand),
        Rate(qd_ops, qd_time)
    );
    Ok(())
}

/// The seed of reader `i` of the queue-depth phase (the same as benchtool's thread `i`).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn reader_seed(i: u64) -> u64 {
    0x9e37_79b9_7f4a_7c15u64 ^ (i + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// 4 KiB reads at random blocks (of `blocks`) for `secs` s with `qd` of them in flight: `qd`
/// tasks, each reading its next block when its last read completed. Returns the reads
/// completed and the time from the start until the last reader stopped.
#[cfg(target_os = "none")]
async fn random_reads_in_flight(
    disk: xenia::Disk,
    qd: u64,
    blocks: u64,
    per_small: u64,
    secs: u64,
) -> Result<(u64, core::time::Duration), alloc::string::String> {
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::time::Duration;
    use xenia::time::Instant;

    let disk = Rc::new(disk);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let readers: Vec<_> = (0..qd)
        .map(|i| {
            let disk = disk.clone();
            xenia::spawn(async move {
                let mut seed = reader_seed(i);
                let mut buf = alloc::vec![0u8; 4096];
                let mut ops = 0u64;
                loop {
                    let b = xorshift64(&mut seed) % blocks;
                    disk.read(b * per_small, &mut buf)
                        .await
                        .map_err(|e| alloc::format!("random read {b} (reader {i}): {e}"))?;
                    ops += 1;
                    if Instant::now().as_nanos() >= end.as_nanos() {
                        return Ok::<u64, alloc::string::String>(ops);
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for r in readers {
        total += r.await?;
    }
    Ok((total, Instant::now().duration_since(t0)))
}

#[xenia::main]
async fn main() -> Result<(), alloc::string::String> {
    #[cfg(target_os = "none")]
    if let Err(e) = bench().await {
        xenia::println!("BENCH error {e}");
        return Err(e);
    }
    xenia::println!("BENCH done");
    Ok(())
}
