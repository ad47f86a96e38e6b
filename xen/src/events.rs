//! Event channels (2-level ABI): bind, send, close, mask; and the pending-bit scan that wakes
//! the task waiting on each port.
//!
//! Xenia keeps event delivery masked (`evtchn_upcall_mask = 1`): there is no interrupt
//! handler. Instead the executor, when it has nothing to run, blocks in `SCHEDOP_poll` on the
//! bound ports with the next timer deadline ([`EventChannels::block`]); Xen wakes the vCPU when
//! one of them becomes pending, even with delivery masked. The executor then calls
//! [`EventChannels::scan`], which clears pending bits, records them as fired and wakes the
//! wakers registered for those ports. A pending bit that is already set makes `SCHEDOP_poll`
//! return at once, so an event that arrives between the scan and the block is never lost.

use crate::abi::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_virq, EVTCHNOP_close,
    EVTCHNOP_send, EVTCHNOP_unmask, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq,
    EvtchnClose, EvtchnSend, EvtchnUnmask, SharedInfo,
};
use crate::error::XenError;
use crate::hypercall;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use litemap::LiteMap;
use spin::Mutex;

/// An event channel port number.
pub type Port = u32;
/// A domain id.
pub type DomId = u16;
/// `DOMID_SELF`: "this domain" in hypercall arguments.
pub const DOMID_SELF: DomId = crate::abi::DOMID_SELF;
/// Number of ports of the 2-level ABI on x86-64 (64 words of 64 bits).
pub const NR_PORTS: u32 = crate::abi::EVTCHN_2L_NR_CHANNELS as u32;
const WORDS: usize = (NR_PORTS / 64) as usize;

/// Errors of event-channel operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// The hypervisor refused the operation.
    Xen(XenError),
    /// Xen returned a port outside the 2-level ABI's range.
    BadPort(u32),
    /// The port is not bound by us.
    NotBound(Port),
}

impl From<XenError> for EventError {
    fn from(e: XenError) -> Self {
        EventError::Xen(e)
    }
}

impl core::fmt::Display for EventError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EventError::Xen(e) => write!(f, "event channel: {e}"),
            EventError::BadPort(p) => write!(f, "event channel: hypervisor returned bad port {p}"),
            EventError::NotBound(p) => write!(f, "event channel: port {p} is not bound"),
        }
    }
}

impl core::error::Error for EventError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            EventError::Xen(e) => Some(e),
            _ => None,
        }
    }
}

/// Notifies the remote end of `port`.
pub fn send(port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnSend { port };
    // SAFETY: arg is a live evtchn_send.
    unsafe { hypercall::event_channel_op(EVTCHNOP_send, &mut arg) }.map(|_| ())
}

fn check_port(p: u32) -> Result<Port, EventError> {
    if p == 0 || p >= NR_PORTS {
        Err(EventError::BadPort(p))
    } else {
        Ok(p)
    }
}

/// The guest's event channels: bound ports, pending-bit scan, and wakers.
pub struct EventChannels {
    shared: *mut SharedInfo,
    /// Incremented by [`EventChannels::forget_all`]: ports bound before belong to a domain
    /// that no longer exists.
    epoch: AtomicU64,
    fired: [AtomicU64; WORDS],
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bound ports and the waker of the task waiting on each: a sorted vector (a few ports per
    /// device, bounded by the ABI's 4096), smaller code than a B-tree.
    ports: LiteMap<Port, Option<Waker>>,
    /// The bound ports as a flat list for `SCHEDOP_poll`.
    poll_list: Vec<Port>,
}

// SAFETY: not a single-vCPU assumption: the shared_info page (which Xen writes concurrently
// anyway) is accessed only with atomics and volatile writes, and the rest is behind a lock of
// `Send` data; the raw pointer is all that keeps these from being automatic.
unsafe impl Send for EventChannels {}
// SAFETY: as above.
unsafe impl Sync for EventChannels {}

impl EventChannels {
    /// Takes charge of the event channels of the domain whose shared_info page is at `shared`.
    ///
    /// # Safety
    /// `shared` must point to the mapped shared_info page for the lifetime of the value, and
    /// only one `EventChannels` may exist per domain.
    pub unsafe fn new(shared: *mut SharedInfo) -> EventChannels {
        let ev = EventChannels {
            shared,
            epoch: AtomicU64::new(0),
            fired: [const { AtomicU64::new(0) }; WORDS],
            state: Mutex::new(State::default()),
        };
        // Keep upcalls masked: we poll instead of taking interrupts.
        // SAFETY: vcpu_info[0] is inside the shared page.
        unsafe { (&raw mut (*shared).vcpu_info[0].evtchn_upcall_mask).write_volatile(1) };
        ev
    }

