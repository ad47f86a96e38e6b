//! The domain's shared_info page: mapped by boot (or, on a simulated host, handed over through
//! `domain::start_services`) before anything reads it, then read by time, the event channels
//! and the trap handler.

use core::sync::atomic::{AtomicPtr, Ordering};
use xenia_xen::abi::SharedInfo;

static PAGE: AtomicPtr<SharedInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Records where the shared_info page is. Called by boot, and by `domain::start_services`.
pub(crate) fn set(page: *mut SharedInfo) {
    PAGE.store(page, Ordering::Release);
}

/// The shared_info page, once it is set.
pub(crate) fn get() -> Option<*mut SharedInfo> {
    let p = PAGE.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}
