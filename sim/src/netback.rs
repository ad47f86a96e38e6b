//! A simulated netback (rx-copy, like Linux's `xen-netback`), for host tests of netfront.
//!
//! [`Netback::new`] writes what the toolstack and netback write for device `vif/<index>` of
//! the guest (the frontend's `backend`, `backend-id`, `state`, `mac`; the backend's
//! `frontend`, `frontend-id`, features, `mtu`, `state` = InitWait) and registers a
//! [`Backend`] with the simulator. When the frontend is `Connected` (like Linux's netback, it
//! ignores `Initialised`) it maps the two rings,
//! binds the event channel and switches to `Connected`.
//!
//! The host side of the link is the test: [`Netback::inject`] queues a frame for the guest
//! (copied into the guest's posted rx pages, as rx-copy netback does), [`Netback::pop_sent`]
//! takes a frame the guest sent (copied out of its tx pages). The backend only looks at a
//! ring after an event from the guest (or a frame injected by the test), and arms
//! `req_event` like a real backend, so a frontend that forgets to notify stalls here too.
//!
//! [`Fault`]s make the next responses hostile (bad ids, statuses, sizes, flags, endless
//! chains, a producer index overrun), and [`Netback::set_stopped`] makes the backend stop
//! answering.

mod offload;

use crate::xenstored::Xenstored;
use crate::{Backend, Host, Sim, DOM0, GUEST_DOMID};
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::format;
use std::rc::Rc;
use std::string::{String, ToString};
use std::vec::Vec;
use xenia_ring::{BackRing, SharedRing};
use xenia_xen::abi::io::netif_wire::{
    RxRequestSlot, RxResponseSlot, TxRequestSlot, TxResponseSlot,
};
use xenia_xen::abi::{
    NETRXF_csum_blank, NETRXF_data_validated, NETRXF_extra_info, NETRXF_more_data,
    NETTXF_csum_blank, NETTXF_extra_info, NETTXF_more_data, NetifExtraInfo, NetifExtraInfoGso,
    NetifExtraInfoU, NetifRxResponse, NetifTxResponse, NETIF_RSP_ERROR, NETIF_RSP_NULL,
    NETIF_RSP_OKAY, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_NR_SLOTS_MIN,
};
use xenia_xen::events::Port;
use xenia_xen::grant::GrantRef;
use xenia_xen::memory::PAGE_SIZE;

/// What the toolstack configures for a vif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifConfig {
    /// The device index (`device/vif/<index>`).
    pub index: u32,
    /// The guest's MAC address as the toolstack writes it (`aa:bb:cc:dd:ee:ff`).
    pub mac: String,
    /// Whether the backend offers `feature-rx-copy` (a netfront requires it).
    pub feature_rx_copy: bool,
    /// Whether the backend offers `feature-sg`.
    pub feature_sg: bool,
    /// Whether the backend offers `feature-gso-tcpv4` (takes TCP/IPv4 GSO super-frames from
    /// the guest, checks them as Linux's netback does and segments them for the host side).
    pub feature_gso_tcpv4: bool,
    /// The backend's `mtu` node, if any.
    pub mtu: Option<String>,
    /// Where in each rx page the backend puts the data (0 ..= 2048): each slot then holds
    /// at most `PAGE_SIZE - rx_offset` bytes.
    pub rx_offset: u16,
    /// Backend nodes written last, before InitWait (key, value): overrides, e.g. a
    /// `feature-sg` holding garbage.
    pub extra_nodes: Vec<(String, String)>,
}

impl VifConfig {
    /// Device `index` with MAC `00:16:3e:00:00:<index+1>`, rx-copy, scatter-gather and
    /// TCPv4 GSO (as Linux's netback), no `mtu` node.
    pub fn new(index: u32) -> VifConfig {
        VifConfig {
            index,
            mac: format!("00:16:3e:00:00:{:02x}", (index + 1) & 0xff),
            feature_rx_copy: true,
            feature_sg: true,
            feature_gso_tcpv4: true,
            mtu: None,
            rx_offset: 0,
            extra_nodes: Vec::new(),
        }
    }
}

/// A hostile behaviour, applied once to the next frame or response it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next rx frame's first response carries an id beyond the ring.
    RxIdOutOfRange,
    /// The next rx frame's first response carries the id of the previous response.
    RxDuplicateId,
    /// The next rx frame's first response has status `NETIF_RSP_ERROR`.
    RxErrorStatus,
    /// The next rx frame's first response claims more bytes than a page.
    RxSizeOverPage,
    /// The next rx frame's first response has offset + size beyond the page.
    RxOffsetPastPage,
    /// The next rx frame's first response carries undefined flag bits.
    RxBogusFlags,
    /// The next rx frame is sent as this many slots chained with `more_data` (the data in
    /// the first, one byte in each of the others).
    RxLongChain(u32),
    /// From now on every rx response has `more_data` set (until [`Netback::clear_faults`]).
    RxEndlessChain,
    /// The next rx frame's first response is flagged `extra_info` and followed by two
    /// extra-info slots (legal: the frontend must skip them).
    RxExtraInfo,
    /// The rx ring's `rsp_prod` jumps far past the requests the guest published.
    RxProducerOverrun,
    /// The tx ring's `rsp_prod` jumps far past the requests the guest published.
    TxProducerOverrun,
    /// The next tx response carries an id beyond the ring.
    TxIdOutOfRange,
    /// The next tx response that follows another one in the same batch carries that one's
    /// id (a second answer to an answered request; its own request stays unanswered).
    TxDuplicateId,
    /// The next tx response has status `NETIF_RSP_ERROR`.
    TxErrorStatus,
    /// The backend refuses the frontend's connection (switches to Closing instead of
    /// Connected).
    RefuseConnect,
    /// The next tx frame is answered while the backend keeps its first page mapped, for this
    /// many more tx frames (a backend still reading a page it already answered, as a
    /// zero-copy backend does when it lies). A frontend that reuses the page meanwhile is
    /// counted in [`NetbackStats::tx_reused_while_mapped`].
    TxRespondWhileMapped(u32),
}

