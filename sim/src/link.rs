//! The definitions of the functions `xenia-xen` declares (and calls) when built for the host.
//!
//! This is `xenia-xen`'s hypercall seam, resolved at link time the way `embassy-time-driver`
//! resolves its driver: `xenia_xen::hypercall::hypercall` and `xenia_xen::memory`'s frame
//! translation call these symbols, and linking this crate into a test binary provides them.
//! The signatures must match the declarations in `xen/src/hypercall.rs` and
//! `xen/src/memory.rs` exactly (the `Rust` ABI is not checked across the symbol).

use xenia_xen::memory::Mfn;

/// Hypercall `op` with its five register arguments, handled by the simulator installed on this
/// thread ([`crate::Sim::install`]); `-ENOSYS` if there is none.
///
/// # Safety
/// As on Xen: pointer arguments must point to live structures of the kind `op` expects.
#[unsafe(no_mangle)]
pub unsafe fn _xenia_hypercall(op: u32, args: [u64; 5]) -> i64 {
    // SAFETY: the caller's guarantees are passed on unchanged.
    unsafe { crate::hypercall(op, args) }
}

/// The simulated machine frame of the host page holding `va` (given on first use).
#[unsafe(no_mangle)]
pub fn _xenia_virt_to_mfn(va: usize) -> Option<Mfn> {
    crate::frames::virt_to_mfn(va)
}

/// The host address of simulated machine frame `mfn`, if it was ever given out.
#[unsafe(no_mangle)]
pub fn _xenia_mfn_to_virt(mfn: Mfn) -> Option<usize> {
    crate::frames::mfn_to_virt(mfn)
}