    fn word(&self, array: usize, i: usize) -> &AtomicU64 {
        // SAFETY: i < 64 and both arrays are 64 aligned u64 words in the shared page, which Xen
        // updates with atomic operations.
        unsafe {
            let base = if array == 0 {
                (&raw mut (*self.shared).evtchn_pending) as *mut u64
            } else {
                (&raw mut (*self.shared).evtchn_mask) as *mut u64
            };
            AtomicU64::from_ptr(base.add(i))
        }
    }

    /// Adds a port we have bound (or were given, like the xenstore and console ports), and
    /// clears its mask bit (a domain resumed by Xen starts with every port masked).
    pub fn adopt(&self, port: Port) -> Result<Port, EventError> {
        let port = check_port(port)?;
        self.word(1, (port / 64) as usize)
            .fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
        let mut st = self.state.lock();
        if st.ports.insert(port, None).is_none() {
            st.poll_list.push(port);
        }
        Ok(port)
    }

    /// Allocates a port that `remote` can bind to (a frontend offers this to its backend).
    pub fn alloc_unbound(&self, remote: DomId) -> Result<Port, EventError> {
        let mut arg = EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: remote,
            port: 0,
        };
        // SAFETY: arg is a live evtchn_alloc_unbound.
        unsafe { hypercall::event_channel_op(EVTCHNOP_alloc_unbound, &mut arg) }?;
        self.adopt(arg.port)
    }

    /// Binds to `remote_port` of domain `remote`, returning our local port.
    pub fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, EventError> {
        let mut arg = EvtchnBindInterdomain {
            remote_dom: remote,
            remote_port,
            local_port: 0,
        };
        // SAFETY: arg is a live evtchn_bind_interdomain.
        unsafe { hypercall::event_channel_op(EVTCHNOP_bind_interdomain, &mut arg) }?;
        self.adopt(arg.local_port)
    }

    /// Binds a virtual IRQ (`VIRQ_*`) on `vcpu`.
    pub fn bind_virq(&self, virq: u32, vcpu: u32) -> Result<Port, EventError> {
        let mut arg = EvtchnBindVirq {
            virq,
            vcpu,
            port: 0,
        };
        // SAFETY: arg is a live evtchn_bind_virq.
        unsafe { hypercall::event_channel_op(EVTCHNOP_bind_virq, &mut arg) }?;
        self.adopt(arg.port)
    }

