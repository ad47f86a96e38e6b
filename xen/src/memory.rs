//! Guest memory as Xen sees it: virtual addresses, pseudo-physical frames (pfn) and machine
//! frames (mfn).
//!
//! A PV guest runs on machine frames it does not choose. Its image is linked at
//! [`VIRT_BASE`] and every pseudo-physical frame `pfn` of the domain is mapped at
//! `VIRT_BASE + pfn * PAGE_SIZE` (the runtime extends Xen's initial mapping to all of memory
//! at boot). The p2m list (pfn → mfn) is given in start_info; the read-only machine-to-phys
//! table (mfn → pfn) is mapped by Xen at [`MACH2PHYS_VIRT_START`].
//!
//! Built for the host, [`virt_to_mfn`] and [`map_frames`] ask the simulator linked into the
//! binary (the `xenia-sim` crate defines `_xenia_virt_to_mfn` and `_xenia_mfn_to_virt`, as it
//! defines the hypercall seam, see [`crate::hypercall`]); it gives every host page a small
//! "machine frame" number on first use, so drivers translate addresses in tests as on Xen.

/// Size of a page and of a frame.
pub const PAGE_SIZE: usize = crate::abi::XEN_PAGE_SIZE;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Where the kernel image and the direct map of the domain's memory start.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Where Xen maps the machine-to-phys table read-only into every PV guest (x86-64).
pub const MACH2PHYS_VIRT_START: u64 = crate::abi::MACH2PHYS_VIRT_START;

/// A pseudo-physical frame number.
pub type Pfn = u64;
/// A machine frame number.
pub type Mfn = u64;

