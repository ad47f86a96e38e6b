//! Grant tables (v1): let a backend domain map or copy pages of ours.
//!
//! The table is an array of 8-byte entries in frames that Xen gives us
//! (`GNTTABOP_setup_table`) and we map. To grant a page we write the grantee and the frame,
//! then (after a write barrier) the type and flags; Xen sets `GTF_reading`/`GTF_writing` in our
//! entry while the backend has it mapped. Ending access must check those bits atomically: a
//! grant still in use is reported, never freed (the backend could still write into the page).
//!
//! [`GrantPool`] keeps a set of pages granted to one backend across many requests, so the hot
//! path of a driver never grants or revokes. [`GrantedRing`] is the shared ring of a split
//! driver: `2^order` pages allocated, granted and torn down together (Linux's
//! `xenbus_setup_ring` / `xenbus_teardown_ring`).
//!
//! Memory the backend may still map is never returned to the allocator: it is leaked on
//! purpose, logged and counted in [`GrantTable::leaked_pages`].

use crate::abi::GuestHandle;
use crate::abi::{
    GNTTABOP_query_size, GNTTABOP_setup_table, GTF_permit_access, GTF_reading, GTF_readonly,
    GTF_writing, GnttabQuerySize, GnttabSetupTable, GrantEntryV1, GNTTAB_NR_RESERVED_ENTRIES,
};
use crate::error::XenError;
use crate::events::{DomId, DOMID_SELF};
use crate::hypercall;
use crate::memory::{self, Mfn, PAGE_SIZE};
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU16, AtomicUsize, Ordering};
use spin::Mutex;

pub use crate::abi::GrantRef;

/// Entries per table frame.
pub const ENTRIES_PER_FRAME: u32 = (PAGE_SIZE / core::mem::size_of::<GrantEntryV1>()) as u32;

/// Grant table errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// A hypercall failed.
    Xen(XenError),
    /// `GNTTABOP_*` returned a non-zero `GNTST_*` status.
    Status(i16),
    /// Every entry is in use and the table cannot grow.
    Exhausted,
    /// The backend still has the grant mapped: the entry was not freed.
    InUse(GrantRef),
    /// The reference is not one we handed out.
    BadRef(GrantRef),
    /// The page is not in the direct map (has no machine frame we know).
    NotMapped,
    /// No memory for the pages to grant.
    NoMemory,
}

impl From<XenError> for GrantError {
    fn from(e: XenError) -> Self {
        GrantError::Xen(e)
    }
}

impl core::fmt::Display for GrantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GrantError::Xen(e) => write!(f, "grant table: {e}"),
            GrantError::Status(s) => write!(f, "grant table: status {s}"),
            GrantError::Exhausted => write!(f, "grant table: no free entries"),
            GrantError::InUse(r) => {
                write!(f, "grant table: ref {r} is still mapped by the backend")
            }
            GrantError::BadRef(r) => write!(f, "grant table: ref {r} is not ours"),
            GrantError::NotMapped => write!(f, "grant table: page has no machine frame"),
            GrantError::NoMemory => write!(f, "grant table: out of memory for pages to grant"),
        }
    }
}

impl core::error::Error for GrantError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            GrantError::Xen(e) => Some(e),
            _ => None,
        }
    }
}

struct Inner {
    /// Virtual address of each mapped table frame.
    frames: Vec<usize>,
    max_frames: u32,
    free: Vec<GrantRef>,
    in_use: Vec<bool>,
}

/// The domain's grant table.
pub struct GrantTable {
    inner: Mutex<Inner>,
    /// Pages deliberately leaked because a backend still mapped them when we let go.
    leaked: AtomicUsize,
}

// Send and Sync without any `unsafe impl`: the table frames are addresses (`usize`), the
// bookkeeping is behind a lock. Kept so by this check.
static_assertions::assert_impl_all!(GrantTable: Send, Sync);

impl GrantTable {
    /// Sets up the table with `frames` frames (grown later on demand).
    pub fn new(frames: u32) -> Result<GrantTable, GrantError> {
        let mut q = GnttabQuerySize {
            dom: DOMID_SELF,
            ..Default::default()
        };
        // SAFETY: q is a live gnttab_query_size.
        unsafe { hypercall::grant_table_op(GNTTABOP_query_size, &mut q, 1) }?;
        if q.status != 0 {
            return Err(GrantError::Status(q.status));
        }
        let t = GrantTable {
            inner: Mutex::new(Inner {
                frames: Vec::new(),
                max_frames: q.max_nr_frames.max(1),
                free: Vec::new(),
                in_use: Vec::new(),
            }),
            leaked: AtomicUsize::new(0),
        };
        t.grow_to(frames.clamp(1, q.max_nr_frames.max(1)))?;
        Ok(t)
    }