/// Counters of the simulated netback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetbackStats {
    /// Frames taken from the guest's tx ring.
    pub tx_frames: u64,
    /// Of those, GSO super-frames (each segmented into `tx_segments`).
    pub tx_gso_frames: u64,
    /// TCP segments cut from GSO super-frames.
    pub tx_segments: u64,
    /// Of the frames taken, ones whose TCP checksum the backend completed (`csum_blank`).
    pub tx_csum_blank: u64,
    /// Tx ring slots taken (data and extra-info slots).
    pub tx_slots: u64,
    /// Malformed tx requests (answered with an error).
    pub tx_errors: u64,
    /// Frames copied to the guest.
    pub rx_frames: u64,
    /// Injected frames dropped (too large for the guest).
    pub rx_dropped: u64,
    /// Of the frames copied to the guest, GSO super-frames (with their extra-info slot).
    pub rx_gso_frames: u64,
    /// Distinct grant references seen in tx requests.
    pub tx_grefs: BTreeSet<GrantRef>,
    /// Distinct grant references seen in rx requests.
    pub rx_grefs: BTreeSet<GrantRef>,
    /// Events sent to the guest.
    pub notifications: u64,
    /// Tx requests naming a page this backend still had mapped after answering it (see
    /// [`Fault::TxRespondWhileMapped`]): the frontend reused a page under the backend's feet.
    pub tx_reused_while_mapped: u64,
}

struct Rings {
    tx: BackRing<TxRequestSlot, TxResponseSlot>,
    rx: BackRing<RxRequestSlot, RxResponseSlot>,
    refs: [GrantRef; 2],
    port: Port,
    sg: bool,
    /// The frontend takes GSO frames (`feature-gso-tcpv4` = 1, with scatter-gather).
    rx_gso: bool,
    /// The frontend takes partial checksums (it did not write `feature-no-csum-offload` = 1).
    rx_csum_blank: bool,
}

/// How a frame for the guest was handed to the backend by the host's stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxOffload {
    /// Its TCP checksum is not filled in (the host's stack left it to "hardware").
    pub csum_partial: bool,
    /// It is a TCP super-frame to be cut into segments of this many payload bytes.
    pub gso_size: Option<u16>,
}

/// Where the backend puts rx data in a page, and how much fits.
#[derive(Clone, Copy)]
struct RxLayout {
    offset: usize,
    room: usize,
}

struct Inner {
    rx_layout: RxLayout,
    gso: bool,
    fe: String,
    be: String,
    rings: Option<Rings>,
    closed: bool,
    stopped: bool,
    kick: bool,
    to_guest: VecDeque<(Vec<u8>, RxOffload)>,
    /// Frames as they go on the rx ring: the bytes, the first slot's `NETRXF_*` checksum
    /// flags, the GSO segment size.
    to_guest_ready: VecDeque<(Vec<u8>, u16, Option<u16>)>,
    from_guest: VecDeque<Vec<u8>>,
    faults: VecDeque<Fault>,
    endless: bool,
    last_rx_id: u16,
    /// Tx pages answered but kept mapped ([`Fault::TxRespondWhileMapped`]): grant ref and the
    /// tx frames left before the backend unmaps it.
    tx_held: Vec<(GrantRef, u32)>,
    stats: NetbackStats,
    frontend_keys: Vec<(String, String)>,
    /// `xl network-detach`: 0 no, 1 asked (backend to Closing), 2 backend closed, nodes
    /// removed.
    detach: u8,
}

/// The test's handle on a simulated netback (cheap to clone).
#[derive(Clone)]
pub struct Netback {
    inner: Rc<RefCell<Inner>>,
}

struct Driver {
    inner: Rc<RefCell<Inner>>,
    xsd: Rc<RefCell<Xenstored>>,
}

