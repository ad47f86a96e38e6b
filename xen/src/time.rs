//! Time: Xen system time (nanoseconds since the host booted, monotonic) and wallclock.
//!
//! Xen publishes, per vCPU, a snapshot `(tsc_timestamp, system_time)` and the TSC scaling
//! `(tsc_to_system_mul, tsc_shift)`; the guest extrapolates with the TSC. The snapshot is
//! updated under a version counter: odd while being written, so readers retry until they see
//! the same even version before and after reading.
//!
//! The page is read through the crate's own [`SharedInfo`] and [`VcpuTimeInfo`] (Xen 4.17's
//! layout, checked against the C headers by `xen/tests/layout.rs`).

use crate::abi::{SharedInfo, VcpuTimeInfo};
use core::sync::atomic::{fence, Ordering};

/// Reads the CPU's time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; PV guests may execute it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Converts a TSC delta to nanoseconds with Xen's scaling parameters.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta.checked_shl(shift as u32).unwrap_or(0)
    } else {
        delta.checked_shr(shift.unsigned_abs() as u32).unwrap_or(0)
    };
    ((d as u128 * mul as u128) >> 32) as u64
}

/// A consistent copy of a vCPU's time parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeSnapshot {
    /// TSC value at `system_time`.
    pub tsc_timestamp: u64,
    /// System time (ns) at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC → ns multiplier (32.32 fixed point).
    pub mul: u32,
    /// TSC pre-shift.
    pub shift: i8,
}

impl TimeSnapshot {
    /// Reads the snapshot with the version-retry protocol.
    ///
    /// # Safety
    /// `info` must point to a live `vcpu_time_info` (in the shared_info page).
    pub unsafe fn read(info: *const VcpuTimeInfo) -> TimeSnapshot {
        loop {
            // SAFETY: the caller guarantees `info`; Xen writes it concurrently, hence volatile.
            unsafe {
                let v1 = (&raw const (*info).version).read_volatile();
                fence(Ordering::Acquire);
                let s = TimeSnapshot {
                    tsc_timestamp: (&raw const (*info).tsc_timestamp).read_volatile(),
                    system_time: (&raw const (*info).system_time).read_volatile(),
                    mul: (&raw const (*info).tsc_to_system_mul).read_volatile(),
                    shift: (&raw const (*info).tsc_shift).read_volatile(),
                };
                fence(Ordering::Acquire);
                let v2 = (&raw const (*info).version).read_volatile();
                if v1 & 1 == 0 && v1 == v2 {
                    return s;
                }
            }
        }
    }

    /// System time at TSC value `tsc`.
    pub fn at(&self, tsc: u64) -> u64 {
        self.system_time.wrapping_add(scale_delta(
            tsc.wrapping_sub(self.tsc_timestamp),
            self.mul,
            self.shift,
        ))
    }
}

/// Xen system time now, in ns, from vCPU 0's time info.
///
/// # Safety
/// `shared` must point to the mapped shared_info page.
pub unsafe fn system_time_ns(shared: *const SharedInfo) -> u64 {
    // SAFETY: forwarded from the caller.
    let snap = unsafe { TimeSnapshot::read(&raw const (*shared).vcpu_info[0].time) };
    snap.at(rdtsc())
}

/// Wallclock at system time 0 (seconds, nanoseconds), with the version-retry protocol.
///
/// # Safety
/// `shared` must point to the mapped shared_info page.
pub unsafe fn wallclock_base(shared: *const SharedInfo) -> (u64, u32) {
    loop {
        // SAFETY: forwarded from the caller; Xen updates these fields concurrently.
        unsafe {
            let v1 = (&raw const (*shared).wc_version).read_volatile();
            fence(Ordering::Acquire);
            let lo = (&raw const (*shared).wc_sec).read_volatile();
            let hi = (&raw const (*shared).wc_sec_hi).read_volatile();
            let ns = (&raw const (*shared).wc_nsec).read_volatile();
            fence(Ordering::Acquire);
            let v2 = (&raw const (*shared).wc_version).read_volatile();
            if v1 & 1 == 0 && v1 == v2 {
                return (((hi as u64) << 32) | lo as u64, ns);
            }
        }
    }
}

/// Wallclock now as nanoseconds since the Unix epoch.
///
/// # Safety
/// `shared` must point to the mapped shared_info page.
pub unsafe fn wallclock_ns(shared: *const SharedInfo) -> u64 {
    // SAFETY: forwarded from the caller.
    let ((sec, nsec), now) = unsafe { (wallclock_base(shared), system_time_ns(shared)) };
    sec.saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64)
        .saturating_add(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_matches_xen_formula() {
        // mul = 2^32 means 1 ns per (shifted) tick.
        assert_eq!(scale_delta(1000, 0x8000_0000, 1), 1000);
        assert_eq!(scale_delta(1000, 0x8000_0000, 0), 500);
        assert_eq!(scale_delta(1000, 0x8000_0000, -1), 250);
        // A 3 GHz TSC: mul = 2^32/3 gives a third of a ns per tick.
        assert_eq!(scale_delta(3_000_000_000, 0x5555_5555, 0), 999_999_999);
        assert_eq!(
            scale_delta(u64::MAX, u32::MAX, 0),
            ((u64::MAX as u128 * u32::MAX as u128) >> 32) as u64
        );
    }

    fn page() -> std::boxed::Box<SharedInfo> {
        let mut p = std::boxed::Box::<SharedInfo>::default();
        p.wc_version = 4;
        p.wc_sec = 0x1234_5678;
        p.wc_sec_hi = 2;
        p.wc_nsec = 999;
        let t = &mut p.vcpu_info[0].time;
        t.version = 6;
        t.tsc_timestamp = 1_000;
        t.system_time = 77_000;
        t.tsc_to_system_mul = 0x8000_0000;
        t.tsc_shift = -2;
        t.flags = 0xff;
        t.pad1 = [0xff; 2];
        p
    }

    #[test]
    fn readers_wait_for_an_even_unchanged_version() {
        let mut p = page();
        p.wc_version = 5; // an update is in progress
        p.vcpu_info[0].time.version = 7;
        let addr = &mut *p as *mut SharedInfo as usize;
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let p = addr as *mut SharedInfo;
            // SAFETY: the page outlives the thread (joined below); writes are volatile and
            // ordered as Xen orders them: fields, then the closing version.
            unsafe {
                (&raw mut (*p).wc_sec).write_volatile(42);
                (&raw mut (*p).wc_sec_hi).write_volatile(0);
                (&raw mut (*p).vcpu_info[0].time.system_time).write_volatile(88_000);
                fence(Ordering::Release);
                (&raw mut (*p).wc_version).write_volatile(6);
                (&raw mut (*p).vcpu_info[0].time.version).write_volatile(8);
            }
        });
        let ours = addr as *const SharedInfo;
        // SAFETY: the page is live; the other thread writes it only with volatile stores.
        let (base, snap) = unsafe {
            (
                wallclock_base(ours),
                TimeSnapshot::read(&raw const (*ours).vcpu_info[0].time),
            )
        };
        writer.join().unwrap();
        assert_eq!(base, (42, 999));
        assert_eq!(snap.system_time, 88_000);
    }

    #[test]
    fn snapshot_extrapolates() {
        let s = TimeSnapshot {
            tsc_timestamp: 100,
            system_time: 5_000,
            mul: 0x8000_0000,
            shift: 1,
        };
        assert_eq!(s.at(100), 5_000);
        assert_eq!(s.at(1100), 6_000);
    }
}
