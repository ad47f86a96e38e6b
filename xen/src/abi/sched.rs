//! `sched.h`: `SCHEDOP_*` operations, shutdown reasons and their argument structures.

use super::assert_sizes;

/// Scheduler operations (`SCHEDOP_*`) and shutdown reasons (`SHUTDOWN_*`), re-exported from
/// xen-sys.
pub use xen_sys::{
    SCHEDOP_block, SCHEDOP_pin_override, SCHEDOP_poll, SCHEDOP_remote_shutdown, SCHEDOP_shutdown,
    SCHEDOP_shutdown_code, SCHEDOP_watchdog, SCHEDOP_yield, SHUTDOWN_crash, SHUTDOWN_poweroff,
    SHUTDOWN_reboot, SHUTDOWN_soft_reset, SHUTDOWN_suspend, SHUTDOWN_watchdog, SHUTDOWN_MAX,
};

/// `struct sched_remote_shutdown`: argument of `SCHEDOP_remote_shutdown`.
pub use xen_sys::sched_remote_shutdown as SchedRemoteShutdown;
/// `struct sched_shutdown`: argument of `SCHEDOP_shutdown` (a `SHUTDOWN_*` reason).
pub use xen_sys::sched_shutdown as SchedShutdown;
/// `struct sched_watchdog`: argument of `SCHEDOP_watchdog`.
pub use xen_sys::sched_watchdog as SchedWatchdog;

/// `struct sched_poll`: argument of `SCHEDOP_poll` (block until one of `ports` is pending or
/// the absolute system time `timeout` passes; 0 for none), re-exported from xen-sys.
pub use xen_sys::sched_poll as SchedPoll;

assert_sizes! {
    SchedShutdown => 4,
    SchedRemoteShutdown => 8,
    SchedWatchdog => 8,
    SchedPoll => 24,
}