/// Writes what the toolstack and netback write for `cfg` (frontend and backend nodes, the
/// backend in InitWait). Returns the frontend's and the backend's node (absolute paths).
pub fn toolstack_adds_vif(sim: &Sim, cfg: &VifConfig) -> (String, String) {
    let xsd = sim.xenstored();
    let mut x = xsd.borrow_mut();
    let (fe, be) = crate::toolstack::device_paths("vif", cfg.index);
    let fe_nodes = [
        ("backend", be.clone()),
        ("backend-id", "0".to_string()),
        ("state", "1".to_string()),
        ("handle", cfg.index.to_string()),
        ("mac", cfg.mac.clone()),
    ];
    let mut be_nodes = std::vec![
        ("frontend", fe.clone()),
        ("frontend-id", GUEST_DOMID.to_string()),
        ("handle", cfg.index.to_string()),
        ("mac", "fe:ff:ff:ff:ff:ff".to_string()),
        ("feature-rx-copy", u8::from(cfg.feature_rx_copy).to_string()),
        ("feature-rx-flip", "0".to_string()),
        ("feature-sg", u8::from(cfg.feature_sg).to_string()),
        (
            "feature-gso-tcpv4",
            u8::from(cfg.feature_gso_tcpv4).to_string()
        ),
    ];
    if let Some(m) = &cfg.mtu {
        be_nodes.push(("mtu", m.clone()));
    }
    for (k, v) in &cfg.extra_nodes {
        if let Some(slot) = be_nodes.iter_mut().find(|(key, _)| key == k) {
            slot.1 = v.clone();
        } else {
            be_nodes.push((k.as_str(), v.clone()));
        }
    }
    be_nodes.push(("state", "2".to_string()));
    crate::toolstack::write_device(&mut x, (&fe, &be), &fe_nodes, &be_nodes);
    (fe, be)
}

impl Netback {
    /// Adds vif `cfg.index` to the guest (see [`toolstack_adds_vif`]) and its netback to
    /// `sim`.
    pub fn new(sim: &Sim, cfg: VifConfig) -> Netback {
        let (fe, be) = toolstack_adds_vif(sim, &cfg);
        let offset = usize::from(cfg.rx_offset.min(2048));
        let inner = Rc::new(RefCell::new(Inner {
            gso: cfg.feature_gso_tcpv4,
            rx_layout: RxLayout {
                offset,
                room: PAGE_SIZE - offset,
            },
            fe,
            be,
            rings: None,
            closed: false,
            stopped: false,
            kick: false,
            to_guest: VecDeque::new(),
            to_guest_ready: VecDeque::new(),
            from_guest: VecDeque::new(),
            faults: VecDeque::new(),
            endless: false,
            last_rx_id: 0,
            tx_held: Vec::new(),
            stats: NetbackStats::default(),
            frontend_keys: Vec::new(),
            detach: 0,
        }));
        sim.add_backend(Box::new(Driver {
            inner: inner.clone(),
            xsd: sim.xenstored(),
        }));
        Netback { inner }
    }

    /// Queues a frame for the guest.
    pub fn inject(&self, frame: &[u8]) {
        self.inject_offloaded(frame, RxOffload::default());
    }

    /// Queues a frame for the guest as the host's stack hands it over with offloads: a
    /// TCP/IPv4 frame with its checksum left blank, or a GSO super-frame. Like Linux's
    /// netback, a frontend that takes GSO (`feature-gso-tcpv4`) gets the super-frame whole
    /// (first slot flagged `csum_blank | data_validated | extra_info`, then the GSO extra
    /// info), one that takes partial checksums gets them flagged `csum_blank`; anything the
    /// frontend does not take is done here (segments cut, checksums completed).
    pub fn inject_offloaded(&self, frame: &[u8], offload: RxOffload) {
        let mut i = self.inner.borrow_mut();
        i.to_guest.push_back((frame.to_vec(), offload));
        i.kick = true;
    }

    /// Injected frames not delivered yet (the guest has not posted enough buffers).
    pub fn pending_to_guest(&self) -> usize {
        let i = self.inner.borrow();
        i.to_guest.len() + i.to_guest_ready.len()
    }

    /// Takes the oldest frame the guest sent.
    pub fn pop_sent(&self) -> Option<Vec<u8>> {
        self.inner.borrow_mut().from_guest.pop_front()
    }

    /// Takes every frame the guest sent.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        self.inner.borrow_mut().from_guest.drain(..).collect()
    }

    /// Whether the backend is connected (rings mapped, state Connected).
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().rings.is_some()
    }

    /// What `xl network-detach` does: the backend goes to Closing; once the frontend has
    /// closed too, the backend closes, unmaps everything and the toolstack removes the
    /// frontend's and the backend's nodes. See [`Netback::is_removed`].
    pub fn toolstack_detach(&self) {
        let mut inner = self.inner.borrow_mut();
        if inner.detach == 0 {
            inner.detach = 1;
            inner.kick = true;
        }
    }

    /// Whether a detach finished: the backend closed and the device's nodes are gone.
    pub fn is_removed(&self) -> bool {
        self.inner.borrow().detach == 2
    }

    /// Whether the backend closed after the frontend did.
    pub fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// The frontend's keys as the backend read them when connecting (key, value).
    pub fn frontend_keys(&self) -> Vec<(String, String)> {
        self.inner.borrow().frontend_keys.clone()
    }

    /// Queues a hostile behaviour.
    pub fn fault(&self, f: Fault) {
        let mut i = self.inner.borrow_mut();
        if f == Fault::RxEndlessChain {
            i.endless = true;
        } else {
            i.faults.push_back(f);
        }
        i.kick = true;
    }

    /// Forgets queued faults and ends an endless chain.
    pub fn clear_faults(&self) {
        let mut i = self.inner.borrow_mut();
        i.faults.clear();
        i.endless = false;
    }

    /// A stopped backend ignores the guest (events stay pending until it is resumed).
    pub fn set_stopped(&self, stopped: bool) {
        let mut i = self.inner.borrow_mut();
        i.stopped = stopped;
        i.kick = true;
    }

    /// Counters.
    pub fn stats(&self) -> NetbackStats {
        self.inner.borrow().stats.clone()
    }
}

