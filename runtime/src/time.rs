//! Monotonic time and wallclock for the app.
//!
//! The guest's clock is Xen's system time plus an offset. The offset stays 0 until the domain
//! is suspended (`xl save`, a checkpoint, a migration): the time the domain spent suspended is
//! not counted (as Linux keeps it out of `CLOCK_MONOTONIC`), so a save that takes a minute does
//! not expire every idle timeout of the app, and a host whose system time is behind the one
//! the domain left cannot make the clock go backwards. The wallclock stays Xen's.

use core::sync::atomic::{AtomicI64, Ordering};

/// Nanoseconds added to Xen's system time (see the module docs).
static OFFSET_NS: AtomicI64 = AtomicI64::new(0);

/// After the domain ran again following a suspend: makes the guest's clock go on from
/// `before_ns` (its reading when it suspended). Returns the time left out, in ns (negative if
/// Xen's clock went backwards).
pub(crate) fn resume_clock(before_ns: u64) -> i64 {
    let Some(now) = xen_now_ns() else {
        return 0;
    };
    let guest = now as i64 + OFFSET_NS.load(Ordering::Relaxed);
    let skipped = guest - before_ns as i64;
    OFFSET_NS.fetch_sub(skipped, Ordering::Relaxed);
    skipped
}

/// A deadline on the guest's clock as Xen system time (for `SCHEDOP_poll`); 0 stays 0.
pub(crate) fn to_xen_ns(guest_ns: u64) -> u64 {
    if guest_ns == 0 {
        return 0;
    }
    (guest_ns as i64 - OFFSET_NS.load(Ordering::Relaxed)).max(1) as u64
}

/// The guest's clock (see the module docs).
pub(crate) fn now_ns() -> Option<u64> {
    xen_now_ns().map(|t| (t as i64 + OFFSET_NS.load(Ordering::Relaxed)).max(0) as u64)
}

#[cfg(target_os = "none")]
fn xen_now_ns() -> Option<u64> {
    let shared = crate::shared_info::get()?;
    // SAFETY: get() returns the mapped shared_info page.
    Some(unsafe { xenia_xen::time::system_time_ns(shared) })
}

#[cfg(not(target_os = "none"))]
fn xen_now_ns() -> Option<u64> {
    if let Some(shared) = crate::shared_info::get() {
        // SAFETY: the simulator's shared_info page lives as long as the simulated host.
        return Some(unsafe { xenia_xen::time::system_time_ns(shared) });
    }
    use std::sync::OnceLock;
    use std::time::Instant as StdInstant;
    static START: OnceLock<StdInstant> = OnceLock::new();
    Some(START.get_or_init(StdInstant::now).elapsed().as_nanos() as u64)
}

/// A point in monotonic time (Xen system time: nanoseconds since the host booted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Instant {
        Instant(now_ns().unwrap_or(0))
    }

    /// From nanoseconds of system time.
    pub fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    /// Nanoseconds of system time.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since `earlier` (zero if `earlier` is later).
    pub fn duration_since(self, earlier: Instant) -> core::time::Duration {
        core::time::Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time elapsed since this instant.
    pub fn elapsed(self) -> core::time::Duration {
        Instant::now().duration_since(self)
    }
}

impl core::ops::Add<core::time::Duration> for Instant {
    type Output = Instant;
    fn add(self, d: core::time::Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

/// Wallclock now, as nanoseconds since the Unix epoch (as the host's toolstack set it).
pub fn wallclock_ns() -> u64 {
    #[cfg(target_os = "none")]
    {
        match crate::shared_info::get() {
            // SAFETY: get() returns the mapped shared_info page.
            Some(s) => unsafe { xenia_xen::time::wallclock_ns(s) },
            None => 0,
        }
    }
    #[cfg(not(target_os = "none"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}