#[cfg(target_os = "none")]
mod imp {
    use super::*;
    use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    static P2M: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());
    static NR_PAGES: AtomicU64 = AtomicU64::new(0);
    static WINDOW_START: AtomicU64 = AtomicU64::new(0);
    static WINDOW_PAGES: AtomicUsize = AtomicUsize::new(0);
    static WINDOW_NEXT: AtomicUsize = AtomicUsize::new(0);

    /// Records the p2m list Xen gave in start_info.
    ///
    /// # Safety
    /// `p2m` must point to `nr_pages` entries that stay mapped for the guest's lifetime.
    pub unsafe fn init_p2m(p2m: *mut u64, nr_pages: u64) {
        P2M.store(p2m, Ordering::Release);
        NR_PAGES.store(nr_pages, Ordering::Release);
    }

    /// Registers the virtual window (with page tables present) where machine frames that are
    /// not ours (grant-table frames, shared_info) can be mapped.
    ///
    /// # Safety
    /// The window must be page-aligned, unused, and have L1 page tables present.
    pub unsafe fn init_map_window(start: u64, pages: usize) {
        WINDOW_START.store(start, Ordering::Release);
        WINDOW_PAGES.store(pages, Ordering::Release);
    }

    /// The number of pages of the domain.
    pub fn nr_pages() -> u64 {
        NR_PAGES.load(Ordering::Acquire)
    }

    /// The machine frame behind a pseudo-physical frame, if the frame exists.
    pub fn pfn_to_mfn(pfn: Pfn) -> Option<Mfn> {
        let p2m = P2M.load(Ordering::Acquire);
        if p2m.is_null() || pfn >= nr_pages() {
            return None;
        }
        // SAFETY: init_p2m guarantees nr_pages entries; pfn was bounds-checked.
        Some(unsafe { p2m.add(pfn as usize).read_volatile() })
    }

    /// The pseudo-physical frame of a machine frame, read from Xen's m2p table.
    pub fn mfn_to_pfn(mfn: Mfn) -> Pfn {
        // SAFETY: Xen maps the m2p table read-only at MACH2PHYS_VIRT_START for every PV guest,
        // covering every machine frame that can be given to the guest.
        unsafe { ((MACH2PHYS_VIRT_START as *const u64).add(mfn as usize)).read_volatile() }
    }

    /// The machine frame of the page holding virtual address `va` (in the direct map).
    pub(super) fn virt_to_mfn(va: usize) -> Option<Mfn> {
        let va = va as u64;
        if va < VIRT_BASE {
            return None;
        }
        pfn_to_mfn((va - VIRT_BASE) >> PAGE_SHIFT)
    }

    /// The direct-map virtual address of a pseudo-physical frame.
    pub fn pfn_to_virt(pfn: Pfn) -> usize {
        (VIRT_BASE + (pfn << PAGE_SHIFT)) as usize
    }

    /// Maps machine frames (not necessarily ours) contiguously and returns the virtual address.
    ///
    /// Slots in the window are never reused: this is for long-lived mappings made at setup.
    pub(super) fn map_frames(mfns: &[Mfn], writable: bool) -> Result<usize, crate::XenError> {
        let pages = WINDOW_PAGES.load(Ordering::Acquire);
        let first = WINDOW_NEXT.fetch_add(mfns.len(), Ordering::AcqRel);
        if first + mfns.len() > pages {
            WINDOW_NEXT.fetch_sub(mfns.len(), Ordering::AcqRel);
            return Err(crate::XenError::ENOMEM);
        }
        let base = WINDOW_START.load(Ordering::Acquire) + (first as u64) * PAGE_SIZE as u64;
        for (i, &mfn) in mfns.iter().enumerate() {
            let va = base + (i as u64) * PAGE_SIZE as u64;
            let mut pte = (mfn << PAGE_SHIFT) | PTE_PRESENT | PTE_USER | PTE_ACCESSED;
            if writable {
                pte |= PTE_RW | PTE_DIRTY;
            }
            // SAFETY: the window's virtual pages are reserved for this and unused by Rust code.
            unsafe { crate::hypercall::update_va_mapping(va, pte, UVMF_INVLPG)? };
        }
        Ok(base as usize)
    }
    /// Removes the mapping of one page of the window (made by [`map_frames`]).
    pub(super) fn unmap_frame(va: usize) -> Result<(), crate::XenError> {
        check_window(va)?;
        // SAFETY: the address is a window slot; nothing but its owner uses it, and the owner
        // asked for the unmapping.
        unsafe { crate::hypercall::update_va_mapping(va as u64, 0, UVMF_INVLPG)? };
        Ok(())
    }

    /// Maps `mfn` again at a window slot made by [`map_frames`] (after [`unmap_frame`]).
    pub(super) fn remap_frame(va: usize, mfn: Mfn, writable: bool) -> Result<(), crate::XenError> {
        check_window(va)?;
        let mut pte = (mfn << PAGE_SHIFT) | PTE_PRESENT | PTE_USER | PTE_ACCESSED;
        if writable {
            pte |= PTE_RW | PTE_DIRTY;
        }
        // SAFETY: the address is a window slot reserved for its owner, who asked for this.
        unsafe { crate::hypercall::update_va_mapping(va as u64, pte, UVMF_INVLPG)? };
        Ok(())
    }

    fn check_window(va: usize) -> Result<(), crate::XenError> {
        let start = WINDOW_START.load(Ordering::Acquire) as usize;
        let used = WINDOW_NEXT.load(Ordering::Acquire);
        if va < start || va >= start + used * PAGE_SIZE || !va.is_multiple_of(PAGE_SIZE) {
            return Err(crate::XenError::EINVAL);
        }
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    use super::*;

    extern "Rust" {
        /// The simulated machine frame of the host page holding `va`: defined by the simulator
        /// linked into the binary (`xenia-sim`), with exactly this signature.
        fn _xenia_virt_to_mfn(va: usize) -> Option<Mfn>;
        /// The host address of a simulated machine frame: defined by the simulator, likewise.
        fn _xenia_mfn_to_virt(mfn: Mfn) -> Option<usize>;
    }
    const _: crate::seam::VirtToMfn = _xenia_virt_to_mfn;
    const _: crate::seam::MfnToVirt = _xenia_mfn_to_virt;

    /// The simulator's machine frame of the host page holding `va` (given on first use).
    pub(super) fn virt_to_mfn(va: usize) -> Option<Mfn> {
        // SAFETY: the simulator defines the symbol with this signature; it has no
        // preconditions.
        unsafe { _xenia_virt_to_mfn(va) }
    }

    /// Maps simulated machine frames: they are host pages, so they must be contiguous there.
    pub(super) fn map_frames(mfns: &[Mfn], _writable: bool) -> Result<usize, crate::XenError> {
        // SAFETY: the simulator defines the symbol with this signature; it has no
        // preconditions.
        let host = |m: Mfn| unsafe { _xenia_mfn_to_virt(m) };
        let first =
            host(*mfns.first().ok_or(crate::XenError::EINVAL)?).ok_or(crate::XenError::EINVAL)?;
        for (i, &m) in mfns.iter().enumerate() {
            if host(m) != Some(first + i * PAGE_SIZE) {
                return Err(crate::XenError::EINVAL);
            }
        }
        Ok(first)
    }

    /// Simulated frames are host pages that stay where they are: nothing to unmap.
    pub(super) fn unmap_frame(_va: usize) -> Result<(), crate::XenError> {
        Ok(())
    }

    /// Simulated frames cannot move: `mfn` must still be the page at `va`.
    pub(super) fn remap_frame(va: usize, mfn: Mfn, _writable: bool) -> Result<(), crate::XenError> {
        // SAFETY: the simulator defines the symbol with this signature; it has no
        // preconditions.
        match unsafe { _xenia_mfn_to_virt(mfn) } {
            Some(v) if v == va => Ok(()),
            _ => Err(crate::XenError::EINVAL),
        }
    }
}

