//! Request/response rings as defined by Xen's `io/ring.h`.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{fence, AtomicU32, Ordering};

use crate::{RingError, RingMessage};

/// The page size of all Xen ring protocols (4 KiB, whatever the guest's own page size).
pub const XEN_PAGE_SIZE: usize = 4096;

/// Size of the shared ring header: `req_prod`, `req_event`, `rsp_prod`, `rsp_event` (4 bytes
/// each), a 4-byte private union and 44 bytes of padding. The entries start right after it
/// (for entries aligned to at most 64 bytes, i.e. all real protocols).
pub const RING_HEADER_SIZE: usize = 64;

/// Number of bytes of a shared ring made of `2^order` contiguous pages.
///
/// ```
/// assert_eq!(xenia_ring::ring_bytes(0), 4096);
/// assert_eq!(xenia_ring::ring_bytes(2), 16384);
/// ```
pub const fn ring_bytes(order: u32) -> usize {
    XEN_PAGE_SIZE << order
}

/// Round down to a power of two (0 stays 0), as Xen's `__RD32`.
const fn round_down_pow2(x: u32) -> u32 {
    if x == 0 {
        0
    } else {
        1 << (31 - x.leading_zeros())
    }
}

/// Number of entries of a ring in an area of `area_bytes` bytes whose entries start at `offset`.
const fn entries_in(area_bytes: usize, offset: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || area_bytes < offset {
        return 0;
    }
    let n = (area_bytes - offset) / entry_size;
    let n = if n > u32::MAX as usize {
        u32::MAX
    } else {
        n as u32
    };
    round_down_pow2(n)
}

/// Number of entries of a shared ring of `ring_bytes` bytes whose entries (the C union of
/// request and response) are `entry_size` bytes each.
///
/// This is Xen's `__CONST_RING_SIZE` / `__RING_SIZE`: as many entries as fit after the
/// 64-byte header, rounded down to a power of two. Unlike the C macro it returns 0 instead of
/// wrapping around when the area is smaller than the header or `entry_size` is 0, and it
/// saturates at 2^31 entries for areas of more than 2^32 entries.
///
/// ```
/// use xenia_ring::{ring_bytes, ring_size};
/// // blkif: 112-byte requests, one page -> 32 entries.
/// assert_eq!(ring_size(ring_bytes(0), 112), 32);
/// // netif tx: 12-byte requests -> 256 entries.
/// assert_eq!(ring_size(ring_bytes(0), 12), 256);
/// ```
pub const fn ring_size(ring_bytes: usize, entry_size: usize) -> u32 {
    entries_in(ring_bytes, RING_HEADER_SIZE, entry_size)
}

/// One ring entry: the C union of request and response.
#[repr(C)]
#[allow(dead_code)] // Only used for its layout.
union Entry<Req: Copy, Rsp: Copy> {
    req: Req,
    rsp: Rsp,
}

/// A shared request/response ring area: the header and the entries, in memory shared with
/// the peer domain.
///
/// This is only a description of the memory (address, length and the number of entries); it
/// creates no references to the shared memory. Turn it into a [`FrontRing`] or [`BackRing`]
/// to use it.
///
/// The layout is that of Xen's `struct NAME_sring` from `DEFINE_RING_TYPES(NAME, Req, Rsp)`.
///
/// # Example
///
/// The layout of a ring with 112-byte requests and 16-byte responses (the sizes of blkif),
/// over two pages:
///
/// ```
/// use core::ptr::NonNull;
/// use xenia_ring::{ring_bytes, SharedRing};
///
/// type Blk = SharedRing<[u64; 14], [u64; 2]>;
/// assert_eq!(Blk::ENTRY_SIZE, 112);
/// assert_eq!(Blk::ENTRIES_OFFSET, 64);
/// assert_eq!(Blk::size_for(ring_bytes(1)), 64); // (8192 - 64) / 112 = 72 -> 64
///
/// #[repr(C, align(4096))]
/// struct Pages([u8; 8192]);
/// let area = NonNull::new(Box::into_raw(Box::new(Pages([0xff; 8192])))).unwrap();
/// // SAFETY: the pages stay allocated until the end and are only used through the ring.
/// let mut shared = unsafe { Blk::new(area.cast(), ring_bytes(1)) }.unwrap();
/// shared.init(); // SHARED_RING_INIT
/// assert_eq!((shared.req_prod(), shared.req_event()), (0, 1));
/// assert_eq!(shared.size(), 64);
/// drop(shared);
/// // SAFETY: allocated above, no longer used.
/// drop(unsafe { Box::from_raw(area.as_ptr()) });
/// ```
pub struct SharedRing<Req, Rsp> {
    base: NonNull<u8>,
    len: usize,
    size: u32,
    _marker: PhantomData<(Req, Rsp)>,
}

