//! The domain's lifecycle as the toolstack drives it: suspending for `xl save`, `xl migrate`
//! and checkpoints (`xl save -c`), and carrying on when the domain runs again.
//!
//! The toolstack asks by writing `suspend` to `control/shutdown`; the runtime's watcher
//! acknowledges and calls [`suspend`]. The sequence is Xen's PV suspend protocol: unmap what
//! the toolstack cannot save (the grant-table frames, shared_info), turn start_info's xenstore
//! and console frames into pseudo-physical ones, `SCHEDOP_shutdown(SHUTDOWN_suspend)` with the
//! start_info frame, and on return map everything again and republish the P2M tree.
//!
//! The hypercall returns in one of two worlds. *Cancelled* (a checkpoint, a failed migration):
//! the same domain, with its event channels, grants and backends, carries on. *New domain*
//! (restore, migration target): everything Xen and the backends held is gone.

use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use xenia_xen::grant::GrantError;
use xenia_xen::XenError;

/// How a suspend ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The suspend was cancelled (`xl save -c`, a checkpoint, a failed migration): the same
    /// domain runs on, with its event channels, grants and backends.
    Cancelled,
    /// The domain runs in a new domain (`xl restore`, a migration target).
    NewDomain,
}

/// Why a suspend failed (the domain carries on as before where it can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendError {
    /// Unmapping or remapping the grant table failed.
    Grants(GrantError),
    /// Xen refused the suspend hypercall, or remapping shared_info failed.
    Xen(XenError),
    /// The runtime cannot suspend on this platform (what is missing is named).
    Unsupported(&'static str),
}

impl fmt::Display for SuspendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuspendError::Grants(e) => write!(f, "suspend: {e}"),
            SuspendError::Xen(e) => write!(f, "suspend: {e}"),
            SuspendError::Unsupported(what) => write!(f, "suspend: not supported: {what}"),
        }
    }
}

impl core::error::Error for SuspendError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SuspendError::Grants(e) => Some(e),
            SuspendError::Xen(e) => Some(e),
            SuspendError::Unsupported(_) => None,
        }
    }
}

impl From<GrantError> for SuspendError {
    fn from(e: GrantError) -> Self {
        SuspendError::Grants(e)
    }
}

impl From<XenError> for SuspendError {
    fn from(e: XenError) -> Self {
        SuspendError::Xen(e)
    }
}

/// What Xen's side of a resume in a new domain hands back: the new event channels from the
/// rewritten start_info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewDomainPorts {
    /// The xenstore ring's new event channel.
    pub store: u32,
    /// The console ring's new event channel, if the runtime's console uses the ring.
    pub console: Option<u32>,
}

static WAITERS: spin::Mutex<Vec<Waker>> = spin::Mutex::new(Vec::new());

/// How many times the domain resumed in a new domain so far (a generation number: devices
/// compare it with the one they connected in).
pub fn generation() -> u64 {
    NEW_DOMAINS.load(Ordering::Acquire)
}

/// Waits until the domain has resumed in a new domain after generation `seen` (see
/// [`generation`]); returns the new generation. For apps that want to act on a restore or a
/// migration (the devices reconnect by themselves).
pub fn resumed(seen: u64) -> WaitResumed {
    WaitResumed { seen }
}

/// Future of [`resumed`].
#[derive(Debug)]
pub struct WaitResumed {
    seen: u64,
}

impl Future for WaitResumed {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if let Some(g) = poll_generation(self.seen, cx) {
            return Poll::Ready(g);
        }
        Poll::Pending
    }
}

/// `Some(generation)` if it moved past `seen`; otherwise registers `cx`'s waker to be woken
/// when it does, and returns `None`.
pub fn poll_generation(seen: u64, cx: &mut Context<'_>) -> Option<u64> {
    let g = generation();
    if g != seen {
        return Some(g);
    }
    let mut w = WAITERS.lock();
    if !w.iter().any(|x| x.will_wake(cx.waker())) {
        w.push(cx.waker().clone());
    }
    // Checked again under the lock: a resume in between has already taken the list.
    let g = generation();
    (g != seen).then_some(g)
}

static SUSPENDS: AtomicU64 = AtomicU64::new(0);
static CANCELLED: AtomicU64 = AtomicU64::new(0);
static NEW_DOMAINS: AtomicU64 = AtomicU64::new(0);

