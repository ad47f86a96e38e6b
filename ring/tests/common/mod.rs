//! Helpers shared by the integration tests: page-aligned shared areas and raw peer access.
#![allow(dead_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A zeroed, page-aligned heap area standing in for memory shared with another domain.
/// Tests touch it only through raw pointers (like a peer in another domain would).
pub struct Area {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the area is plain memory; the tests share it between threads only through the
// ring types and raw atomic/volatile accesses.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    pub fn new(len: usize) -> Area {
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("out of memory");
        Area { ptr, layout }
    }

    pub fn pages(order: u32) -> Area {
        Area::new(xenia_ring::ring_bytes(order))
    }

    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off + 4 <= self.len() && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked), the area lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }

    /// What a peer does: write a 32-bit index.
    pub fn write_u32(&self, off: usize, v: u32) {
        self.word(off).store(v, Ordering::SeqCst);
    }

    pub fn read_u32(&self, off: usize) -> u32 {
        self.word(off).load(Ordering::SeqCst)
    }

    /// What a peer does: write arbitrary bytes.
    pub fn write_bytes(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= self.len());
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: in bounds (checked).
            unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(off + i), b) };
        }
    }

    pub fn read_bytes(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.len());
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked).
            *b = unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off + i)) };
        }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}
