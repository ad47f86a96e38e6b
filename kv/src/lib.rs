//! A crash-safe, log-structured key-value store on a raw block device.
//!
//! The disk holds a superblock and then an append-only log of checksummed, chained records
//! (see [`format`] for the exact layout). [`Store::open`] formats a blank disk (first sector
//! all zeros) or replays the log of an existing store up to its last intact record, building
//! an in-memory index (key → record location). [`Store::put`] and [`Store::delete`] append a
//! record, write it and flush the device before they return: once they return `Ok`, the change
//! survives a crash at any later moment. [`Store::get`] reads the record back and checks its
//! checksums again, so data corrupted on disk after boot is reported, never served.
//!
//! Records start on sector boundaries and are padded to whole sectors, so appending never
//! rewrites a sector that holds an acknowledged record. Writers are serialised (one record in
//! flight at a time): only the last record can be torn by a crash, and recovery stops there.
//!
//! The index's memory is bounded: see [`index`] for what an entry costs, the budget
//! ([`Options::index_budget`]) and the most a disk of a given size can need.
//!
//! Not done: compaction. Overwritten and deleted values keep their space; when the log
//! reaches the end of the disk, writes fail with [`KvError::Full`].
//!
//! ```ignore
//! // With the `xenia` feature, the runtime's block device is a `Device`:
//! let disk = xenia::block::open("xvda").await?;
//! let (store, recovery) = xenia_kv::Store::open(disk, xenia_kv::Options::default()).await?;
//! store.put(b"greeting", b"hello").await?;
//! assert_eq!(store.get(b"greeting").await?.as_deref(), Some(&b"hello"[..]));
//! ```
#![no_std]

extern crate alloc;

pub mod format;
pub mod index;
pub mod mem;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};
use format::{Header, Kind, Superblock, HEADER_LEN, LOG_START, MAX_KEY, MAX_VALUE};
use index::{Index, Loc};

/// A block device the store runs on.
#[allow(async_fn_in_trait)]
pub trait Device {
    /// The device's error.
    type Error: core::error::Error + 'static;
    /// Sector size in bytes (a power of two, 512 ..= 4096).
    fn sector_size(&self) -> u32;
    /// Size in sectors.
    fn sectors(&self) -> u64;
    /// Reads whole sectors from `sector` on.
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes whole sectors from `sector` on.
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Self::Error>;
    /// Makes completed writes durable.
    async fn flush(&self) -> Result<(), Self::Error>;
}

impl<D: Device> Device for &D {
    type Error = D::Error;
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn sectors(&self) -> u64 {
        (**self).sectors()
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read(sector, buf).await
    }
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Self::Error> {
        (**self).write(sector, buf).await
    }
    async fn flush(&self) -> Result<(), Self::Error> {
        (**self).flush().await
    }
}

/// The runtime's block device (feature `xenia`).
#[cfg(feature = "xenia")]
impl Device for xenia::block::Disk {
    type Error = xenia::block::BlockError;
    fn sector_size(&self) -> u32 {
        xenia::block::Disk::sector_size(self)
    }
    fn sectors(&self) -> u64 {
        xenia::block::Disk::sectors(self)
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        xenia::block::Disk::read(self, sector, buf).await
    }
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Self::Error> {
        xenia::block::Disk::write(self, sector, buf).await
    }
    async fn flush(&self) -> Result<(), Self::Error> {
        xenia::block::Disk::flush(self).await
    }
}

/// Errors of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError<E> {
    /// The device failed. For a put or delete, the change may or may not be on disk; it is
    /// not in the index, and the next record is written over it.
    Device(E),
    /// The disk holds something that is not a store (its first sector is neither blank nor a
    /// valid superblock): nothing was written.
    NotAStore,
    /// The store was made for another sector size, or the device's geometry is unusable.
    Geometry,
    /// The key is empty or longer than [`MAX_KEY`].
    BadKey,
    /// The value is larger than [`MAX_VALUE`].
    TooLarge,
    /// The log reached the end of the disk (no compaction yet).
    Full,
    /// A new key would take the index past [`Options::index_budget`]: nothing was written.
    IndexFull,
    /// Replaying the log needs more index memory than [`Options::index_budget`] allows (the
    /// disk was filled with a larger budget). The store is not opened; nothing was written.
    IndexBudget {
        /// The budget in bytes.
        budget: usize,
        /// Keys indexed when the budget ran out.
        keys: usize,
    },
    /// A record the index points to no longer checks out (the disk changed under us).
    Corrupt {
        /// Byte offset of the record.
        offset: u64,
    },
}