// SAFETY: a `SharedRing` is a handle onto memory that is shared with another domain anyway;
// all accesses through it are volatile or atomic and none relies on thread-local state. Moving
// it to another thread is no different from using it where it was created.
unsafe impl<Req, Rsp> Send for SharedRing<Req, Rsp> {}

impl<Req, Rsp> fmt::Debug for SharedRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRing")
            .field("base", &self.base)
            .field("len", &self.len)
            .field("size", &self.size)
            .finish()
    }
}

impl<Req: RingMessage, Rsp: RingMessage> SharedRing<Req, Rsp> {
    /// Byte offset of `req_prod` in the header.
    pub const REQ_PROD_OFFSET: usize = 0;
    /// Byte offset of `req_event` in the header.
    pub const REQ_EVENT_OFFSET: usize = 4;
    /// Byte offset of `rsp_prod` in the header.
    pub const RSP_PROD_OFFSET: usize = 8;
    /// Byte offset of `rsp_event` in the header.
    pub const RSP_EVENT_OFFSET: usize = 12;
    /// Byte offset of the 4-byte private union (`pvt`) in the header.
    pub const PVT_OFFSET: usize = 16;
    /// Size of one entry: the size of the C union of `Req` and `Rsp`.
    pub const ENTRY_SIZE: usize = size_of::<Entry<Req, Rsp>>();
    /// Alignment of one entry: the alignment of the C union of `Req` and `Rsp`.
    pub const ENTRY_ALIGN: usize = align_of::<Entry<Req, Rsp>>();
    /// Byte offset of the first entry (`offsetof(struct NAME_sring, ring)`).
    pub const ENTRIES_OFFSET: usize = RING_HEADER_SIZE.next_multiple_of(Self::ENTRY_ALIGN);
    /// Alignment the shared area must have.
    pub const ALIGN: usize = if Self::ENTRY_ALIGN > 4 {
        Self::ENTRY_ALIGN
    } else {
        4
    };

    /// Number of entries a ring of `area_bytes` bytes would have (Xen's `__RING_SIZE`).
    pub const fn size_for(area_bytes: usize) -> u32 {
        entries_in(area_bytes, Self::ENTRIES_OFFSET, Self::ENTRY_SIZE)
    }

    /// Describe the shared ring at `area`, `len` bytes long (e.g. `ring_bytes(order)`).
    ///
    /// This neither reads nor writes the memory; use [`init`](Self::init) (frontend, on a new
    /// ring) or attach to a ring the peer initialised.
    ///
    /// # Errors
    ///
    /// [`RingError::Misaligned`] if `area` is not aligned to [`ALIGN`](Self::ALIGN);
    /// [`RingError::BadSize`] if not even one entry fits (or the entry type is zero-sized).
    ///
    /// # Safety
    ///
    /// `area` must point to `len` bytes of initialised memory that stays valid, readable and
    /// writable for as long as the returned value and any ring made from it exist. That memory
    /// may be shared with another domain (which can change it at any time), but within this
    /// program it must only be accessed through rings made from `SharedRing`s (or through raw
    /// pointers with volatile/atomic accesses): never through Rust references.
    pub unsafe fn new(area: NonNull<u8>, len: usize) -> Result<Self, RingError> {
        let addr = area.as_ptr() as usize;
        if !addr.is_multiple_of(Self::ALIGN) {
            return Err(RingError::Misaligned {
                addr,
                align: Self::ALIGN,
            });
        }
        let size = Self::size_for(len);
        if size == 0 {
            return Err(RingError::BadSize { len });
        }
        Ok(SharedRing {
            base: area,
            len,
            size,
            _marker: PhantomData,
        })
    }