impl Fault {
    /// Whether the fault changes how the next rx frame is sent.
    fn shapes_rx_frame(self) -> bool {
        matches!(
            self,
            Fault::RxIdOutOfRange
                | Fault::RxDuplicateId
                | Fault::RxErrorStatus
                | Fault::RxSizeOverPage
                | Fault::RxOffsetPastPage
                | Fault::RxBogusFlags
                | Fault::RxLongChain(_)
                | Fault::RxExtraInfo
        )
    }
}

impl Inner {
    fn take_fault(&mut self, pred: impl Fn(Fault) -> bool) -> Option<Fault> {
        let pos = self.faults.iter().position(|&f| pred(f))?;
        self.faults.remove(pos)
    }

    fn connect(&mut self, host: &mut Host, x: &mut Xenstored) -> bool {
        let state = x
            .read_string(&format!("{}/state", self.fe))
            .unwrap_or_default();
        // Like Linux's netback: connect on the frontend's Connected, ignore Initialised.
        if state != "4" {
            return false;
        }
        if self.take_fault(|f| f == Fault::RefuseConnect).is_some() {
            return self.fail(x);
        }
        let fe = self.fe.clone();
        let mut read = |k: &str| x.read_string(&format!("{fe}/{k}")).ok();
        let keys = [
            "tx-ring-ref",
            "rx-ring-ref",
            "event-channel",
            "request-rx-copy",
            "feature-rx-notify",
            "feature-sg",
            "feature-no-csum-offload",
            "feature-gso-tcpv4",
        ];
        self.frontend_keys = keys
            .iter()
            .filter_map(|k| read(k).map(|v| (k.to_string(), v)))
            .collect();
        let keys = &self.frontend_keys;
        let num = |k: &str| -> Option<u32> {
            let (_, v) = keys.iter().find(|(key, _)| key == k)?;
            v.trim().parse().ok()
        };
        let (tx_ref, rx_ref, port) = (num("tx-ring-ref"), num("rx-ring-ref"), num("event-channel"));
        let rx_copy = num("request-rx-copy") == Some(1);
        let sg = num("feature-sg") == Some(1);
        let rx_gso = sg && num("feature-gso-tcpv4") == Some(1);
        let rx_csum_blank = num("feature-no-csum-offload") != Some(1);
        let (Some(tx_ref), Some(rx_ref), Some(port), true) = (tx_ref, rx_ref, port, rx_copy) else {
            return self.fail(x);
        };
        let Ok(tx_page) = host.grants.map(DOM0, tx_ref, true) else {
            return self.fail(x);
        };
        let Ok(rx_page) = host.grants.map(DOM0, rx_ref, true) else {
            host.grants.unmap(tx_ref);
            return self.fail(x);
        };
        let Ok(dom0_port) = host.dom0_bind(port) else {
            host.grants.unmap(tx_ref);
            host.grants.unmap(rx_ref);
            return self.fail(x);
        };
        // SAFETY: the mappings are of live guest pages and stay until we unmap them; the
        // frontend initialised the rings.
        let rings = unsafe {
            let tx = SharedRing::<TxRequestSlot, TxResponseSlot>::new(
                core::ptr::NonNull::new(tx_page).expect("mapped"),
                PAGE_SIZE,
            );
            let rx = SharedRing::<RxRequestSlot, RxResponseSlot>::new(
                core::ptr::NonNull::new(rx_page).expect("mapped"),
                PAGE_SIZE,
            );
            match (tx, rx) {
                (Ok(tx), Ok(rx)) => Rings {
                    tx: BackRing::new(tx),
                    rx: BackRing::new(rx),
                    refs: [tx_ref, rx_ref],
                    port: dom0_port,
                    sg,
                    rx_gso,
                    rx_csum_blank,
                },
                _ => return self.fail(x),
            }
        };
        self.rings = Some(rings);
        x.write(&format!("{}/state", self.be), "4")
            .expect("backend state");
        self.kick = true;
        true
    }

    fn fail(&mut self, x: &mut Xenstored) -> bool {
        self.closed = true;
        x.write(&format!("{}/state", self.be), "5")
            .expect("backend state");
        true
    }

    fn disconnect(&mut self, host: &mut Host, x: &mut Xenstored) -> bool {
        let state = x
            .read_string(&format!("{}/state", self.fe))
            .unwrap_or_default();
        if state != "5" && state != "6" {
            return false;
        }
        if let Some(r) = self.rings.take() {
            host.grants.unmap(r.refs[0]);
            host.grants.unmap(r.refs[1]);
            let _ = host.evtchn.close(DOM0, r.port);
        }
        self.closed = true;
        x.write(&format!("{}/state", self.be), "6")
            .expect("backend state");
        true
    }

    /// Serves both rings. Returns true if anything moved.
    fn service(&mut self, host: &mut Host) -> bool {
        let Some(port) = self.rings.as_ref().map(|r| r.port) else {
            return false;
        };
        let event = host.dom0_take_event(port);
        if !event && !self.kick {
            return false;
        }
        self.kick = false;
        let mut notify = self.service_tx(host);
        notify |= self.service_rx(host);
        if notify {
            self.stats.notifications += 1;
            host.dom0_send(port);
        }
        true
    }