    fn grow_to(&self, nr_frames: u32) -> Result<(), GrantError> {
        let mut inner = self.inner.lock();
        let have = inner.frames.len() as u32;
        if nr_frames <= have {
            return Ok(());
        }
        if nr_frames > inner.max_frames {
            return Err(GrantError::Exhausted);
        }
        let mut mfns: Vec<u64> = alloc::vec![0; nr_frames as usize];
        let mut arg = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames,
            status: 0,
            frame_list: GuestHandle::new(mfns.as_mut_ptr()),
        };
        // SAFETY: arg points at `mfns`, which has room for nr_frames entries.
        unsafe { hypercall::grant_table_op(GNTTABOP_setup_table, &mut arg, 1) }?;
        if arg.status != 0 {
            return Err(GrantError::Status(arg.status));
        }
        // Frames we already mapped keep their mapping; map only the new ones.
        for &mfn in &mfns[have as usize..] {
            let va = memory::map_frames(&[mfn], true)?;
            inner.frames.push(va);
        }
        let first = if have == 0 {
            GNTTAB_NR_RESERVED_ENTRIES
        } else {
            have * ENTRIES_PER_FRAME
        };
        let end = nr_frames * ENTRIES_PER_FRAME;
        inner.in_use.resize(end as usize, false);
        // Hand out low refs first.
        inner.free.extend((first..end).rev());
        Ok(())
    }

    /// Before the domain suspends: unmaps the table frames (a save refuses page tables that
    /// map frames that are not the domain's). No grant may be touched until [`Self::reattach`].
    pub fn detach(&self) -> Result<(), GrantError> {
        let inner = self.inner.lock();
        for &va in &inner.frames {
            memory::unmap_frame(va)?;
        }
        Ok(())
    }

    /// After the domain runs again: asks Xen for the table frames again
    /// (`GNTTABOP_setup_table` with as many frames as before) and maps them where they were.
    ///
    /// After a cancelled suspend the frames and their entries are the same and nothing else
    /// changes. In a new domain (restore, migration) the table Xen gives is empty: every grant
    /// made before is gone (`new_domain`), and the refs handed out stay reserved until their
    /// owners end access (which then succeeds, as no backend maps them any more).
    pub fn reattach(&self, new_domain: bool) -> Result<(), GrantError> {
        let inner = self.inner.lock();
        let nr_frames = inner.frames.len() as u32;
        if nr_frames == 0 {
            return Ok(());
        }
        let mut mfns: Vec<u64> = alloc::vec![0; nr_frames as usize];
        let mut arg = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames,
            status: 0,
            frame_list: GuestHandle::new(mfns.as_mut_ptr()),
        };
        // SAFETY: arg points at `mfns`, which has room for nr_frames entries.
        unsafe { hypercall::grant_table_op(GNTTABOP_setup_table, &mut arg, 1) }?;
        if arg.status != 0 {
            return Err(GrantError::Status(arg.status));
        }
        for (&va, &mfn) in inner.frames.iter().zip(&mfns) {
            memory::remap_frame(va, mfn, true)?;
        }
        if new_domain {
            log::info!(
                "grant table: new domain, {} grant(s) from before are void",
                inner.in_use.iter().filter(|&&u| u).count()
            );
        }
        Ok(())
    }

    fn entry(inner: &Inner, r: GrantRef) -> *mut GrantEntryV1 {
        let frame = inner.frames[(r / ENTRIES_PER_FRAME) as usize];
        (frame as *mut GrantEntryV1).wrapping_add((r % ENTRIES_PER_FRAME) as usize)
    }

    fn flags(e: *mut GrantEntryV1) -> &'static AtomicU16 {
        // SAFETY: `flags` is the first, 2-aligned field of a live entry in a mapped table frame;
        // Xen updates it atomically.
        unsafe { AtomicU16::from_ptr(&raw mut (*e).flags) }
    }

    /// Grants `domid` access to machine frame `mfn`, read-only or read-write.
    pub fn grant_frame(
        &self,
        domid: DomId,
        mfn: Mfn,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let r = loop {
            let next = {
                let mut inner = self.inner.lock();
                inner.free.pop()
            };
            match next {
                Some(r) => break r,
                None => {
                    let frames = self.inner.lock().frames.len() as u32;
                    self.grow_to(frames + 1)?;
                }
            }
        };
        let mut inner = self.inner.lock();
        inner.in_use[r as usize] = true;
        let e = Self::entry(&inner, r);
        // SAFETY: e is our entry r, not in use by any backend (its flags are 0).
        unsafe {
            (&raw mut (*e).domid).write_volatile(domid);
            (&raw mut (*e).frame).write_volatile(mfn as u32);
        }
        fence(Ordering::Release);
        let flags = GTF_permit_access | if readonly { GTF_readonly } else { 0 };
        Self::flags(e).store(flags, Ordering::Release);
        Ok(r)
    }

    /// Grants `domid` access to the page at `page` (a page-aligned address in our memory).
    pub fn grant_page(
        &self,
        domid: DomId,
        page: NonNull<u8>,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let mfn = memory::virt_to_mfn(page.as_ptr() as usize).ok_or(GrantError::NotMapped)?;
        self.grant_frame(domid, mfn, readonly)
    }

    /// Ends access through `r`. If the backend still has it mapped the entry stays granted and
    /// [`GrantError::InUse`] is returned: try again after the backend unmapped it.
    pub fn end_access(&self, r: GrantRef) -> Result<(), GrantError> {
        let mut inner = self.inner.lock();
        if r as usize >= inner.in_use.len() || !inner.in_use[r as usize] {
            return Err(GrantError::BadRef(r));
        }
        let flags = Self::flags(Self::entry(&inner, r));
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if cur & (GTF_reading | GTF_writing) != 0 {
                return Err(GrantError::InUse(r));
            }
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        inner.in_use[r as usize] = false;
        inner.free.push(r);
        Ok(())
    }

    /// Whether the remote domain has `r` mapped right now (Xen sets `GTF_reading` /
    /// `GTF_writing` in the entry while it is mapped). False for a ref not in use.
    pub fn is_mapped(&self, r: GrantRef) -> bool {
        let inner = self.inner.lock();
        if r as usize >= inner.in_use.len() || !inner.in_use[r as usize] {
            return false;
        }
        Self::flags(Self::entry(&inner, r)).load(Ordering::Acquire) & (GTF_reading | GTF_writing)
            != 0
    }

    /// Entries currently free (without growing the table).
    pub fn free_entries(&self) -> usize {
        self.inner.lock().free.len()
    }

    /// Entries the table has now (including the ones Xen reserves), and how many of them are
    /// granted; `None` if the table is locked right now (this never waits). For diagnostics.
    pub fn usage(&self) -> Option<(usize, usize)> {
        let inner = self.inner.try_lock()?;
        Some((
            inner.in_use.len(),
            inner.in_use.iter().filter(|&&u| u).count(),
        ))
    }

    /// Pages given up on: a [`GrantedRing`] or [`GrantPool`] let go of them while the backend
    /// still mapped them, so they were leaked rather than returned to the allocator.
    pub fn leaked_pages(&self) -> usize {
        self.leaked.load(Ordering::Relaxed)
    }

    fn count_leak(&self, pages: usize, what: &str) {
        self.leaked.fetch_add(pages, Ordering::Relaxed);
        log::warn!("grant table: {pages} page(s) of a {what} still mapped by the backend: leaked");
    }
}

