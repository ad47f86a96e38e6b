//! The console ring page (`struct xencons_interface` of Xen's `io/console.h`).
//!
//! The page holds two byte rings: `out` (guest output, 2048 bytes) and `in` (keyboard input,
//! 1024 bytes). [`ConsoleFront`] is the guest's view (writes `out`, reads `in`),
//! [`ConsoleBack`] the view of the console daemon in dom0 (reads `out`, writes `in`).
//!
//! ```
//! use core::ptr::NonNull;
//! use xenia_ring::console::{ConsoleBack, ConsoleFront};
//!
//! #[repr(C, align(4096))]
//! struct Page([u8; 4096]);
//! let page = NonNull::new(Box::into_raw(Box::new(Page([0; 4096])))).unwrap().cast::<u8>();
//! // SAFETY: the page is valid until freed below and only used through these views.
//! let (mut guest, mut dom0) =
//!     unsafe { (ConsoleFront::new(page).unwrap(), ConsoleBack::new(page).unwrap()) };
//!
//! assert_eq!(guest.write(b"Hello from Xenia\n"), Ok(17));
//! let mut buf = [0u8; 64];
//! assert_eq!(dom0.read_output(&mut buf), Ok(17));
//! assert_eq!(dom0.write_input(b"ls\r"), Ok(3));
//! assert_eq!(guest.read(&mut buf), Ok(3));
//!
//! drop((guest, dom0));
//! // SAFETY: allocated above; no view uses it any more.
//! drop(unsafe { Box::from_raw(page.cast::<Page>().as_ptr()) });
//! ```

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;

use crate::page::Page;
use crate::{ByteRingConsumer, ByteRingProducer, RingError};

/// Size of the input ring (`in`).
pub const IN_SIZE: usize = 1024;
/// Size of the output ring (`out`).
pub const OUT_SIZE: usize = 2048;

/// `XENCONS_RING_IDX`: a free-running console ring index.
pub type XenconsRingIdx = u32;

/// Layout of the console ring page, as `struct xencons_interface`.
///
/// This is the one definition of the page: `xenia_xen::abi` re-exports it and its layout test
/// checks it against Xen's C headers.
///
/// This type describes the layout only: the views never create a reference to it (the page is
/// shared with another domain). Offsets are exported as the `*_OFFSET` constants.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Input to the guest (keyboard).
    pub r#in: [u8; IN_SIZE],
    /// Output from the guest.
    pub out: [u8; OUT_SIZE],
    /// Consumer index of `in` (owned by the guest).
    pub in_cons: XenconsRingIdx,
    /// Producer index of `in` (owned by the backend).
    pub in_prod: XenconsRingIdx,
    /// Consumer index of `out` (owned by the backend).
    pub out_cons: XenconsRingIdx,
    /// Producer index of `out` (owned by the guest).
    pub out_prod: XenconsRingIdx,
}

impl Default for XenconsInterface {
    /// An all-zero page.
    fn default() -> Self {
        XenconsInterface {
            r#in: [0; IN_SIZE],
            out: [0; OUT_SIZE],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        }
    }
}

/// Offset of `in`.
pub const IN_OFFSET: usize = offset_of!(XenconsInterface, r#in);
/// Offset of `out`.
pub const OUT_OFFSET: usize = offset_of!(XenconsInterface, out);
/// Offset of `in_cons`.
pub const IN_CONS_OFFSET: usize = offset_of!(XenconsInterface, in_cons);
/// Offset of `in_prod`.
pub const IN_PROD_OFFSET: usize = offset_of!(XenconsInterface, in_prod);
/// Offset of `out_cons`.
pub const OUT_CONS_OFFSET: usize = offset_of!(XenconsInterface, out_cons);
/// Offset of `out_prod`.
pub const OUT_PROD_OFFSET: usize = offset_of!(XenconsInterface, out_prod);
/// `sizeof(struct xencons_interface)`.
pub const INTERFACE_SIZE: usize = size_of::<XenconsInterface>();

/// The guest's view of the console page: writes `out`, reads `in`.
pub struct ConsoleFront {
    page: Page,
    out: ByteRingProducer,
    input: ByteRingConsumer,
}

// SAFETY: only raw addresses of shared memory accessed with volatile/atomic operations.
unsafe impl Send for ConsoleFront {}

impl core::fmt::Debug for ConsoleFront {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConsoleFront")
            .field("page", &self.page.base())
            .field("out", &self.out)
            .field("in", &self.input)
            .finish()
    }
}