    fn service_tx(&mut self, host: &mut Host) -> bool {
        if self.take_fault(|f| f == Fault::TxProducerOverrun).is_some() {
            let r = self.rings.as_mut().expect("connected");
            let bogus = r.tx.rsp_prod_pvt().wrapping_add(1000);
            // SAFETY: the tx ring page is mapped; rsp_prod is its aligned u32 at offset 8.
            unsafe {
                (r.tx
                    .shared()
                    .as_ptr()
                    .add(SharedRing::<TxRequestSlot, TxResponseSlot>::RSP_PROD_OFFSET)
                    as *mut u32)
                    .write_volatile(bogus)
            };
            return true;
        }
        let mut frames = Vec::new();
        let mut notify = false;
        // The id of the previous response in this batch ([`Fault::TxDuplicateId`]).
        let mut batch_prev: Option<u16> = None;
        {
            let Some(r) = self.rings.as_mut() else {
                return false;
            };
            loop {
                while let Ok(Some(TxRequestSlot(first))) = r.tx.poll_request() {
                    // Gather the slots of one packet: the first, its extra-info slots (as
                    // netback reads them: while XEN_NETIF_EXTRA_FLAG_MORE), then the data
                    // slots chained by the first one's more_data.
                    let mut slots = std::vec![first];
                    let mut extras = Vec::new();
                    let mut truncated = false;
                    if first.flags & NETTXF_extra_info != 0 {
                        loop {
                            match r.tx.poll_request() {
                                Ok(Some(e)) => {
                                    let e = e.extra_info();
                                    extras.push(e);
                                    if e.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                                        break;
                                    }
                                }
                                _ => {
                                    truncated = true;
                                    break;
                                }
                            }
                        }
                    }
                    let mut more = first.flags & NETTXF_more_data != 0;
                    while more && !truncated {
                        match r.tx.poll_request() {
                            Ok(Some(TxRequestSlot(s))) => {
                                more = s.flags & NETTXF_more_data != 0;
                                slots.push(s);
                            }
                            _ => truncated = true,
                        }
                    }
                    frames.push((slots, extras, truncated));
                }
                match r.tx.final_check_for_requests() {
                    Ok(true) => continue,
                    _ => break,
                }
            }
        }
        for (slots, extras, truncated) in frames {
            self.stats.tx_slots += (slots.len() + extras.len()) as u64;
            if let Err(why) = check_tx_layout(&slots, &extras, self.gso) {
                panic!("netback: the guest sent a tx frame Linux's netback refuses: {why}");
            }
            // Pages kept mapped after their response: one frame less to go; and a request
            // for one of them is the frontend reusing a page the backend still maps.
            for s in &slots {
                if self.tx_held.iter().any(|&(r, _)| r == s.gref) {
                    self.stats.tx_reused_while_mapped += 1;
                }
            }
            self.tx_held.retain_mut(|(r, left)| {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    host.grants.unmap(*r);
                }
                *left > 0
            });
            let hold = match self.take_fault(|f| matches!(f, Fault::TxRespondWhileMapped(_))) {
                Some(Fault::TxRespondWhileMapped(n)) => n.max(1),
                _ => 0,
            };
            let total = slots[0].size as usize;
            let mut data = Vec::with_capacity(total);
            let mut ok = !truncated;
            for (i, s) in slots.iter().enumerate() {
                let len = if slots.len() == 1 {
                    total
                } else if i == 0 {
                    // The first slot holds what the others do not.
                    let rest: usize = slots[1..].iter().map(|s| s.size as usize).sum();
                    match total.checked_sub(rest) {
                        Some(l) => l,
                        None => {
                            ok = false;
                            0
                        }
                    }
                } else {
                    s.size as usize
                };
                self.stats.tx_grefs.insert(s.gref);
                if !ok || s.offset as usize + len > PAGE_SIZE {
                    ok = false;
                    continue;
                }
                match host.grants.map(DOM0, s.gref, false) {
                    Ok(p) => {
                        // SAFETY: the mapping is a live page; offset + len <= PAGE_SIZE.
                        let src =
                            unsafe { std::slice::from_raw_parts(p.add(s.offset as usize), len) };
                        data.extend_from_slice(src);
                        if hold > 0 && i == 0 {
                            self.tx_held.push((s.gref, hold));
                        } else {
                            host.grants.unmap(s.gref);
                        }
                    }
                    Err(_) => ok = false,
                }
            }
            let status = if ok { NETIF_RSP_OKAY } else { NETIF_RSP_ERROR };
            if ok {
                self.stats.tx_frames += 1;
                let gso = extras
                    .iter()
                    .find(|e| e.r#type == XEN_NETIF_EXTRA_TYPE_GSO)
                    .map(|e| e.u.gso().size);
                let csum_blank = slots[0].flags & NETTXF_csum_blank != 0;
                match offload::take(data, csum_blank, gso) {
                    Ok(segments) => {
                        if gso.is_some() {
                            self.stats.tx_gso_frames += 1;
                            self.stats.tx_segments += segments.len() as u64;
                        } else if csum_blank {
                            self.stats.tx_csum_blank += 1;
                        }
                        self.from_guest.extend(segments);
                    }
                    Err(why) => panic!(
                        "netback: the guest sent an offloaded frame Linux's netback refuses \
                         or corrupts: {why}"
                    ),
                }
            } else {
                self.stats.tx_errors += 1;
            }
            for (i, s) in slots.iter().enumerate() {
                let mut rsp = NetifTxResponse { id: s.id, status };
                let previous = batch_prev;
                match self.take_fault(|f| {
                    matches!(f, Fault::TxIdOutOfRange | Fault::TxErrorStatus)
                        || (f == Fault::TxDuplicateId && previous.is_some())
                }) {
                    Some(Fault::TxIdOutOfRange) => rsp.id = 0xfff0,
                    Some(Fault::TxDuplicateId) => rsp.id = previous.unwrap_or(rsp.id),
                    Some(Fault::TxErrorStatus) => rsp.status = NETIF_RSP_ERROR,
                    _ => {}
                }
                batch_prev = Some(rsp.id);
                let r = self.rings.as_mut().expect("connected");
                let _ = r.tx.push_response(rsp.into());
                if i == 0 {
                    // Each extra-info slot is answered with NETIF_RSP_NULL right after the
                    // first slot's response; Linux sets only the status, so the id is what
                    // the slot held: the extra info's type and flags (an id that may well
                    // be in flight).
                    for e in &extras {
                        let id = u16::from(e.r#type) | u16::from(e.flags) << 8;
                        let _ = r.tx.push_response(
                            NetifTxResponse {
                                id,
                                status: NETIF_RSP_NULL,
                            }
                            .into(),
                        );
                    }
                }
            }
        }
        if let Some(r) = self.rings.as_mut() {
            notify |= r.tx.push_responses_and_check_notify();
        }
        notify
    }

