//! A simulated blkback (dom0's block backend) serving an in-memory disk, with fault injection.
//!
//! [`Blkback::add`] writes what the toolstack and blkback write for a vbd of the guest (the
//! frontend's `device/vbd/<index>` and the backend's node in `InitWait`) and adds a
//! [`Backend`] that, once the frontend is `Initialised`, maps its ring through the grant in
//! `ring-ref`, binds `event-channel`, publishes the disk's properties and switches to
//! `Connected`. It then serves `BLKIF_OP_{READ,WRITE,FLUSH_DISKCACHE,WRITE_BARRIER,DISCARD}`
//! against a `Vec<u8>`, mapping each segment's grant for writing (reads put data into the
//! guest) or for reading (writes), as `GNTTABOP_map_grant_ref` would check it.
//!
//! [`Faults`] make it misbehave: an error status for given sectors, responses in reverse
//! order, hostile responses (unknown id, duplicate id, wrong operation, producer overrun), a
//! read-only disk, or no answers at all.
//!
//! Ring slots are decoded and encoded by the frontends' codec,
//! [`blkif_wire`](xenia_xen::abi::io::blkif_wire) (the x86-64 layout, `protocol` =
//! `x86_64-abi`), which also checks the protocol's fixed limits.

use crate::{Backend, Host, Sim, DOM0, GUEST_DOMID};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::format;
use std::rc::Rc;
use std::string::{String, ToString};
use std::vec::Vec;
use xenia_ring::{BackRing, SharedRing};
use xenia_xen::abi::io::blkif_wire::{
    decode_segment, BlkifDecodeError, Request, RequestSlot, ResponseSlot,
};
use xenia_xen::abi::{
    BlkifRequestSegment, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ,
    BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
    BLKIF_SEGS_PER_INDIRECT_FRAME, VDISK_READONLY,
};
use xenia_xen::events::Port;
use xenia_xen::grant::GrantRef;
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenstore::{Access, Perm};

use crate::xenstored::Xenstored;

/// What the toolstack configures for the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VbdConfig {
    /// The device index (`device/vbd/<index>`), which is also its `virtual-device`.
    pub index: u32,
    /// The disk's name in the guest (the backend's `dev`), e.g. `xvda`.
    pub name: String,
    /// Size in sectors of `sector_size` bytes.
    pub sectors: u64,
    /// Logical sector size.
    pub sector_size: u32,
    /// Read-only disk (`mode` = `r`, `VDISK_READONLY` in `info`); writes get an error.
    pub read_only: bool,
    /// Offer `feature-flush-cache`.
    pub flush: bool,
    /// Offer `feature-barrier`.
    pub barrier: bool,
    /// Offer `feature-discard` (discarded sectors read as zeros).
    pub discard: bool,
    /// Offer `feature-max-indirect-segments` with this value (0: no indirect requests).
    pub max_indirect_segments: u32,
    /// Offer `max-ring-page-order` with this value (0: one-page rings only).
    pub max_ring_page_order: u32,
    /// Backend nodes written (or overwritten) after the disk's properties at connect time,
    /// to present bad values to the frontend.
    pub extra_nodes: Vec<(String, String)>,
}

impl Default for VbdConfig {
    fn default() -> Self {
        VbdConfig {
            index: 51712,
            name: "xvda".into(),
            sectors: 4096,
            sector_size: 512,
            read_only: false,
            flush: true,
            barrier: false,
            discard: true,
            max_indirect_segments: 0,
            max_ring_page_order: 0,
            extra_nodes: Vec::new(),
        }
    }
}

/// A hostile answer, applied to the next response the backend sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// An honest response (to place a hostile one later in a batch).
    Honest,
    /// The response carries an id the frontend never used (its request gets no answer).
    UnknownId,
    /// The response carries the id of the previous response (its request gets no answer).
    DuplicateId,
    /// The response names another operation than its request's.
    WrongOperation,
    /// After the response, `rsp_prod` jumps far beyond the requests published.
    ProducerOverrun,
    /// The response carries this status, whatever happened (blkif.h defines 0, -1 and -2).
    Status(i16),
}

