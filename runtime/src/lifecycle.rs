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

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
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
    let grants = crate::services::grant_table_if_set_up();
    if let Some(g) = grants {
        g.detach()?;
    }
    let outcome = platform_suspend();
    // Whatever happened, the grant table must be usable again.
    let new_domain = matches!(outcome, Ok(Resumed::NewDomain));
    if let Some(g) = grants {
        g.reattach(new_domain)?;
    }
    let outcome = outcome?;
    match outcome {
        Resumed::Cancelled => CANCELLED.fetch_add(1, Ordering::Relaxed),
        Resumed::NewDomain => NEW_DOMAINS.fetch_add(1, Ordering::Relaxed),
    };
    Ok(outcome)
}

#[cfg(target_os = "none")]
fn platform_suspend() -> Result<Resumed, SuspendError> {
    crate::start::suspend_domain()
}

/// Built for the host, the simulator answers the suspend hypercall (it has no start_info or
/// P2M to rewrite).
#[cfg(not(target_os = "none"))]
fn platform_suspend() -> Result<Resumed, SuspendError> {
    let cancelled = xenia_xen::sched::suspend(0)?;
    Ok(if cancelled {
        Resumed::Cancelled
    } else {
        Resumed::NewDomain
    })
}