    /// Turns the frames the host handed over into what the frontend takes (see
    /// [`Netback::inject_offloaded`]).
    fn offload_to_guest(&mut self) {
        let Some(r) = self.rings.as_ref() else {
            return;
        };
        let (gso_ok, csum_ok) = (r.rx_gso, r.rx_csum_blank);
        while let Some((frame, off)) = self.to_guest.pop_front() {
            if !off.csum_partial && off.gso_size.is_none() {
                self.to_guest_ready.push_back((frame, 0, None));
                continue;
            }
            let blank = NETRXF_csum_blank | NETRXF_data_validated;
            match offload::blank(frame) {
                Err(why) => panic!("netback: the host handed over a bad offloaded frame: {why}"),
                Ok(frame) => match off.gso_size {
                    Some(mss) if gso_ok => self.to_guest_ready.push_back((frame, blank, Some(mss))),
                    gso => {
                        let segments = offload::take(frame, true, gso).expect("blanked here");
                        for s in segments {
                            if csum_ok {
                                let s = offload::blank(s).expect("a segment of ours");
                                self.to_guest_ready.push_back((s, blank, None));
                            } else {
                                self.to_guest_ready.push_back((s, 0, None));
                            }
                        }
                    }
                },
            }
        }
    }

    fn service_rx(&mut self, host: &mut Host) -> bool {
        if let Some(pos) = self
            .faults
            .iter()
            .position(|&f| f == Fault::RxProducerOverrun)
        {
            self.faults.remove(pos);
            let r = self.rings.as_mut().expect("connected");
            let shared = r.rx.shared();
            let bogus = r.rx.rsp_prod_pvt().wrapping_add(1000);
            // SAFETY: the rx ring page is mapped; rsp_prod is its aligned u32 at offset 8.
            unsafe {
                (shared
                    .as_ptr()
                    .add(SharedRing::<RxRequestSlot, RxResponseSlot>::RSP_PROD_OFFSET)
                    as *mut u32)
                    .write_volatile(bogus)
            };
            return true;
        }
        let mut notify = false;
        self.offload_to_guest();
        while let Some((frame, rx_flags, gso)) = self.to_guest_ready.front() {
            let (rx_flags, gso) = (*rx_flags, *gso);
            let sg = self.rings.as_ref().is_some_and(|r| r.sg);
            let layout = self.rx_layout;
            let chunks = frame.len().div_ceil(layout.room).max(1);
            if chunks > 1 && !sg {
                self.to_guest_ready.pop_front();
                self.stats.rx_dropped += 1;
                continue;
            }
            let fault = self.take_fault(Fault::shapes_rx_frame);
            let (slots, extras) = match fault {
                Some(Fault::RxLongChain(n)) => (n.max(1) as usize, 0),
                Some(Fault::RxExtraInfo) => (chunks, 2),
                _ => (chunks, usize::from(gso.is_some())),
            };
            let r = self.rings.as_mut().expect("connected");
            let available = match r.rx.unconsumed_requests() {
                Ok(n) => n as usize,
                Err(_) => return notify,
            };
            if available < slots + extras {
                if let Some(f) = fault {
                    self.faults.push_front(f);
                }
                // Ask to be woken when the guest posts more buffers.
                match r.rx.final_check_for_requests() {
                    Ok(true) => continue,
                    _ => break,
                }
            }
            let (frame, _, _) = self.to_guest_ready.pop_front().expect("front");
            // The pieces: page-sized chunks, or for a long chain the frame then single bytes.
            let mut pieces: Vec<&[u8]> = if let Some(Fault::RxLongChain(_)) = fault {
                let mut v = std::vec![&frame[..frame.len().min(layout.room)]];
                v.extend((1..slots).map(|_| &frame[..1]));
                v
            } else {
                frame.chunks(layout.room).collect()
            };
            if pieces.is_empty() {
                pieces.push(&[]);
            }
            let n = pieces.len();
            for (i, piece) in pieces.iter().enumerate() {
                let r = self.rings.as_mut().expect("connected");
                let Ok(Some(RxRequestSlot(req))) = r.rx.poll_request() else {
                    return notify;
                };
                self.stats.rx_grefs.insert(req.gref);
                let mut rsp = NetifRxResponse {
                    id: req.id,
                    offset: layout.offset as u16,
                    flags: 0,
                    status: piece.len() as i16,
                };
                if i + 1 < n || self.endless {
                    rsp.flags |= NETRXF_more_data;
                }
                if i == 0 {
                    rsp.flags |= rx_flags;
                    if gso.is_some() {
                        rsp.flags |= NETRXF_extra_info;
                    }
                }
                if let Ok(p) = host.grants.map(DOM0, req.gref, true) {
                    // SAFETY: the mapping is a live page; offset + a piece is at most a page.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            piece.as_ptr(),
                            p.add(layout.offset),
                            piece.len(),
                        )
                    };
                    host.grants.unmap(req.gref);
                } else {
                    rsp.status = NETIF_RSP_ERROR;
                }
                if i == 0 {
                    match fault {
                        Some(Fault::RxIdOutOfRange) => rsp.id = 0xfff0,
                        Some(Fault::RxDuplicateId) => rsp.id = self.last_rx_id,
                        Some(Fault::RxErrorStatus) => rsp.status = NETIF_RSP_ERROR,
                        Some(Fault::RxSizeOverPage) => rsp.status = (PAGE_SIZE + 100) as i16,
                        Some(Fault::RxOffsetPastPage) => {
                            rsp.offset = (PAGE_SIZE - 8) as u16;
                            rsp.status = rsp.status.max(16);
                        }
                        Some(Fault::RxBogusFlags) => rsp.flags |= 0x80,
                        Some(Fault::RxExtraInfo) => rsp.flags |= NETRXF_extra_info,
                        _ => {}
                    }
                }
                self.last_rx_id = rsp.id;
                let r = self.rings.as_mut().expect("connected");
                let _ = r.rx.push_response(rsp.into());
                if i == 0 && extras > 0 {
                    for e in 0..extras {
                        let Ok(Some(_)) = r.rx.poll_request() else {
                            return notify;
                        };
                        // A GSO extra info (TCPv4, the frame's segment size or 1448 bytes) in
                        // a response slot.
                        let more = if e + 1 < extras {
                            XEN_NETIF_EXTRA_FLAG_MORE
                        } else {
                            0
                        };
                        let extra = NetifExtraInfo {
                            r#type: XEN_NETIF_EXTRA_TYPE_GSO,
                            flags: more,
                            u: NetifExtraInfoU {
                                gso: NetifExtraInfoGso {
                                    size: gso.unwrap_or(1448),
                                    r#type: XEN_NETIF_GSO_TYPE_TCPV4,
                                    pad: 0,
                                    features: 0,
                                },
                            },
                        };
                        let _ = r.rx.push_response(RxResponseSlot::from_extra_info(&extra));
                        self.stats.rx_gso_frames += u64::from(gso.is_some());
                    }
                }
            }
            self.stats.rx_frames += 1;
            let r = self.rings.as_mut().expect("connected");
            notify |= r.rx.push_responses_and_check_notify();
        }
        notify
    }
}