/// A page-aligned, zeroed page of our memory.
pub struct Page {
    ptr: NonNull<u8>,
}

// SAFETY: a Page owns its allocation.
unsafe impl Send for Page {}

impl Page {
    const LAYOUT: Layout = match Layout::from_size_align(PAGE_SIZE, PAGE_SIZE) {
        Ok(l) => l,
        Err(_) => panic!("page layout"),
    };

    /// Allocates a zeroed page.
    pub fn new() -> Option<Page> {
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { alloc_zeroed(Self::LAYOUT) }).map(|ptr| Page { ptr })
    }

    /// The page's address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The page's address, non-null.
    pub fn as_non_null(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::LAYOUT) }
    }
}

/// A page granted to a backend, borrowed from a [`GrantPool`].
pub struct GrantedPage {
    page: Page,
    gref: GrantRef,
}

impl GrantedPage {
    /// The grant reference the backend uses.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The page's address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.page.as_ptr()
    }
}

/// Pages granted once to one backend and reused across requests.
pub struct GrantPool<'t> {
    table: &'t GrantTable,
    domid: DomId,
    readonly: bool,
    free: Vec<GrantedPage>,
    total: usize,
}

impl<'t> GrantPool<'t> {
    /// Allocates and grants `pages` pages to `domid`.
    pub fn new(
        table: &'t GrantTable,
        domid: DomId,
        pages: usize,
        readonly: bool,
    ) -> Result<Self, GrantError> {
        let mut pool = GrantPool {
            table,
            domid,
            readonly,
            free: Vec::with_capacity(pages),
            total: 0,
        };
        for _ in 0..pages {
            pool.add_page()?;
        }
        Ok(pool)
    }

    fn add_page(&mut self) -> Result<(), GrantError> {
        let page = Page::new().ok_or(GrantError::Exhausted)?;
        let gref = self
            .table
            .grant_page(self.domid, page.as_non_null(), self.readonly)?;
        self.free.push(GrantedPage { page, gref });
        self.total += 1;
        Ok(())
    }

