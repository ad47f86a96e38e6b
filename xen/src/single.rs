//! State of a single-vCPU guest, behind a cell that checks the assumption instead of promising
//! it.
//!
//! A Xenia guest runs on one vCPU without preemption, so a value that is not `Sync` (a task's
//! future, a `RefCell`-style IP stack) may live in a `static` as long as nothing uses it from a
//! second context. [`VcpuCell`] makes that a checked rule rather than an `unsafe impl Sync`:
//!
//! * **One context.** The cell records its owner on first use (or at construction, for
//!   [`VcpuCell::new_here`]) and refuses every other context. On the guest there is one vCPU and
//!   one context. On the host (`cargo test`) the context is the OS thread, so a second test
//!   thread touching the same state gets a clear panic instead of a data race.
//! * **No re-entrance.** Borrows are counted like a `RefCell`'s: a mutable borrow while any
//!   other borrow is live (for example from a trap handler, an event upcall, or a nested call
//!   that reaches the same state) is refused instead of creating a second `&mut`.
//! * **Handlers are another context.** Code run under [`enter_handler`] (the runtime's trap
//!   handler; an event upcall, should Xenia ever take them) counts as a context of its own, so
//!   it cannot touch the main flow's cells at all.
//!
//! The model is Embassy's `ThreadModeRawMutex`, which checks that it runs in thread mode rather
//! than assuming so. Values that are `Sync` already (atomics, `spin::Mutex` of `Send` data) do
//! not need this cell.

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

/// The context bit of a handler (a trap handler or event upcall interrupting the main flow).
const HANDLER: u64 = 1 << 63;

/// How many handlers are running on the (one) vCPU.
#[cfg(target_os = "none")]
static HANDLER_DEPTH: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// An opaque id of the context running now: on the guest 1 (the vCPU's main flow) or
/// `1 | HANDLER` (inside [`enter_handler`]). Never 0 (which means "no owner yet").
#[cfg(target_os = "none")]
fn current_context() -> u64 {
    if HANDLER_DEPTH.load(Ordering::Relaxed) > 0 {
        1 | HANDLER
    } else {
        1
    }
}

#[cfg(not(target_os = "none"))]
std::thread_local! {
    /// How many handlers this thread is running (host: only tests simulate handlers).
    static HANDLER_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// An opaque id of the context running now: on the host a per-thread number, with `HANDLER`
/// set inside [`enter_handler`]. Never 0 (which means "no owner yet").
#[cfg(not(target_os = "none"))]
fn current_context() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    std::thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    // During thread-local teardown the id is gone: use a number no owner ever has, so the
    // access is refused rather than mistaken for another thread's.
    let id = ID.try_with(|id| *id).unwrap_or(u64::MAX >> 1);
    let handler = HANDLER_DEPTH.try_with(|d| d.get() > 0).unwrap_or(false);
    if handler {
        id | HANDLER
    } else {
        id
    }
}

/// Marks the code until the guard drops as a handler (a trap handler, an event upcall): a
/// context of its own, so every [`VcpuCell`] owned by the interrupted main flow refuses it,
/// borrowed or not. (With event upcalls masked, as Xenia runs, only synchronous traps can
/// interrupt; the borrow counts alone catch those, and this makes the rule independent of
/// where the handler struck.)
pub fn enter_handler() -> HandlerGuard {
    #[cfg(target_os = "none")]
    HANDLER_DEPTH.fetch_add(1, Ordering::Relaxed);
    #[cfg(not(target_os = "none"))]
    HANDLER_DEPTH.with(|d| d.set(d.get() + 1));
    HandlerGuard {
        _not_send: PhantomData,
    }
}

/// Returned by [`enter_handler`]: the handler context lasts until this drops.
#[must_use = "the handler context ends when the guard drops"]
pub struct HandlerGuard {
    _not_send: PhantomData<*const ()>,
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        #[cfg(target_os = "none")]
        HANDLER_DEPTH.fetch_sub(1, Ordering::Relaxed);
        #[cfg(not(target_os = "none"))]
        HANDLER_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

impl fmt::Debug for HandlerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerGuard")
    }
}

