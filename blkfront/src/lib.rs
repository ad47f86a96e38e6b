//! Xen blkfront: the frontend of a PV block device (`io/blkif.h`).
//!
//! [`Blkfront::connect`] finds device `device/vbd/<index>` ([`Blkfront::find`] finds it by
//! name, e.g. `xvda`), shares a request ring (one page, or up to 16 if the backend offers
//! `max-ring-page-order` and [`Config::max_ring_page_order`] asks for it) and an event channel
//! with the backend through the xenbus handshake, and reads the disk's geometry and features.
//!
//! [`Blkfront::read`], [`Blkfront::write`], [`Blkfront::flush`] and [`Blkfront::discard`] are
//! async and may run concurrently (from several tasks or joined futures): each I/O is split
//! into requests of at most [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] pages (more with indirect
//! requests, if the backend offers `feature-max-indirect-segments`), as many requests are kept
//! in flight as the ring has slots and the page pool allows, and responses (which may come in
//! any order) are matched to their requests by id. A task waiting for I/O sleeps until the
//! device's event channel fires; nothing polls in a loop. Dropping an I/O future is safe: its
//! requests' pages return to the pool when the backend answers them.
//!
//! Data goes through bounce pages of a [`GrantPool`], granted to the backend once at connect
//! time and reused ("persistent grants" in blkif.h's words): the I/O path never grants or
//! revokes. Reads copy out of the pages, writes copy in, so caller buffers need no alignment.
//!
//! The backend is not trusted: every response's id must name a request in flight (ids carry a
//! generation, so a duplicate or stale response is recognised), its operation must be the
//! request's, and its status decides that request only. Bad responses are counted
//! ([`Stats::bad_responses`]) and dropped; a ring whose indices are corrupt fails every request
//! with [`BlkError::Ring`] from then on. Nothing the backend writes can make the driver panic.
//!
//! Sector numbers in this API are in units of the device's [`sector_size`](Blkfront::sector_size).
//! We do not advertise `feature-large-sector-size`, so on the wire all sector quantities are in
//! 512-byte units, as blkif.h requires. The backend's `sectors` is read as blkif.h defines it,
//! in units of `sector-size` (Linux's blkback writes 512-byte units there instead; the two
//! agree for the usual 512-byte sectors).
//!
//! A backend that answers a request with a bad id leaves that request without an answer: its
//! future stays pending (wrap it in a timeout) and its slot and pages stay reserved, since the
//! backend may still use them.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod vdev;
mod wire;

pub use vdev::vdev_from_name;

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};
use wire::{Req, Rsp};
use xenia_ring::{FrontRing, RingError, SharedRing};
use xenia_xen::abi::XenbusState;
use xenia_xen::abi::{
    BlkifRequestSegment, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, VDISK_READONLY,
};
use xenia_xen::events::{DomId, EventChannels, EventError, Port};
use xenia_xen::grant::{GrantError, GrantPool, GrantRef, GrantTable, GrantedPage};
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenbus::{self, Frontend, XenbusError};
use xenia_xen::xenstore::{Transport, Xenstore};

/// The unit of `sector_number`, `first_sect`/`last_sect` and `nr_sectors` on the wire.
pub const WIRE_SECTOR: usize = 512;
/// Sectors of [`WIRE_SECTOR`] bytes in a page.
const SECTORS_PER_PAGE: usize = PAGE_SIZE / WIRE_SECTOR;
// `last_sect` of a whole page is 7.
const _: () = assert!(SECTORS_PER_PAGE == 8);
/// Largest ring we use: 16 pages (Linux's limit too).
const MAX_RING_PAGE_ORDER: u32 = 4;
/// Segments in one indirect page.
const SEGS_PER_INDIRECT_PAGE: usize = PAGE_SIZE / core::mem::size_of::<BlkifRequestSegment>();
/// The most data one direct request carries.
pub const MAX_REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * PAGE_SIZE;

/// Errors of the block frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkError {
    /// The xenbus handshake or a xenstore access failed.
    Xenbus(XenbusError),
    /// An event-channel operation failed.
    Event(EventError),
    /// A grant-table operation failed.
    Grant(GrantError),
    /// No page could be allocated.
    NoMemory,
    /// No vbd device has this name.
    NoSuchDevice(String),
    /// The backend published a missing or invalid disk property (key, value).
    BadInfo(&'static str, String),
    /// The disk is read-only: the write or discard was not sent.
    ReadOnly,
    /// The sectors lie (partly) beyond the end of the disk: nothing was sent.
    OutOfRange {
        /// First sector asked for.
        sector: u64,
        /// Number of sectors asked for.
        count: u64,
        /// Sectors of the disk.
        sectors: u64,
    },
    /// The buffer length is not a multiple of the sector size.
    BadLength(usize),
    /// The backend does not offer the operation (feature absent, or `BLKIF_RSP_EOPNOTSUPP`).
    Unsupported,
    /// The backend answered with an error status (`BLKIF_RSP_ERROR` or another negative value).
    Io(i16),
    /// The backend answered this request with a response of another operation.
    BadResponse,
    /// The ring is broken: the backend corrupted its indices. Every request fails.
    Ring(RingError),
}

