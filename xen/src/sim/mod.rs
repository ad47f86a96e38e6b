//! A hypercall-level simulator of a Xen host, for host tests.

pub mod xenstored;

/// Dispatches a hypercall to the simulator installed on this thread.
///
/// # Safety
/// Pointer arguments must point to live structures of the kind the hypercall expects.
pub unsafe fn hypercall(_op: u32, _args: [u64; 5]) -> i64 {
    -(crate::XenError::ENOSYS.0 as i64)
}