impl<E: core::fmt::Display> core::fmt::Display for KvError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KvError::Device(e) => write!(f, "device error: {e}"),
            KvError::NotAStore => write!(f, "the disk is not blank and holds no store"),
            KvError::Geometry => write!(f, "unusable disk geometry"),
            KvError::BadKey => write!(f, "key empty or longer than {MAX_KEY} bytes"),
            KvError::TooLarge => write!(f, "value larger than {MAX_VALUE} bytes"),
            KvError::Full => write!(f, "the log is full"),
            KvError::IndexFull => write!(f, "the index is at its memory budget"),
            KvError::IndexBudget { budget, keys } => write!(
                f,
                "replaying the log needs more than the index budget of {budget} bytes \
                 ({keys} keys indexed when it ran out): give the store a larger budget \
                 (more domain memory)"
            ),
            KvError::Corrupt { offset } => write!(f, "record at byte {offset} is corrupt"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for KvError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            KvError::Device(e) => Some(e),
            _ => None,
        }
    }
}

/// Options of [`Store::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The store id written when a blank disk is formatted.
    pub store_id: u64,
    /// Bytes read at a time while replaying the log.
    pub scan_chunk: usize,
    /// Heap bytes the index may use (see [`index`]). Past it, puts of new keys fail with
    /// [`KvError::IndexFull`]; [`index::worst_case_bytes`] says how much a disk can need.
    pub index_budget: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            store_id: 0x5eed,
            scan_chunk: 128 * 1024,
            index_budget: 16 << 20,
        }
    }
}

/// Why the replay stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The next sector holds no record header (blank space, or an unwritten tail).
    NoRecord,
    /// A record header was there but the record is not intact (torn, corrupt, stale, or out
    /// of sequence): it and everything after it is ignored.
    Invalid,
    /// The log reaches the end of the disk.
    EndOfDisk,
}

/// What [`Store::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The disk was blank and has been formatted.
    pub formatted: bool,
    /// Intact records replayed.
    pub records: u64,
    /// Keys present after the replay.
    pub keys: usize,
    /// End of the log (byte offset where the next record goes).
    pub log_end: u64,
    /// Why the replay stopped.
    pub stop: Stop,
    /// Index bytes in use after the replay (as [`index::entry_bytes`] counts them).
    pub index_bytes: usize,
    /// The most index memory this disk could ever need ([`index::worst_case_bytes`]).
    pub index_worst_case: u64,
}

struct State {
    index: Index,
    tail: u64,
    next_seq: u64,
    prev: u32,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Keys present.
    pub keys: usize,
    /// Bytes of log in use.
    pub log_bytes: u64,
    /// Bytes left for the log.
    pub free_bytes: u64,
    /// Records written since open.
    pub written: u64,
    /// Index bytes in use (as [`index::entry_bytes`] counts them).
    pub index_bytes: usize,
    /// The index's budget ([`Options::index_budget`]).
    pub index_budget: usize,
}

/// The store.
pub struct Store<D: Device> {
    dev: D,
    ss: u32,
    disk_bytes: u64,
    state: RefCell<State>,
    writing: Cell<bool>,
    waiters: RefCell<VecDeque<Waker>>,
    written: Cell<u64>,
}

/// Holds the writer's turn; gives it to the next writer on drop.
struct WriteTurn<'a, D: Device>(&'a Store<D>);

impl<D: Device> Drop for WriteTurn<'_, D> {
    fn drop(&mut self) {
        self.0.writing.set(false);
        if let Some(w) = self.0.waiters.borrow_mut().pop_front() {
            w.wake();
        }
    }
}