impl From<XenbusError> for BlkError {
    fn from(e: XenbusError) -> Self {
        BlkError::Xenbus(e)
    }
}
impl From<EventError> for BlkError {
    fn from(e: EventError) -> Self {
        BlkError::Event(e)
    }
}
impl From<GrantError> for BlkError {
    fn from(e: GrantError) -> Self {
        BlkError::Grant(e)
    }
}

impl core::fmt::Display for BlkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlkError::Xenbus(e) => write!(f, "blkfront: {e}"),
            BlkError::Event(e) => write!(f, "blkfront: {e}"),
            BlkError::Grant(e) => write!(f, "blkfront: {e}"),
            BlkError::NoMemory => write!(f, "blkfront: out of memory"),
            BlkError::NoSuchDevice(n) => write!(f, "blkfront: no vbd named {n:?}"),
            BlkError::BadInfo(k, v) => write!(f, "blkfront: backend {k} is invalid: {v:?}"),
            BlkError::ReadOnly => write!(f, "blkfront: the disk is read-only"),
            BlkError::OutOfRange {
                sector,
                count,
                sectors,
            } => write!(
                f,
                "blkfront: sectors {sector}+{count} beyond the disk's {sectors}"
            ),
            BlkError::BadLength(l) => {
                write!(
                    f,
                    "blkfront: length {l} is not a multiple of the sector size"
                )
            }
            BlkError::Unsupported => write!(f, "blkfront: operation not supported"),
            BlkError::Io(s) => write!(f, "blkfront: I/O error (status {s})"),
            BlkError::BadResponse => write!(f, "blkfront: backend answered with another operation"),
            BlkError::Ring(e) => write!(f, "blkfront: ring broken: {e}"),
        }
    }
}

/// Optional features the backend offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `feature-flush-cache`: [`Blkfront::flush`] sends `BLKIF_OP_FLUSH_DISKCACHE`.
    pub flush_cache: bool,
    /// `feature-barrier`: `BLKIF_OP_WRITE_BARRIER` (used by flush without `flush_cache`).
    pub barrier: bool,
    /// `feature-discard`: [`Blkfront::discard`] is available.
    pub discard: bool,
    /// `discard-granularity` in bytes (defaults to the sector size).
    pub discard_granularity: u32,
    /// `discard-alignment` in bytes (defaults to 0).
    pub discard_alignment: u32,
    /// `discard-secure`: secure discard is available.
    pub discard_secure: bool,
    /// `feature-persistent`: the backend keeps our grants mapped.
    pub persistent: bool,
    /// `feature-max-indirect-segments` (0: none). Offered, but not used by this driver.
    pub max_indirect_segments: u32,
    /// `max-ring-page-order`: the backend accepts rings of up to `2^order` pages.
    pub max_ring_page_order: u32,
}

/// The disk's geometry, as the backend published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in sectors of `sector_size` bytes.
    pub sectors: u64,
    /// Logical sector size in bytes (a power of two, 512 ..= 4096).
    pub sector_size: u32,
    /// Physical sector size in bytes (a multiple of `sector_size`).
    pub physical_sector_size: u32,
    /// The `info` bits (`VDISK_*`).
    pub info: u32,
    /// The disk is read-only (`VDISK_READONLY` or `mode` = `r`).
    pub read_only: bool,
}

/// Counters of the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests put on the ring.
    pub requests: u64,
    /// Responses matched to a request.
    pub responses: u64,
    /// Responses dropped because their id named no request in flight.
    pub bad_responses: u64,
    /// Responses whose operation differed from their request's (the request failed).
    pub wrong_operation: u64,
    /// Notifications sent to the backend.
    pub notifications: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u32,
}

/// Options of [`Blkfront::connect_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bounce pages granted to the backend (at least [`BLKIF_MAX_SEGMENTS_PER_REQUEST`]);
    /// `ring size * 11` lets every ring slot carry a full direct request.
    pub pool_pages: usize,
    /// Most segments (pages) per indirect request, if the backend offers
    /// `feature-max-indirect-segments` (its value caps this too). 0 or at most 11: indirect
    /// requests are not used.
    pub max_indirect_segments: u32,
    /// Use a ring of up to `2^order` pages (more requests in flight) if the backend offers
    /// `max-ring-page-order`; capped at 4 (16 pages).
    pub max_ring_page_order: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pool_pages: xenia_xen::abi::BLKIF_RING_SIZE * BLKIF_MAX_SEGMENTS_PER_REQUEST,
            max_indirect_segments: 64,
            max_ring_page_order: 0,
        }
    }
}

enum SlotState {
    Free,
    /// Sent; the owner waits.
    InFlight,
    /// Sent; the owner went away. The pages return to the pool when the response comes.
    Abandoned,
    /// Answered; the owner has not collected it yet.
    Done(Result<(), BlkError>),
}

struct Slot {
    gen: u32,
    /// The operation the response must name.
    op: u8,
    /// An indirect request: its response may also name `BLKIF_OP_INDIRECT`.
    indirect: bool,
    state: SlotState,
    pages: Vec<GrantedPage>,
    waker: Option<Waker>,
}

