//! Disks: the domain's virtual block devices (`disks = [...]` in the xl config).
//!
//! ```ignore
//! let disk = xenia::block::open("xvda").await?;
//! let mut buf = vec![0u8; disk.sector_size() as usize];
//! disk.read(0, &mut buf).await?;
//! disk.write(1, &buf).await?;
//! disk.flush().await?;
//! ```
//!
//! [`open`] finds the disk by name in xenstore and connects a [`Blkfront`] to it with the
//! runtime's xenstore client, event channels and grant table. I/O is async and may run from
//! several tasks at once; a task waiting for the disk sleeps until the device's event channel
//! fires (the executor blocks the vCPU meanwhile), nothing polls.
//!
//! Sector numbers and buffer lengths are in units of the disk's [`Disk::sector_size`]; buffers
//! need no alignment (data goes through the driver's granted bounce pages).
//!
//! A disk survives the domain's save/restore and migration: after a resume in a new domain
//! ([`crate::lifecycle`]) the next operation connects the vbd again through xenbus, and every
//! request the old connection had not answered fails there with
//! [`BlkfrontError::Resumed`] and is resubmitted on the new one (a write that was never
//! acknowledged may be written twice, with the same data; an acknowledged one is on the disk).

use alloc::format;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use xenia_blkfront::{Blkfront, DiskInfo, Features, Stats};
use xenia_xen::abi::XenbusState;
use xenia_xen::xenbus::{self, XenbusError};
use xenia_xen::xenstore::RingTransport;

pub use xenia_blkfront::{BlkfrontConfig, BlkfrontError};

/// Errors of [`open`] and of a [`Disk`]'s operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// No disk has this name; `present` lists the disks the domain has.
    NotFound {
        /// The name asked for.
        name: String,
        /// The names of the disks present (backend `dev`, or `vbd/<index>`).
        present: Vec<String>,
    },
    /// The runtime's event channels or grant table are not available.
    NoServices(&'static str),
    /// Connecting to the disk failed.
    Connect {
        /// The disk's name.
        name: String,
        /// What the driver said.
        error: BlkfrontError,
    },
    /// An operation failed (the driver's error: range, length, read-only, backend status...).
    Io(BlkfrontError),
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::NotFound { name, present } if present.is_empty() => {
                write!(f, "no disk {name:?}: this domain has no disks")
            }
            BlockError::NotFound { name, present } => {
                write!(f, "no disk {name:?}; disks present: {}", present.join(", "))
            }
            BlockError::NoServices(what) => write!(f, "block: {what} not available"),
            BlockError::Connect { name, error } => write!(f, "disk {name:?}: {error}"),
            BlockError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for BlockError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            BlockError::Connect { error, .. } => Some(error),
            BlockError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BlkfrontError> for BlockError {
    fn from(e: BlkfrontError) -> Self {
        BlockError::Io(e)
    }
}

/// How long reconnecting a disk after a resume may take.
const RECONNECT_LIMIT: Duration = Duration::from_secs(30);

type Front = Blkfront<'static, RingTransport>;

/// A connected disk.
pub struct Disk {
    name: String,
    index: u32,
    config: BlkfrontConfig,
    /// The connection (replaced after a resume; I/O in progress holds the old one).
    front: RefCell<Rc<Front>>,
    /// The lifecycle generation `front` was connected in.
    generation: Cell<u64>,
    /// A task is connecting the disk again right now.
    reconnecting: Cell<bool>,
}

impl core::fmt::Debug for Disk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disk")
            .field("name", &self.name)
            .field("info", &self.front.borrow().info())
            .finish_non_exhaustive()
    }
}

/// The names of the domain's disks: each vbd's backend `dev` (`xvda`, ...), or `vbd/<index>`
/// when the backend does not say.
pub async fn list() -> Result<Vec<String>, BlockError> {
    let xs = crate::services::xenstore();
    let ids = xenbus::devices(xs, "vbd")
        .await
        .map_err(|e| BlockError::Io(BlkfrontError::Xenbus(e)))?;
    let mut names = Vec::with_capacity(ids.len());
    for i in ids {
        let be = xs
            .read_optional(&format!("device/vbd/{i}/backend"))
            .await
            .ok()
            .flatten();
        let dev = match be {
            Some(be) => match core::str::from_utf8(&be) {
                Ok(be) => xs
                    .read_optional(&format!("{}/dev", be.trim()))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|d| String::from_utf8(d).ok())
                    .filter(|d| !d.is_empty() && d.len() <= 32),
                Err(_) => None,
            },
            None => None,
        };
        names.push(dev.unwrap_or_else(|| format!("vbd/{i}")));
    }
    Ok(names)
}

