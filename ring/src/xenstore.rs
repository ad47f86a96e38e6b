//! The xenstore ring page (`struct xenstore_domain_interface` of Xen's `io/xs_wire.h`).
//!
//! The page holds two byte rings: requests from the guest to xenstored, and replies plus
//! watch events back. [`XenstoreFront`] is the guest's view (writes requests, reads
//! responses), [`XenstoreBack`] the view of xenstored (reads requests, writes responses).
//!
//! ```
//! use core::ptr::NonNull;
//! use xenia_ring::xenstore::{XenstoreBack, XenstoreFront};
//!
//! #[repr(C, align(4096))]
//! struct Page([u8; 4096]);
//! let page = NonNull::new(Box::into_raw(Box::new(Page([0; 4096])))).unwrap().cast::<u8>();
//! // SAFETY: the page is valid until freed below and only used through these views.
//! let (mut guest, mut dom0) =
//!     unsafe { (XenstoreFront::new(page).unwrap(), XenstoreBack::new(page).unwrap()) };
//!
//! assert_eq!(guest.write_request(b"request"), Ok(7));
//! let mut buf = [0u8; 16];
//! assert_eq!(dom0.read_request(&mut buf), Ok(7));
//! assert_eq!(&buf[..7], b"request");
//! assert_eq!(dom0.write_response(b"reply"), Ok(5));
//! assert_eq!(guest.read_response(&mut buf), Ok(5));
//! assert_eq!(&buf[..5], b"reply");
//!
//! drop((guest, dom0));
//! // SAFETY: allocated above; no view uses it any more.
//! drop(unsafe { Box::from_raw(page.cast::<Page>().as_ptr()) });
//! ```

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::page::Page;
use crate::{ByteRingConsumer, ByteRingProducer, RingError};

/// Size of each of the two xenstore byte rings (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: usize = 1024;

/// `XENSTORE_RING_IDX`: a free-running xenstore ring index.
pub type XenstoreRingIdx = u32;

/// Layout of the xenstore ring page, as `struct xenstore_domain_interface` (Xen 4.17).
///
/// This is the one definition of the page: `xenia_xen::abi` re-exports it and its layout test
/// checks it against Xen's C headers.
///
/// This type describes the layout only: the views never create a reference to it (the page is
/// shared with another domain). Offsets are exported as the `*_OFFSET` constants.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [u8; RING_SIZE],
    /// Replies and watch events.
    pub rsp: [u8; RING_SIZE],
    /// Consumer index of `req` (owned by xenstored).
    pub req_cons: XenstoreRingIdx,
    /// Producer index of `req` (owned by the guest).
    pub req_prod: XenstoreRingIdx,
    /// Consumer index of `rsp` (owned by the guest).
    pub rsp_cons: XenstoreRingIdx,
    /// Producer index of `rsp` (owned by xenstored).
    pub rsp_prod: XenstoreRingIdx,
    /// Bitmap of features supported by the server (`XENSTORE_SERVER_FEATURE_*`).
    pub server_features: u32,
    /// Connection state (`XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`).
    pub connection: u32,
    /// Error reported by the server (`XENSTORE_ERROR_*`).
    pub error: u32,
}

impl Default for XenstoreDomainInterface {
    /// An all-zero page.
    fn default() -> Self {
        XenstoreDomainInterface {
            req: [0; RING_SIZE],
            rsp: [0; RING_SIZE],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: 0,
            error: 0,
        }
    }
}

/// Offset of `req`.
pub const REQ_OFFSET: usize = offset_of!(XenstoreDomainInterface, req);
/// Offset of `rsp`.
pub const RSP_OFFSET: usize = offset_of!(XenstoreDomainInterface, rsp);
/// Offset of `req_cons`.
pub const REQ_CONS_OFFSET: usize = offset_of!(XenstoreDomainInterface, req_cons);
/// Offset of `req_prod`.
pub const REQ_PROD_OFFSET: usize = offset_of!(XenstoreDomainInterface, req_prod);
/// Offset of `rsp_cons`.
pub const RSP_CONS_OFFSET: usize = offset_of!(XenstoreDomainInterface, rsp_cons);
/// Offset of `rsp_prod`.
pub const RSP_PROD_OFFSET: usize = offset_of!(XenstoreDomainInterface, rsp_prod);
/// Offset of `server_features`.
pub const SERVER_FEATURES_OFFSET: usize = offset_of!(XenstoreDomainInterface, server_features);
/// Offset of `connection`.
pub const CONNECTION_OFFSET: usize = offset_of!(XenstoreDomainInterface, connection);
/// Offset of `error`.
pub const ERROR_OFFSET: usize = offset_of!(XenstoreDomainInterface, error);
/// `sizeof(struct xenstore_domain_interface)`.
pub const INTERFACE_SIZE: usize = size_of::<XenstoreDomainInterface>();