    /// Initialise the shared header as Xen's `SHARED_RING_INIT`: both producer indices 0, both
    /// event indices 1, private and padding bytes zeroed. Entries are left alone.
    pub fn init(&mut self) {
        self.init_at(0);
    }

    /// Initialise the shared header with both producer indices at `index` and both event
    /// indices at `index + 1` (what [`init`](Self::init) does for 0). Rings attached at a
    /// non-zero index are used for reconnection and to test index wrap-around.
    pub fn init_at(&mut self, index: u32) {
        self.index(Self::REQ_PROD_OFFSET)
            .store(index, Ordering::Relaxed);
        self.index(Self::RSP_PROD_OFFSET)
            .store(index, Ordering::Relaxed);
        self.index(Self::REQ_EVENT_OFFSET)
            .store(index.wrapping_add(1), Ordering::Relaxed);
        self.index(Self::RSP_EVENT_OFFSET)
            .store(index.wrapping_add(1), Ordering::Relaxed);
        for off in Self::PVT_OFFSET..RING_HEADER_SIZE {
            // SAFETY: `off < 64 <= len` (at least the header fits, checked in `new`), and the
            // area is valid for writes by the contract of `new`.
            unsafe { ptr::write_volatile(self.base.as_ptr().add(off), 0) };
        }
        // Make the initialised header visible before whatever publishes the ring to the peer.
        fence(Ordering::Release);
    }

    /// Number of entries (a power of two).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Start of the shared area.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Length of the shared area in bytes, as given to [`new`](Self::new).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a `SharedRing` holds at least one entry.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Current value of the shared `req_prod` (as published by the frontend).
    pub fn req_prod(&self) -> u32 {
        self.index(Self::REQ_PROD_OFFSET).load(Ordering::Relaxed)
    }

    /// Current value of the shared `req_event` (as set by the backend).
    pub fn req_event(&self) -> u32 {
        self.index(Self::REQ_EVENT_OFFSET).load(Ordering::Relaxed)
    }

    /// Current value of the shared `rsp_prod` (as published by the backend).
    pub fn rsp_prod(&self) -> u32 {
        self.index(Self::RSP_PROD_OFFSET).load(Ordering::Relaxed)
    }

    /// Current value of the shared `rsp_event` (as set by the frontend).
    pub fn rsp_event(&self) -> u32 {
        self.index(Self::RSP_EVENT_OFFSET).load(Ordering::Relaxed)
    }