/// Opens disk `name` (`xvda`, ...) with the driver's default configuration.
pub async fn open(name: &str) -> Result<Disk, BlockError> {
    open_with(name, BlkfrontConfig::default()).await
}

/// Opens disk `name` with driver options (ring size, bounce pages, indirect segments).
pub async fn open_with(name: &str, config: BlkfrontConfig) -> Result<Disk, BlockError> {
    let xs = crate::services::xenstore();
    let events = crate::services::events().ok_or(BlockError::NoServices("event channels"))?;
    let grants = crate::services::grant_table().ok_or(BlockError::NoServices("grant table"))?;
    let index = match Blkfront::find(xs, name).await {
        Ok(i) => i,
        Err(BlkfrontError::NoSuchDevice(_)) => {
            return Err(BlockError::NotFound {
                name: name.into(),
                present: list().await.unwrap_or_default(),
            })
        }
        Err(error) => {
            return Err(BlockError::Connect {
                name: name.into(),
                error,
            })
        }
    };
    let front = Blkfront::connect_with(xs, events, grants, index, config)
        .await
        .map_err(|error| BlockError::Connect {
            name: name.into(),
            error,
        })?;
    let front = Rc::new(front);
    crate::spawn(follow_backend(Rc::downgrade(&front), String::from(name)));
    Ok(Disk {
        name: name.into(),
        index,
        config,
        front: RefCell::new(front),
        generation: Cell::new(crate::lifecycle::generation()),
        reconnecting: Cell::new(false),
    })
}

/// Distinguishes the watch tokens of successive connections.
static FOLLOWERS: AtomicU64 = AtomicU64::new(0);

