//! Attaching the runtime to its domain's Xen services.
//!
//! A PV guest learns from start_info where its shared_info page, xenstore ring and console are.
//! Boot maps those pages, describes them as a [`Domain`] and calls [`start_services`]; a
//! simulated Xen host (the `xenia-sim` crate) describes the pages of its simulated guest the
//! same way, so the runtime's event channels, xenstore client and grant table come up through
//! the one path on both.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use xenia_xen::abi::{SharedInfo, StartInfo};

/// Where a domain's Xen services are, with their pages mapped (what start_info says, once boot
/// has mapped it).
#[derive(Debug, Clone, Copy)]
pub struct Domain {
    /// The mapped shared_info page.
    pub shared_info: NonNull<SharedInfo>,
    /// The mapped xenstore ring page.
    pub store_page: NonNull<u8>,
    /// The xenstore ring's event channel.
    pub store_port: u32,
    /// The PV console's event channel, if the runtime's console uses the console ring (the
    /// event channels take charge of it); `None` if the console goes elsewhere.
    pub console_port: Option<u32>,
    /// The start_info page, if the domain can be suspended: its frame goes to Xen with the
    /// suspend hypercall, and after a restore it holds the new xenstore and console ports
    /// ([`crate::lifecycle`]).
    pub start_info: Option<NonNull<StartInfo>>,
}

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());

/// The start_info page given to [`start_services`], if any.
pub(crate) fn start_info() -> Option<NonNull<StartInfo>> {
    NonNull::new(START_INFO.load(Ordering::Acquire))
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// Brings up the runtime's Xen services on `domain`: time and event channels on its
/// shared_info page, the xenstore client on its ring ([`crate::xenstore`]), and the grant
/// table on first use ([`crate::grant_table`]). Boot calls it once; after it, the executor
/// blocks in the hypervisor when nothing is ready.
///
/// # Safety
/// The pages must be the domain's own, mapped and valid for the rest of the program, and used
/// by nothing else but the runtime (and, for shared_info and start_info, the hypervisor).
///
/// # Panics
/// If called twice in one process: the runtime's services exist once, as the domain does.
pub unsafe fn start_services(domain: &Domain) {
    assert!(
        !STARTED.swap(true, Ordering::SeqCst),
        "xenia::domain::start_services: the runtime's services start once per process"
    );
    crate::shared_info::set(domain.shared_info.as_ptr().cast());
    if let Some(si) = domain.start_info {
        START_INFO.store(si.as_ptr(), Ordering::Release);
    }
    // SAFETY: shared_info was just set; the caller guarantees the pages; this is the only call.
    unsafe {
        crate::services::init(
            domain.console_port,
            domain.store_page.as_ptr() as usize,
            domain.store_port,
        )
    };
}