struct Inner<'a> {
    ring: FrontRing<Req, Rsp>,
    pool: GrantPool<'a>,
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    /// Tasks waiting for a free slot or pages.
    waiters: Vec<Waker>,
    broken: Option<RingError>,
    stats: Stats,
}

impl Inner<'_> {
    /// Requests sent whose response has not been matched (some may never be, if the
    /// backend answered them with a bad id).
    fn in_flight(&self) -> u32 {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::InFlight | SlotState::Abandoned))
            .count() as u32
    }

    /// Wakers of every task that waits on this device.
    fn take_all_wakers(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.waiters);
        for s in &mut self.slots {
            if let Some(w) = s.waker.take() {
                out.push(w);
            }
        }
    }

    fn fail_all(&mut self, e: RingError, wake: &mut Vec<Waker>) {
        if self.broken.is_none() {
            log::error!("blkfront: ring broken: {e}");
        }
        self.broken = Some(e);
        for s in &mut self.slots {
            if matches!(s.state, SlotState::InFlight) {
                s.state = SlotState::Done(Err(BlkError::Ring(e)));
            }
            // Abandoned slots keep their pages: the backend may still use them.
        }
        self.take_all_wakers(wake);
    }

    /// Consumes every response on the ring, completing the matching slots.
    fn drain(&mut self, wake: &mut Vec<Waker>) {
        if self.broken.is_some() {
            return;
        }
        loop {
            let rsp = match self.ring.poll_response() {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => return self.fail_all(e, wake),
            };
            let (id, op, status) = wire::response(rsp);
            let index = (id & 0xffff_ffff) as usize;
            let gen = (id >> 32) as u32;
            let Some(slot) = self
                .slots
                .get_mut(index)
                .filter(|s| s.gen == gen)
                .filter(|s| matches!(s.state, SlotState::InFlight | SlotState::Abandoned))
            else {
                self.stats.bad_responses += 1;
                log::warn!("blkfront: response with unknown id {id:#x} dropped");
                continue;
            };
            self.stats.responses += 1;
            let op_ok = op == slot.op || (slot.indirect && op == BLKIF_OP_INDIRECT);
            let result = if !op_ok {
                self.stats.wrong_operation += 1;
                log::warn!(
                    "blkfront: response to id {id:#x} has operation {op}, not {}",
                    slot.op
                );
                Err(BlkError::BadResponse)
            } else {
                match status {
                    BLKIF_RSP_OKAY => Ok(()),
                    BLKIF_RSP_EOPNOTSUPP => Err(BlkError::Unsupported),
                    BLKIF_RSP_ERROR => Err(BlkError::Io(status)),
                    s => Err(BlkError::Io(s)),
                }
            };
            if matches!(slot.state, SlotState::Abandoned) {
                self.release(index, wake);
            } else {
                slot.state = SlotState::Done(result);
                if let Some(w) = slot.waker.take() {
                    wake.push(w);
                }
            }
        }
    }

    /// Frees slot `index` and returns its pages to the pool.
    fn release(&mut self, index: usize, wake: &mut Vec<Waker>) {
        let slot = &mut self.slots[index];
        slot.state = SlotState::Free;
        slot.waker = None;
        for p in slot.pages.drain(..) {
            self.pool.give_back(p);
        }
        self.free_slots.push(index);
        // A slot and pages are free: whoever waits for them may go on. Everyone is woken so
        // that some live task registers again on the event channel.
        self.take_all_wakers(wake);
    }

    /// Puts a request on the ring if a slot and `npages` pages are free; `build` gets the
    /// request id and the pages (to copy data in) and makes the request. Returns the slot and
    /// its generation.
    fn try_submit(
        &mut self,
        op: u8,
        indirect: bool,
        npages: usize,
        build: impl FnOnce(u64, &[GrantedPage]) -> Req,
    ) -> Option<(usize, u32)> {
        if self.ring.is_full() || self.pool.available() < npages {
            return None;
        }
        let index = self.free_slots.pop()?;
        let slot = &mut self.slots[index];
        for _ in 0..npages {
            // Checked above: the pool has npages free.
            slot.pages.extend(self.pool.take());
        }
        slot.gen = slot.gen.wrapping_add(1);
        slot.op = op;
        slot.indirect = indirect;
        slot.state = SlotState::InFlight;
        let gen = slot.gen;
        let id = u64::from(gen) << 32 | index as u64;
        let req = build(id, &slot.pages);
        if self.ring.push_request(req).is_err() {
            // Not full (checked above), so this cannot happen; undo all the same.
            let mut wake = Vec::new();
            self.release(index, &mut wake);
            return None;
        }
        self.stats.requests += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight());
        Some((index, gen))
    }
}

/// A connected PV block device.
pub struct Blkfront<'a, T: Transport> {
    /// First field: dropped before the ring page it points into.
    inner: RefCell<Inner<'a>>,
    dev: Frontend<'a, T>,
    events: &'a EventChannels,
    grants: &'a GrantTable,
    port: Port,
    /// The ring's pages. `None` once leaked (the backend still mapped them when we let go).
    ring_area: Option<RingArea>,
    handle: u16,
    /// Most data pages per request (11 without indirect requests).
    segs_per_request: usize,
    config: Config,
    info: DiskInfo,
    features: Features,
}

