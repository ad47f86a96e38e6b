//! Hypercalls: the one place that knows whether we run on Xen or on the simulator.
//!
//! On the guest target every hypercall is a `call` into the hypercall page that Xen fills at
//! domain build time (announced by the `XEN_ELFNOTE_HYPERCALL_PAGE` note; the runtime's boot code
//! defines the `HYPERCALL_PAGE` symbol). Xen's x86-64 PV hypercall ABI passes the arguments in
//! `rdi, rsi, rdx, r10, r8` and returns in `rax`. Numbers and argument structures come from
//! [`crate::abi`].
//!
//! Built for the host, [`hypercall`] calls `_xenia_hypercall`, a function this crate only
//! declares: the simulator (the `xenia-sim` crate, a dev-dependency of the tests) defines it and
//! decodes the same arguments from the same in-memory structures. The seam is resolved at link
//! time, like `embassy-time-driver`'s driver: a host binary that makes hypercalls without
//! linking a simulator fails to link.

use crate::abi::{MmuUpdate, MmuextOp, TrapInfo};
use crate::error::XenError;

pub use crate::abi::{
    __HYPERVISOR_callback_op as CALLBACK_OP, __HYPERVISOR_console_io as CONSOLE_IO,
    __HYPERVISOR_event_channel_op as EVENT_CHANNEL_OP,
    __HYPERVISOR_grant_table_op as GRANT_TABLE_OP, __HYPERVISOR_memory_op as MEMORY_OP,
    __HYPERVISOR_mmu_update as MMU_UPDATE, __HYPERVISOR_mmuext_op as MMUEXT_OP,
    __HYPERVISOR_sched_op as SCHED_OP, __HYPERVISOR_set_trap_table as SET_TRAP_TABLE,
    __HYPERVISOR_update_va_mapping as UPDATE_VA_MAPPING, __HYPERVISOR_vcpu_op as VCPU_OP,
    __HYPERVISOR_xen_version as XEN_VERSION,
};

#[cfg(target_os = "none")]
mod imp {
    use core::arch::asm;

    extern "C" {
        /// The page Xen fills with one 32-byte call stub per hypercall number.
        static HYPERCALL_PAGE: [u8; 4096];
    }

    /// The hypercall page holds one 32-byte stub per hypercall number: numbers 0..128.
    const STUBS: u32 = 4096 / 32;

    /// `-ENOSYS`: what Xen returns for a hypercall number it does not implement.
    const ENOSYS: i64 = -38;

    /// Calls hypercall `op` with five arguments. An `op` the hypercall page has no stub for
    /// (128 or more) is not called: it fails with `-ENOSYS`, as an unknown hypercall does on
    /// Xen and in the simulator.
    ///
    /// # Safety
    /// The arguments must be valid for that hypercall (pointers to live, correctly laid out
    /// structures); the hypercall page must have been filled by Xen.
    #[inline]
    pub(super) unsafe fn hypercall(op: u32, a: [u64; 5]) -> i64 {
        if op >= STUBS {
            return ENOSYS;
        }
        // SAFETY: op < 128 keeps the stub address inside the hypercall page; the caller
        // guarantees the arguments.
        unsafe {
            let entry = (&raw const HYPERCALL_PAGE as *const u8).add(op as usize * 32);
            let ret: i64;
            asm!(
                "call {entry}",
                entry = in(reg) entry,
                lateout("rax") ret,
                inlateout("rdi") a[0] => _,
                inlateout("rsi") a[1] => _,
                inlateout("rdx") a[2] => _,
                inlateout("r10") a[3] => _,
                inlateout("r8") a[4] => _,
                lateout("rcx") _,
                lateout("r11") _,
            );
            ret
        }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    extern "Rust" {
        /// Handles hypercall `op` on the host: defined by the simulator linked into the binary
        /// (`xenia-sim`), with exactly this signature.
        fn _xenia_hypercall(op: u32, args: [u64; 5]) -> i64;
    }
    const _: crate::seam::Hypercall = _xenia_hypercall;

    /// Forwards hypercall `op` to the simulator linked into this binary.
    ///
    /// # Safety
    /// As on Xen: pointer arguments must point to live, correctly laid out structures.
    pub(super) unsafe fn hypercall(op: u32, a: [u64; 5]) -> i64 {
        // SAFETY: the simulator defines the symbol with this signature; the caller's guarantees
        // about the arguments are passed on unchanged.
        unsafe { _xenia_hypercall(op, a) }
    }
}

/// Calls hypercall `op` with five arguments: through the hypercall page on Xen; built for the
/// host, through the simulator linked into the binary (`_xenia_hypercall`).
///
/// # Safety
/// The arguments must be valid for that hypercall (pointers to live, correctly laid out
/// structures); on Xen, the hypercall page must have been filled.
#[inline]
pub unsafe fn hypercall(op: u32, args: [u64; 5]) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { imp::hypercall(op, args) }
}