/// Follows a connection's backend: when it closes (or vanishes), fails the connection's
/// requests and closes the frontend. Ends then, when the domain resumes elsewhere, or (at the
/// next change of the backend's state) once the connection was dropped.
async fn follow_backend(front: Weak<Front>, name: String) {
    let xs = crate::services::xenstore();
    let Some(path) = front
        .upgrade()
        .map(|f| format!("{}/state", f.device().backend()))
    else {
        return;
    };
    let generation = crate::lifecycle::generation();
    let token = format!(
        "xenia-vbd-{name}-{}",
        FOLLOWERS.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(mut watch) = xs.watch(&path, &token).await else {
        log::warn!("block: {name}: cannot watch the backend's state");
        return;
    };
    loop {
        if front.strong_count() == 0 || crate::lifecycle::generation() != generation {
            break;
        }
        let state = match xs.read_optional(&path).await {
            Ok(None) => Some(XenbusState::Closed),
            Ok(Some(v)) if v == b"5" => Some(XenbusState::Closing),
            Ok(Some(v)) if v == b"6" => Some(XenbusState::Closed),
            _ => None,
        };
        if let Some(state) = state {
            if let Some(f) = front.upgrade() {
                log::info!("block: {name}: the backend is closing: closing the frontend");
                f.backend_closed(state);
                if crate::timeout(Duration::from_secs(5), f.device().close())
                    .await
                    .is_err()
                {
                    let _ = f.device().switch_state(XenbusState::Closed).await;
                }
                log::info!("block: {name} closed");
            }
            break;
        }
        let mut next = core::pin::pin!(watch.next_event());
        let ended = core::future::poll_fn(|cx| {
            if crate::lifecycle::poll_generation(generation, cx).is_some() {
                return core::task::Poll::Ready(false);
            }
            core::future::Future::poll(next.as_mut(), cx).map(|e| e.is_none())
        })
        .await;
        if ended {
            break;
        }
    }
    let _ = xs.unwatch(watch).await;
}

/// Whether vbd `index` is there (again) and new: its frontend node `Initialising`, its backend
/// not closing.
async fn device_back(index: u32) -> bool {
    let xs = crate::services::xenstore();
    let fe = format!("device/vbd/{index}");
    if xs
        .read_optional(&format!("{fe}/state"))
        .await
        .ok()
        .flatten()
        .as_deref()
        != Some(b"1")
    {
        return false;
    }
    let Ok(Some(be)) = xs.read_optional(&format!("{fe}/backend")).await else {
        return false;
    };
    let be = String::from_utf8_lossy(&be).into_owned();
    let state = xs
        .read_optional(&format!("{be}/state"))
        .await
        .ok()
        .flatten();
    matches!(state.as_deref(), Some(b"1") | Some(b"2"))
}

impl Disk {
    /// The name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in sectors of [`sector_size`](Self::sector_size) bytes.
    pub fn sectors(&self) -> u64 {
        self.front.borrow().sectors()
    }

    /// Logical sector size in bytes (512 ..= 4096, a power of two).
    pub fn sector_size(&self) -> u32 {
        self.front.borrow().sector_size()
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.sectors() * u64::from(self.sector_size())
    }

    /// Whether the disk is read-only (writes and discards are refused).
    pub fn read_only(&self) -> bool {
        self.front.borrow().read_only()
    }

    /// Everything the backend said about the disk.
    pub fn info(&self) -> DiskInfo {
        self.front.borrow().info()
    }

    /// The backend's optional features (flush, discard, ...).
    pub fn features(&self) -> Features {
        self.front.borrow().features()
    }

    /// The driver's counters.
    pub fn stats(&self) -> Stats {
        self.front.borrow().stats()
    }

    /// The driver underneath (the current connection).
    pub fn blkfront(&self) -> Rc<Front> {
        self.front.borrow().clone()
    }

    /// The connection to use now: connected again first if the domain resumed in a new
    /// domain since the last one was made.
    async fn current(&self) -> Result<Rc<Front>, BlockError> {
        loop {
            let g = crate::lifecycle::generation();
            let closed = match self.front.borrow().broken() {
                Some(e @ BlkfrontError::Xenbus(XenbusError::BackendClosed(_))) => Some(e),
                _ => None,
            };
            if self.generation.get() == g {
                match closed {
                    None => return Ok(self.front.borrow().clone()),
                    // Detached: connect again if the vbd is back, else say it is gone.
                    Some(e) if !self.reconnecting.get() && !device_back(self.index).await => {
                        return Err(BlockError::Io(e));
                    }
                    Some(_) => {}
                }
            } else {
                // Fail what the old connection still holds, so its callers resubmit.
                self.front.borrow().check_resumed();
            }
            if self.reconnecting.get() {
                // Another task is connecting; it takes at most RECONNECT_LIMIT.
                crate::sleep(Duration::from_millis(5)).await;
                continue;
            }
            self.reconnecting.set(true);
            let r = self.reconnect(g).await;
            self.reconnecting.set(false);
            r?;
        }
    }

    async fn reconnect(&self, generation: u64) -> Result<(), BlockError> {
        let xs = crate::services::xenstore();
        let events = crate::services::events().ok_or(BlockError::NoServices("event channels"))?;
        let grants = crate::services::grant_table().ok_or(BlockError::NoServices("grant table"))?;
        log::info!("block: {}: connecting again", self.name);
        let connect = Blkfront::connect_with(xs, events, grants, self.index, self.config);
        let error = |error| BlockError::Connect {
            name: self.name.clone(),
            error,
        };
        let front = match crate::timeout(RECONNECT_LIMIT, connect).await {
            Ok(r) => r.map_err(error)?,
            Err(_) => return Err(error(BlkfrontError::Resumed)),
        };
        // The old connection goes once the I/O still holding it has failed over.
        let front = Rc::new(front);
        crate::spawn(follow_backend(Rc::downgrade(&front), self.name.clone()));
        *self.front.borrow_mut() = front;
        self.generation.set(generation);
        log::info!("block: {} reconnected", self.name);
        Ok(())
    }

    /// Reads `buf.len()` bytes (a multiple of the sector size) from `sector` on.
    pub async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        loop {
            match self.current().await?.read(sector, buf).await {
                Err(BlkfrontError::Resumed) => continue,
                r => return Ok(r?),
            }
        }
    }

    /// Writes `buf` (a multiple of the sector size) from `sector` on. The data is durable
    /// only after a [`flush`](Self::flush) that started after this write completed.
    pub async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        loop {
            match self.current().await?.write(sector, buf).await {
                Err(BlkfrontError::Resumed) => continue,
                r => return Ok(r?),
            }
        }
    }

    /// Makes completed writes durable (a no-op if the backend has no write cache to flush).
    pub async fn flush(&self) -> Result<(), BlockError> {
        loop {
            match self.current().await?.flush().await {
                Err(BlkfrontError::Resumed) => continue,
                r => return Ok(r?),
            }
        }
    }

    /// Discards `count` sectors from `sector` on (needs the backend's `feature-discard`).
    pub async fn discard(&self, sector: u64, count: u64) -> Result<(), BlockError> {
        loop {
            match self.current().await?.discard(sector, count).await {
                Err(BlkfrontError::Resumed) => continue,
                r => return Ok(r?),
            }
        }
    }

    /// Disconnects from the backend.
    pub async fn close(self) -> Result<(), BlockError> {
        let front = self.current().await?;
        drop(self);
        match Rc::try_unwrap(front) {
            Ok(f) => Ok(f.close().await?),
            // I/O of another task still holds the connection (it cannot: `self` was owned).
            Err(_) => Err(BlockError::NoServices("disk still in use")),
        }
    }
}
