//! A hypercall-level simulator of a Xen host, for host tests.
//!
//! [`Sim::new`] builds a simulated host with one guest domain (domid [`GUEST_DOMID`]) and dom0:
//! a shared_info page with a virtual clock, event channels between the two, the guest's grant
//! table, the xenstore and console rings with their dom0 ends, and room for simulated backends
//! ([`Backend`]). [`Sim::install`] makes it the target of `xenia_xen::hypercall::hypercall` on
//! the current thread, so guest-side code (events, grants, xenstore, xenbus, drivers) runs
//! unchanged. The xenstore ring is served by the simulated [`xenstored::Xenstored`].
//! Backends run when the guest blocks (`SCHEDOP_poll`) or when a test calls
//! [`Sim::run`], like a dom0 that works while the guest waits.
//!
//! # How it plugs in
//!
//! Built for the host, `xenia-xen` sends every hypercall and every machine-frame lookup to
//! functions it only declares (`_xenia_hypercall`, `_xenia_virt_to_mfn`, `_xenia_mfn_to_virt`);
//! this crate defines them (`src/link.rs`). A test binary that links this crate (a dev-dependency)
//! gets the simulator; nothing in the shipped crates knows about it. A host binary that makes
//! hypercalls without linking it fails to link, which is the point: there is no Xen to call.
//!
//! Test fixtures: [`guest::Guest`] (a guest's event channels, xenstore client and grant table on
//! a fresh simulator, for driver tests) and, with the `runtime` feature, `runtime::boot` (the
//! `xenia` runtime booted on a simulator).

#![allow(non_upper_case_globals)] // Xen's constant names

pub mod attack;
pub mod blkback;
pub mod evtchn;
mod frames;
pub mod gnttab;
pub mod guest;
pub mod heap;
mod link;
pub mod netback;
pub mod peer;
pub mod peer_host;
#[cfg(feature = "runtime")]
pub mod runtime;
mod toolstack;

pub use guest::{block_on, join_all, Guest};

use evtchn::EvtchnTable;
use gnttab::GrantTableSim;
use std::boxed::Box;
use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;
use xenia_ring::console::ConsoleBack;
use xenia_xen::abi::{
    GNTTABOP_query_size, GNTTABOP_setup_table, GnttabQuerySize, GnttabSetupTable, SharedInfo,
    StartInfo,
};
use xenia_xen::events::{DomId, Port, NR_PORTS};
use xenia_xen::grant::Page;
use xenia_xen::hypercall as hc;
use xenia_xen::sched::ShutdownReason;
use xenstored::{ConnId, Xenstored};

/// The simulated guest's domain id.
pub const GUEST_DOMID: DomId = 1;
/// Dom0's domain id.
pub const DOM0: DomId = 0;

const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;
const EFAULT: i64 = -14;

/// A simulated dom0 service (xenstored link, netback, blkback, ...).
pub trait Backend {
    /// Does whatever work is pending (requests on rings, xenstore changes). Returns true if it
    /// made progress, so the simulator runs the backends again.
    fn step(&mut self, host: &mut Host) -> bool;

    /// The guest was saved and restored into a new domain ([`SuspendOutcome::NewDomain`]):
    /// drop the old connection (unmap its rings, close its port; requests not answered are
    /// lost) and wait for the frontend again, as a backend created for the new domain would
    /// (backend `InitWait`, frontend `Initialising`). By default nothing.
    fn domain_restored(&mut self, host: &mut Host) {
        let _ = host;
    }
}

/// How long a suspended guest stays suspended on the simulated host (Xen's clock moves on by
/// this much during the suspend hypercall).
pub const SUSPENDED_NS: u64 = 30_000_000_000;