/// The shared ring: `2^order` contiguous, page-aligned, zeroed pages, each granted to the
/// backend.
struct RingArea {
    ptr: NonNull<u8>,
    pages: usize,
    grefs: Vec<GrantRef>,
}

impl RingArea {
    fn layout(pages: usize) -> Option<Layout> {
        Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).ok()
    }

    fn new(grants: &GrantTable, backend: DomId, order: u32) -> Result<RingArea, BlkError> {
        let pages = 1usize << order;
        let layout = Self::layout(pages).ok_or(BlkError::NoMemory)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(BlkError::NoMemory)?;
        let mut area = RingArea {
            ptr,
            pages,
            grefs: Vec::with_capacity(pages),
        };
        for i in 0..pages {
            // SAFETY: page i lies inside the allocation.
            let page = unsafe { ptr.add(i * PAGE_SIZE) };
            match grants.grant_page(backend, page, false) {
                Ok(g) => area.grefs.push(g),
                Err(e) => {
                    area.end(grants);
                    return Err(e.into());
                }
            }
        }
        Ok(area)
    }

    /// Ends the grants; false if the backend still maps a page (then the memory must not be
    /// freed).
    fn end(&mut self, grants: &GrantTable) -> bool {
        let mut all = true;
        for &g in &self.grefs {
            all &= grants.end_access(g).is_ok();
        }
        self.grefs.clear();
        all
    }
}