    /// The header index at byte offset `off` (one of the `*_OFFSET` constants).
    fn index(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off <= Self::RSP_EVENT_OFFSET && off.is_multiple_of(4));
        // SAFETY: `off + 4 <= 16 <= len`, the base is at least 4-aligned (checked in `new`),
        // so the pointer is valid and aligned for a u32 for as long as `self` lives (contract
        // of `new`). The peer accesses these aligned 32-bit words only as whole words, and this
        // program only through `AtomicU32`s; the reference covers these 4 bytes only.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast::<u32>()) }
    }

    /// Pointer to the entry for the free-running index `idx`.
    fn entry(&self, idx: u32) -> *mut u8 {
        let slot = (idx & (self.size - 1)) as usize;
        // SAFETY: `slot < size` and `ENTRIES_OFFSET + size * ENTRY_SIZE <= len` by the
        // computation of `size` in `new`, so the result stays inside the area.
        unsafe {
            self.base
                .as_ptr()
                .add(Self::ENTRIES_OFFSET + slot * Self::ENTRY_SIZE)
        }
    }

    /// Copy a request out of the slot for `idx` (the slot may be changing under us).
    fn read_request(&self, idx: u32) -> Req {
        // SAFETY: `entry` is in bounds and aligned to ENTRY_ALIGN >= align_of::<Req>() (the
        // area is aligned to it and ENTRIES_OFFSET and ENTRY_SIZE are multiples of it). The
        // memory is initialised (contract of `new`) and `Req: RingMessage` is valid for any
        // bit pattern. The volatile read copies the bytes into a local value.
        unsafe { ptr::read_volatile(self.entry(idx).cast::<Req>()) }
    }

    /// Copy a response out of the slot for `idx` (the slot may be changing under us).
    fn read_response(&self, idx: u32) -> Rsp {
        // SAFETY: as in `read_request`, with `Rsp: RingMessage`.
        unsafe { ptr::read_volatile(self.entry(idx).cast::<Rsp>()) }
    }

    /// Write a request into the slot for `idx`.
    fn write_request(&self, idx: u32, req: Req) {
        // SAFETY: in bounds and aligned as in `read_request`; the area is writable (contract
        // of `new`).
        unsafe { ptr::write_volatile(self.entry(idx).cast::<Req>(), req) }
    }

    /// Write a response into the slot for `idx`.
    fn write_response(&self, idx: u32, rsp: Rsp) {
        // SAFETY: as in `write_request`.
        unsafe { ptr::write_volatile(self.entry(idx).cast::<Rsp>(), rsp) }
    }
}

/// Xen's notification rule: notify iff the peer's event index lies in `(old, new]`.
fn needs_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The frontend half of a request/response ring: produces requests, consumes responses.
///
/// The frontend never has more requests outstanding than the ring has entries, and a
/// response is only accepted for a request that was published: a backend whose `rsp_prod`
/// runs further ahead (or moves backwards) puts the ring into a permanent
/// [`RingError::ProducerOverrun`] state.
///
/// # Example
///
/// A frontend and a backend talking over one page:
///
/// ```
/// use core::ptr::NonNull;
/// use xenia_ring::{BackRing, FrontRing, SharedRing, XEN_PAGE_SIZE};
///
/// #[repr(C, align(4096))]
/// struct Page([u8; XEN_PAGE_SIZE]);
/// let page = NonNull::new(Box::into_raw(Box::new(Page([0; XEN_PAGE_SIZE])))).unwrap();
///
/// // SAFETY: the page is valid until freed below and only used through these rings.
/// let (shared_f, shared_b) = unsafe {
///     (
///         SharedRing::<u64, u32>::new(page.cast(), XEN_PAGE_SIZE).unwrap(),
///         SharedRing::<u64, u32>::new(page.cast(), XEN_PAGE_SIZE).unwrap(),
///     )
/// };
/// let mut front = FrontRing::init(shared_f); // SHARED_RING_INIT + FRONT_RING_INIT
/// let mut back = BackRing::new(shared_b); // BACK_RING_INIT
/// assert_eq!(front.size(), 256); // (4096 - 64) / 8 = 504, rounded down
///
/// front.push_request(41).unwrap();
/// assert!(front.push_requests_and_check_notify()); // the backend waits for requests
///
/// while let Some(req) = back.poll_request().unwrap() {
///     back.push_response(req as u32 + 1).unwrap();
/// }
/// assert!(back.push_responses_and_check_notify());
///
/// assert_eq!(front.poll_response(), Ok(Some(42)));
/// assert_eq!(front.poll_response(), Ok(None));
/// assert_eq!(front.final_check_for_responses(), Ok(false)); // nothing more: go to sleep
///
/// drop((front, back));
/// // SAFETY: allocated above with Box::new; no ring uses it any more.
/// drop(unsafe { Box::from_raw(page.as_ptr()) });
/// ```
pub struct FrontRing<Req, Rsp> {
    shared: SharedRing<Req, Rsp>,
    req_prod_pvt: u32,
    req_prod_published: u32,
    rsp_cons: u32,
    error: Option<RingError>,
}

impl<Req, Rsp> fmt::Debug for FrontRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("shared", &self.shared)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod_published", &self.req_prod_published)
            .field("rsp_cons", &self.rsp_cons)
            .field("error", &self.error)
            .finish()
    }
}