/// Misbehaviour to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Requests touching these 512-byte sectors get `BLKIF_RSP_ERROR` (nothing transferred).
    pub error_sectors: Vec<u64>,
    /// Answer each batch of requests in reverse order.
    pub reverse: bool,
    /// Hostile answers, one per response, in order.
    pub hostile: VecDeque<Hostile>,
    /// Stop answering (requests stay on the ring).
    pub stopped: bool,
}

/// What the backend saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackStats {
    /// Requests consumed.
    pub requests: u64,
    /// Most requests consumed in one go (how many the frontend had in flight).
    pub max_batch: usize,
    /// Each request: (operation, 512-byte sector, 512-byte sectors, segments).
    pub ops: Vec<(u8, u64, u64, u16)>,
    /// Notifications received from the frontend.
    pub notifications: u64,
    /// Ring protocol errors seen (the frontend overran the ring).
    pub ring_errors: u64,
}

/// The backend's state, shared between the simulated backend and the test.
#[derive(Debug, Default)]
pub struct BlkbackState {
    /// The disk's bytes (`sectors * sector_size`).
    pub disk: Vec<u8>,
    /// Faults to inject.
    pub faults: Faults,
    /// What was seen.
    pub stats: BackStats,
    /// Whether the ring is connected.
    pub connected: bool,
    /// Whether the backend closed after the frontend asked it to.
    pub closed: bool,
    /// `xl block-detach`: 0 no, 1 asked (backend to Closing), 2 both ends closed and the
    /// device's nodes removed.
    pub detach: u8,
}

/// The test's handle on a simulated blkback.
#[derive(Clone)]
pub struct Blkback {
    state: Rc<RefCell<BlkbackState>>,
    fe: String,
    be: String,
}

impl Blkback {
    /// Adds vbd `config.index` to the guest (toolstack and backend nodes, backend in
    /// `InitWait`) and a simulated backend serving it from a zeroed in-memory disk.
    pub fn add(sim: &Sim, config: VbdConfig) -> Blkback {
        let (fe, be) = toolstack_adds_vbd(sim, &config);
        let bytes = (config.sectors * u64::from(config.sector_size)) as usize;
        let state = Rc::new(RefCell::new(BlkbackState {
            disk: std::vec![0; bytes],
            ..Default::default()
        }));
        sim.add_backend(std::boxed::Box::new(BlkbackDevice {
            state: state.clone(),
            config,
            fe: fe.clone(),
            be: be.clone(),
            xsd: sim.xenstored(),
            ring: None,
            port: None,
            last_id: None,
        }));
        Blkback { state, fe, be }
    }

    /// The shared state (disk, faults, stats). Let go of it before the guest runs again
    /// (the backend borrows it when it works).
    pub fn state(&self) -> std::cell::RefMut<'_, BlkbackState> {
        self.state.borrow_mut()
    }

    /// What `xl block-detach` does: the backend goes to Closing; once both ends closed, the
    /// toolstack removes the device's nodes (`state().detach` becomes 2).
    pub fn toolstack_detach(&self) {
        let mut st = self.state.borrow_mut();
        if st.detach == 0 {
            st.detach = 1;
        }
    }

    /// The frontend's node (absolute).
    pub fn frontend_path(&self) -> &str {
        &self.fe
    }

    /// The backend's node (absolute).
    pub fn backend_path(&self) -> &str {
        &self.be
    }
}

/// Writes what the toolstack and blkback's probe write for vbd `config.index`: the frontend's
/// `backend`, `backend-id`, `state`, `virtual-device`, `device-type`; the backend's
/// `frontend`, `frontend-id`, `dev`, `type`, `mode`, `device-type`, `removable` and `state` =
/// InitWait. Returns (frontend node, backend node).
pub fn toolstack_adds_vbd(sim: &Sim, config: &VbdConfig) -> (String, String) {
    let xsd = sim.xenstored();
    let mut x = xsd.borrow_mut();
    let i = config.index;
    let (fe, be) = crate::toolstack::device_paths("vbd", i);
    let fe_nodes = [
        ("backend", be.clone()),
        ("backend-id", "0".to_string()),
        ("state", "1".to_string()),
        ("virtual-device", i.to_string()),
        ("device-type", "disk".to_string()),
    ];
    let mut be_nodes = std::vec![
        ("frontend", fe.clone()),
        ("frontend-id", GUEST_DOMID.to_string()),
        ("dev", config.name.clone()),
        ("type", "phy".to_string()),
        ("mode", if config.read_only { "r" } else { "w" }.to_string()),
        ("device-type", "disk".to_string()),
        ("removable", "0".to_string()),
        ("state", "2".to_string()),
    ];
    if config.max_ring_page_order > 0 {
        be_nodes.push((
            "max-ring-page-order",
            config.max_ring_page_order.to_string(),
        ));
    }
    if config.max_indirect_segments > 0 {
        // blkback publishes this at probe time, before InitWait.
        be_nodes.push((
            "feature-max-indirect-segments",
            config.max_indirect_segments.to_string(),
        ));
    }
    crate::toolstack::write_device(&mut x, (&fe, &be), &fe_nodes, &be_nodes);
    (fe, be)
}

