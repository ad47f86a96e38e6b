//! The definitions of the functions `xenia-xen` declares (and calls) when built for the host.
//!
//! This is `xenia-xen`'s hypercall seam, resolved at link time the way `embassy-time-driver`
//! resolves its driver: `xenia_xen::hypercall::hypercall` and `xenia_xen::memory`'s frame
//! translation call these symbols, and linking this crate into a test binary provides them.
//! The signatures are checked at compile time against `xenia_xen::seam`, as are the
//! declarations in `xen/src/hypercall.rs` and `xen/src/memory.rs`.

use xenia_xen::memory::Mfn;
use xenia_xen::seam;

// The symbols carry no types: check each definition against the signature xenia-xen declares.
const _: seam::Hypercall = _xenia_hypercall;
const _: seam::VirtToMfn = _xenia_virt_to_mfn;
const _: seam::MfnToVirt = _xenia_mfn_to_virt;

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

#[cfg(test)]
mod tests {
    use xenia_xen::hypercall::{hypercall, XEN_VERSION};
    use xenia_xen::memory::{map_frames, virt_to_mfn, PAGE_SIZE};

    #[test]
    fn xenia_xen_reaches_the_simulator_through_the_seam() {
        crate::Sim::uninstall();
        // SAFETY: XENVER_version takes no argument.
        let ret = unsafe { hypercall(XEN_VERSION, [0; 5]) };
        assert_eq!(ret, -38, "no sim: ENOSYS");
        let sim = crate::Sim::new();
        sim.install();
        // SAFETY: as above.
        assert_eq!(unsafe { hypercall(XEN_VERSION, [0; 5]) }, (4 << 16) | 17);
        crate::Sim::uninstall();

        let pages = vec![0u8; 3 * PAGE_SIZE];
        let base = (pages.as_ptr() as usize).next_multiple_of(PAGE_SIZE);
        let mfns = [
            virt_to_mfn(base).unwrap(),
            virt_to_mfn(base + PAGE_SIZE).unwrap(),
        ];
        assert_eq!(virt_to_mfn(base + 5), Some(mfns[0]), "one frame per page");
        assert_eq!(map_frames(&mfns, true), Ok(base));
        assert!(
            map_frames(&[mfns[1], mfns[0]], true).is_err(),
            "not contiguous"
        );
    }
}