impl Drop for RingArea {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.pages) {
            // SAFETY: allocated in `new` with this layout; callers leak (forget) an area the
            // backend may still map instead of dropping it.
            unsafe { dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

fn parse<N: core::str::FromStr>(key: &'static str, v: &str) -> Result<N, BlkError> {
    v.trim()
        .parse()
        .map_err(|_| BlkError::BadInfo(key, v.into()))
}

impl<'a, T: Transport> Blkfront<'a, T> {
    /// Finds the index (`device/vbd/<index>`) of the disk called `name` (`xvda`, ...): the
    /// device whose index or `virtual-device` is the name's number, or whose backend's `dev`
    /// is the name.
    pub async fn find(xs: &'a Xenstore<T>, name: &str) -> Result<u32, BlkError> {
        let vdev = vdev_from_name(name);
        let ids = xenbus::devices(xs, "vbd").await?;
        if let Some(v) = vdev.filter(|v| ids.contains(v)) {
            return Ok(v);
        }
        for &i in &ids {
            let node = format!("device/vbd/{i}");
            if let Some(v) = read_opt(xs, &format!("{node}/virtual-device")).await? {
                if vdev.is_some() && v.trim().parse::<u32>().ok() == vdev {
                    return Ok(i);
                }
            }
            if let Some(be) = read_opt(xs, &format!("{node}/backend")).await? {
                if read_opt(xs, &format!("{be}/dev")).await?.as_deref() == Some(name) {
                    return Ok(i);
                }
            }
        }
        Err(BlkError::NoSuchDevice(name.into()))
    }

    /// Connects to device `device/vbd/<index>` with the default [`Config`].
    pub async fn connect(
        xs: &'a Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
    ) -> Result<Self, BlkError> {
        Self::connect_with(xs, events, grants, index, Config::default()).await
    }

    /// Connects to device `device/vbd/<index>`: shares the ring and event channel through the
    /// xenbus handshake, then reads and validates the disk's properties.
    pub async fn connect_with(
        xs: &'a Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
        config: Config,
    ) -> Result<Self, BlkError> {
        let dev = Frontend::find(xs, "vbd", index).await?;
        let backend = dev.backend_id();
        // The backend publishes max-ring-page-order before InitWait.
        dev.wait_backend(|s| matches!(s, XenbusState::InitWait | XenbusState::Connected))
            .await?;
        let max_order: u32 = match dev.backend_value("max-ring-page-order").await? {
            None => 0,
            Some(v) => parse("max-ring-page-order", &v)?,
        };
        let order = max_order
            .min(config.max_ring_page_order)
            .min(MAX_RING_PAGE_ORDER);
        let mut area = RingArea::new(grants, backend, order)?;
        // SAFETY: the area is ours, page-aligned, `pages * PAGE_SIZE` bytes, and lives in
        // `ring_area` for as long as the ring (it is leaked if the backend keeps it mapped).
        let shared = match unsafe { SharedRing::<Req, Rsp>::new(area.ptr, area.pages * PAGE_SIZE) }
        {
            Ok(s) => s,
            Err(e) => {
                if !area.end(grants) {
                    core::mem::forget(area);
                }
                return Err(BlkError::Ring(e));
            }
        };
        let ring = FrontRing::init(shared);
        let port = match events.alloc_unbound(backend) {
            Ok(p) => p,
            Err(e) => {
                if !area.end(grants) {
                    core::mem::forget(area);
                }
                return Err(e.into());
            }
        };
        let pool = match GrantPool::new(
            grants,
            backend,
            config.pool_pages.max(BLKIF_MAX_SEGMENTS_PER_REQUEST),
            false,
        ) {
            Ok(p) => p,
            Err(e) => {
                if !area.end(grants) {
                    core::mem::forget(area);
                }
                let _ = events.close(port);
                return Err(e.into());
            }
        };
        let grefs = area.grefs.clone();
        let size = ring.size() as usize;
        let mut front = Blkfront {
            dev,
            events,
            grants,
            port,
            ring_area: Some(area),
            handle: index as u16,
            segs_per_request: BLKIF_MAX_SEGMENTS_PER_REQUEST,
            config,
            info: DiskInfo {
                sectors: 0,
                sector_size: 512,
                physical_sector_size: 512,
                info: 0,
                read_only: true,
            },
            features: Features::default(),
            inner: RefCell::new(Inner {
                ring,
                pool,
                slots: (0..size)
                    .map(|_| Slot {
                        gen: 0,
                        op: 0,
                        indirect: false,
                        state: SlotState::Free,
                        pages: Vec::new(),
                        waker: None,
                    })
                    .collect(),
                free_slots: (0..size).rev().collect(),
                waiters: Vec::new(),
                broken: None,
                stats: Stats::default(),
            }),
        };
        // On error from here on, dropping `front` ends the grants and closes the port.
        front
            .dev
            .connect(|tx, node| {
                let grefs = grefs.clone();
                async move {
                    if grefs.len() == 1 {
                        tx.write(&format!("{node}/ring-ref"), format!("{}", grefs[0]))
                            .await?;
                    } else {
                        tx.write(&format!("{node}/ring-page-order"), format!("{order}"))
                            .await?;
                        // The older name of the same thing, for backends that read it.
                        tx.write(
                            &format!("{node}/num-ring-pages"),
                            format!("{}", grefs.len()),
                        )
                        .await?;
                        for (i, g) in grefs.iter().enumerate() {
                            tx.write(&format!("{node}/ring-ref{i}"), format!("{g}"))
                                .await?;
                        }
                    }
                    tx.write(&format!("{node}/event-channel"), format!("{port}"))
                        .await?;
                    // Our data pages are granted once, writable, and reused: the backend may
                    // keep them mapped (blkif.h's persistent grants).
                    tx.write(&format!("{node}/feature-persistent"), "1").await?;
                    tx.write(&format!("{node}/protocol"), "x86_64-abi").await
                }
            })
            .await?;
        front.read_info().await?;
        Ok(front)
    }

    async fn read_info(&mut self) -> Result<(), BlkError> {
        let dev = &self.dev;
        let req = |k: &'static str| async move {
            dev.backend_value(k)
                .await?
                .ok_or_else(|| BlkError::BadInfo(k, String::new()))
        };
        let sectors: u64 = parse("sectors", &req("sectors").await?)?;
        let ss_text = req("sector-size").await?;
        let sector_size: u32 = parse("sector-size", &ss_text)?;
        if !sector_size.is_power_of_two() || !(512..=PAGE_SIZE as u32).contains(&sector_size) {
            return Err(BlkError::BadInfo("sector-size", ss_text));
        }
        // The size in bytes must fit in 64 bits (so every wire sector number does).
        if sectors.checked_mul(u64::from(sector_size)).is_none() {
            return Err(BlkError::BadInfo("sectors", format!("{sectors}")));
        }
        let physical_sector_size = match dev.backend_value("physical-sector-size").await? {
            None => sector_size,
            Some(v) => {
                let p: u32 = parse("physical-sector-size", &v)?;
                if p == 0 || !p.is_multiple_of(sector_size) {
                    return Err(BlkError::BadInfo("physical-sector-size", v));
                }
                p
            }
        };
        let info: u32 = match dev.backend_value("info").await? {
            None => 0,
            Some(v) => parse("info", &v)?,
        };
        let mode_ro = dev.backend_value("mode").await?.as_deref() == Some("r");
        let num = |k: &'static str, default: u32| async move {
            match dev.backend_value(k).await? {
                None => Ok::<u32, BlkError>(default),
                Some(v) => parse(k, &v),
            }
        };
        let features = Features {
            flush_cache: dev.backend_feature("feature-flush-cache").await?,
            barrier: dev.backend_feature("feature-barrier").await?,
            discard: dev.backend_feature("feature-discard").await?,
            discard_granularity: num("discard-granularity", sector_size).await?,
            discard_alignment: num("discard-alignment", 0).await?,
            discard_secure: dev.backend_feature("discard-secure").await?,
            persistent: dev.backend_feature("feature-persistent").await?,
            max_indirect_segments: num("feature-max-indirect-segments", 0).await?,
            max_ring_page_order: num("max-ring-page-order", 0).await?,
        };
        self.info = DiskInfo {
            sectors,
            sector_size,
            physical_sector_size,
            info,
            read_only: info & VDISK_READONLY != 0 || mode_ro,
        };
        self.features = features;
        // Indirect requests: as many segments as both sides allow and the pool can hold
        // together with their indirect pages.
        let pool = self.inner.get_mut().pool.total();
        let max_ind = SEGS_PER_INDIRECT_PAGE * BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST;
        let segs = (features.max_indirect_segments as usize)
            .min(self.config.max_indirect_segments as usize)
            .min(max_ind)
            .min(pool.saturating_sub(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST));
        if segs > BLKIF_MAX_SEGMENTS_PER_REQUEST {
            self.segs_per_request = segs;
        }
        Ok(())
    }