struct Ring {
    back: BackRing<RequestSlot, ResponseSlot>,
    grefs: Vec<GrantRef>,
    base: *mut u8,
    dom0_port: Port,
}

struct BlkbackDevice {
    state: Rc<RefCell<BlkbackState>>,
    config: VbdConfig,
    fe: String,
    be: String,
    xsd: Rc<RefCell<Xenstored>>,
    ring: Option<Ring>,
    port: Option<Port>,
    last_id: Option<u64>,
}

impl BlkbackDevice {
    fn write_be(&self, key: &str, value: impl AsRef<[u8]>) {
        let path = format!("{}/{key}", self.be);
        let mut x = self.xsd.borrow_mut();
        x.write(&path, value).expect("xenstore write");
        x.set_perms(
            &path,
            &[
                Perm::new(DOM0, Access::None),
                Perm::new(GUEST_DOMID, Access::Read),
            ],
        )
        .expect("perms");
    }

    fn fe_value(&self, key: &str) -> Option<String> {
        self.xsd
            .borrow_mut()
            .read_string(&format!("{}/{key}", self.fe))
            .ok()
    }

    /// The frontend is Initialised: map its ring, bind its port, publish the disk, connect.
    fn connect(&mut self, host: &mut Host) {
        let num = |v: Option<String>| v.and_then(|v| v.parse::<u32>().ok());
        let order = match self.fe_value("ring-page-order") {
            None => Some(0),
            Some(v) => num(Some(v)).filter(|&o| o <= self.config.max_ring_page_order),
        };
        let grefs: Option<Vec<u32>> = match order {
            Some(0) => num(self.fe_value("ring-ref")).map(|g| std::vec![g]),
            Some(o) => (0..1u32 << o)
                .map(|i| num(self.fe_value(&format!("ring-ref{i}"))))
                .collect(),
            None => None,
        };
        let port = num(self.fe_value("event-channel"));
        let proto_ok = self.fe_value("protocol").is_none_or(|p| p == "x86_64-abi");
        let (Some(grefs), Some(port), true) = (grefs, port, proto_ok) else {
            self.write_be("state", "6");
            return;
        };
        // Map the ring's pages; they must be contiguous here (the simulator's mappings are
        // the guest's own addresses, and the frontend allocates its ring in one piece).
        let mut mapped: Vec<u32> = Vec::new();
        let mut base: *mut u8 = core::ptr::null_mut();
        let mut ok = true;
        for (i, &g) in grefs.iter().enumerate() {
            match host.grants.map(DOM0, g, true) {
                Ok(p) => {
                    mapped.push(g);
                    if i == 0 {
                        base = p;
                    } else if p != base.wrapping_add(i * PAGE_SIZE) {
                        ok = false;
                    }
                }
                Err(_) => ok = false,
            }
        }
        let area = core::ptr::NonNull::new(base).filter(|_| ok);
        let shared = area.and_then(|a| {
            // SAFETY: the grants map live guest pages, contiguous from `area`, kept mapped
            // until we unmap them on close.
            unsafe { SharedRing::<RequestSlot, ResponseSlot>::new(a, grefs.len() * PAGE_SIZE) }.ok()
        });
        let bound = shared.as_ref().and_then(|_| host.dom0_bind(port).ok());
        let (Some(shared), Some(dom0_port)) = (shared, bound) else {
            for g in mapped {
                host.grants.unmap(g);
            }
            self.write_be("state", "6");
            return;
        };
        self.port = Some(port);
        self.ring = Some(Ring {
            back: BackRing::new(shared),
            grefs,
            base,
            dom0_port,
        });
        let c = &self.config;
        let info = if c.read_only { VDISK_READONLY } else { 0 };
        self.write_be("sectors", c.sectors.to_string());
        self.write_be("sector-size", c.sector_size.to_string());
        self.write_be("physical-sector-size", c.sector_size.to_string());
        self.write_be("info", info.to_string());
        self.write_be("feature-flush-cache", if c.flush { "1" } else { "0" });
        self.write_be("feature-barrier", if c.barrier { "1" } else { "0" });
        if c.discard {
            self.write_be("feature-discard", "1");
            self.write_be("discard-granularity", c.sector_size.to_string());
            self.write_be("discard-alignment", "0");
        }
        for (k, v) in self.config.extra_nodes.clone() {
            self.write_be(&k, v);
        }
        self.write_be("state", "4");
        self.state.borrow_mut().connected = true;
    }

