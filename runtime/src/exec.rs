//! Running futures. (The event-driven executor with tasks and timers comes with event channels;
//! this is the minimal `block_on` the entry point needs.)

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

fn noop_raw() -> RawWaker {
    fn clone(_: *const ()) -> RawWaker {
        noop_raw()
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    RawWaker::new(core::ptr::null(), &VTABLE)
}

/// Runs a future to completion on the current vCPU.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    // SAFETY: the vtable's functions do nothing and never dereference the data pointer.
    let waker = unsafe { Waker::from_raw(noop_raw()) };
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        #[cfg(target_os = "none")]
        xenia_xen::sched::yield_now();
        #[cfg(not(target_os = "none"))]
        std::thread::yield_now();
    }
}