    /// Size of the disk in sectors of [`sector_size`](Self::sector_size) bytes.
    pub fn sectors(&self) -> u64 {
        self.info.sectors
    }

    /// Logical sector size in bytes.
    pub fn sector_size(&self) -> u32 {
        self.info.sector_size
    }

    /// Whether the disk is read-only.
    pub fn read_only(&self) -> bool {
        self.info.read_only
    }

    /// The backend's optional features.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Everything the backend said about the disk.
    pub fn info(&self) -> DiskInfo {
        self.info
    }

    /// The event channel shared with the backend.
    pub fn port(&self) -> Port {
        self.port
    }

    /// The xenbus device (our node, the backend's node, ...).
    pub fn device(&self) -> &Frontend<'a, T> {
        &self.dev
    }

    /// Number of ring slots: the most requests in flight at once.
    pub fn ring_size(&self) -> usize {
        self.inner.borrow().slots.len()
    }

    /// Requests sent whose response was not matched yet: including those whose caller went
    /// away, and those the backend answered with a bad id (their slot and pages stay
    /// reserved, since the backend may still use the pages).
    pub fn in_flight(&self) -> u32 {
        self.inner.borrow().in_flight()
    }

    /// Most data pages one request carries: 11, or more with indirect requests.
    pub fn segments_per_request(&self) -> usize {
        self.segs_per_request
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.inner.borrow().stats
    }

    /// Bounce pages (all of them, and those free now).
    pub fn pool_pages(&self) -> (usize, usize) {
        let i = self.inner.borrow();
        (i.pool.total(), i.pool.available())
    }

    /// Checks that `count` sectors from `sector` are on the disk.
    fn check_range(&self, sector: u64, count: u64) -> Result<(), BlkError> {
        match sector.checked_add(count) {
            Some(end) if end <= self.info.sectors => Ok(()),
            _ => Err(BlkError::OutOfRange {
                sector,
                count,
                sectors: self.info.sectors,
            }),
        }
    }

    fn sectors_of(&self, len: usize) -> Result<u64, BlkError> {
        let ss = self.info.sector_size as usize;
        if !len.is_multiple_of(ss) {
            return Err(BlkError::BadLength(len));
        }
        Ok((len / ss) as u64)
    }

    /// The wire (512-byte) sector of device sector `sector`.
    fn wire_sector(&self, sector: u64) -> u64 {
        sector * u64::from(self.info.sector_size / WIRE_SECTOR as u32)
    }

    /// Reads `buf.len()` bytes (a multiple of the sector size) from `sector` on.
    pub async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        let count = self.sectors_of(buf.len())?;
        self.check_range(sector, count)?;
        if buf.is_empty() {
            return Ok(());
        }
        Io::new(self, Kind::Read(buf), self.wire_sector(sector)).await
    }

    /// Writes `buf` (a multiple of the sector size) from `sector` on. Refused without sending
    /// anything if the disk is read-only or the sectors are beyond its end.
    pub async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        if self.info.read_only {
            return Err(BlkError::ReadOnly);
        }
        let count = self.sectors_of(buf.len())?;
        self.check_range(sector, count)?;
        if buf.is_empty() {
            return Ok(());
        }
        Io::new(self, Kind::Write(buf), self.wire_sector(sector)).await
    }

    /// Makes completed writes durable: `BLKIF_OP_FLUSH_DISKCACHE` (or a write barrier if the
    /// backend offers only that). Without either feature the backend has no cache to flush
    /// and this returns at once.
    pub async fn flush(&self) -> Result<(), BlkError> {
        let op = if self.features.flush_cache {
            BLKIF_OP_FLUSH_DISKCACHE
        } else if self.features.barrier {
            BLKIF_OP_WRITE_BARRIER
        } else {
            return Ok(());
        };
        Io::new(self, Kind::Flush(op), 0).await
    }

    /// Discards `count` sectors from `sector` on (the backend may then read them as zeros or
    /// as their old contents). Needs `feature-discard`; refused on a read-only disk.
    pub async fn discard(&self, sector: u64, count: u64) -> Result<(), BlkError> {
        if !self.features.discard {
            return Err(BlkError::Unsupported);
        }
        if self.info.read_only {
            return Err(BlkError::ReadOnly);
        }
        self.check_range(sector, count)?;
        if count == 0 {
            return Ok(());
        }
        let nr = self.wire_sector(count);
        Io::new(self, Kind::Discard(nr), self.wire_sector(sector)).await
    }

    /// Closes the device (xenbus `Closing` → backend closed → `Closed`) and frees the ring
    /// and bounce pages. Requests still in flight fail.
    pub async fn close(self) -> Result<(), BlkError> {
        self.dev.close().await?;
        Ok(())
    }

    fn notify(&self, inner: &mut Inner<'_>) {
        if inner.ring.push_requests_and_check_notify() {
            inner.stats.notifications += 1;
            if let Err(e) = self.events.send(self.port) {
                log::warn!("blkfront: notify failed: {e}");
            }
        }
    }
}

