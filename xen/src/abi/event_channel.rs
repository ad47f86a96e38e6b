//! `event_channel.h`: `EVTCHNOP_*` operations and their argument structures.

use super::{assert_sizes, c_consts, Domid};

/// `evtchn_port_t`: an event channel port number.
pub type EvtchnPort = u32;

// Event channel operations (`EVTCHNOP_*`) and port states (`EVTCHNSTAT_*`).
c_consts! { "event channel operation or port state": u32 {
    EVTCHNOP_bind_interdomain = 0,
    EVTCHNSTAT_closed = 0,
    EVTCHNOP_bind_virq = 1,
    EVTCHNSTAT_unbound = 1,
    EVTCHNOP_bind_pirq = 2,
    EVTCHNSTAT_interdomain = 2,
    EVTCHNOP_close = 3,
    EVTCHNSTAT_pirq = 3,
    EVTCHNOP_send = 4,
    EVTCHNSTAT_virq = 4,
    EVTCHNOP_status = 5,
    EVTCHNSTAT_ipi = 5,
    EVTCHNOP_alloc_unbound = 6,
    EVTCHNOP_bind_ipi = 7,
    EVTCHNOP_bind_vcpu = 8,
    EVTCHNOP_unmask = 9,
    EVTCHNOP_reset = 10,
    EVTCHNOP_init_control = 11,
    EVTCHNOP_expand_array = 12,
    EVTCHNOP_set_priority = 13,
} }

/// Number of ports of the 2-level event channel ABI on x86-64 (64 × 64).
pub const EVTCHN_2L_NR_CHANNELS: usize = 4096;

/// `struct evtchn_alloc_unbound`: allocate a port that `remote_dom` may bind to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// The domain to allocate in (`DOMID_SELF`).
    pub dom: Domid,
    /// The domain that may bind to it.
    pub remote_dom: Domid,
    /// Out: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_interdomain`: bind to a port another domain allocated for us.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// The remote domain.
    pub remote_dom: Domid,
    /// Its port.
    pub remote_port: EvtchnPort,
    /// Out: our new port.
    pub local_port: EvtchnPort,
}

/// `struct evtchn_bind_virq`: bind a virtual IRQ (`VIRQ_*`) of a vCPU to a new port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// The virtual IRQ.
    pub virq: u32,
    /// The vCPU.
    pub vcpu: u32,
    /// Out: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_pirq`: bind a physical IRQ to a new port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// The physical IRQ.
    pub pirq: u32,
    /// `BIND_PIRQ__WILL_SHARE` or 0.
    pub flags: u32,
    /// Out: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_ipi`: a new port for inter-vCPU notifications.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// The vCPU to notify.
    pub vcpu: u32,
    /// Out: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_close`: close a port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// The port.
    pub port: EvtchnPort,
}

/// `struct evtchn_send`: notify the remote end of a port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// The port.
    pub port: EvtchnPort,
}

/// `struct evtchn_status`: query the state of a port.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct EvtchnStatus {
    /// The domain whose port it is (`DOMID_SELF`).
    pub dom: Domid,
    /// The port.
    pub port: EvtchnPort,
    /// Out: `EVTCHNSTAT_*`.
    pub status: u32,
    /// Out: the vCPU the port notifies.
    pub vcpu: u32,
    /// Out: the state-dependent details.
    pub u: EvtchnStatusU,
}

/// `evtchn_status.u`: the state-dependent part of [`EvtchnStatus`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union EvtchnStatusU {
    /// `EVTCHNSTAT_unbound`.
    pub unbound: EvtchnStatusUnbound,
    /// `EVTCHNSTAT_interdomain`.
    pub interdomain: EvtchnStatusInterdomain,
    /// `EVTCHNSTAT_pirq`: the physical IRQ.
    pub pirq: u32,
    /// `EVTCHNSTAT_virq`: the virtual IRQ.
    pub virq: u32,
}

impl Default for EvtchnStatusU {
    fn default() -> Self {
        EvtchnStatusU {
            interdomain: EvtchnStatusInterdomain::default(),
        }
    }
}

/// `evtchn_status.u.unbound`: the domain that may bind an unbound port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusUnbound {
    /// The domain.
    pub dom: Domid,
}

/// `evtchn_status.u.interdomain`: the remote end of an interdomain port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusInterdomain {
    /// The remote domain.
    pub dom: Domid,
    /// Its port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_vcpu`: deliver a port's events to another vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// The port.
    pub port: EvtchnPort,
    /// The vCPU.
    pub vcpu: u32,
}

/// `struct evtchn_unmask`: unmask a port (and deliver a pending event).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// The port.
    pub port: EvtchnPort,
}

/// `struct evtchn_reset`: close all ports of a domain.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    /// The domain (`DOMID_SELF`).
    pub dom: Domid,
}

assert_sizes! {
    EvtchnAllocUnbound => 8,
    EvtchnBindInterdomain => 12,
    EvtchnBindVirq => 12,
    EvtchnBindPirq => 12,
    EvtchnBindIpi => 8,
    EvtchnClose => 4,
    EvtchnSend => 4,
    EvtchnStatus => 24,
    EvtchnBindVcpu => 8,
    EvtchnUnmask => 4,
    EvtchnReset => 2,
}