    /// Takes a granted page, if one is free.
    pub fn take(&mut self) -> Option<GrantedPage> {
        self.free.pop()
    }

    /// Returns a page to the pool (it stays granted).
    pub fn give_back(&mut self, page: GrantedPage) {
        self.free.push(page);
    }

    /// Pages free in the pool.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Pages the pool owns, free or lent.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Ends every free page's grant and frees it; pages still mapped by the backend are kept
    /// (and returned as an error count) rather than freed under its feet.
    pub fn release(&mut self) -> Result<(), usize> {
        let mut kept = Vec::new();
        for p in self.free.drain(..) {
            match self.table.end_access(p.gref) {
                Ok(()) => self.total -= 1,
                Err(_) => kept.push(p),
            }
        }
        let n = kept.len();
        self.free = kept;
        if n == 0 {
            Ok(())
        } else {
            Err(n)
        }
    }
}

impl Drop for GrantPool<'_> {
    fn drop(&mut self) {
        if let Err(n) = self.release() {
            // Pages still mapped by the backend must not return to the allocator.
            self.table.count_leak(n, "grant pool");
            for p in self.free.drain(..) {
                core::mem::forget(p);
            }
        }
    }
}

/// The shared ring of a split driver: `2^order` contiguous, page-aligned, zeroed pages of
/// ours, each granted read-write to the backend.
///
/// Dropping it (or [`teardown`](Self::teardown)) ends every grant and frees the pages, unless
/// the backend still maps one of them: then the whole area is leaked, never returned to the
/// allocator (counted in [`GrantTable::leaked_pages`] and logged), since the backend could
/// still write into it. Callers never decide this themselves.
pub struct GrantedRing<'t> {
    table: &'t GrantTable,
    ptr: NonNull<u8>,
    order: u32,
    grefs: Vec<GrantRef>,
    /// False once torn down (the area freed or leaked).
    live: bool,
}

// SAFETY: the ring owns its allocation; the table is Sync.
unsafe impl Send for GrantedRing<'_> {}

impl<'t> GrantedRing<'t> {
    /// The most pages a ring may have: `2^MAX_ORDER`.
    pub const MAX_ORDER: u32 = 8;

    fn layout(order: u32) -> Option<Layout> {
        Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE).ok()
    }

    /// Allocates `2^order` zeroed pages and grants each to `domid`, writable. On error
    /// everything done so far is undone (and nothing the backend could map is freed).
    pub fn new(table: &'t GrantTable, domid: DomId, order: u32) -> Result<Self, GrantError> {
        if order > Self::MAX_ORDER {
            return Err(GrantError::NoMemory);
        }
        let layout = Self::layout(order).ok_or(GrantError::NoMemory)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(GrantError::NoMemory)?;
        let pages = 1usize << order;
        let mut ring = GrantedRing {
            table,
            ptr,
            order,
            grefs: Vec::with_capacity(pages),
            live: true,
        };
        for i in 0..pages {
            // SAFETY: page i lies inside the allocation of `pages` pages.
            let page = unsafe { ring.ptr.add(i * PAGE_SIZE) };
            // On error, dropping `ring` ends the grants made so far (and leaks the area if
            // one of them is already mapped).
            let g = table.grant_page(domid, page, false)?;
            ring.grefs.push(g);
        }
        Ok(ring)
    }

    /// The first page's address.
    pub fn as_non_null(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The first page's address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The ring's size in bytes (`PAGE_SIZE << order`).
    pub fn len(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// Never true: a ring has at least one page (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its page order: the ring has `2^order` pages.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The grant of each page, in order (what the frontend writes to `ring-ref*`).
    pub fn grefs(&self) -> &[GrantRef] {
        &self.grefs
    }

    /// Ends the grants and frees the pages; false if the backend still mapped a page (the
    /// pages were then leaked). The same as dropping, with the outcome.
    pub fn teardown(mut self) -> bool {
        self.end()
    }

    /// Ends every grant; frees the area if all ended, else leaks it. True if freed.
    fn end(&mut self) -> bool {
        if !self.live {
            return false;
        }
        self.live = false;
        let mut all = true;
        for g in self.grefs.drain(..) {
            all &= self.table.end_access(g).is_ok();
        }
        let Some(layout) = Self::layout(self.order) else {
            return false;
        };
        if all {
            // SAFETY: allocated in `new` with this layout; no grant of it is left, so no
            // backend can map it; nothing else points into it once the ring is gone.
            unsafe { dealloc(self.ptr.as_ptr(), layout) };
        } else {
            self.table.count_leak(1 << self.order, "granted ring");
        }
        all
    }
}

impl Drop for GrantedRing<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

impl core::fmt::Debug for GrantedRing<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GrantedRing")
            .field("ptr", &self.ptr)
            .field("order", &self.order)
            .field("grefs", &self.grefs)
            .finish()
    }
}