impl<T: Transport> Drop for Blkfront<'_, T> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        // Pages of requests still in flight may be in use by the backend: never free them.
        for s in &mut inner.slots {
            if matches!(s.state, SlotState::InFlight | SlotState::Abandoned) {
                for p in s.pages.drain(..) {
                    core::mem::forget(p);
                }
            } else {
                for p in s.pages.drain(..) {
                    inner.pool.give_back(p);
                }
            }
        }
        // The pool ends its grants when it is dropped (keeping pages still mapped).
        if let Some(mut area) = self.ring_area.take() {
            if !area.end(self.grants) {
                // The backend still maps the ring: leave the memory to it.
                core::mem::forget(area);
            }
        }
        let _ = self.events.close(self.port);
    }
}

async fn read_opt<T: Transport>(xs: &Xenstore<T>, path: &str) -> Result<Option<String>, BlkError> {
    match xs.read_optional(path).await {
        Ok(v) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
        Err(e) => Err(BlkError::Xenbus(e.into())),
    }
}

enum Kind<'b> {
    Read(&'b mut [u8]),
    Write(&'b [u8]),
    Flush(u8),
    /// Wire sectors to discard.
    Discard(u64),
}

impl Kind<'_> {
    fn len(&self) -> usize {
        match self {
            Kind::Read(b) => b.len(),
            Kind::Write(b) => b.len(),
            _ => 0,
        }
    }
}

/// One I/O call: its requests, submitted as slots and pages allow, collected as they complete.
struct Io<'s, 'a, 'b, T: Transport> {
    front: &'s Blkfront<'a, T>,
    kind: Kind<'b>,
    /// Wire sector of the start.
    sector: u64,
    /// Requests in all.
    chunks: usize,
    /// Next request to submit.
    next: usize,
    /// Bytes per request.
    chunk_bytes: usize,
    /// (chunk, slot, generation) of the requests in flight.
    inflight: Vec<(usize, usize, u32)>,
}

impl<'s, 'a, 'b, T: Transport> Io<'s, 'a, 'b, T> {
    fn new(front: &'s Blkfront<'a, T>, kind: Kind<'b>, sector: u64) -> Self {
        let len = kind.len();
        let chunk_bytes = front.segs_per_request * PAGE_SIZE;
        let chunks = if len == 0 {
            1
        } else {
            len.div_ceil(chunk_bytes)
        };
        Io {
            front,
            chunk_bytes,
            kind,
            sector,
            chunks,
            next: 0,
            inflight: Vec::new(),
        }
    }

    /// Submits request `chunk` if resources allow.
    fn submit(&mut self, inner: &mut Inner<'_>, chunk: usize) -> Option<(usize, u32)> {
        let handle = self.front.handle;
        let off = chunk * self.chunk_bytes;
        let len = self.kind.len().saturating_sub(off).min(self.chunk_bytes);
        let sector = self.sector + (off / WIRE_SECTOR) as u64;
        match &self.kind {
            Kind::Read(_) | Kind::Write(_) => {
                let (op, data) = match &self.kind {
                    Kind::Write(b) => (BLKIF_OP_WRITE, Some(&b[off..off + len])),
                    _ => (BLKIF_OP_READ, None),
                };
                let nsegs = len.div_ceil(PAGE_SIZE);
                let indirect = nsegs > BLKIF_MAX_SEGMENTS_PER_REQUEST;
                let ind_pages = if indirect {
                    nsegs.div_ceil(SEGS_PER_INDIRECT_PAGE)
                } else {
                    0
                };
                inner.try_submit(op, indirect, nsegs + ind_pages, |id, pages| {
                    let (data_pages, ind) = pages.split_at(nsegs);
                    let seg = |i: usize, page: &GrantedPage| {
                        let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE);
                        if let Some(d) = data {
                            // SAFETY: the page is a live PAGE_SIZE allocation of the pool, not
                            // in flight (just taken), and `bytes <= PAGE_SIZE`.
                            unsafe {
                                core::ptr::copy_nonoverlapping(
                                    d[i * PAGE_SIZE..].as_ptr(),
                                    page.as_ptr(),
                                    bytes,
                                )
                            };
                        }
                        BlkifRequestSegment {
                            gref: page.gref(),
                            first_sect: 0,
                            last_sect: (bytes / WIRE_SECTOR - 1) as u8,
                        }
                    };
                    if !indirect {
                        let mut segs =
                            [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
                        for (i, (s, page)) in segs.iter_mut().zip(data_pages).enumerate() {
                            *s = seg(i, page);
                        }
                        return wire::request(op, handle, id, sector, &segs[..nsegs]);
                    }
                    let mut grefs = [0u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
                    for (g, p) in grefs.iter_mut().zip(ind) {
                        *g = p.gref();
                    }
                    for (i, page) in data_pages.iter().enumerate() {
                        let entry = wire::segment(&seg(i, page));
                        let table = ind[i / SEGS_PER_INDIRECT_PAGE].as_ptr() as *mut u64;
                        // SAFETY: the indirect page is a live, page-aligned PAGE_SIZE
                        // allocation of the pool; entry `i % 512` of 8 bytes is inside it.
                        unsafe { table.add(i % SEGS_PER_INDIRECT_PAGE).write(entry) };
                    }
                    wire::indirect(op, nsegs as u16, handle, id, sector, &grefs[..ind_pages])
                })
            }
            Kind::Flush(op) => {
                let op = *op;
                inner.try_submit(op, false, 0, |id, _| wire::request(op, handle, id, 0, &[]))
            }
            Kind::Discard(nr) => {
                let nr = *nr;
                // Plain discard: we never ask for BLKIF_DISCARD_SECURE.
                let flag = 0;
                inner.try_submit(BLKIF_OP_DISCARD, false, 0, |id, _| {
                    wire::discard(BLKIF_OP_DISCARD, flag, handle, id, sector, nr)
                })
            }
        }
    }

    /// Copies a completed read's pages into the caller's buffer.
    fn copy_out(&mut self, slot: &Slot, chunk: usize) {
        if let Kind::Read(buf) = &mut self.kind {
            let off = chunk * self.chunk_bytes;
            let len = buf.len().saturating_sub(off).min(self.chunk_bytes);
            // Data pages come first; indirect pages (if any) follow.
            for (i, page) in slot.pages.iter().take(len.div_ceil(PAGE_SIZE)).enumerate() {
                let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE);
                let dst = &mut buf[off + i * PAGE_SIZE..off + i * PAGE_SIZE + bytes];
                // SAFETY: the page is a live PAGE_SIZE allocation; the backend answered, so it
                // is done writing it (a hostile backend writing on only spoils its own data).
                unsafe { core::ptr::copy_nonoverlapping(page.as_ptr(), dst.as_mut_ptr(), bytes) };
            }
        }
    }