/// Checks a tx frame's slots as Linux's netback does (`xenvif_count_requests`,
/// `xenvif_get_extras`, `xenvif_set_skb_gso`): at most `XEN_NETIF_NR_SLOTS_MIN` data slots, no
/// slot crossing its page, a first slot holding at least the Ethernet header, each fragment
/// no larger than what remains of the frame, known extra-info types, and a GSO extra info only when offered, of
/// type TCPv4 and a non-zero size.
fn check_tx_layout(
    slots: &[xenia_xen::abi::NetifTxRequest],
    extras: &[NetifExtraInfo],
    gso_offered: bool,
) -> Result<(), String> {
    let max = XEN_NETIF_NR_SLOTS_MIN as usize;
    if slots.len() > max {
        return Err(format!("{} data slots (at most {max})", slots.len()));
    }
    // Like xenvif_count_requests: each fragment comes off what remains of the first slot's
    // size; what is left is the first slot's own data.
    let total = usize::from(slots[0].size);
    let mut first = total;
    for s in &slots[1..] {
        let size = usize::from(s.size);
        if size > first {
            return Err(format!(
                "a {size}-byte fragment with {first} bytes of the {total}-byte frame left"
            ));
        }
        first -= size;
    }
    if first < 14 {
        return Err(format!(
            "a first slot of {first} bytes (no Ethernet header)"
        ));
    }
    let own = |i: usize| {
        if i == 0 {
            first
        } else {
            usize::from(slots[i].size)
        }
    };
    for (i, s) in slots.iter().enumerate() {
        if usize::from(s.offset) + own(i) > PAGE_SIZE {
            return Err(format!(
                "slot {i} crosses its page (offset {} + {} bytes)",
                s.offset,
                own(i)
            ));
        }
    }
    for e in extras {
        match e.r#type {
            XEN_NETIF_EXTRA_TYPE_GSO => {
                let g = e.u.gso();
                if !gso_offered {
                    return Err("a GSO frame, but feature-gso-tcpv4 is off".to_string());
                }
                if g.size == 0 {
                    return Err("GSO size must not be zero".to_string());
                }
                if g.r#type != XEN_NETIF_GSO_TYPE_TCPV4 {
                    return Err(format!("bad GSO type {}", g.r#type));
                }
                if slots[0].flags & NETTXF_csum_blank == 0 {
                    return Err("a GSO frame without NETTXF_csum_blank".to_string());
                }
            }
            t => return Err(format!("extra info of type {t}")),
        }
    }
    Ok(())
}