impl<Req: RingMessage, Rsp: RingMessage> FrontRing<Req, Rsp> {
    /// Xen's `FRONT_RING_INIT`: a frontend with both private indices at 0. Does not touch the
    /// shared memory (see [`init`](Self::init)).
    pub fn new(shared: SharedRing<Req, Rsp>) -> Self {
        Self::attach(shared, 0)
    }

    /// Xen's `XEN_FRONT_RING_INIT`: initialise the shared header ([`SharedRing::init`]) and
    /// create a frontend at index 0. This is what a frontend does with a freshly allocated
    /// ring page before granting it to the backend.
    pub fn init(mut shared: SharedRing<Req, Rsp>) -> Self {
        shared.init();
        Self::new(shared)
    }

    /// Xen's `FRONT_RING_ATTACH`: a frontend with both private indices at `index`, for a
    /// shared ring whose indices are already there (see [`SharedRing::init_at`]).
    pub fn attach(shared: SharedRing<Req, Rsp>, index: u32) -> Self {
        FrontRing {
            shared,
            req_prod_pvt: index,
            req_prod_published: index,
            rsp_cons: index,
            error: None,
        }
    }

    /// Number of entries of the ring.
    pub fn size(&self) -> u32 {
        self.shared.size
    }

    /// The shared area.
    pub fn shared(&self) -> &SharedRing<Req, Rsp> {
        &self.shared
    }

    /// Give the shared area back.
    pub fn into_shared(self) -> SharedRing<Req, Rsp> {
        self.shared
    }

    /// Index the next request will get (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Index of the next response to consume (`rsp_cons`).
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// The protocol error this ring saw, if any.
    pub fn error(&self) -> Option<RingError> {
        self.error
    }

    /// Number of requests whose responses have not been consumed yet (pushed or published).
    pub fn outstanding_requests(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Number of free request slots (Xen's `RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        self.size() - self.outstanding_requests()
    }

    /// Whether no request slot is free (Xen's `RING_FULL`).
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Number of pushed requests not yet published to the backend.
    pub fn unpublished_requests(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_published)
    }

    /// Write `req` into the next free slot and return its ring index. The backend sees it
    /// only after [`push_requests`](Self::push_requests) or
    /// [`push_requests_and_check_notify`](Self::push_requests_and_check_notify).
    ///
    /// # Errors
    ///
    /// [`RingError::Full`] if no slot is free (consume responses first).
    pub fn push_request(&mut self, req: Req) -> Result<u32, RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        let idx = self.req_prod_pvt;
        self.shared.write_request(idx, req);
        self.req_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// Publish the pushed requests (Xen's `RING_PUSH_REQUESTS`): write barrier, then update
    /// the shared `req_prod`.
    pub fn push_requests(&mut self) {
        fence(Ordering::Release);
        self.shared
            .index(SharedRing::<Req, Rsp>::REQ_PROD_OFFSET)
            .store(self.req_prod_pvt, Ordering::Relaxed);
        self.req_prod_published = self.req_prod_pvt;
    }

