//! Monotonic time and wallclock for the app.

#[cfg(target_os = "none")]
pub(crate) fn now_ns() -> Option<u64> {
    let shared = crate::shared_info::get()?;
    // SAFETY: get() returns the mapped shared_info page.
    Some(unsafe { xenia_xen::time::system_time_ns(shared) })
}

#[cfg(not(target_os = "none"))]
pub(crate) fn now_ns() -> Option<u64> {
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
