//! The simulated machine: every host page gets a small "machine frame" number on first use, so
//! `xenia_xen::memory` translates addresses for drivers in tests as it does on Xen.

use std::collections::HashMap;
use std::sync::Mutex;
use xenia_xen::memory::{Mfn, PAGE_SIZE};

/// Host pages seen so far and the simulated machine frame each was given. Frames are small
/// numbers (grant entries hold 32-bit frames), unique across the process.
struct Registry {
    by_page: HashMap<usize, Mfn>,
    by_mfn: HashMap<Mfn, usize>,
    next: Mfn,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// The simulated machine frame of the host page holding `va` (assigned on first use).
pub(crate) fn virt_to_mfn(va: usize) -> Option<Mfn> {
    let page = va & !(PAGE_SIZE - 1);
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let reg = reg.get_or_insert_with(|| Registry {
        by_page: HashMap::new(),
        by_mfn: HashMap::new(),
        next: 0x1000,
    });
    if let Some(&m) = reg.by_page.get(&page) {
        return Some(m);
    }
    let m = reg.next;
    reg.next += 1;
    reg.by_page.insert(page, m);
    reg.by_mfn.insert(m, page);
    Some(m)
}

/// The host address of a simulated machine frame, if it was ever handed out.
pub(crate) fn mfn_to_virt(mfn: Mfn) -> Option<usize> {
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.as_ref()?.by_mfn.get(&mfn).copied()
}