// The guest's own view of its memory (p2m, m2p, direct map), set up by the runtime's boot.
#[cfg(target_os = "none")]
pub use imp::{init_map_window, init_p2m, mfn_to_pfn, nr_pages, pfn_to_mfn, pfn_to_virt};

/// The machine frame of the page holding virtual address `va`: on Xen through the p2m list
/// (`va` must be in the direct map); built for the host, the frame the simulator gave that
/// host page.
#[inline]
pub fn virt_to_mfn(va: usize) -> Option<Mfn> {
    imp::virt_to_mfn(va)
}

/// Maps machine frames (not necessarily ours) contiguously and returns their virtual address.
///
/// On Xen, slots in the mapping window are never reused: this is for long-lived mappings made
/// at setup. Built for the host, the frames are simulated host pages, which must already be
/// contiguous.
#[inline]
pub fn map_frames(mfns: &[Mfn], writable: bool) -> Result<usize, crate::XenError> {
    imp::map_frames(mfns, writable)
}

/// Removes the mapping of a page that [`map_frames`] mapped (before a suspend: the toolstack
/// refuses to save page tables that map frames not the domain's own). Built for the host, a
/// no-op.
#[inline]
pub fn unmap_frame(va: usize) -> Result<(), crate::XenError> {
    imp::unmap_frame(va)
}

/// Maps `mfn` again at `va`, a page [`map_frames`] mapped and [`unmap_frame`] unmapped. Built
/// for the host, checks that the simulated frame is still the page at `va`.
#[inline]
pub fn remap_frame(va: usize, mfn: Mfn, writable: bool) -> Result<(), crate::XenError> {
    imp::remap_frame(va, mfn, writable)
}

/// Page-table entry bit: present.
pub const PTE_PRESENT: u64 = crate::abi::_PAGE_PRESENT;
/// Page-table entry bit: writable.
pub const PTE_RW: u64 = crate::abi::_PAGE_RW;
/// Page-table entry bit: user (64-bit PV kernels run in ring 3).
pub const PTE_USER: u64 = crate::abi::_PAGE_USER;
/// Page-table entry bit: accessed.
pub const PTE_ACCESSED: u64 = crate::abi::_PAGE_ACCESSED;
/// Page-table entry bit: dirty.
pub const PTE_DIRTY: u64 = crate::abi::_PAGE_DIRTY;
/// Page-table entry bit: large page (in an L2/L3 entry).
pub const PTE_PSE: u64 = crate::abi::_PAGE_PSE;
/// Page-table entry bits that hold the frame number.
pub const PTE_FRAME_MASK: u64 = crate::abi::PTE_FRAME_MASK;
/// `update_va_mapping` flag: invalidate the TLB entry of this address only.
pub const UVMF_INVLPG: u64 = crate::abi::UVMF_INVLPG;