    /// Lets go of the requests still in flight: answered ones are released, the others are
    /// released when their response comes.
    fn abandon(&mut self, inner: &mut Inner<'_>, wake: &mut Vec<Waker>) {
        for (_, index, _) in self.inflight.drain(..) {
            match inner.slots[index].state {
                SlotState::Done(_) => inner.release(index, wake),
                _ => {
                    let s = &mut inner.slots[index];
                    s.state = SlotState::Abandoned;
                    s.waker = None;
                }
            }
        }
        // We may have been the task registered on the port.
        inner.take_all_wakers(wake);
    }

    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        wake: &mut Vec<Waker>,
    ) -> Poll<Result<(), BlkError>> {
        let front = self.front;
        loop {
            let mut inner = front.inner.borrow_mut();
            inner.drain(wake);
            // Collect what completed, in any order.
            let mut i = 0;
            let mut failure = None;
            while i < self.inflight.len() {
                let (chunk, index, gen) = self.inflight[i];
                let slot = &inner.slots[index];
                debug_assert_eq!(slot.gen, gen);
                let SlotState::Done(r) = &slot.state else {
                    i += 1;
                    continue;
                };
                let r = r.clone();
                if r.is_ok() {
                    self.copy_out(&inner.slots[index], chunk);
                } else if failure.is_none() {
                    failure = Some(r.clone());
                }
                inner.release(index, wake);
                self.inflight.swap_remove(i);
            }
            if let Some(Err(e)) = failure {
                // The call failed: let go of its other requests now.
                self.abandon(&mut inner, wake);
                return Poll::Ready(Err(e));
            }
            if let Some(e) = inner.broken {
                self.abandon(&mut inner, wake);
                return Poll::Ready(Err(BlkError::Ring(e)));
            }
            let mut pushed = false;
            while self.next < self.chunks {
                match self.submit(&mut inner, self.next) {
                    Some((index, gen)) => {
                        self.inflight.push((self.next, index, gen));
                        self.next += 1;
                        pushed = true;
                    }
                    None => break,
                }
            }
            if pushed {
                front.notify(&mut inner);
            }
            if self.next == self.chunks && self.inflight.is_empty() {
                // We may have been the task registered on the port: let another take over.
                inner.take_all_wakers(wake);
                return Poll::Ready(Ok(()));
            }
            // Wait: for our responses, and for a slot or pages if requests are left.
            for &(_, index, _) in &self.inflight {
                inner.slots[index].waker = Some(cx.waker().clone());
            }
            if self.next < self.chunks {
                inner.waiters.push(cx.waker().clone());
            }
            if inner.ring.outstanding_requests() == 0 {
                // Nothing can complete: the slots or pages we wait for are held by other
                // tasks' finished requests, which those tasks release (and wake us).
                return Poll::Pending;
            }
            match inner.ring.final_check_for_responses() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    inner.fail_all(e, wake);
                    continue;
                }
            }
            drop(inner);
            match front.events.poll_port(front.port, cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: Transport> Future for Io<'_, '_, '_, T> {
    type Output = Result<(), BlkError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut wake = Vec::new();
        let r = this.poll_io(cx, &mut wake);
        // Our own waker may be among them (joined futures share one): a spurious wake is
        // harmless, a skipped one could stall a sibling.
        for w in wake {
            w.wake();
        }
        r
    }
}

impl<T: Transport> Drop for Io<'_, '_, '_, T> {
    fn drop(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        let mut wake = Vec::new();
        if let Ok(mut inner) = self.front.inner.try_borrow_mut() {
            self.abandon(&mut inner, &mut wake);
        }
        for w in wake {
            w.wake();
        }
    }
}