    /// After the domain resumed in a new domain, where Xen closed every port but the new
    /// xenstore and console ones: forgets every port (their waiters are woken, to find their
    /// device gone) and every fired flag. The caller adopts the new ports.
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let wakers: Vec<Waker> = {
            let mut st = self.state.lock();
            st.poll_list.clear();
            core::mem::take(&mut st.ports)
                .into_tuple_vec()
                .into_iter()
                .filter_map(|(_, w)| w)
                .collect()
        };
        for f in &self.fired {
            f.store(0, Ordering::SeqCst);
        }
        for w in wakers {
            w.wake();
        }
    }

    /// How many times [`Self::forget_all`] ran: a driver that bound its port in an earlier
    /// epoch has lost it (and the port number may name something else now).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Closes a port we bound.
    pub fn close(&self, port: Port) -> Result<(), EventError> {
        {
            let mut st = self.state.lock();
            if st.ports.remove(&port).is_none() {
                return Err(EventError::NotBound(port));
            }
            st.poll_list.retain(|&p| p != port);
        }
        let mut arg = EvtchnClose { port };
        // SAFETY: arg is a live evtchn_close.
        unsafe { hypercall::event_channel_op(EVTCHNOP_close, &mut arg) }?;
        Ok(())
    }

    /// Notifies the remote end of `port`.
    pub fn send(&self, port: Port) -> Result<(), EventError> {
        send(port).map_err(EventError::Xen)
    }

    /// Masks `port`: it still becomes pending but does not wake a poll.
    pub fn mask(&self, port: Port) -> Result<(), EventError> {
        let port = check_port(port)?;
        self.word(1, (port / 64) as usize)
            .fetch_or(1 << (port % 64), Ordering::SeqCst);
        Ok(())
    }

    /// Unmasks `port` (through Xen, which re-raises it if it became pending meanwhile).
    pub fn unmask(&self, port: Port) -> Result<(), EventError> {
        let port = check_port(port)?;
        let mut arg = EvtchnUnmask { port };
        // SAFETY: arg is a live evtchn_unmask.
        unsafe { hypercall::event_channel_op(EVTCHNOP_unmask, &mut arg) }?;
        Ok(())
    }

    /// Whether `port` is masked.
    pub fn is_masked(&self, port: Port) -> bool {
        port < NR_PORTS
            && self.word(1, (port / 64) as usize).load(Ordering::SeqCst) & (1 << (port % 64)) != 0
    }

    /// Clears the pending bits of unmasked ports, records them as fired and wakes their
    /// waiters. Returns how many ports fired.
    pub fn scan(&self) -> usize {
        // SAFETY: vcpu_info[0] is inside the shared page; the selector is advisory for us
        // since we scan every word, but we clear it so Xen sets it afresh.
        unsafe {
            AtomicU64::from_ptr(&raw mut (*self.shared).vcpu_info[0].evtchn_pending_sel)
                .store(0, Ordering::SeqCst);
        }
        let mut n = 0;
        let mut to_wake: Vec<Waker> = Vec::new();
        for i in 0..WORDS {
            let pending = self.word(0, i).load(Ordering::SeqCst);
            if pending == 0 {
                continue;
            }
            let bits = pending & !self.word(1, i).load(Ordering::SeqCst);
            if bits == 0 {
                continue;
            }
            self.word(0, i).fetch_and(!bits, Ordering::SeqCst);
            self.fired[i].fetch_or(bits, Ordering::SeqCst);
            n += bits.count_ones() as usize;
            let mut st = self.state.lock();
            let mut b = bits;
            while b != 0 {
                let port = i as u32 * 64 + b.trailing_zeros();
                b &= b - 1;
                if let Some(Some(w)) = st.ports.get_mut(&port).map(Option::take) {
                    to_wake.push(w);
                }
            }
        }
        for w in to_wake {
            w.wake();
        }
        n
    }

    /// Takes the fired flag of `port`: true if it fired since the last call.
    pub fn take_fired(&self, port: Port) -> bool {
        if port >= NR_PORTS {
            return false;
        }
        let bit = 1u64 << (port % 64);
        self.fired[(port / 64) as usize].fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// Polls for an event on `port`: ready if it fired, else registers the waker.
    pub fn poll_port(&self, port: Port, cx: &mut Context<'_>) -> Poll<()> {
        if self.take_fired(port) {
            return Poll::Ready(());
        }
        self.scan();
        if self.take_fired(port) {
            return Poll::Ready(());
        }
        if let Some(slot) = self.state.lock().ports.get_mut(&port) {
            *slot = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits for the next event on `port`.
    pub fn wait(&self, port: Port) -> WaitPort<'_> {
        WaitPort { ev: self, port }
    }

    /// Blocks the vCPU until a bound port is pending or system time reaches `deadline_ns`
    /// (0: no deadline). Returns at once if one is pending already.
    pub fn block(&self, deadline_ns: u64) -> Result<(), XenError> {
        let list = self.state.lock().poll_list.clone();
        crate::sched::poll(&list, deadline_ns)
    }

    /// The bound ports.
    pub fn ports(&self) -> Vec<Port> {
        self.state.lock().poll_list.clone()
    }

    /// A snapshot of every bound port for diagnostics (`xenia`'s introspection dump): its
    /// pending, masked and fired bits and the waker of the task waiting on it. `None` if the
    /// port table is locked right now (the caller interrupted a user of it): this never waits.
    pub fn port_states(&self) -> Option<Vec<PortState>> {
        let st = self.state.try_lock()?;
        let bit =
            |port: Port, word: &AtomicU64| word.load(Ordering::SeqCst) & (1 << (port % 64)) != 0;
        Some(
            st.ports
                .iter()
                .map(|(&port, waiter)| {
                    let i = (port / 64) as usize;
                    PortState {
                        port,
                        pending: bit(port, self.word(0, i)),
                        masked: bit(port, self.word(1, i)),
                        fired: bit(port, &self.fired[i]),
                        waiter: waiter.clone(),
                    }
                })
                .collect(),
        )
    }
}

/// One bound port as [`EventChannels::port_states`] saw it.
#[derive(Debug, Clone)]
pub struct PortState {
    /// The port.
    pub port: Port,
    /// Its pending bit in shared_info (an event not yet scanned).
    pub pending: bool,
    /// Its mask bit in shared_info.
    pub masked: bool,
    /// Scanned but not yet taken by its waiter.
    pub fired: bool,
    /// The waker registered by the task waiting on the port, if one is.
    pub waiter: Option<Waker>,
}

/// Future of [`EventChannels::wait`].
pub struct WaitPort<'a> {
    ev: &'a EventChannels,
    port: Port,
}

impl Future for WaitPort<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.ev.poll_port(self.port, cx)
    }
}