/// What the simulated toolstack makes of the guest's next suspend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// A checkpoint (`xl save -c`): the suspend hypercall returns 1 and the same domain runs
    /// on.
    #[default]
    Checkpoint,
    /// A save and restore (or migration): the hypercall returns 0 in a "new domain": every
    /// event channel closed but new xenstore and console ones (start_info rewritten with
    /// them, every port masked), an empty grant table, a new xenstored connection (the old
    /// watches gone, stale replies left on the ring), and every backend back in `InitWait`.
    /// The domain id stays the same here.
    NewDomain,
}

/// The state of the simulated host. Backends get `&mut Host` in [`Backend::step`].
pub struct Host {
    shared: Page,
    store_page: Page,
    console_page: Page,
    /// Event channels of the guest and dom0.
    pub evtchn: EvtchnTable,
    /// The guest's grant table.
    pub grants: GrantTableSim,
    /// Dom0 ports with an event not yet handled by a backend.
    dom0_pending: Vec<Port>,
    store_ports: (Port, Port),
    console_ports: (Port, Port),
    xenstored: Rc<RefCell<Xenstored>>,
    store_conn: ConnId,
    store_out: Vec<u8>,
    console_out: Vec<u8>,
    now_ns: u64,
    /// The guest's shutdown request, if it made one.
    pub shutdown: Option<ShutdownReason>,
    /// The guest's suspend hypercalls so far, each with its "suspend record" argument.
    pub suspends: Vec<u64>,
    /// What the next suspend does.
    pub suspend_outcome: SuspendOutcome,
    /// The guest's start_info (the fields the simulator fills: the xenstore and console
    /// ports and frames).
    start_info: Page,
    idle_blocks: u32,
    /// Hypercalls made, by number (for tests that check the guest does not busy-poll).
    pub hypercall_counts: [u64; 64],
}

impl Host {
    /// Writes the xenstore and console ports and frames into start_info.
    fn write_start_info(&mut self) {
        let mfn = |p: &Page| xenia_xen::memory::virt_to_mfn(p.as_ptr() as usize).unwrap_or(0);
        let (store_mfn, con_mfn) = (mfn(&self.store_page), mfn(&self.console_page));
        let si = self.start_info.as_ptr() as *mut StartInfo;
        // SAFETY: the page is ours and large enough for a start_info; the guest only reads
        // it while it runs (the simulator is single-threaded).
        unsafe {
            (*si).store_mfn = store_mfn;
            (*si).store_evtchn = self.store_ports.0;
            (*si).console.domU.mfn = con_mfn;
            (*si).console.domU.evtchn = self.console_ports.0;
        }
    }

    /// Xen's and the toolstack's side of a restore into a new domain (see
    /// [`SuspendOutcome::NewDomain`]); the backends have dropped their connections already.
    fn new_domain(&mut self) {
        self.evtchn.close_all(GUEST_DOMID);
        let _ = self.evtchn.close(DOM0, self.store_ports.1);
        let _ = self.evtchn.close(DOM0, self.console_ports.1);
        self.store_ports = self.evtchn.connect(GUEST_DOMID, DOM0);
        self.console_ports = self.evtchn.connect(GUEST_DOMID, DOM0);
        self.dom0_pending.clear();
        {
            let mut x = self.xenstored.borrow_mut();
            x.disconnect(self.store_conn);
            self.store_conn = x.connect(GUEST_DOMID);
        }
        self.store_out.clear();
        self.grants.reset();
        // SAFETY: the shared page is ours; the guest reads it with atomics.
        unsafe {
            let si = self.shared_info();
            for w in 0..64 {
                std::sync::atomic::AtomicU64::from_ptr(
                    ((&raw mut (*si).evtchn_mask) as *mut u64).add(w),
                )
                .store(u64::MAX, std::sync::atomic::Ordering::SeqCst);
                std::sync::atomic::AtomicU64::from_ptr(
                    ((&raw mut (*si).evtchn_pending) as *mut u64).add(w),
                )
                .store(0, std::sync::atomic::Ordering::SeqCst);
            }
        }
        self.write_start_info();
    }

    /// The guest's shared_info page.
    pub fn shared_info(&self) -> *mut SharedInfo {
        self.shared.as_ptr() as *mut SharedInfo
    }