    /// Publish the pushed requests and tell whether the backend must be notified (Xen's
    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`): true iff the backend's `req_event` lies in
    /// `(old req_prod, new req_prod]`, i.e. it asked to be woken for one of the new requests.
    ///
    /// The previous `req_prod` is taken from our own record of what we published, not from
    /// the shared page (which the peer could have changed); for a well-behaved peer this is
    /// the same value.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod_published;
        let new = self.req_prod_pvt;
        self.push_requests();
        // The backend must see the new requests before we look at req_event.
        fence(Ordering::SeqCst);
        let event = self
            .shared
            .index(SharedRing::<Req, Rsp>::REQ_EVENT_OFFSET)
            .load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// Read and validate the backend's `rsp_prod`; return the number of unconsumed responses.
    fn check_responses(&mut self) -> Result<u32, RingError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let prod = self
            .shared
            .index(SharedRing::<Req, Rsp>::RSP_PROD_OFFSET)
            .load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(self.rsp_cons);
        let max_ahead = self.req_prod_published.wrapping_sub(self.rsp_cons);
        if avail > max_ahead {
            let e = RingError::ProducerOverrun {
                producer: prod,
                consumer: self.rsp_cons,
                max_ahead,
            };
            self.error = Some(e);
            return Err(e);
        }
        Ok(avail)
    }

    /// Number of responses the backend published that we have not consumed yet (Xen's
    /// `RING_HAS_UNCONSUMED_RESPONSES`).
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if the backend published more responses than requests
    /// were published, or moved `rsp_prod` backwards (the ring then stays in this state).
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.check_responses()
    }

    /// Take the next response off the ring, if there is one.
    ///
    /// The response is copied out of shared memory with a volatile read; the caller owns a
    /// private copy the backend cannot change any more.
    ///
    /// # Errors
    ///
    /// As [`unconsumed_responses`](Self::unconsumed_responses).
    pub fn poll_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.check_responses()? == 0 {
            return Ok(None);
        }
        // Read the entry only after reading rsp_prod.
        fence(Ordering::Acquire);
        let rsp = self.shared.read_response(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Xen's `RING_FINAL_CHECK_FOR_RESPONSES`: whether responses are waiting; if none are, set
    /// `rsp_event` so that the backend notifies us for the next one, and check again (a
    /// response may have arrived in between). `false` means it is safe to sleep until the
    /// next event.
    ///
    /// # Errors
    ///
    /// As [`unconsumed_responses`](Self::unconsumed_responses).
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.check_responses()? != 0 {
            return Ok(true);
        }
        self.shared
            .index(SharedRing::<Req, Rsp>::RSP_EVENT_OFFSET)
            .store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.check_responses()? != 0)
    }
}

/// The backend half of a request/response ring: consumes requests, produces responses.
///
/// Requests are only accepted while they fit into the slots not occupied by requests still
/// waiting for their response: a frontend whose `req_prod` runs further ahead (or moves
/// backwards) puts the ring into a permanent [`RingError::ProducerOverrun`] state.
///
/// # Example
///
/// A backend attaching to a ring the frontend initialised and filled; the backend answers
/// each request, and notifies only if the frontend asked for it:
///
/// ```
/// use core::ptr::NonNull;
/// use xenia_ring::{BackRing, FrontRing, SharedRing, XEN_PAGE_SIZE};
///
/// #[repr(C, align(4096))]
/// struct Page([u8; XEN_PAGE_SIZE]);
/// let page = NonNull::new(Box::into_raw(Box::new(Page([0; XEN_PAGE_SIZE])))).unwrap().cast();
/// // SAFETY: the page stays allocated until the end and is only used through the rings.
/// let (sf, sb) = unsafe {
///     (
///         SharedRing::<u32, u32>::new(page, XEN_PAGE_SIZE).unwrap(),
///         SharedRing::<u32, u32>::new(page, XEN_PAGE_SIZE).unwrap(),
///     )
/// };
/// let mut front = FrontRing::init(sf);
/// for x in 1..=3 {
///     front.push_request(x).unwrap();
/// }
/// front.push_requests();
///
/// let mut back = BackRing::attach(sb, 0); // BACK_RING_ATTACH at index 0
/// assert_eq!(back.unconsumed_requests(), Ok(3));
/// while let Some(x) = back.poll_request().unwrap() {
///     back.push_response(x * 10).unwrap();
/// }
/// // The frontend never armed rsp_event beyond its initial value 1: notify.
/// assert!(back.push_responses_and_check_notify());
/// assert_eq!(back.final_check_for_requests(), Ok(false));
///
/// let mut got = Vec::new();
/// while let Some(r) = front.poll_response().unwrap() {
///     got.push(r);
/// }
/// assert_eq!(got, [10, 20, 30]);
/// drop((front, back));
/// // SAFETY: allocated above, no longer used.
/// drop(unsafe { Box::from_raw(page.cast::<Page>().as_ptr()) });
/// ```
pub struct BackRing<Req, Rsp> {
    shared: SharedRing<Req, Rsp>,
    rsp_prod_pvt: u32,
    rsp_prod_published: u32,
    req_cons: u32,
    error: Option<RingError>,
}

impl<Req, Rsp> fmt::Debug for BackRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("shared", &self.shared)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod_published", &self.rsp_prod_published)
            .field("req_cons", &self.req_cons)
            .field("error", &self.error)
            .finish()
    }
}

