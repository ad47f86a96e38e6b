//! Time for deadlines: a [`Clock`] the server asks for "now" and for a timer, so the same loop
//! runs on xenia's clock in a guest and on a virtual one in tests.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

/// A monotonic clock with timers.
pub trait Clock {
    /// Time since some fixed start.
    fn now(&self) -> Duration;

    /// Completes once [`now`](Clock::now) has reached `at`.
    fn sleep_until(&self, at: Duration) -> impl Future<Output = ()>;
}

/// Runs `f` until `deadline` on `clock`: its output, or `None` if the deadline came first.
pub async fn until<C: Clock, F: Future>(clock: &C, deadline: Duration, f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut timer = pin!(clock.sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Xenia's clock (Xen system time) and timers.
#[cfg(feature = "xenia")]
#[derive(Debug, Clone, Copy, Default)]
pub struct XeniaClock;

#[cfg(feature = "xenia")]
impl Clock for XeniaClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(xenia::time::Instant::now().as_nanos())
    }

    fn sleep_until(&self, at: Duration) -> impl Future<Output = ()> {
        let ns = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        xenia::sleep_until(xenia::time::Instant::from_nanos(ns))
    }
}