    /// Marks guest port `port` pending (what an event sent to it by dom0 does).
    pub fn raise_guest(&mut self, port: Port) {
        if port >= NR_PORTS {
            return;
        }
        // SAFETY: the shared page is ours; the guest reads it with atomics.
        unsafe {
            let words = (&raw mut (*self.shared_info()).evtchn_pending) as *mut u64;
            let w = std::sync::atomic::AtomicU64::from_ptr(words.add((port / 64) as usize));
            w.fetch_or(1 << (port % 64), std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn guest_pending(&self, port: Port) -> bool {
        if port >= NR_PORTS {
            return false;
        }
        // SAFETY: as in raise_guest.
        unsafe {
            let words = (&raw mut (*self.shared_info()).evtchn_pending) as *mut u64;
            let w = std::sync::atomic::AtomicU64::from_ptr(words.add((port / 64) as usize));
            w.load(std::sync::atomic::Ordering::SeqCst) & (1 << (port % 64)) != 0
        }
    }

    /// Sends an event from dom0's `port` to its peer.
    pub fn dom0_send(&mut self, port: Port) {
        match self.evtchn.peer(DOM0, port) {
            Some((GUEST_DOMID, p)) => self.raise_guest(p),
            Some((DOM0, p)) => self.dom0_pending.push(p),
            _ => {}
        }
    }

    /// Takes the pending flag of dom0's `port`: true if the guest notified it.
    pub fn dom0_take_event(&mut self, port: Port) -> bool {
        let before = self.dom0_pending.len();
        self.dom0_pending.retain(|&p| p != port);
        self.dom0_pending.len() != before
    }

    /// Binds dom0 to the guest's unbound port (what a backend does with the frontend's
    /// `event-channel`).
    pub fn dom0_bind(&mut self, guest_port: Port) -> Result<Port, i32> {
        self.evtchn.bind_interdomain(DOM0, GUEST_DOMID, guest_port)
    }

    /// Simulated system time (ns).
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Advances simulated time to `ns` (never backwards) and publishes it in shared_info.
    pub fn set_time(&mut self, ns: u64) {
        self.now_ns = self.now_ns.max(ns);
        // Written in xenia-xen's own (Xen 4.17) layout, which `xenia_xen::time` reads.
        let s = self.shared_info();
        // SAFETY: the shared page is ours; we follow the version protocol the guest expects.
        unsafe {
            let t = &raw mut (*s).vcpu_info[0].time;
            let v = (&raw const (*t).version).read_volatile();
            (&raw mut (*t).version).write_volatile(v.wrapping_add(1));
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            (&raw mut (*t).system_time).write_volatile(self.now_ns);
            (&raw mut (*t).tsc_timestamp).write_volatile(0);
            (&raw mut (*t).tsc_to_system_mul).write_volatile(0);
            (&raw mut (*t).tsc_shift).write_volatile(0);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            (&raw mut (*t).version).write_volatile(v.wrapping_add(2));
        }
    }

    /// Everything the guest wrote to its console so far.
    pub fn console_output(&self) -> &[u8] {
        &self.console_out
    }

    fn console_back(&self) -> ConsoleBack {
        // SAFETY: the console page is ours and lives as long as the host.
        unsafe { ConsoleBack::new(self.console_page.as_non_null()) }.expect("console page")
    }

    /// Types `bytes` at the guest's console (as `xl console` would). Returns how many fit.
    pub fn console_input(&mut self, bytes: &[u8]) -> usize {
        let n = self.console_back().write_input(bytes).unwrap_or(0);
        if n > 0 {
            self.dom0_send(self.console_ports.1);
        }
        n
    }

    fn service_console(&mut self) -> bool {
        let mut buf = [0u8; 2048];
        let mut back = self.console_back();
        let mut progress = false;
        while let Ok(n) = back.read_output(&mut buf) {
            if n == 0 {
                break;
            }
            self.console_out.extend_from_slice(&buf[..n]);
            progress = true;
        }
        if progress {
            // xenconsoled notifies after consuming, so a writer waiting for space wakes.
            self.dom0_send(self.console_ports.1);
        }
        progress
    }

    fn store_back(&self) -> xenia_ring::xenstore::XenstoreBack {
        // SAFETY: the store page is ours and lives as long as the host.
        unsafe { xenia_ring::xenstore::XenstoreBack::new(self.store_page.as_non_null()) }
            .expect("store page")
    }

    fn service_store(&mut self) -> bool {
        let xsd = self.xenstored.clone();
        let mut server = xsd.borrow_mut();
        let conn = self.store_conn;
        let mut progress = false;
        let mut back = self.store_back();
        let mut buf = [0u8; 1024];
        while let Ok(n) = back.read_request(&mut buf) {
            if n == 0 {
                break;
            }
            // A malformed request stream kills the connection, as xenstored would.
            let _ = server.feed(conn, &buf[..n]);
            progress = true;
        }
        self.store_out.extend(server.take_output(conn));
        if !self.store_out.is_empty() {
            let n = back.write_response(&self.store_out).unwrap_or(0);
            if n > 0 {
                self.store_out.drain(..n);
                progress = true;
            }
        }
        drop(server);
        if progress {
            self.dom0_send(self.store_ports.1);
        }
        progress
    }
}

/// A simulated Xen host. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Sim {
    host: Rc<RefCell<Host>>,
    backends: Rc<RefCell<Vec<Box<dyn Backend>>>>,
}

/// What a guest finds at boot (the fields of start_info it needs), for the simulated guest.
#[derive(Debug, Clone, Copy)]
pub struct GuestBoot {
    /// The shared_info page (in `xenia_xen::abi`'s Xen 4.17 layout).
    pub shared_info: *mut SharedInfo,
    /// The xenstore ring page.
    pub store_page: *mut u8,
    /// The xenstore event channel (guest side).
    pub store_port: Port,
    /// The console ring page.
    pub console_page: *mut u8,
    /// The console event channel (guest side).
    pub console_port: Port,
    /// The guest's domain id.
    pub domid: DomId,
    /// The guest's start_info page: the xenstore and console ports and frames (rewritten by a
    /// simulated restore); its frame is the "suspend record" of the suspend hypercall.
    pub start_info: *mut StartInfo,
}

std::thread_local! {
    static CURRENT: RefCell<Option<Sim>> = const { RefCell::new(None) };
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// A host with one guest, its xenstore and console rings connected to dom0.
    pub fn new() -> Sim {
        let mut evtchn = EvtchnTable::default();
        let (g_store, d_store) = evtchn.connect(GUEST_DOMID, DOM0);
        let (g_con, d_con) = evtchn.connect(GUEST_DOMID, DOM0);
        let mut xsd = Xenstored::new();
        xsd.add_domain(GUEST_DOMID);
        let store_conn = xsd.connect(GUEST_DOMID);
        let host = Host {
            shared: Page::new().expect("page"),
            store_page: Page::new().expect("page"),
            console_page: Page::new().expect("page"),
            evtchn,
            grants: GrantTableSim::new(32),
            dom0_pending: Vec::new(),
            store_ports: (g_store, d_store),
            console_ports: (g_con, d_con),
            xenstored: Rc::new(RefCell::new(xsd)),
            store_conn,
            store_out: Vec::new(),
            console_out: Vec::new(),
            now_ns: 0,
            shutdown: None,
            suspends: Vec::new(),
            suspend_outcome: SuspendOutcome::Checkpoint,
            start_info: Page::new().expect("page"),
            idle_blocks: 0,
            hypercall_counts: [0; 64],
        };
        let sim = Sim {
            host: Rc::new(RefCell::new(host)),
            backends: Rc::new(RefCell::new(Vec::new())),
        };
        {
            let mut h = sim.host.borrow_mut();
            h.set_time(1_000_000_000);
            h.write_start_info();
        }
        sim
    }

    /// Chooses what the guest's next suspend does (see [`SuspendOutcome`]).
    pub fn set_suspend_outcome(&self, outcome: SuspendOutcome) {
        self.host.borrow_mut().suspend_outcome = outcome;
    }

    /// The simulated restore: see [`SuspendOutcome::NewDomain`].
    fn restore_new_domain(&self) {
        let mut backends = self.backends.borrow_mut();
        let mut h = self.host.borrow_mut();
        for b in backends.iter_mut() {
            b.domain_restored(&mut h);
        }
        h.new_domain();
    }

    /// Makes this the simulator that hypercalls on this thread go to.
    pub fn install(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Removes the simulator of this thread.
    pub fn uninstall() {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }

    /// What the guest finds at boot.
    pub fn guest_boot(&self) -> GuestBoot {
        let h = self.host.borrow();
        GuestBoot {
            shared_info: h.shared_info(),
            store_page: h.store_page.as_ptr(),
            store_port: h.store_ports.0,
            console_page: h.console_page.as_ptr(),
            console_port: h.console_ports.0,
            domid: GUEST_DOMID,
            start_info: h.start_info.as_ptr() as *mut StartInfo,
        }
    }

    /// The simulated xenstored (dom0's view: read, write, watch, force conflicts, ...).
    pub fn xenstored(&self) -> Rc<RefCell<Xenstored>> {
        self.host.borrow().xenstored.clone()
    }

    /// Adds a simulated backend.
    pub fn add_backend(&self, b: Box<dyn Backend>) {
        self.backends.borrow_mut().push(b);
    }

    /// Runs `f` with the host state.
    pub fn with_host<R>(&self, f: impl FnOnce(&mut Host) -> R) -> R {
        f(&mut self.host.borrow_mut())
    }

    /// Runs the xenstore and console services and every backend until none makes progress.
    /// Returns whether anything happened.
    pub fn run(&self) -> bool {
        let mut any = false;
        for _ in 0..10_000 {
            let mut progress = {
                let mut h = self.host.borrow_mut();
                let a = h.service_store();
                let b = h.service_console();
                a | b
            };
            let mut backends = std::mem::take(&mut *self.backends.borrow_mut());
            for b in backends.iter_mut() {
                progress |= b.step(&mut self.host.borrow_mut());
            }
            let mut slot = self.backends.borrow_mut();
            backends.append(&mut slot);
            *slot = backends;
            drop(slot);
            if !progress {
                break;
            }
            any = true;
        }
        any
    }

    /// Everything the guest wrote to its console so far, as text.
    pub fn console_text(&self) -> std::string::String {
        self.run();
        std::string::String::from_utf8_lossy(self.host.borrow().console_output()).into_owned()
    }

    /// Simulated system time (ns).
    pub fn now_ns(&self) -> u64 {
        self.host.borrow().now_ns()
    }

    /// The "suspend record" argument of each suspend hypercall the guest made so far.
    pub fn suspends(&self) -> Vec<u64> {
        self.host.borrow().suspends.clone()
    }

    /// The guest's shutdown request, if any.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.host.borrow().shutdown
    }

    fn dispatch(&self, op: u32, a: [u64; 5]) -> i64 {
        {
            let mut h = self.host.borrow_mut();
            if let Some(c) = h.hypercall_counts.get_mut(op as usize) {
                *c += 1;
            }
        }
        match op {
            hc::EVENT_CHANNEL_OP => self.event_channel_op(a[0] as u32, a[1] as usize),
            hc::SCHED_OP => self.sched_op(a[0] as u32, a[1] as usize, a[2]),
            hc::GRANT_TABLE_OP => self.grant_table_op(a[0] as u32, a[1] as usize, a[2] as u32),
            hc::XEN_VERSION => (4 << 16) | 17,
            hc::CONSOLE_IO => -1,
            _ => ENOSYS,
        }
    }

    fn event_channel_op(&self, cmd: u32, arg: usize) -> i64 {
        use xenia_xen::abi::*;
        if arg == 0 {
            return EFAULT;
        }
        let mut h = self.host.borrow_mut();
        let dom = |d: DomId| if d == DOMID_SELF { GUEST_DOMID } else { d };
        match cmd {
            EVTCHNOP_send => {
                // SAFETY: the guest passes a live structure of the kind `cmd` names.
                let port = unsafe { (*(arg as *const EvtchnSend)).port };
                match h.evtchn.peer(GUEST_DOMID, port) {
                    Some((DOM0, p)) => {
                        h.dom0_pending.push(p);
                        0
                    }
                    Some((GUEST_DOMID, p)) => {
                        h.raise_guest(p);
                        0
                    }
                    _ => EINVAL,
                }
            }
            EVTCHNOP_alloc_unbound => {
                // SAFETY: the guest passes a live structure of the kind `cmd` names.
                let a = unsafe { &mut *(arg as *mut EvtchnAllocUnbound) };
                if dom(a.dom) != GUEST_DOMID {
                    return -1;
                }
                match h.evtchn.alloc_unbound(GUEST_DOMID, dom(a.remote_dom)) {
                    Some(p) => {
                        a.port = p;
                        0
                    }
                    None => -28,
                }
            }
            EVTCHNOP_bind_interdomain => {
                // SAFETY: the guest passes a live structure of the kind `cmd` names.
                let a = unsafe { &mut *(arg as *mut EvtchnBindInterdomain) };
                match h
                    .evtchn
                    .bind_interdomain(GUEST_DOMID, dom(a.remote_dom), a.remote_port)
                {
                    Ok(p) => {
                        a.local_port = p;
                        0
                    }
                    Err(e) => -(e as i64),
                }
            }
            EVTCHNOP_bind_virq => {
                // SAFETY: the guest passes a live structure of the kind `cmd` names.
                let a = unsafe { &mut *(arg as *mut EvtchnBindVirq) };
                match h.evtchn.bind_virq(GUEST_DOMID, a.virq) {
                    Some(p) => {
                        a.port = p;
                        0
                    }
                    None => -28,
                }
            }
            EVTCHNOP_close => {
                // SAFETY: the guest passes a live structure of the kind `cmd` names.
                let port = unsafe { (*(arg as *const EvtchnClose)).port };
                match h.evtchn.close(GUEST_DOMID, port) {
                    Ok(()) => 0,
                    Err(e) => -(e as i64),
                }
            }
            EVTCHNOP_unmask => {
                // SAFETY: the guest passes a live structure of the kind `cmd` names.
                let port = unsafe { (*(arg as *const EvtchnUnmask)).port };
                if h.evtchn.get(GUEST_DOMID, port).is_none() {
                    return EINVAL;
                }
                // SAFETY: the shared page is ours.
                unsafe {
                    let words = (&raw mut (*h.shared_info()).evtchn_mask) as *mut u64;
                    std::sync::atomic::AtomicU64::from_ptr(words.add((port / 64) as usize))
                        .fetch_and(!(1 << (port % 64)), std::sync::atomic::Ordering::SeqCst);
                }
                0
            }
            _ => ENOSYS,
        }
    }

    fn sched_op(&self, cmd: u32, arg: usize, arg3: u64) -> i64 {
        use xenia_xen::abi::*;
        match cmd {
            SCHEDOP_yield => {
                self.run();
                0
            }
            SCHEDOP_shutdown => {
                if arg == 0 {
                    return EFAULT;
                }
                // SAFETY: the guest passes a live sched_shutdown.
                let reason = unsafe { *(arg as *const u32) };
                let r = match reason {
                    SHUTDOWN_poweroff => ShutdownReason::Poweroff,
                    SHUTDOWN_reboot => ShutdownReason::Reboot,
                    SHUTDOWN_suspend => ShutdownReason::Suspend,
                    SHUTDOWN_crash => ShutdownReason::Crash,
                    _ => return EINVAL,
                };
                let mut h = self.host.borrow_mut();
                h.shutdown = Some(r);
                if r == ShutdownReason::Suspend {
                    h.suspends.push(arg3);
                    // Saving takes a while: Xen's clock moves on while the domain is suspended.
                    let t = h.now_ns + SUSPENDED_NS;
                    h.set_time(t);
                    let outcome = h.suspend_outcome;
                    drop(h);
                    return match outcome {
                        // The suspend is cancelled and the same domain carries on.
                        SuspendOutcome::Checkpoint => 1,
                        SuspendOutcome::NewDomain => {
                            self.restore_new_domain();
                            0
                        }
                    };
                }
                0
            }
            SCHEDOP_poll => {
                if arg == 0 {
                    return EFAULT;
                }
                // SAFETY: the guest passes a live sched_poll with `nr_ports` ports.
                let (ports, timeout) = unsafe {
                    let p = &*(arg as *const xenia_xen::abi::SchedPoll);
                    let ports = if p.nr_ports == 0 || p.ports.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(p.ports as *const u32, p.nr_ports as usize)
                            .to_vec()
                    };
                    (ports, p.timeout)
                };
                self.poll(&ports, timeout)
            }
            _ => ENOSYS,
        }
    }

    /// `SCHEDOP_poll`: run dom0 until a polled port is pending; with nothing left to do,
    /// jump the clock to the deadline.
    fn poll(&self, ports: &[Port], timeout: u64) -> i64 {
        loop {
            let pending = |s: &Sim| {
                let h = s.host.borrow();
                ports.iter().any(|&p| h.guest_pending(p))
            };
            if pending(self) {
                self.host.borrow_mut().idle_blocks = 0;
                return 0;
            }
            if self.run() {
                continue;
            }
            if pending(self) {
                return 0;
            }
            let mut h = self.host.borrow_mut();
            if timeout != 0 {
                if timeout > h.now_ns {
                    h.set_time(timeout);
                }
                h.idle_blocks = 0;
                return 0;
            }
            h.idle_blocks += 1;
            assert!(
                h.idle_blocks < 1000,
                "simulated guest blocked forever: no event can arrive and no deadline was given"
            );
            let t = h.now_ns + 1_000_000_000;
            h.set_time(t);
            return 0;
        }
    }

    fn grant_table_op(&self, cmd: u32, arg: usize, count: u32) -> i64 {
        if arg == 0 || count != 1 {
            return if arg == 0 { EFAULT } else { EINVAL };
        }
        let mut h = self.host.borrow_mut();
        match cmd {
            GNTTABOP_query_size => {
                // SAFETY: the guest passes a live gnttab_query_size.
                let q = unsafe { &mut *(arg as *mut GnttabQuerySize) };
                q.nr_frames = h.grants.nr_frames();
                q.max_nr_frames = h.grants.max_frames;
                q.status = 0;
                0
            }
            GNTTABOP_setup_table => {
                // SAFETY: the guest passes a live gnttab_setup_table.
                let s = unsafe { &mut *(arg as *mut GnttabSetupTable) };
                match h.grants.setup(s.nr_frames) {
                    Ok(mfns) => {
                        for (i, m) in mfns.iter().enumerate() {
                            // SAFETY: the guest's frame_list has room for nr_frames entries.
                            unsafe { s.frame_list.p.add(i).write(*m) };
                        }
                        s.status = 0;
                    }
                    Err(st) => s.status = st,
                }
                0
            }
            _ => ENOSYS,
        }
    }
}

pub mod xenstored;

/// Dispatches a hypercall to the simulator installed on this thread (`-ENOSYS` without one).
///
/// # Safety
/// Pointer arguments must point to live structures of the kind the hypercall expects.
pub(crate) unsafe fn hypercall(op: u32, args: [u64; 5]) -> i64 {
    let sim = CURRENT.with(|c| c.borrow().clone());
    match sim {
        Some(s) => s.dispatch(op, args),
        None => ENOSYS,
    }
}