    fn close(&mut self, host: &mut Host) {
        if let Some(r) = self.ring.take() {
            for g in r.grefs {
                host.grants.unmap(g);
            }
            let _ = host.evtchn.close(DOM0, r.dom0_port);
        }
        let mut st = self.state.borrow_mut();
        st.connected = false;
        st.closed = true;
        drop(st);
        self.write_be("state", "6");
    }

    /// Serves a read or write of `segs` from 512-byte `sector` on.
    fn serve_rw(
        &self,
        host: &mut Host,
        op: u8,
        sector: u64,
        segs: &[BlkifRequestSegment],
        st: &mut BlkbackState,
    ) -> i16 {
        let nr = segs.len() as u16;
        let mut total = 0u64;
        for s in segs {
            let (first, last) = (u64::from(s.first_sect), u64::from(s.last_sect));
            if first > last || last >= 8 {
                st.stats.ops.push((op, sector, 0, nr));
                return BLKIF_RSP_ERROR;
            }
            total += last - first + 1;
        }
        st.stats.ops.push((op, sector, total, nr));
        if segs.is_empty() {
            return BLKIF_RSP_ERROR;
        }
        let disk_sectors = st.disk.len() as u64 / 512;
        if sector.checked_add(total).is_none_or(|e| e > disk_sectors) {
            return BLKIF_RSP_ERROR;
        }
        if touches(&st.faults.error_sectors, sector, total) {
            return BLKIF_RSP_ERROR;
        }
        if op == BLKIF_OP_WRITE && self.config.read_only {
            return BLKIF_RSP_ERROR;
        }
        let mut pos = (sector * 512) as usize;
        for s in segs {
            // Reads write into the guest's page; writes only read it.
            let Ok(page) = host.grants.map(DOM0, s.gref, op == BLKIF_OP_READ) else {
                return BLKIF_RSP_ERROR;
            };
            let off = usize::from(s.first_sect) * 512;
            let len = usize::from(s.last_sect - s.first_sect + 1) * 512;
            let disk = &mut st.disk[pos..pos + len];
            // SAFETY: the mapping is a live page; off + len <= 8 * 512 = PAGE_SIZE.
            unsafe {
                if op == BLKIF_OP_READ {
                    core::ptr::copy_nonoverlapping(disk.as_ptr(), page.add(off), len);
                } else {
                    core::ptr::copy_nonoverlapping(page.add(off), disk.as_mut_ptr(), len);
                }
            }
            host.grants.unmap(s.gref);
            pos += len;
        }
        BLKIF_RSP_OKAY
    }

    /// Reads the `nr_segments` segments of an indirect request out of its indirect pages
    /// (mapped read-only, one at a time); `None` if a page cannot be mapped.
    fn indirect_segments(
        host: &mut Host,
        pages: &[GrantRef],
        nr_segments: usize,
    ) -> Option<Vec<BlkifRequestSegment>> {
        let mut segs = Vec::with_capacity(nr_segments);
        for (k, &gref) in pages.iter().enumerate() {
            // The segment table is only read.
            let table = host.grants.map(DOM0, gref, false).ok()?;
            let n = (nr_segments - k * BLKIF_SEGS_PER_INDIRECT_FRAME)
                .min(BLKIF_SEGS_PER_INDIRECT_FRAME);
            for i in 0..n {
                // SAFETY: the mapping is a live, page-aligned page of 512 segment words.
                let w = unsafe { (table as *const u64).add(i).read_volatile() };
                segs.push(decode_segment(w));
            }
            host.grants.unmap(gref);
        }
        Some(segs)
    }