/// Why a [`VcpuCell`] refused an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The cell belongs to another context (on the host: another thread).
    OtherContext {
        /// The owning context's id.
        owner: u64,
        /// The id of the context that tried.
        this: u64,
    },
    /// The value is mutably borrowed (a re-entrant use, e.g. from a handler or a nested call).
    BorrowedMut,
    /// The value is borrowed, so it cannot be borrowed mutably.
    Borrowed,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::OtherContext { owner, this } => write!(
                f,
                "single-vCPU state used from a second context (owned by context {owner:#x}, \
                 used from {this:#x}: another thread on the host, or a handler); the runtime \
                 runs on one vCPU, so on the host: one runtime per process, on one thread"
            ),
            Refused::BorrowedMut => {
                f.write_str("single-vCPU state re-entered while mutably borrowed")
            }
            Refused::Borrowed => f.write_str("single-vCPU state re-entered while borrowed"),
        }
    }
}

impl core::error::Error for Refused {}

/// A value used by one context only (the guest's vCPU; one thread on the host), with
/// `RefCell`-style borrows that refuse re-entrance. See the [module docs](self).
///
/// It is `Sync` whatever `T` is, so it may be a `static`: every access first checks that it
/// comes from the owning context.
///
/// Moving a claimed cell (possible when `T: Send`) keeps its owner: the new thread is refused,
/// and dropping it there leaks the value rather than dropping it in a foreign context.
pub struct VcpuCell<T> {
    /// The owning context (0: none yet).
    owner: AtomicU64,
    /// Borrow state, touched only by the owner: > 0 shared borrows, -1 mutably borrowed.
    borrows: Cell<isize>,
    /// How to make the value, until it is made (touched only by the owner).
    init: Cell<Option<fn() -> T>>,
    /// The value, initialised unless `init` is `Some`.
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: every access to `value` and `borrows` goes through `claim`, which lets only the
// owning context through; the owner is fixed once set. So neither is ever touched from two
// threads, whatever `T` is. Where the value can come from: `new` needs `T: Send` (the value may
// move from the constructing thread to the owner); `lazy` makes it in the owning context;
// `new_here` makes the constructing context the owner. `Drop` leaks rather than drops a
// non-`Send` value in a foreign context. The cell is `Send` only if `T` is.
unsafe impl<T> Sync for VcpuCell<T> {}

impl<T> VcpuCell<T> {
    /// A cell holding `value`, owned by the first context that uses it.
    pub const fn new(value: T) -> Self
    where
        T: Send,
    {
        VcpuCell {
            owner: AtomicU64::new(0),
            borrows: Cell::new(0),
            init: Cell::new(None),
            value: UnsafeCell::new(MaybeUninit::new(value)),
        }
    }

    /// A cell whose value `init` makes on first use, in (and owned by) the context that uses
    /// it first. This is how a `static` holds a value that is not `Send`.
    pub const fn lazy(init: fn() -> T) -> Self {
        VcpuCell {
            owner: AtomicU64::new(0),
            borrows: Cell::new(0),
            init: Cell::new(Some(init)),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// A cell holding `value`, owned by the context calling this (for a value that is not
    /// `Send`, made at run time).
    pub fn new_here(value: T) -> Self {
        VcpuCell {
            owner: AtomicU64::new(current_context()),
            borrows: Cell::new(0),
            init: Cell::new(None),
            value: UnsafeCell::new(MaybeUninit::new(value)),
        }
    }

    /// Checks that the calling context owns the cell, claiming it if nobody does yet.
    fn claim(&self) -> Result<(), Refused> {
        let this = current_context();
        match self
            .owner
            .compare_exchange(0, this, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(owner) if owner == this => Ok(()),
            Err(owner) => Err(Refused::OtherContext { owner, this }),
        }
    }

    /// Makes the value now if it is still lazy. Only for the owner with no borrow live; the
    /// cell counts as mutably borrowed meanwhile, so an `init` that reaches back into the cell
    /// is refused (and one that panics leaves the cell refusing every access).
    fn fill(&self) {
        debug_assert_eq!(self.borrows.get(), 0);
        if let Some(init) = self.init.get() {
            self.borrows.set(-1);
            let v = init();
            // SAFETY: only the owner gets here, with no borrow live, so nothing references
            // the value; it is uninitialised until now.
            unsafe { (*self.value.get()).write(v) };
            self.init.set(None);
            self.borrows.set(0);
        }
    }

    /// Where the (made) value is.
    fn value_ptr(&self) -> *mut T {
        self.value.get().cast::<T>()
    }

    /// Borrows the value mutably, or says why not: another context owns the cell, or the value
    /// is borrowed already (a re-entrant use).
    pub fn try_borrow_mut(&self) -> Result<VcpuRefMut<'_, T>, Refused> {
        self.claim()?;
        match self.borrows.get() {
            0 => {}
            -1 => return Err(Refused::BorrowedMut),
            _ => return Err(Refused::Borrowed),
        }
        self.fill();
        self.borrows.set(-1);
        Ok(VcpuRefMut {
            cell: self,
            value: self.value_ptr(),
            _not_send: PhantomData,
        })
    }

    /// Borrows the value mutably.
    ///
    /// # Panics
    /// If used from a second context (on the host: a second thread) or while borrowed.
    #[track_caller]
    pub fn borrow_mut(&self) -> VcpuRefMut<'_, T> {
        match self.try_borrow_mut() {
            Ok(r) => r,
            Err(e) => panic!("{e}: {}", core::any::type_name::<T>()),
        }
    }

