//! Scheduler operations: shut the domain down, block until an event, yield.

use crate::abi::{
    SCHEDOP_poll, SCHEDOP_shutdown, SCHEDOP_yield, SHUTDOWN_crash, SHUTDOWN_poweroff,
    SHUTDOWN_reboot, SHUTDOWN_suspend,
};
use crate::error::XenError;
use crate::hypercall;

/// Why the domain shuts down (`SHUTDOWN_*` in sched.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Clean exit: the toolstack destroys the domain (`on_poweroff`).
    Poweroff = SHUTDOWN_poweroff,
    /// Restart the domain (`on_reboot`).
    Reboot = SHUTDOWN_reboot,
    /// Suspend (checkpoint) the domain.
    Suspend = SHUTDOWN_suspend,
    /// The guest crashed (`on_crash`).
    Crash = SHUTDOWN_crash,
}

use crate::abi::{SchedPoll, SchedShutdown};

/// Asks Xen to shut the domain down. On Xen this does not return for poweroff, reboot or crash;
/// the simulator records the request and returns.
pub fn shutdown(reason: ShutdownReason) -> Result<(), XenError> {
    let mut arg = SchedShutdown {
        reason: reason as u32,
    };
    // SAFETY: arg is a live sched_shutdown.
    unsafe { hypercall::sched_op(SCHEDOP_shutdown, &mut arg) }.map(|_| ())
}

/// Suspends the domain (`SCHEDOP_shutdown` with `SHUTDOWN_suspend`), handing Xen the machine
/// frame of the start_info page in the third argument register, where the toolstack looks for
/// the "suspend record". Returns when the domain runs again: `Ok(true)` if the suspend was
/// cancelled (`xl save -c`, a checkpoint, a failed migration: the same domain carries on),
/// `Ok(false)` if it resumed in a new domain (restore, migration target).
pub fn suspend(start_info_mfn: u64) -> Result<bool, XenError> {
    let mut arg = SchedShutdown {
        reason: SHUTDOWN_suspend,
    };
    // SAFETY: arg is a live sched_shutdown; the third argument is a plain frame number.
    let ret = unsafe {
        hypercall::hypercall(
            crate::abi::__HYPERVISOR_sched_op,
            [
                SCHEDOP_shutdown as u64,
                (&raw mut arg) as u64,
                start_info_mfn,
                0,
                0,
            ],
        )
    };
    XenError::check(ret).map(|r| r != 0)
}

/// Blocks the vCPU until one of `ports` is pending or the system time reaches `deadline_ns`
/// (absolute, in Xen system time; 0 means no deadline). Works with event delivery masked:
/// a pending bit that is already set makes it return at once, so no wakeup is lost.
pub fn poll(ports: &[u32], deadline_ns: u64) -> Result<(), XenError> {
    let mut arg = SchedPoll {
        ports: ports.as_ptr() as *mut u32,
        nr_ports: ports.len() as u32,
        timeout: deadline_ns,
    };
    // SAFETY: arg is a live sched_poll pointing at `ports`, which outlives the call.
    unsafe { hypercall::sched_op(SCHEDOP_poll, &mut arg) }.map(|_| ())
}

/// Gives the physical CPU to another vCPU for a moment.
pub fn yield_now() {
    // SAFETY: SCHEDOP_yield takes no argument.
    let _ = unsafe { hypercall::sched_op::<u8>(SCHEDOP_yield, core::ptr::null_mut()) };
}