impl<D: Device> Store<D> {
    /// Opens the store on `dev`: formats a blank disk, or replays the log of an existing one.
    pub async fn open(dev: D, opts: Options) -> Result<(Self, Recovery), KvError<D::Error>> {
        let ss = dev.sector_size();
        if !ss.is_power_of_two() || !(512..=4096).contains(&ss) {
            return Err(KvError::Geometry);
        }
        let disk_bytes = dev
            .sectors()
            .checked_mul(u64::from(ss))
            .ok_or(KvError::Geometry)?;
        if disk_bytes <= LOG_START {
            return Err(KvError::Geometry);
        }
        let mut first = vec![0u8; ss as usize];
        dev.read(0, &mut first).await.map_err(KvError::Device)?;
        let mut formatted = false;
        let sb = match Superblock::decode(&first) {
            Some(sb) => {
                if sb.sector_size != ss || sb.log_start != LOG_START {
                    return Err(KvError::Geometry);
                }
                sb
            }
            None if first.iter().all(|&b| b == 0) => {
                let sb = Superblock {
                    sector_size: ss,
                    store_id: opts.store_id,
                    log_start: LOG_START,
                };
                first[..format::SUPER_LEN].copy_from_slice(&sb.encode());
                dev.write(0, &first).await.map_err(KvError::Device)?;
                dev.flush().await.map_err(KvError::Device)?;
                formatted = true;
                sb
            }
            None => return Err(KvError::NotAStore),
        };
        let store = Store {
            dev,
            ss,
            disk_bytes,
            state: RefCell::new(State {
                index: Index::new(opts.index_budget),
                tail: LOG_START,
                next_seq: 1,
                prev: sb.chain_seed(),
            }),
            writing: Cell::new(false),
            waiters: RefCell::new(VecDeque::new()),
            written: Cell::new(0),
        };
        let (records, stop) = store.replay(opts.scan_chunk.max(ss as usize)).await?;
        let st = store.state.borrow();
        let rec = Recovery {
            formatted,
            records,
            keys: st.index.len(),
            log_end: st.tail,
            stop,
            index_bytes: st.index.bytes(),
            index_worst_case: index::worst_case_bytes(disk_bytes, ss),
        };
        drop(st);
        Ok((store, rec))
    }

    /// Reads the log from the start, applying each intact record to the index.
    async fn replay(&self, chunk: usize) -> Result<(u64, Stop), KvError<D::Error>> {
        let ss = u64::from(self.ss);
        let chunk = (chunk as u64).div_ceil(ss) * ss;
        // A window of the disk: bytes [win_start, win_start + win.len()).
        let mut win: Vec<u8> = Vec::new();
        let mut win_start = 0u64;
        let mut records = 0u64;
        loop {
            let (pos, seq, prev) = {
                let s = self.state.borrow();
                (s.tail, s.next_seq, s.prev)
            };
            if pos + ss > self.disk_bytes {
                return Ok((records, Stop::EndOfDisk));
            }
            // The header's sector.
            if pos < win_start || pos + ss > win_start + win.len() as u64 {
                let len = chunk.min(self.disk_bytes - pos);
                win.resize(len as usize, 0);
                self.dev
                    .read(pos / ss, &mut win)
                    .await
                    .map_err(KvError::Device)?;
                win_start = pos;
            }
            let at = (pos - win_start) as usize;
            let Some(h) = Header::decode(&win[at..at + HEADER_LEN]) else {
                return Ok((records, Stop::NoRecord));
            };
            let len = h.record_len(self.ss);
            if h.seq != seq || h.prev != prev || pos + len > self.disk_bytes {
                return Ok((records, Stop::Invalid));
            }
            let body_ok = if pos + len <= win_start + win.len() as u64 {
                format::data_ok(&h, &win[at + HEADER_LEN..at + len as usize])
            } else {
                // Larger than what the window holds: read the whole record.
                let mut rec = vec![0u8; len as usize];
                self.dev
                    .read(pos / ss, &mut rec)
                    .await
                    .map_err(KvError::Device)?;
                let ok = format::data_ok(&h, &rec[HEADER_LEN..]);
                win = rec;
                win_start = pos;
                ok
            };
            if !body_ok {
                return Ok((records, Stop::Invalid));
            }
            let at = (pos - win_start) as usize;
            let key = &win[at + HEADER_LEN..at + HEADER_LEN + h.key_len as usize];
            if self.apply(key, pos, h).is_err() {
                let s = self.state.borrow();
                return Err(KvError::IndexBudget {
                    budget: s.index.budget(),
                    keys: s.index.len(),
                });
            }
            records += 1;
        }
    }

    /// Applies an intact record at `offset` to the index and moves the tail past it; fails
    /// (changing nothing) when a new key does not fit in the index's budget.
    fn apply(&self, key: &[u8], offset: u64, h: Header) -> Result<(), index::OverBudget> {
        let mut s = self.state.borrow_mut();
        match h.kind {
            Kind::Put => {
                let loc = Loc {
                    offset,
                    seq: h.seq,
                    head_crc: h.head_crc,
                    val_len: h.val_len,
                };
                s.index.insert(key, loc)?;
            }
            Kind::Delete => s.index.remove(key),
        }
        s.tail = offset + h.record_len(self.ss);
        s.next_seq = h.seq + 1;
        s.prev = h.head_crc;
        Ok(())
    }