/// Server feature bit: the ring can be reconnected (`XENSTORE_SERVER_FEATURE_RECONNECTION`).
pub const SERVER_FEATURE_RECONNECTION: u32 = 1;
/// Server feature bit: the `error` field is present (`XENSTORE_SERVER_FEATURE_ERROR`).
pub const SERVER_FEATURE_ERROR: u32 = 2;
/// `connection` value: the steady state (`XENSTORE_CONNECTED`).
pub const CONNECTED: u32 = 0;
/// `connection` value: reconnection in progress (`XENSTORE_RECONNECT`).
pub const RECONNECT: u32 = 1;
/// `error` value: no error (`XENSTORE_ERROR_NONE`).
pub const ERROR_NONE: u32 = 0;
/// `error` value: communication problem (`XENSTORE_ERROR_COMM`).
pub const ERROR_COMM: u32 = 1;
/// `error` value: invalid ring index (`XENSTORE_ERROR_RINGIDX`).
pub const ERROR_RINGIDX: u32 = 2;
/// `error` value: protocol violation, e.g. payload too long (`XENSTORE_ERROR_PROTO`).
pub const ERROR_PROTO: u32 = 3;

/// The guest's view of the xenstore page: writes requests, reads responses.
pub struct XenstoreFront {
    page: Page,
    req: ByteRingProducer,
    rsp: ByteRingConsumer,
}

// SAFETY: only raw addresses of shared memory accessed with volatile/atomic operations.
unsafe impl Send for XenstoreFront {}

impl core::fmt::Debug for XenstoreFront {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XenstoreFront")
            .field("page", &self.page.base())
            .field("req", &self.req)
            .field("rsp", &self.rsp)
            .finish()
    }
}

impl XenstoreFront {
    /// The guest's view of the xenstore page at `page`. Our indices (`req_prod`, `rsp_cons`)
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
        let size = RING_SIZE as u32;
        // SAFETY: the buffers and indices lie inside the page (contract of this function), do
        // not overlap each other and are only accessed through these views.
        let (req, rsp) = unsafe {
            (
                ByteRingProducer::new(
                    page.field(REQ_OFFSET),
                    size,
                    page.field(REQ_CONS_OFFSET),
                    page.field(REQ_PROD_OFFSET),
                )?,
                ByteRingConsumer::new(
                    page.field(RSP_OFFSET),
                    size,
                    page.field(RSP_CONS_OFFSET),
                    page.field(RSP_PROD_OFFSET),
                )?,
            )
        };
        Ok(XenstoreFront { page, req, rsp })
    }

    /// Write as much of `data` into the request ring as fits; return how much.
    ///
    /// # Errors
    ///
    /// [`RingError::ConsumerOverrun`] if xenstored's `req_cons` is invalid.
    pub fn write_request(&mut self, data: &[u8]) -> Result<usize, RingError> {
        self.req.write(data)
    }

    /// Read up to `buf.len()` bytes from the response ring; return how many.
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if xenstored's `rsp_prod` is invalid.
    pub fn read_response(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        self.rsp.read(buf)
    }

    /// The request ring (for `space`, `pending`, ...).
    pub fn requests(&mut self) -> &mut ByteRingProducer {
        &mut self.req
    }

    /// The response ring (for `available`, `peek`, ...).
    pub fn responses(&mut self) -> &mut ByteRingConsumer {
        &mut self.rsp
    }

    /// Re-read our indices from the page (after xenstored reset the ring on reconnection).
    pub fn resync(&mut self) {
        self.req.resync();
        self.rsp.resync();
    }

    /// The `server_features` bitmap.
    pub fn server_features(&self) -> u32 {
        self.page
            .word(SERVER_FEATURES_OFFSET)
            .load(Ordering::Acquire)
    }

    /// The `connection` field.
    pub fn connection(&self) -> u32 {
        self.page.word(CONNECTION_OFFSET).load(Ordering::Acquire)
    }

    /// Set the `connection` field (the guest writes [`RECONNECT`] to ask for a reset).
    pub fn set_connection(&mut self, value: u32) {
        self.page
            .word(CONNECTION_OFFSET)
            .store(value, Ordering::SeqCst);
    }

    /// The `error` field.
    pub fn error(&self) -> u32 {
        self.page.word(ERROR_OFFSET).load(Ordering::Acquire)
    }
}

/// xenstored's view of the xenstore page: reads requests, writes responses.
pub struct XenstoreBack {
    page: Page,
    req: ByteRingConsumer,
    rsp: ByteRingProducer,
}