    /// Borrows the value shared, or says why not: another context owns the cell, or the value
    /// is mutably borrowed (a re-entrant use).
    pub fn try_borrow(&self) -> Result<VcpuRef<'_, T>, Refused> {
        self.claim()?;
        let n = self.borrows.get();
        if n < 0 {
            return Err(Refused::BorrowedMut);
        }
        if n == 0 {
            self.fill();
        }
        self.borrows
            .set(n.checked_add(1).expect("too many borrows"));
        Ok(VcpuRef {
            cell: self,
            value: self.value_ptr(),
            _not_send: PhantomData,
        })
    }

    /// Borrows the value shared.
    ///
    /// # Panics
    /// If used from a second context (on the host: a second thread) or while mutably borrowed.
    #[track_caller]
    pub fn borrow(&self) -> VcpuRef<'_, T> {
        match self.try_borrow() {
            Ok(r) => r,
            Err(e) => panic!("{e}: {}", core::any::type_name::<T>()),
        }
    }

    /// Runs `f` with the value borrowed mutably.
    ///
    /// # Panics
    /// As [`borrow_mut`](Self::borrow_mut).
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.borrow_mut())
    }

    /// The value, through exclusive access (no check needed, but a lazy value is made here).
    pub fn get_mut(&mut self) -> &mut T {
        if let Some(init) = self.init.get_mut().take() {
            self.value.get_mut().write(init());
        }
        // SAFETY: `init` is `None`, so the value is initialised.
        unsafe { self.value.get_mut().assume_init_mut() }
    }
}

impl<T> Drop for VcpuCell<T> {
    fn drop(&mut self) {
        if self.init.get_mut().is_some() {
            return; // never made
        }
        let owner = *self.owner.get_mut();
        if owner != 0 && owner != current_context() {
            // Dropping a value in a context other than its owner's could race with what the
            // owner still holds (a non-`Send` value may share state with it): leak it instead.
            // A `Send` value could be dropped, but the cell cannot tell the two apart.
            return;
        }
        // SAFETY: the value is initialised (`init` is `None`) and dropped once, here.
        unsafe { self.value.get_mut().assume_init_drop() };
    }
}

impl<T: Default> Default for VcpuCell<T> {
    /// A lazily made default value, owned by the first context that uses it.
    fn default() -> Self {
        VcpuCell::lazy(T::default)
    }
}

impl<T> fmt::Debug for VcpuCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VcpuCell")
            .field("owner", &self.owner.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A shared borrow of a [`VcpuCell`]'s value. Not `Send`: it is released where it was taken.
pub struct VcpuRef<'a, T> {
    cell: &'a VcpuCell<T>,
    value: *const T,
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for VcpuRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the borrow count keeps the value alive and free of `&mut` while we exist.
        unsafe { &*self.value }
    }
}

impl<T> Drop for VcpuRef<'_, T> {
    fn drop(&mut self) {
        self.cell.borrows.set(self.cell.borrows.get() - 1);
    }
}

/// A mutable borrow of a [`VcpuCell`]'s value. Not `Send`: it is released where it was taken.
pub struct VcpuRefMut<'a, T> {
    cell: &'a VcpuCell<T>,
    value: *mut T,
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for VcpuRefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the borrow state (-1) makes this the only access while we exist.
        unsafe { &*self.value }
    }
}

