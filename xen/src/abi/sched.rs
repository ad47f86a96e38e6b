//! `sched.h`: `SCHEDOP_*` operations, shutdown reasons and their argument structures.

use super::{assert_sizes, c_consts, Domid, EvtchnPort};

// Scheduler operations (`SCHEDOP_*`) and shutdown reasons (`SHUTDOWN_*`).
c_consts! { "scheduler operation or shutdown reason": u32 {
    SCHEDOP_yield = 0,
    SHUTDOWN_poweroff = 0,
    SCHEDOP_block = 1,
    SHUTDOWN_reboot = 1,
    SCHEDOP_shutdown = 2,
    SHUTDOWN_suspend = 2,
    SCHEDOP_poll = 3,
    SHUTDOWN_crash = 3,
    SCHEDOP_remote_shutdown = 4,
    SHUTDOWN_watchdog = 4,
    SCHEDOP_shutdown_code = 5,
    SHUTDOWN_MAX = 5,
    SHUTDOWN_soft_reset = 5,
    SCHEDOP_watchdog = 6,
    SCHEDOP_pin_override = 7,
} }

/// `struct sched_shutdown`: argument of `SCHEDOP_shutdown` (a `SHUTDOWN_*` reason).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// The `SHUTDOWN_*` reason.
    pub reason: u32,
}

/// `struct sched_remote_shutdown`: argument of `SCHEDOP_remote_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// The domain to shut down.
    pub domain_id: Domid,
    /// The `SHUTDOWN_*` reason.
    pub reason: u32,
}

/// `struct sched_watchdog`: argument of `SCHEDOP_watchdog`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// The watchdog's id (0 to create one).
    pub id: u32,
    /// Its timeout in seconds (0 to destroy it).
    pub timeout: u32,
}

/// `struct sched_poll`: argument of `SCHEDOP_poll` (block until one of `ports` is pending or
/// the absolute system time `timeout` passes; 0 for none).
///
/// `ports` is C's `XEN_GUEST_HANDLE(evtchn_port_t)`, a struct around the pointer with the same
/// layout; here the bare pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedPoll {
    /// The ports to wait on.
    pub ports: *mut EvtchnPort,
    /// How many.
    pub nr_ports: u32,
    /// Absolute system time (ns) to give up at; 0 for none.
    pub timeout: u64,
}

impl Default for SchedPoll {
    fn default() -> Self {
        SchedPoll {
            ports: core::ptr::null_mut(),
            nr_ports: 0,
            timeout: 0,
        }
    }
}

assert_sizes! {
    SchedShutdown => 4,
    SchedRemoteShutdown => 8,
    SchedWatchdog => 8,
    SchedPoll => 24,
}