    /// Waits for the writer's turn.
    async fn turn(&self) -> WriteTurn<'_, D> {
        poll_fn(|cx| {
            if self.writing.get() {
                self.waiters.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            } else {
                self.writing.set(true);
                Poll::Ready(())
            }
        })
        .await;
        WriteTurn(self)
    }

    /// Appends a record, writes it and flushes; then updates the index.
    async fn append(&self, kind: Kind, key: &[u8], value: &[u8]) -> Result<(), KvError<D::Error>> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(KvError::BadKey);
        }
        if value.len() > MAX_VALUE {
            return Err(KvError::TooLarge);
        }
        let _turn = self.turn().await;
        let (pos, seq, prev) = {
            let s = self.state.borrow();
            if kind == Kind::Put && !s.index.has_room_for(key) {
                return Err(KvError::IndexFull);
            }
            (s.tail, s.next_seq, s.prev)
        };
        let (rec, h) = format::encode_record(kind, seq, prev, key, value, self.ss);
        if pos + rec.len() as u64 > self.disk_bytes {
            return Err(KvError::Full);
        }
        let ss = u64::from(self.ss);
        self.dev
            .write(pos / ss, &rec)
            .await
            .map_err(KvError::Device)?;
        self.dev.flush().await.map_err(KvError::Device)?;
        // Room was checked under the writer's turn, which nothing else changes the index
        // without: the insert cannot fail.
        let applied = self.apply(key, pos, h);
        debug_assert!(applied.is_ok());
        self.written.set(self.written.get() + 1);
        Ok(())
    }

    /// Sets `key` to `value`. Returns once the record is written and flushed.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError<D::Error>> {
        self.append(Kind::Put, key, value).await
    }

    /// Deletes `key` (writes a tombstone and flushes). `Ok(false)`: the key was absent and
    /// nothing was written.
    pub async fn delete(&self, key: &[u8]) -> Result<bool, KvError<D::Error>> {
        if !self.contains(key) {
            return Ok(false);
        }
        self.append(Kind::Delete, key, &[]).await?;
        Ok(true)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.state.borrow().index.get(key).is_some()
    }

    /// The value of `key`, read from disk and checked against its checksums.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError<D::Error>> {
        let Some(loc) = self.state.borrow().index.get(key) else {
            return Ok(None);
        };
        let ss = u64::from(self.ss);
        let len = format::record_len(key.len(), loc.val_len as usize, self.ss);
        let mut rec = vec![0u8; len as usize];
        self.dev
            .read(loc.offset / ss, &mut rec)
            .await
            .map_err(KvError::Device)?;
        let header = Header::decode(&rec).filter(|h| {
            h.head_crc == loc.head_crc
                && h.seq == loc.seq
                && h.kind == Kind::Put
                && h.key_len as usize == key.len()
                && h.val_len == loc.val_len
        });
        let intact = header.is_some_and(|h| format::data_ok(&h, &rec[HEADER_LEN..]))
            && &rec[HEADER_LEN..HEADER_LEN + key.len()] == key;
        if !intact {
            return Err(KvError::Corrupt { offset: loc.offset });
        }
        let start = HEADER_LEN + key.len();
        rec.truncate(start + loc.val_len as usize);
        rec.drain(..start);
        Ok(Some(rec))
    }

    /// The keys present, in no particular order: a copy of every key (memory grows with the
    /// store; a service listing keys for clients pages with [`Store::keys_page`]).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.state.borrow().index.keys()
    }

    /// Up to `limit` keys greater than `after` (from the first key when `None`), in byte
    /// order, and whether more follow (ask again with `after` = the last key returned). Memory:
    /// `limit` keys, however many the store holds; time: one pass over the index.
    pub fn keys_page(&self, after: Option<&[u8]>, limit: usize) -> (Vec<Vec<u8>>, bool) {
        self.state.borrow().index.page(after, limit)
    }

    /// Number of keys present.
    pub fn len(&self) -> usize {
        self.state.borrow().index.len()
    }

    /// Whether the store has no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let s = self.state.borrow();
        Stats {
            keys: s.index.len(),
            log_bytes: s.tail - LOG_START,
            free_bytes: self.disk_bytes - s.tail,
            written: self.written.get(),
            index_bytes: s.index.bytes(),
            index_budget: s.index.budget(),
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }
}
