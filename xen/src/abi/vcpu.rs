//! `vcpu.h`: `VCPUOP_*` operations (timers, runstate, vcpu_info placement).

use super::assert_sizes;

/// `VCPUOP_initialise`: set a vCPU's initial context.
pub const VCPUOP_initialise: u32 = 0;
/// `VCPUOP_up`: start a vCPU.
pub const VCPUOP_up: u32 = 1;
/// `VCPUOP_down`: stop a vCPU.
pub const VCPUOP_down: u32 = 2;
/// `VCPUOP_is_up`: whether a vCPU runs.
pub const VCPUOP_is_up: u32 = 3;
/// `VCPUOP_get_runstate_info`: a vCPU's run-state times.
pub const VCPUOP_get_runstate_info: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`: where Xen keeps the run-state info up to date.
pub const VCPUOP_register_runstate_memory_area: u32 = 5;
/// `VCPUOP_set_periodic_timer`: a periodic `VIRQ_TIMER`.
pub const VCPUOP_set_periodic_timer: u32 = 6;
/// `VCPUOP_stop_periodic_timer`: stop the periodic timer.
pub const VCPUOP_stop_periodic_timer: u32 = 7;
/// `VCPUOP_set_singleshot_timer`: one `VIRQ_TIMER` at an absolute system time.
pub const VCPUOP_set_singleshot_timer: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`: cancel the single-shot timer.
pub const VCPUOP_stop_singleshot_timer: u32 = 9;
/// `VCPUOP_register_vcpu_info`: move a vCPU's `vcpu_info` to a page of ours.
pub const VCPUOP_register_vcpu_info: u32 = 10;
/// `VCPUOP_send_nmi`: send an NMI to a vCPU.
pub const VCPUOP_send_nmi: u32 = 11;
/// `VCPUOP_get_physid`: the physical id of a vCPU (dom0).
pub const VCPUOP_get_physid: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`: an extra copy of the vCPU's time info.
pub const VCPUOP_register_vcpu_time_memory_area: u32 = 13;

/// `struct vcpu_set_singleshot_timer`: argument of `VCPUOP_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time (ns) of the timer event.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}

/// `vcpu_set_singleshot_timer.flags`: fail with `-ETIME` if the timeout is already past.
pub const VCPU_SSHOTTMR_future: u32 = 1 << 0;

/// `struct vcpu_set_periodic_timer`: argument of `VCPUOP_set_periodic_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// The period in ns.
    pub period_ns: u64,
}

/// `struct vcpu_register_vcpu_info`: argument of `VCPUOP_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Machine frame of the page that holds the new `vcpu_info`.
    pub mfn: u64,
    /// Byte offset of the `vcpu_info` in that page.
    pub offset: u32,
    /// Reserved, 0.
    pub rsvd: u32,
}

/// `struct vcpu_runstate_info`: how long a vCPU spent in each `RUNSTATE_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// The current `RUNSTATE_*`.
    pub state: i32,
    /// System time the current state was entered.
    pub state_entry_time: u64,
    /// Total ns spent in each state.
    pub time: [u64; 4],
}

/// Run state: running on a physical CPU.
pub const RUNSTATE_running: i32 = 0;
/// Run state: runnable, waiting for a physical CPU.
pub const RUNSTATE_runnable: i32 = 1;
/// Run state: blocked (e.g. in `SCHEDOP_block`).
pub const RUNSTATE_blocked: i32 = 2;
/// Run state: offline.
pub const RUNSTATE_offline: i32 = 3;

assert_sizes! {
    VcpuSetSingleshotTimer => 16,
    VcpuSetPeriodicTimer => 8,
    VcpuRegisterVcpuInfo => 16,
    VcpuRunstateInfo => 48,
}
