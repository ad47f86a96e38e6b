//! The domain's shared_info page: mapped by boot (or handed over by the simulator in host
//! mode) before anything reads it, then read by time, the event channels and the trap handler.

use core::sync::atomic::{AtomicPtr, Ordering};
use xenia_xen::abi::SharedInfo;
use xenia_xen::time::SharedInfoMutPtr;

static PAGE: AtomicPtr<SharedInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Records where the shared_info page is. Called once, by boot or by `host::boot`.
pub(crate) fn set(page: impl SharedInfoMutPtr) {
    PAGE.store(page.as_shared_info_mut(), Ordering::Release);
}

/// The shared_info page, once it is set.
pub(crate) fn get() -> Option<*mut SharedInfo> {
    let p = PAGE.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}