impl<T> DerefMut for VcpuRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`.
        unsafe { &mut *self.value }
    }
}

impl<T> Drop for VcpuRefMut<'_, T> {
    fn drop(&mut self) {
        self.cell.borrows.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    #[test]
    fn the_owner_borrows_and_sees_its_writes() {
        let c = VcpuCell::new(5u32);
        *c.borrow_mut() += 1;
        assert_eq!(*c.borrow(), 6);
        let a = c.borrow();
        let b = c.borrow();
        assert_eq!(*a + *b, 12);
        drop((a, b));
        assert_eq!(c.with(|v| *v), 6);
    }

    #[test]
    fn a_second_thread_is_refused() {
        static CELL: VcpuCell<u32> = VcpuCell::new(1);
        *CELL.borrow_mut() = 2;
        let r = std::thread::spawn(|| CELL.try_borrow().map(|v| *v))
            .join()
            .unwrap();
        assert!(matches!(r, Err(Refused::OtherContext { .. })), "{r:?}");
        let r = std::thread::spawn(|| CELL.try_borrow_mut().map(|_| ()))
            .join()
            .unwrap();
        assert!(matches!(r, Err(Refused::OtherContext { .. })), "{r:?}");
        // The owner still can.
        assert_eq!(*CELL.borrow(), 2);
    }

    #[test]
    fn a_second_thread_panics_with_a_clear_message() {
        static CELL: VcpuCell<Vec<u8>> = VcpuCell::new(Vec::new());
        CELL.borrow_mut().push(1);
        let err = std::thread::spawn(|| CELL.borrow_mut().push(2))
            .join()
            .unwrap_err();
        let msg = err
            .downcast_ref::<std::string::String>()
            .expect("a formatted panic message");
        assert!(msg.contains("second context"), "{msg}");
        assert_eq!(*CELL.borrow(), [1]);
    }

    #[test]
    fn a_re_entrant_borrow_is_refused() {
        let c = VcpuCell::new(0u32);
        let g = c.borrow_mut();
        assert_eq!(c.try_borrow_mut().err(), Some(Refused::BorrowedMut));
        assert_eq!(c.try_borrow().err(), Some(Refused::BorrowedMut));
        drop(g);
        let s = c.borrow();
        assert_eq!(c.try_borrow_mut().err(), Some(Refused::Borrowed));
        drop(s);
        assert!(c.try_borrow_mut().is_ok());
    }

    #[test]
    #[should_panic(expected = "re-entered while mutably borrowed")]
    fn a_re_entrant_borrow_panics() {
        let c = VcpuCell::new(0u32);
        c.with(|_| c.with(|_| ()));
    }

    #[test]
    fn a_lazy_value_that_is_not_send_is_made_by_its_owner() {
        static CELL: VcpuCell<Option<Rc<RefCell<u32>>>> = VcpuCell::lazy(|| Some(Rc::default()));
        let rc = CELL.borrow().clone().unwrap();
        *rc.borrow_mut() = 7;
        assert_eq!(*CELL.borrow().as_ref().unwrap().borrow(), 7);
        let r = std::thread::spawn(|| CELL.try_borrow().map(|_| ()))
            .join()
            .unwrap();
        assert!(matches!(r, Err(Refused::OtherContext { .. })));
    }

    #[test]
    fn a_cell_made_here_belongs_here() {
        let c = VcpuCell::new_here(Rc::new(3));
        std::thread::scope(|s| {
            let r = s.spawn(|| c.try_borrow().map(|_| ())).join().unwrap();
            assert!(matches!(r, Err(Refused::OtherContext { .. })));
        });
        assert_eq!(**c.borrow(), 3);
    }

    #[test]
    fn a_handler_is_refused_even_when_nothing_is_borrowed() {
        let c = VcpuCell::new(0u32);
        *c.borrow_mut() = 1;
        {
            let _h = enter_handler();
            assert!(matches!(c.try_borrow(), Err(Refused::OtherContext { .. })));
            // A cell the handler itself brings up is its own.
            let mine = VcpuCell::new(2u32);
            assert_eq!(*mine.borrow(), 2);
        }
        assert_eq!(*c.borrow(), 1);
    }

    #[test]
    fn the_guest_and_host_contexts_are_distinct_per_thread() {
        let here = current_context();
        assert_ne!(here, 0);
        assert_eq!(here, current_context());
        let there = std::thread::spawn(current_context).join().unwrap();
        assert_ne!(here, there);
    }
}