    /// Serves one request; returns its response's operation and status.
    fn serve(&self, host: &mut Host, slot: &RequestSlot, st: &mut BlkbackState) -> (u8, i16) {
        // The sector lies at byte 16 in every request layout.
        let sector = slot.as_request().sector_number;
        let disk_sectors = st.disk.len() as u64 / 512;
        let req = match slot.decode() {
            Ok(req) => req,
            // Flushes, barriers and unknown operations never look at their segments: served
            // whatever their count.
            Err(BlkifDecodeError::TooManySegments { operation, .. })
                if !matches!(operation, BLKIF_OP_READ | BLKIF_OP_WRITE) =>
            {
                Request::Direct(slot.as_request())
            }
            Err(e) => {
                let (op, nr) = match e {
                    BlkifDecodeError::TooManySegments {
                        operation,
                        nr_segments,
                        ..
                    } => (operation, nr_segments),
                    BlkifDecodeError::BadIndirect { nr_segments, .. } => {
                        (BLKIF_OP_INDIRECT, nr_segments)
                    }
                };
                st.stats.ops.push((op, sector, 0, nr));
                return (e.response_operation(), BLKIF_RSP_ERROR);
            }
        };
        let status = match req {
            Request::Direct(r) if matches!(r.operation, BLKIF_OP_READ | BLKIF_OP_WRITE) => {
                self.serve_rw(host, r.operation, sector, req.segments(), st)
            }
            Request::Indirect(r) => {
                // As Linux's blkback: the response names the indirect operation.
                let iop = req.response_operation();
                if u32::from(r.nr_segments) > self.config.max_indirect_segments {
                    st.stats
                        .ops
                        .push((BLKIF_OP_INDIRECT, sector, 0, r.nr_segments));
                    return (iop, BLKIF_RSP_ERROR);
                }
                let nsegs = usize::from(r.nr_segments);
                let Some(segs) = Self::indirect_segments(host, req.indirect_pages(), nsegs) else {
                    return (iop, BLKIF_RSP_ERROR);
                };
                return (iop, self.serve_rw(host, iop, sector, &segs, st));
            }
            Request::Direct(r)
                if matches!(
                    r.operation,
                    BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER
                ) =>
            {
                let op = r.operation;
                st.stats.ops.push((op, sector, 0, r.nr_segments.into()));
                let offered = if op == BLKIF_OP_FLUSH_DISKCACHE {
                    self.config.flush
                } else {
                    self.config.barrier
                };
                if offered {
                    BLKIF_RSP_OKAY
                } else {
                    BLKIF_RSP_EOPNOTSUPP
                }
            }
            Request::Discard(d) => {
                let n = d.nr_sectors;
                st.stats.ops.push((d.operation, sector, n, 0));
                if !self.config.discard {
                    BLKIF_RSP_EOPNOTSUPP
                } else if self.config.read_only
                    || sector.checked_add(n).is_none_or(|e| e > disk_sectors)
                    || touches(&st.faults.error_sectors, sector, n)
                {
                    BLKIF_RSP_ERROR
                } else {
                    st.disk[(sector * 512) as usize..((sector + n) * 512) as usize].fill(0);
                    BLKIF_RSP_OKAY
                }
            }
            Request::Direct(r) => {
                st.stats
                    .ops
                    .push((r.operation, sector, 0, r.nr_segments.into()));
                BLKIF_RSP_EOPNOTSUPP
            }
        };
        (req.response_operation(), status)
    }

