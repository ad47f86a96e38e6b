//! Raw access to the fields of a shared interface page (xenstore, console).

use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;

use crate::RingError;

/// The address of a shared page of `len` bytes, with checked field access by byte offset.
/// Never creates references to the page, only to individual index words (as atomics).
pub(crate) struct Page {
    base: NonNull<u8>,
    len: usize,
}

impl Page {
    /// # Safety
    ///
    /// `base` must point to `len` bytes of initialised memory, valid for reads and writes for
    /// as long as the value (and anything made from it) exists, which this program accesses
    /// only through raw pointers with volatile or atomic operations.
    pub(crate) unsafe fn new(base: NonNull<u8>, len: usize) -> Result<Self, RingError> {
        let addr = base.as_ptr() as usize;
        if !addr.is_multiple_of(4) {
            return Err(RingError::Misaligned { addr, align: 4 });
        }
        Ok(Page { base, len })
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Pointer to the field at byte offset `off`, of `size` bytes.
    ///
    /// Panics if the field does not lie inside the page (offsets are compile-time constants of
    /// this crate, so this is a bug in the crate, never caused by the peer).
    pub(crate) fn field<T>(&self, off: usize) -> NonNull<T> {
        assert!(off + core::mem::size_of::<T>() <= self.len);
        // SAFETY: `off` is inside the area of `len` bytes (checked above), so the result is in
        // bounds of the same allocation and non-null.
        unsafe { self.base.add(off).cast::<T>() }
    }

    /// The 32-bit word at byte offset `off`, as an atomic.
    pub(crate) fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4));
        let p = self.field::<u32>(off);
        // SAFETY: in bounds (checked by `field`), 4-aligned (base is 4-aligned and `off` a
        // multiple of 4), valid while `self` lives and accessed by this program only
        // atomically (contract of `new`). The reference covers only this word.
        unsafe { AtomicU32::from_ptr(p.as_ptr()) }
    }
}