impl<Req: RingMessage, Rsp: RingMessage> BackRing<Req, Rsp> {
    /// Xen's `BACK_RING_INIT`: a backend with both private indices at 0, for a ring the
    /// frontend initialised. Does not touch the shared memory.
    pub fn new(shared: SharedRing<Req, Rsp>) -> Self {
        Self::attach(shared, 0)
    }

    /// Xen's `BACK_RING_ATTACH`: a backend with both private indices at `index`.
    pub fn attach(shared: SharedRing<Req, Rsp>, index: u32) -> Self {
        BackRing {
            shared,
            rsp_prod_pvt: index,
            rsp_prod_published: index,
            req_cons: index,
            error: None,
        }
    }

    /// Number of entries of the ring.
    pub fn size(&self) -> u32 {
        self.shared.size
    }

    /// The shared area.
    pub fn shared(&self) -> &SharedRing<Req, Rsp> {
        &self.shared
    }

    /// Give the shared area back.
    pub fn into_shared(self) -> SharedRing<Req, Rsp> {
        self.shared
    }

    /// Index the next response will get (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Index of the next request to consume (`req_cons`).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// The protocol error this ring saw, if any.
    pub fn error(&self) -> Option<RingError> {
        self.error
    }

    /// Number of consumed requests that have no response yet.
    pub fn pending_responses(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Number of pushed responses not yet published to the frontend.
    pub fn unpublished_responses(&self) -> u32 {
        self.rsp_prod_pvt.wrapping_sub(self.rsp_prod_published)
    }

    /// Read and validate the frontend's `req_prod`; return the number of unconsumed requests.
    fn check_requests(&mut self) -> Result<u32, RingError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let prod = self
            .shared
            .index(SharedRing::<Req, Rsp>::REQ_PROD_OFFSET)
            .load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(self.req_cons);
        // Slots still holding consumed requests (whose responses are due) cannot be reused.
        let max_ahead = self.size() - self.pending_responses();
        if avail > max_ahead {
            let e = RingError::ProducerOverrun {
                producer: prod,
                consumer: self.req_cons,
                max_ahead,
            };
            self.error = Some(e);
            return Err(e);
        }
        Ok(avail)
    }

