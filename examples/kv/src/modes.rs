//! The example's modes (see main.rs).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use xenia::block::{BlockError, Disk};
use xenia::net::{ListenConfig, NetError};
use xenia_http::Server;
use xenia_kv::{Options, Store};

/// Why the app stopped.
pub enum AppError {
    /// Opening or using the disk failed.
    Disk(BlockError),
    /// The store failed.
    Store(xenia_kv::KvError<BlockError>),
    /// The network failed.
    Net(NetError),
    /// Something the app checks was wrong.
    Check(String),
}

impl From<NetError> for AppError {
    fn from(e: NetError) -> Self {
        AppError::Net(e)
    }
}

impl core::fmt::Display for AppError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AppError::Disk(e) => write!(f, "disk: {e}"),
            AppError::Store(e) => write!(f, "store: {e}"),
            AppError::Net(e) => write!(f, "network: {e}"),
            AppError::Check(s) => write!(f, "{s}"),
        }
    }
}

// What the runtime prints when main returns the error: the sentence, as Display says it.
impl core::fmt::Debug for AppError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for AppError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            AppError::Disk(e) => Some(e),
            AppError::Store(e) => Some(e),
            AppError::Net(e) => Some(e),
            AppError::Check(_) => None,
        }
    }
}

impl From<BlockError> for AppError {
    fn from(e: BlockError) -> Self {
        AppError::Disk(e)
    }
}

impl From<xenia_kv::KvError<BlockError>> for AppError {
    fn from(e: xenia_kv::KvError<BlockError>) -> Self {
        AppError::Store(e)
    }
}

/// Runs the mode the command line asks for.
pub async fn run() -> Result<(), AppError> {
    let mode = xenia::cmdline_arg("kv.mode").unwrap_or("serve");
    let disk = match xenia::block::open("xvda").await {
        Ok(d) => d,
        Err(e) => {
            xenia::println!("kv: {e}");
            return Err(e.into());
        }
    };
    // Without flush-cache or barrier, blkif says the backend has no write cache: a write is
    // durable when it completes, and flush() has nothing to do.
    let f = disk.features();
    xenia::println!(
        "kv: disk {} has {} sectors of {} bytes{}, flush: {}",
        disk.name(),
        disk.sectors(),
        disk.sector_size(),
        if disk.read_only() { " (read-only)" } else { "" },
        if f.flush_cache {
            "flush-cache"
        } else if f.barrier {
            "barrier"
        } else {
            "none (write-through backend)"
        }
    );
    match mode {
        "pattern" => pattern(disk).await,
        "fill" => {
            let n = xenia::cmdline_arg("kv.n")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100u64);
            fill(disk, n).await
        }
        "serve" => serve(disk).await,
        other => Err(AppError::Check(format!("unknown kv.mode {other:?}"))),
    }
}

/// Opens the store and prints what the recovery found.
async fn open_store(disk: Disk) -> Result<Store<Disk>, AppError> {
    // The index may take half the heap; the rest is for connections (64 at most, each with
    // its socket buffers and a body of at most 1 MiB from xenia-http's shared 4 MiB) and the
    // replay's read window. A PUT of a new key past it gets 507; a disk filled in a larger
    // domain does not open here (a clear error) instead of running out of memory.
    let heap = xenia::heap_bytes();
    let opts = Options {
        store_id: xenia::time::wallclock_ns() ^ xenia::time::Instant::now().as_nanos(),
        index_budget: if heap > 0 {
            heap / 2
        } else {
            Options::default().index_budget
        },
        ..Options::default()
    };
    let t0 = xenia::time::Instant::now();
    let (store, rec) = Store::open(disk, opts).await?;
    xenia::println!(
        "kv: {} records={} keys={} log_end={} stop={:?} in {} ms; index {} of {} bytes (this disk could need {})",
        if rec.formatted {
            "formatted a blank disk"
        } else {
            "recovered"
        },
        rec.records,
        rec.keys,
        rec.log_end,
        rec.stop,
        t0.elapsed().as_millis(),
        rec.index_bytes,
        opts.index_budget,
        rec.index_worst_case
    );
    Ok(store)
}

/// The value `fill-<i>` must hold.
fn fill_value(i: u64) -> Vec<u8> {
    let len = 16 + (i * 337 % 3000) as usize;
    let mut v = format!("fill-{i}:").into_bytes();
    v.extend((0..len).map(|j| (i as usize * 7 + j * 13) as u8));
    v
}