impl Backend for Driver {
    fn domain_restored(&mut self, host: &mut Host) {
        let mut inner = self.inner.borrow_mut();
        if let Some(r) = inner.rings.take() {
            host.grants.unmap(r.refs[0]);
            host.grants.unmap(r.refs[1]);
            let _ = host.evtchn.close(DOM0, r.port);
        }
        inner.closed = false;
        inner.kick = false;
        inner.tx_held.clear();
        let mut x = self.xsd.borrow_mut();
        let _ = x.write(&format!("{}/state", inner.be), "2");
        let _ = x.write(&format!("{}/state", inner.fe), "1");
    }

    fn step(&mut self, host: &mut Host) -> bool {
        let mut inner = self.inner.borrow_mut();
        let mut x = self.xsd.borrow_mut();
        if inner.detach == 1 {
            let fe_state = x
                .read_string(&format!("{}/state", inner.fe))
                .unwrap_or_default();
            if inner.closed && (fe_state == "6" || fe_state.is_empty()) {
                // The toolstack removes the device once both ends have closed.
                let _ = x.rm(&inner.fe.clone());
                let _ = x.rm(&inner.be.clone());
                inner.detach = 2;
                return true;
            }
            let be_state = x
                .read_string(&format!("{}/state", inner.be))
                .unwrap_or_default();
            if be_state != "5" && be_state != "6" {
                x.write(&format!("{}/state", inner.be), "5")
                    .expect("backend state");
                return true;
            }
            if inner.rings.is_none() {
                // Never connected: nothing to wait for.
                inner.closed = true;
                return true;
            }
        }
        if inner.stopped || inner.closed {
            return false;
        }
        if inner.rings.is_none() {
            return inner.connect(host, &mut x);
        }
        if inner.disconnect(host, &mut x) {
            return true;
        }
        drop(x);
        inner.service(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenia_xen::abi::{NETTXF_csum_blank, NetifTxRequest};

    fn slot(size: u16, offset: u16, flags: u16) -> NetifTxRequest {
        NetifTxRequest {
            gref: 1,
            offset,
            flags,
            id: 0,
            size,
        }
    }

    fn gso(size: u16, ty: u8) -> NetifExtraInfo {
        NetifExtraInfo {
            r#type: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            u: NetifExtraInfoU {
                gso: NetifExtraInfoGso {
                    size,
                    r#type: ty,
                    pad: 0,
                    features: 0,
                },
            },
        }
    }

    #[test]
    fn tx_layouts_linux_refuses_are_caught() {
        let f = NETTXF_csum_blank | NETTXF_extra_info | NETTXF_more_data;
        let ok = [slot(8192, 0, f), slot(4096, 0, 0)];
        let g = [gso(1448, XEN_NETIF_GSO_TYPE_TCPV4)];
        assert_eq!(check_tx_layout(&ok, &g, true), Ok(()));
        let why = |slots: &[NetifTxRequest], e: &[NetifExtraInfo], on| {
            check_tx_layout(slots, e, on).unwrap_err()
        };
        assert!(why(&ok, &g, false).contains("feature-gso-tcpv4 is off"));
        assert!(why(&ok, &[gso(0, XEN_NETIF_GSO_TYPE_TCPV4)], true).contains("zero"));
        assert!(why(&ok, &[gso(1448, 2)], true).contains("GSO type"));
        assert!(why(
            &[slot(8192, 0, NETTXF_extra_info), slot(4096, 0, 0)],
            &g,
            true
        )
        .contains("csum_blank"));
        // The first slot's own 4096 bytes at offset 8 cross its page.
        assert!(why(&[slot(8192, 8, f), slot(4096, 0, 0)], &g, true).contains("crosses"));
        assert!(why(&[slot(4196, 0, f), slot(100, 4000, 0)], &g, true).contains("crosses"));
        let long: Vec<_> = (0..19).map(|_| slot(100, 0, 0)).collect();
        let mut long = long;
        long[0].size = 1900;
        assert!(why(&long, &[], true).contains("data slots"));
        assert!(why(&[slot(100, 0, 0), slot(200, 0, 0)], &[], true).contains("fragment"));
        // Each fragment fits the frame, but not what is left of it.
        let f2 = [slot(300, 0, 0), slot(200, 0, 0), slot(200, 0, 0)];
        assert!(why(&f2, &[], true).contains("fragment"));
        assert!(why(&[slot(10, 0, 0)], &[], true).contains("Ethernet"));
    }
}