/// Converts a pointer argument to the integer register value.
#[inline]
fn p<T>(ptr: *const T) -> u64 {
    ptr as usize as u64
}

/// `HYPERVISOR_sched_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects (or be null where it expects none).
pub unsafe fn sched_op<T>(cmd: u32, arg: *mut T) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(SCHED_OP, [cmd as u64, p(arg), 0, 0, 0]) })
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the `evtchn_*` structure `cmd` expects.
pub unsafe fn event_channel_op<T>(cmd: u32, arg: *mut T) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(EVENT_CHANNEL_OP, [cmd as u64, p(arg), 0, 0, 0]) })
}

/// `HYPERVISOR_grant_table_op(cmd, arg, count)`.
///
/// # Safety
/// `arg` must point to `count` `gnttab_*` structures of the kind `cmd` expects.
pub unsafe fn grant_table_op<T>(cmd: u32, arg: *mut T, count: u32) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(GRANT_TABLE_OP, [cmd as u64, p(arg), count as u64, 0, 0]) })
}

/// `HYPERVISOR_memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the `xen_memory_*` structure `cmd` expects.
pub unsafe fn memory_op<T>(cmd: u32, arg: *mut T) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(MEMORY_OP, [cmd as u64, p(arg), 0, 0, 0]) })
}

/// `HYPERVISOR_mmu_update(reqs, count, success_count, domid)`.
///
/// # Safety
/// `reqs` must point to `count` `mmu_update` entries; `done` may be null or point to a `u32`.
/// The updates must keep the guest's own mappings sound.
pub unsafe fn mmu_update(
    reqs: *const MmuUpdate,
    count: u32,
    done: *mut u32,
    domid: u16,
) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe {
        hypercall(
            MMU_UPDATE,
            [p(reqs), count as u64, p(done), domid as u64, 0],
        )
    })
}

/// `HYPERVISOR_mmuext_op(ops, count, success_count, domid)`.
///
/// # Safety
/// `ops` must point to `count` `mmuext_op` entries that keep the guest's mappings sound.
pub unsafe fn mmuext_op(
    ops: *const MmuextOp,
    count: u32,
    done: *mut u32,
    domid: u16,
) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe {
        hypercall(MMUEXT_OP, [p(ops), count as u64, p(done), domid as u64, 0])
    })
}

/// `HYPERVISOR_update_va_mapping(va, pte, flags)`: point one page of our address space at a
/// machine frame.
///
/// # Safety
/// Changing a mapping can invalidate memory that Rust code still references.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(UPDATE_VA_MAPPING, [va, pte, flags, 0, 0]) })
}

/// `HYPERVISOR_console_io(cmd, len, buf)`: the hypervisor's own console (refused to domUs by
/// non-debug Xen builds; the PV console ring is the real console).
///
/// # Safety
/// `buf` must be valid for `len` bytes.
pub unsafe fn console_io(cmd: u32, len: u32, buf: *const u8) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(CONSOLE_IO, [cmd as u64, len as u64, p(buf), 0, 0]) })
}

/// `HYPERVISOR_xen_version(cmd, arg)`.
///
/// # Safety
/// `arg` must be null or point to the buffer `cmd` fills.
pub unsafe fn xen_version<T>(cmd: u32, arg: *mut T) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(XEN_VERSION, [cmd as u64, p(arg), 0, 0, 0]) })
}

/// `HYPERVISOR_vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects.
pub unsafe fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: *mut T) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(VCPU_OP, [cmd as u64, vcpu as u64, p(arg), 0, 0]) })
}

/// `HYPERVISOR_set_trap_table(table)`: register exception handlers (a zero-terminated array).
///
/// # Safety
/// `table` must point to a `trap_info` array ending with an all-zero entry, whose handlers are
/// valid code addresses.
pub unsafe fn set_trap_table(table: *const TrapInfo) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(SET_TRAP_TABLE, [p(table), 0, 0, 0, 0]) })
}

/// `HYPERVISOR_callback_op(cmd, arg)`: register event/failsafe/syscall callbacks.
///
/// # Safety
/// `arg` must point to a `callback_register` whose address is valid code.
pub unsafe fn callback_op<T>(cmd: u32, arg: *mut T) -> Result<u64, XenError> {
    // SAFETY: forwarded from the caller.
    XenError::check(unsafe { hypercall(CALLBACK_OP, [cmd as u64, p(arg), 0, 0, 0]) })
}