impl ConsoleFront {
    /// The guest's view of the console page at `page`. Our indices (`out_prod`, `in_cons`)
    /// are taken over from the page.
    ///
    /// # Errors
    ///
    /// [`RingError::Misaligned`] if `page` is not 4-aligned.
    ///
    /// # Safety
    ///
    /// `page` must point to [`INTERFACE_SIZE`] bytes of initialised memory, valid for reads
    /// and writes while the view exists, and accessed by this program only through these
    /// views (or raw volatile/atomic accesses), never through references.
    pub unsafe fn new(page: NonNull<u8>) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        let page = unsafe { Page::new(page, INTERFACE_SIZE)? };
        // SAFETY: the buffers and indices lie inside the page (contract of this function), do
        // not overlap each other and are only accessed through these views.
        let (out, input) = unsafe {
            (
                ByteRingProducer::new(
                    page.field(OUT_OFFSET),
                    OUT_SIZE as u32,
                    page.field(OUT_CONS_OFFSET),
                    page.field(OUT_PROD_OFFSET),
                )?,
                ByteRingConsumer::new(
                    page.field(IN_OFFSET),
                    IN_SIZE as u32,
                    page.field(IN_CONS_OFFSET),
                    page.field(IN_PROD_OFFSET),
                )?,
            )
        };
        Ok(ConsoleFront { page, out, input })
    }

    /// Write as much of `data` to the output ring as fits; return how much.
    ///
    /// # Errors
    ///
    /// [`RingError::ConsumerOverrun`] if the backend's `out_cons` is invalid.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, RingError> {
        self.out.write(data)
    }

    /// Read up to `buf.len()` bytes of input; return how many.
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if the backend's `in_prod` is invalid.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        self.input.read(buf)
    }

    /// The output ring.
    pub fn output(&mut self) -> &mut ByteRingProducer {
        &mut self.out
    }

    /// The input ring.
    pub fn input(&mut self) -> &mut ByteRingConsumer {
        &mut self.input
    }
}

/// The console backend's view of the console page: reads `out`, writes `in`.
pub struct ConsoleBack {
    page: Page,
    out: ByteRingConsumer,
    input: ByteRingProducer,
}

// SAFETY: only raw addresses of shared memory accessed with volatile/atomic operations.
unsafe impl Send for ConsoleBack {}

impl core::fmt::Debug for ConsoleBack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConsoleBack")
            .field("page", &self.page.base())
            .field("out", &self.out)
            .field("in", &self.input)
            .finish()
    }
}

impl ConsoleBack {
    /// The backend's view of the console page at `page`. Our indices (`out_cons`, `in_prod`)
    /// are taken over from the page.
    ///
    /// # Errors
    ///
    /// [`RingError::Misaligned`] if `page` is not 4-aligned.
    ///
    /// # Safety
    ///
    /// As for [`ConsoleFront::new`].
    pub unsafe fn new(page: NonNull<u8>) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        let page = unsafe { Page::new(page, INTERFACE_SIZE)? };
        // SAFETY: the buffers and indices lie inside the page (contract of this function), do
        // not overlap each other and are only accessed through these views.
        let (out, input) = unsafe {
            (
                ByteRingConsumer::new(
                    page.field(OUT_OFFSET),
                    OUT_SIZE as u32,
                    page.field(OUT_CONS_OFFSET),
                    page.field(OUT_PROD_OFFSET),
                )?,
                ByteRingProducer::new(
                    page.field(IN_OFFSET),
                    IN_SIZE as u32,
                    page.field(IN_CONS_OFFSET),
                    page.field(IN_PROD_OFFSET),
                )?,
            )
        };
        Ok(ConsoleBack { page, out, input })
    }

    /// Read up to `buf.len()` bytes of the guest's output; return how many.
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if the guest's `out_prod` is invalid.
    pub fn read_output(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        self.out.read(buf)
    }

    /// Write as much of `data` to the guest's input ring as fits; return how much.
    ///
    /// # Errors
    ///
    /// [`RingError::ConsumerOverrun`] if the guest's `in_cons` is invalid.
    pub fn write_input(&mut self, data: &[u8]) -> Result<usize, RingError> {
        self.input.write(data)
    }

    /// The output ring (guest to backend).
    pub fn output(&mut self) -> &mut ByteRingConsumer {
        &mut self.out
    }

    /// The input ring (backend to guest).
    pub fn input(&mut self) -> &mut ByteRingProducer {
        &mut self.input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(IN_OFFSET, 0);
        assert_eq!(OUT_OFFSET, 1024);
        assert_eq!(IN_CONS_OFFSET, 3072);
        assert_eq!(IN_PROD_OFFSET, 3076);
        assert_eq!(OUT_CONS_OFFSET, 3080);
        assert_eq!(OUT_PROD_OFFSET, 3084);
        assert_eq!(INTERFACE_SIZE, 3088);
    }
}