/// Counts of suspends so far: `(suspends, of them cancelled, of them resumed in a new domain)`.
pub fn counts() -> (u64, u64, u64) {
    (
        SUSPENDS.load(Ordering::Relaxed),
        CANCELLED.load(Ordering::Relaxed),
        NEW_DOMAINS.load(Ordering::Relaxed),
    )
}

/// Suspends the domain now and returns when it runs again.
///
/// Called by the runtime's `control/shutdown` watcher after it acknowledged a `suspend`
/// request; it runs to completion without yielding, so no other task runs while the grant
/// table and shared_info are unmapped.
pub fn suspend() -> Result<Resumed, SuspendError> {
    SUSPENDS.fetch_add(1, Ordering::Relaxed);
    let before_ns = crate::time::now_ns().unwrap_or(0);
    let grants = crate::services::grant_table_if_set_up();
    if let Some(g) = grants {
        g.detach()?;
    }
    let outcome = platform_suspend();
    // Whatever happened, the grant table must be usable again.
    let new_domain = matches!(outcome, Ok((Resumed::NewDomain, _)));
    let reattached = grants.map_or(Ok(()), |g| g.reattach(new_domain));
    let (outcome, ports) = outcome?;
    let skipped = crate::time::resume_clock(before_ns);
    match (outcome, ports) {
        (Resumed::Cancelled, _) => {
            reattached?;
            log::info!(
                "suspend cancelled (checkpoint); {} ms suspended (not counted in the clock)",
                skipped / 1_000_000
            );
            CANCELLED.fetch_add(1, Ordering::Relaxed);
        }
        (Resumed::NewDomain, ports) => {
            if let Some(ports) = ports {
                reconnect_services(ports);
            }
            if let Err(e) = reattached {
                log::error!("resume: {e}: devices cannot reconnect");
            }
            log::info!(
                "resumed in a new domain; {} ms suspended (not counted in the clock); reconnecting devices",
                skipped / 1_000_000
            );
            NEW_DOMAINS.fetch_add(1, Ordering::Release);
            let waiters = core::mem::take(&mut *WAITERS.lock());
            for w in waiters {
                w.wake();
            }
        }
    }
    Ok(outcome)
}

/// In a new domain: only the new xenstore and console ports are open. Forget the old ports,
/// take the new ones, and put xenstore on the new connection.
fn reconnect_services(ports: NewDomainPorts) {
    let Some(ev) = crate::services::events() else {
        return;
    };
    ev.forget_all();
    if let Some(c) = ports.console {
        let _ = ev.adopt(c);
    }
    if let Some(xs) = crate::services::xenstore_if_up() {
        match xs.with_transport(|t| t.resume(ports.store)) {
            Ok([req_cons, req_prod, rsp_cons, rsp_prod]) => log::info!(
                "xenstore: new connection (ring was req {req_cons}/{req_prod}, rsp {rsp_cons}/{rsp_prod})"
            ),
            Err(e) => log::error!("xenstore: cannot resume: {e}"),
        }
        xs.resume();
    }
}

type PlatformOutcome = Result<(Resumed, Option<NewDomainPorts>), SuspendError>;

#[cfg(target_os = "none")]
fn platform_suspend() -> PlatformOutcome {
    crate::start::suspend_domain()
}

/// Built for the host, the simulator answers the suspend hypercall; it has no P2M or page
/// tables, but rewrites the start_info page it gave (new ports after a restore).
#[cfg(not(target_os = "none"))]
fn platform_suspend() -> PlatformOutcome {
    let si = crate::domain::start_info().ok_or(SuspendError::Unsupported("no start_info"))?;
    let mfn = xenia_xen::memory::virt_to_mfn(si.as_ptr() as usize)
        .ok_or(SuspendError::Unsupported("start_info has no frame"))?;
    if xenia_xen::sched::suspend(mfn)? {
        return Ok((Resumed::Cancelled, None));
    }
    // SAFETY: the simulator's start_info page lives as long as the simulated host; it
    // rewrote it before the hypercall returned and does not touch it while the guest runs.
    let store = unsafe { (*si.as_ptr()).store_evtchn };
    Ok((
        Resumed::NewDomain,
        Some(NewDomainPorts {
            store,
            // The runtime's console is stdout on the host.
            console: None,
        }),
    ))
}