    /// Number of requests the frontend published that we have not consumed yet (Xen's
    /// `RING_HAS_UNCONSUMED_REQUESTS`).
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if the frontend published more requests than there are
    /// free slots (Xen's `RING_REQUEST_PROD_OVERFLOW`) or moved `req_prod` backwards (the ring
    /// then stays in this state).
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.check_requests()
    }

    /// Take the next request off the ring, if there is one.
    ///
    /// The request is copied out of shared memory with a volatile read; the caller owns a
    /// private copy the frontend cannot change any more.
    ///
    /// # Errors
    ///
    /// As [`unconsumed_requests`](Self::unconsumed_requests).
    pub fn poll_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.check_requests()? == 0 {
            return Ok(None);
        }
        // Read the entry only after reading req_prod.
        fence(Ordering::Acquire);
        let req = self.shared.read_request(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Write `rsp` into the slot of the oldest consumed request that has no response yet and
    /// return its ring index. The frontend sees it only after
    /// [`push_responses`](Self::push_responses) or
    /// [`push_responses_and_check_notify`](Self::push_responses_and_check_notify).
    ///
    /// # Errors
    ///
    /// [`RingError::NoPendingRequest`] if every consumed request already has its response.
    pub fn push_response(&mut self, rsp: Rsp) -> Result<u32, RingError> {
        if self.pending_responses() == 0 {
            return Err(RingError::NoPendingRequest);
        }
        let idx = self.rsp_prod_pvt;
        self.shared.write_response(idx, rsp);
        self.rsp_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// Publish the pushed responses (Xen's `RING_PUSH_RESPONSES`): write barrier, then update
    /// the shared `rsp_prod`.
    pub fn push_responses(&mut self) {
        fence(Ordering::Release);
        self.shared
            .index(SharedRing::<Req, Rsp>::RSP_PROD_OFFSET)
            .store(self.rsp_prod_pvt, Ordering::Relaxed);
        self.rsp_prod_published = self.rsp_prod_pvt;
    }

    /// Publish the pushed responses and tell whether the frontend must be notified (Xen's
    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`): true iff the frontend's `rsp_event` lies in
    /// `(old rsp_prod, new rsp_prod]`.
    ///
    /// The previous `rsp_prod` is taken from our own record of what we published.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod_published;
        let new = self.rsp_prod_pvt;
        self.push_responses();
        // The frontend must see the new responses before we look at rsp_event.
        fence(Ordering::SeqCst);
        let event = self
            .shared
            .index(SharedRing::<Req, Rsp>::RSP_EVENT_OFFSET)
            .load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// Xen's `RING_FINAL_CHECK_FOR_REQUESTS`: whether requests are waiting; if none are, set
    /// `req_event` so that the frontend notifies us for the next one, and check again. `false`
    /// means it is safe to sleep until the next event.
    ///
    /// # Errors
    ///
    /// As [`unconsumed_requests`](Self::unconsumed_requests).
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.check_requests()? != 0 {
            return Ok(true);
        }
        self.shared
            .index(SharedRing::<Req, Rsp>::REQ_EVENT_OFFSET)
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.check_requests()? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_down() {
        assert_eq!(round_down_pow2(0), 0);
        assert_eq!(round_down_pow2(1), 1);
        assert_eq!(round_down_pow2(3), 2);
        assert_eq!(round_down_pow2(504), 256);
        assert_eq!(round_down_pow2(u32::MAX), 1 << 31);
        for k in 0..32 {
            assert_eq!(round_down_pow2(1 << k), 1 << k);
            if k > 0 {
                assert_eq!(round_down_pow2((1 << k) - 1 + (1 << k)), 1 << k);
            }
        }
    }

    #[test]
    fn ring_size_edges() {
        assert_eq!(ring_size(0, 8), 0);
        assert_eq!(ring_size(63, 8), 0);
        assert_eq!(ring_size(64, 8), 0);
        assert_eq!(ring_size(72, 8), 1);
        assert_eq!(ring_size(4096, 0), 0);
        assert_eq!(ring_size(4096, 4032), 1);
        assert_eq!(ring_size(4096, 4033), 0);
        assert_eq!(ring_size(usize::MAX, 1), 1 << 31);
    }

    #[test]
    fn entry_layout() {
        type S = SharedRing<[u8; 3], u64>;
        assert_eq!(S::ENTRY_SIZE, 8);
        assert_eq!(S::ENTRY_ALIGN, 8);
        assert_eq!(S::ENTRIES_OFFSET, 64);
        type T = SharedRing<[u16; 5], [u8; 7]>;
        assert_eq!(T::ENTRY_SIZE, 10);
        assert_eq!(T::ENTRY_ALIGN, 2);
        assert_eq!(T::ALIGN, 4);
        #[derive(Clone, Copy)]
        #[repr(C, align(128))]
        struct Big([u8; 128]);
        // SAFETY: a byte array with no padding.
        unsafe impl RingMessage for Big {}
        type U = SharedRing<Big, u8>;
        assert_eq!(U::ENTRIES_OFFSET, 128);
        assert_eq!(U::size_for(4096), 16);
    }

    #[test]
    fn notify_rule() {
        assert!(needs_notify(0, 1, 1));
        assert!(!needs_notify(0, 1, 2));
        assert!(!needs_notify(1, 1, 1));
        assert!(needs_notify(u32::MAX, 1, 0));
        assert!(needs_notify(u32::MAX, 1, 1));
        assert!(!needs_notify(u32::MAX, 1, u32::MAX));
    }
}