    fn serve_ring(&mut self, host: &mut Host) -> bool {
        let Some(mut ring) = self.ring.take() else {
            return false;
        };
        let state = self.state.clone();
        let mut st = state.borrow_mut();
        if host.dom0_take_event(ring.dom0_port) {
            st.stats.notifications += 1;
        }
        if st.faults.stopped {
            drop(st);
            self.ring = Some(ring);
            return false;
        }
        let mut progress = false;
        loop {
            let mut batch = Vec::new();
            loop {
                match ring.back.poll_request() {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) => break,
                    Err(_) => {
                        st.stats.ring_errors += 1;
                        break;
                    }
                }
            }
            if batch.is_empty() {
                match ring.back.final_check_for_requests() {
                    Ok(true) => continue,
                    _ => break,
                }
            }
            progress = true;
            st.stats.requests += batch.len() as u64;
            st.stats.max_batch = st.stats.max_batch.max(batch.len());
            let mut rsps: Vec<(u64, u8, i16)> = batch
                .iter()
                .map(|r| {
                    let (op, status) = self.serve(host, r, &mut st);
                    (r.id(), op, status)
                })
                .collect();
            if st.faults.reverse {
                rsps.reverse();
            }
            let mut overrun = false;
            for (mut id, mut op, mut status) in rsps {
                match st.faults.hostile.pop_front() {
                    Some(Hostile::UnknownId) => id = u64::MAX,
                    Some(Hostile::DuplicateId) => id = self.last_id.unwrap_or(u64::MAX),
                    Some(Hostile::WrongOperation) => {
                        op = if op == BLKIF_OP_READ {
                            BLKIF_OP_WRITE
                        } else {
                            BLKIF_OP_READ
                        }
                    }
                    Some(Hostile::ProducerOverrun) => overrun = true,
                    Some(Hostile::Status(s)) => status = s,
                    Some(Hostile::Honest) | None => {}
                }
                self.last_id = Some(id);
                let rsp = ResponseSlot::new(id, op, status);
                if ring.back.push_response(rsp).is_err() {
                    break;
                }
            }
            let notify = ring.back.push_responses_and_check_notify();
            if overrun {
                let prod = ring.back.rsp_prod_pvt().wrapping_add(1000);
                // SAFETY: rsp_prod is the aligned u32 at byte 8 of the mapped ring page.
                unsafe {
                    core::sync::atomic::AtomicU32::from_ptr(
                        ring.base
                            .add(SharedRing::<RequestSlot, ResponseSlot>::RSP_PROD_OFFSET)
                            as *mut u32,
                    )
                    .store(prod, core::sync::atomic::Ordering::SeqCst)
                };
            }
            if notify || overrun {
                host.dom0_send(ring.dom0_port);
            }
        }
        drop(st);
        self.ring = Some(ring);
        progress
    }
}

/// Whether any of the sectors `errors` lies in `start .. start + n`.
fn touches(errors: &[u64], start: u64, n: u64) -> bool {
    errors
        .iter()
        .any(|&s| s >= start && s < start.saturating_add(n))
}

impl Backend for BlkbackDevice {
    fn domain_restored(&mut self, host: &mut Host) {
        if let Some(r) = self.ring.take() {
            for g in r.grefs {
                host.grants.unmap(g);
            }
            let _ = host.evtchn.close(DOM0, r.dom0_port);
        }
        self.port = None;
        self.last_id = None;
        {
            let mut st = self.state.borrow_mut();
            st.connected = false;
            st.closed = false;
        }
        self.write_be("state", "2");
        let _ = self
            .xsd
            .borrow_mut()
            .write(&format!("{}/state", self.fe), "1");
    }

    fn step(&mut self, host: &mut Host) -> bool {
        let fe_state = self.fe_value("state");
        let connected = self.ring.is_some();
        let (closed, detach) = {
            let st = self.state.borrow();
            (st.closed, st.detach)
        };
        if detach == 1 {
            if closed && matches!(fe_state.as_deref(), Some("6") | None) {
                // The toolstack removes the device once both ends have closed.
                let mut x = self.xsd.borrow_mut();
                let _ = x.rm(&self.fe);
                let _ = x.rm(&self.be);
                self.state.borrow_mut().detach = 2;
                return true;
            }
            let be_state = self
                .xsd
                .borrow_mut()
                .read_string(&format!("{}/state", self.be))
                .unwrap_or_default();
            if be_state != "5" && be_state != "6" {
                self.write_be("state", "5");
                return true;
            }
            if !connected && !closed {
                self.close(host);
                return true;
            }
        }
        match fe_state.as_deref() {
            Some("3") if !connected && !closed => {
                self.connect(host);
                true
            }
            Some("5") | Some("6") if !closed => {
                self.close(host);
                true
            }
            _ if connected => self.serve_ring(host),
            _ => false,
        }
    }
}
