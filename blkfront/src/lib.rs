//! Xen blkfront: the frontend of a PV block device (`io/blkif.h`).
//!
//! [`Blkfront::connect`] finds device `device/vbd/<index>` ([`Blkfront::find`] finds it by
//! name, e.g. `xvda`), shares a request ring (one page, or up to 16 if the backend offers
//! `max-ring-page-order` and [`BlkfrontConfig::max_ring_page_order`] asks for it) and an event channel
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
//! Data goes through bounce pages of a [`GrantPool`](xenia_xen::grant::GrantPool), granted to the backend once at connect
//! time and reused ("persistent grants" in blkif.h's words): the I/O path never grants or
//! revokes. Reads copy out of the pages, writes copy in, so caller buffers need no alignment.
//!
//! The backend is not trusted: every response's id must name a request in flight (ids carry a
//! generation, so a duplicate or stale response is recognised), its operation must be the
//! request's, and its status one blkif.h defines. The first response that breaks one of these
//! rules ([`Violation`]) marks the device broken: it is logged once and counted in [`Stats`],
//! every request in flight fails at once with [`BlkfrontError::Broken`], and so does every
//! later one, without touching the ring. A ring whose indices are corrupt breaks the device
//! the same way, with [`BlkfrontError::Ring`]. No caller waits for an answer that cannot come,
//! and nothing the backend writes can make the driver panic.
//!
//! Sector numbers in this API are in units of the device's [`sector_size`](Blkfront::sector_size).
//! We do not advertise `feature-large-sector-size`, so on the wire all sector quantities are in
//! 512-byte units, as blkif.h requires. The backend's `sectors` is read as blkif.h defines it,
//! in units of `sector-size` (Linux's blkback writes 512-byte units there instead; the two
//! agree for the usual 512-byte sectors).
//!
//! Once the device is broken its slots are all free again and its bounce pages back in the
//! pool (which is never used again: the backend may still write them); the pool's grants end
//! when the device is dropped, and a page the backend still maps is kept rather than freed.
//!
//! The crate is laid out along the driver's seams: `connect` (finding the vbd, the ring as a
//! [`GrantedRing`], the xenbus handshake, the disk's properties), `slots` (requests in flight
//! and the matching of responses to them), `io` (the I/O calls and the future that splits,
//! submits and collects their requests), `config`, `info` and `error`. Ring slots are
//! encoded and decoded by `xenia_xen::abi::blkif_wire`, the codec a backend uses too.
#![no_std]

extern crate alloc;

mod config;
mod connect;
mod error;
mod info;
mod io;
mod slots;
mod vdev;

pub use config::BlkfrontConfig;
pub use error::{BlkfrontError, Violation};
pub use info::{DiskInfo, Features, Stats};
pub use vdev::vdev_from_name;

use core::cell::RefCell;
use slots::Inner;
use xenia_xen::abi::{BlkifRequestSegment, BLKIF_MAX_SEGMENTS_PER_REQUEST};
use xenia_xen::events::{EventChannels, Port};
use xenia_xen::grant::GrantedRing;
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenbus::Frontend;
use xenia_xen::xenstore::Transport;

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

/// A connected PV block device.
pub struct Blkfront<'a, T: Transport> {
    /// First field: dropped before the ring page it points into.
    inner: RefCell<Inner<'a>>,
    dev: Frontend<'a, T>,
    events: &'a EventChannels,
    port: Port,
    /// The event-channel epoch the device connected in ([`EventChannels::epoch`]): once it
    /// moves on, the domain resumed elsewhere and this connection is dead.
    epoch: u64,
    /// The ring's pages: after `inner`, whose ring points into them. Their grants end when
    /// they drop (or they are leaked if the backend still maps them).
    ring_area: GrantedRing<'a>,
    handle: u16,
    /// Most data pages per request (11 without indirect requests).
    segs_per_request: usize,
    config: BlkfrontConfig,
    info: DiskInfo,
    features: Features,
}

impl<'a, T: Transport> Blkfront<'a, T> {
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

    /// Requests sent whose response was not matched yet, including those whose caller went
    /// away (0 once the device is broken).
    pub fn in_flight(&self) -> u32 {
        self.inner.borrow().in_flight()
    }

    /// Most data pages one request carries: 11, or more with indirect requests.
    pub fn segments_per_request(&self) -> usize {
        self.segs_per_request
    }

    /// Why the device is broken ([`BlkfrontError::Broken`] or [`BlkfrontError::Ring`]), if
    /// the backend broke the protocol: every request fails with this error.
    pub fn broken(&self) -> Option<BlkfrontError> {
        self.inner.borrow().broken.clone()
    }

    /// Whether the connection died with a resume in a new domain (see
    /// [`BlkfrontError::Resumed`]); if so, fails every request in flight with that error.
    pub fn check_resumed(&self) -> bool {
        if self.events.epoch() == self.epoch {
            return false;
        }
        let mut wake = alloc::vec::Vec::new();
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.fail_all(BlkfrontError::Resumed, &mut wake);
        }
        for w in wake {
            w.wake();
        }
        true
    }

    /// The backend is closing (`xl block-detach`, its domain going away): every request in
    /// flight and every later one fails with [`BlkfrontError::Xenbus`]
    /// ([`BackendClosed`](xenia_xen::xenbus::XenbusError::BackendClosed)) instead of waiting
    /// for an answer that will not come. Close the device through xenbus afterwards.
    pub fn backend_closed(&self, state: xenia_xen::abi::XenbusState) {
        let mut wake = alloc::vec::Vec::new();
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.fail_all(
                BlkfrontError::Xenbus(xenia_xen::xenbus::XenbusError::BackendClosed(state)),
                &mut wake,
            );
        }
        for w in wake {
            w.wake();
        }
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
    fn check_range(&self, sector: u64, count: u64) -> Result<(), BlkfrontError> {
        match sector.checked_add(count) {
            Some(end) if end <= self.info.sectors => Ok(()),
            _ => Err(BlkfrontError::OutOfRange {
                sector,
                count,
                sectors: self.info.sectors,
            }),
        }
    }

    fn sectors_of(&self, len: usize) -> Result<u64, BlkfrontError> {
        let ss = self.info.sector_size as usize;
        if !len.is_multiple_of(ss) {
            return Err(BlkfrontError::BadLength(len));
        }
        Ok((len / ss) as u64)
    }

    /// The wire (512-byte) sector of device sector `sector`.
    fn wire_sector(&self, sector: u64) -> u64 {
        sector * u64::from(self.info.sector_size / WIRE_SECTOR as u32)
    }

    /// Closes the device (xenbus `Closing` → backend closed → `Closed`) and frees the ring
    /// and bounce pages. Requests still in flight fail.
    pub async fn close(self) -> Result<(), BlkfrontError> {
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
        // Every page goes back to the pool, also those of requests still in flight: the pool
        // ends its grants when it is dropped, and keeps (leaks, counted in the grant table)
        // its pages if the backend still maps one, so none is freed under the backend's feet
        // and none is lost when the backend let go. So does the ring area.
        for s in &mut inner.slots {
            for p in s.pages.drain(..) {
                inner.pool.give_back(p);
            }
        }
        // After a resume the port number may belong to another channel now: leave it.
        if self.events.epoch() == self.epoch {
            let _ = self.events.close(self.port);
        }
    }
}