/// The fill mode: check what was recovered, then PUT N more keys, reporting each ack.
async fn fill(disk: Disk, n: u64) -> Result<(), AppError> {
    let store = open_store(disk).await?;
    // Every fill key must hold its value, and they must be fill-0 .. fill-M without a gap
    // (they are written one after the other, each acknowledged before the next starts).
    let mut nums = Vec::new();
    for key in store.keys() {
        let Some(num) = core::str::from_utf8(&key)
            .ok()
            .and_then(|k| k.strip_prefix("fill-"))
            .and_then(|k| k.parse::<u64>().ok())
        else {
            continue;
        };
        match store.get(&key).await {
            Ok(Some(v)) if v == fill_value(num) => nums.push(num),
            Ok(_) => xenia::println!("kv: WRONG VALUE for fill-{num}"),
            Err(e) => xenia::println!("kv: CORRUPT fill-{num}: {e}"),
        }
    }
    nums.sort_unstable();
    let contiguous = nums.iter().enumerate().all(|(i, &k)| i as u64 == k);
    match nums.last() {
        Some(&m) if contiguous => {
            xenia::println!(
                "kv: fill keys intact: fill-0..fill-{m} ({} keys)",
                nums.len()
            )
        }
        None => xenia::println!("kv: fill keys intact: none"),
        Some(_) => xenia::println!("kv: GAP in fill keys: {nums:?}"),
    }
    let start = nums.last().map_or(0, |m| m + 1);
    for i in start..start + n {
        store
            .put(format!("fill-{i}").as_bytes(), &fill_value(i))
            .await?;
        xenia::println!("kv: acked fill-{i}");
    }
    let s = store.stats();
    xenia::println!(
        "kv: fill done: {} keys, {} log bytes, {} free",
        s.keys,
        s.log_bytes,
        s.free_bytes
    );
    Ok(())
}

/// Bytes of the raw pattern at the start of the disk.
const PATTERN_BYTES: usize = 128 * 512;

/// The pattern's 512-byte block `b`: a text line, then bytes that depend on the block and
/// their position (dom0 compares the file with the same function's output).
fn pattern_block(b: usize) -> [u8; 512] {
    let mut s = [0u8; 512];
    let text = format!("xenia-kv block {b:06}\n");
    s[..text.len()].copy_from_slice(text.as_bytes());
    for (i, x) in s.iter_mut().enumerate().skip(32) {
        *x = ((b * 131 + i) % 251) as u8;
    }
    s
}

/// The raw-disk mode.
async fn pattern(disk: Disk) -> Result<(), AppError> {
    let ss = disk.sector_size() as usize;
    let mut buf = Vec::with_capacity(PATTERN_BYTES);
    for b in 0..PATTERN_BYTES / 512 {
        buf.extend_from_slice(&pattern_block(b));
    }
    disk.write(0, &buf).await?;
    let mut last = vec![0u8; ss];
    let marker = b"xenia-kv last sector\n";
    last[..marker.len()].copy_from_slice(marker);
    let last_sector = disk.sectors() - 1;
    disk.write(last_sector, &last).await?;
    disk.flush().await?;
    let mut back = vec![0u8; PATTERN_BYTES];
    disk.read(0, &mut back).await?;
    let mut back_last = vec![0u8; ss];
    disk.read(last_sector, &mut back_last).await?;
    if back != buf || back_last != last {
        return Err(AppError::Check("pattern read back differs".into()));
    }
    xenia::println!(
        "kv: pattern written and read back: {PATTERN_BYTES} bytes at 0, marker at sector {last_sector}"
    );
    Ok(())
}

/// The HTTP front end on port 80 (see the library for the routes and limits).
async fn serve(disk: Disk) -> Result<(), AppError> {
    let store: &'static Store<Disk> = Box::leak(Box::new(open_store(disk).await?));
    let stack = xenia::net::init().await?;
    let server: &'static Server = Box::leak(Box::new(Server::new(kv::app(store), kv::limits())));
    let listener = server.listen(
        80,
        // At most 1 + 16 + 16 + 64 + 32 = 129 sockets of 128 KiB (~16 MiB of the 64 MiB
        // domain), whatever clients do: SYN floods, slow or leaking clients; past 64
        // connections (the server's cap) new ones wait in the backlog.
        ListenConfig {
            backlog: 16,
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
            max_half_open: 16,
            half_open_timeout: Duration::from_secs(3),
            max_connections: kv::MAX_CONNECTIONS,
            max_orphans: 32,
            // The server declares its heads and bodies (`Limits::listen_config`).
            ..ListenConfig::default()
        },
    )?;
    match stack.ipv4() {
        Some((addr, prefix)) => xenia::println!("kv: listening on {addr}/{prefix} port 80"),
        None => xenia::println!("kv: listening on port 80"),
    }
    Ok(server.run(listener).await?)
}