// SAFETY: only raw addresses of shared memory accessed with volatile/atomic operations.
unsafe impl Send for XenstoreBack {}

impl core::fmt::Debug for XenstoreBack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XenstoreBack")
            .field("page", &self.page.base())
            .field("req", &self.req)
            .field("rsp", &self.rsp)
            .finish()
    }
}

impl XenstoreBack {
    /// xenstored's view of the xenstore page at `page`. Our indices (`req_cons`, `rsp_prod`)
    /// are taken over from the page.
    ///
    /// # Errors
    ///
    /// [`RingError::Misaligned`] if `page` is not 4-aligned.
    ///
    /// # Safety
    ///
    /// As for [`XenstoreFront::new`].
    pub unsafe fn new(page: NonNull<u8>) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        let page = unsafe { Page::new(page, INTERFACE_SIZE)? };
        let size = RING_SIZE as u32;
        // SAFETY: the buffers and indices lie inside the page (contract of this function), do
        // not overlap each other and are only accessed through these views.
        let (req, rsp) = unsafe {
            (
                ByteRingConsumer::new(
                    page.field(REQ_OFFSET),
                    size,
                    page.field(REQ_CONS_OFFSET),
                    page.field(REQ_PROD_OFFSET),
                )?,
                ByteRingProducer::new(
                    page.field(RSP_OFFSET),
                    size,
                    page.field(RSP_CONS_OFFSET),
                    page.field(RSP_PROD_OFFSET),
                )?,
            )
        };
        Ok(XenstoreBack { page, req, rsp })
    }

    /// Read up to `buf.len()` bytes from the request ring; return how many.
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if the guest's `req_prod` is invalid.
    pub fn read_request(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        self.req.read(buf)
    }

    /// Write as much of `data` into the response ring as fits; return how much.
    ///
    /// # Errors
    ///
    /// [`RingError::ConsumerOverrun`] if the guest's `rsp_cons` is invalid.
    pub fn write_response(&mut self, data: &[u8]) -> Result<usize, RingError> {
        self.rsp.write(data)
    }

    /// The request ring.
    pub fn requests(&mut self) -> &mut ByteRingConsumer {
        &mut self.req
    }

    /// The response ring.
    pub fn responses(&mut self) -> &mut ByteRingProducer {
        &mut self.rsp
    }

    /// Reset all four ring indices to 0 (what xenstored does on reconnection, before setting
    /// `connection` back to [`CONNECTED`]).
    pub fn reset_indices(&mut self) {
        for off in [
            REQ_CONS_OFFSET,
            REQ_PROD_OFFSET,
            RSP_CONS_OFFSET,
            RSP_PROD_OFFSET,
        ] {
            self.page.word(off).store(0, Ordering::Relaxed);
        }
        core::sync::atomic::fence(Ordering::SeqCst);
        self.req.resync();
        self.rsp.resync();
    }

    /// The `server_features` bitmap.
    pub fn server_features(&self) -> u32 {
        self.page
            .word(SERVER_FEATURES_OFFSET)
            .load(Ordering::Acquire)
    }

    /// Set the `server_features` bitmap.
    pub fn set_server_features(&mut self, value: u32) {
        self.page
            .word(SERVER_FEATURES_OFFSET)
            .store(value, Ordering::SeqCst);
    }

    /// The `connection` field.
    pub fn connection(&self) -> u32 {
        self.page.word(CONNECTION_OFFSET).load(Ordering::Acquire)
    }

    /// Set the `connection` field.
    pub fn set_connection(&mut self, value: u32) {
        self.page
            .word(CONNECTION_OFFSET)
            .store(value, Ordering::SeqCst);
    }

    /// The `error` field.
    pub fn error(&self) -> u32 {
        self.page.word(ERROR_OFFSET).load(Ordering::Acquire)
    }

    /// Set the `error` field.
    pub fn set_error(&mut self, value: u32) {
        self.page.word(ERROR_OFFSET).store(value, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(REQ_OFFSET, 0);
        assert_eq!(RSP_OFFSET, 1024);
        assert_eq!(REQ_CONS_OFFSET, 2048);
        assert_eq!(REQ_PROD_OFFSET, 2052);
        assert_eq!(RSP_CONS_OFFSET, 2056);
        assert_eq!(RSP_PROD_OFFSET, 2060);
        assert_eq!(SERVER_FEATURES_OFFSET, 2064);
        assert_eq!(CONNECTION_OFFSET, 2068);
        assert_eq!(ERROR_OFFSET, 2072);
        assert_eq!(INTERFACE_SIZE, 2076);
    }
}
