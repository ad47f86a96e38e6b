//! `event_channel.h`: `EVTCHNOP_*` operations and their argument structures.

use super::assert_sizes;

/// `evtchn_port_t`: an event channel port number.
pub type EvtchnPort = u32;

/// Event channel operations (`EVTCHNOP_*`) and port states (`EVTCHNSTAT_*`), re-exported
/// from xen-sys.
pub use xen_sys::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_ipi, EVTCHNOP_bind_pirq,
    EVTCHNOP_bind_vcpu, EVTCHNOP_bind_virq, EVTCHNOP_close, EVTCHNOP_expand_array,
    EVTCHNOP_init_control, EVTCHNOP_reset, EVTCHNOP_send, EVTCHNOP_set_priority, EVTCHNOP_status,
    EVTCHNOP_unmask, EVTCHNSTAT_closed, EVTCHNSTAT_interdomain, EVTCHNSTAT_ipi, EVTCHNSTAT_pirq,
    EVTCHNSTAT_unbound, EVTCHNSTAT_virq,
};

/// Number of ports of the 2-level event channel ABI on x86-64 (64 × 64).
pub const EVTCHN_2L_NR_CHANNELS: usize = 4096;

/// `struct evtchn_alloc_unbound`: allocate a port that `remote_dom` may bind to.
pub use xen_sys::evtchn_alloc_unbound as EvtchnAllocUnbound;
/// `struct evtchn_bind_interdomain`: bind to a port another domain allocated for us.
pub use xen_sys::evtchn_bind_interdomain as EvtchnBindInterdomain;
/// `struct evtchn_bind_ipi`: a new port for inter-vCPU notifications.
pub use xen_sys::evtchn_bind_ipi as EvtchnBindIpi;
/// `struct evtchn_bind_pirq`: bind a physical IRQ to a new port.
pub use xen_sys::evtchn_bind_pirq as EvtchnBindPirq;
/// `struct evtchn_bind_vcpu`: deliver a port's events to another vCPU.
pub use xen_sys::evtchn_bind_vcpu as EvtchnBindVcpu;
/// `struct evtchn_bind_virq`: bind a virtual IRQ (`VIRQ_*`) of a vCPU to a new port.
pub use xen_sys::evtchn_bind_virq as EvtchnBindVirq;
/// `struct evtchn_close`: close a port.
pub use xen_sys::evtchn_close as EvtchnClose;
/// `struct evtchn_reset`: close all ports of a domain.
pub use xen_sys::evtchn_reset as EvtchnReset;
/// `struct evtchn_send`: notify the remote end of a port.
pub use xen_sys::evtchn_send as EvtchnSend;
/// `struct evtchn_status`: query the state of a port.
pub use xen_sys::evtchn_status as EvtchnStatus;
/// `evtchn_status.u`: the state-dependent part of [`EvtchnStatus`].
pub use xen_sys::evtchn_status__bindgen_ty_1 as EvtchnStatusU;
/// `evtchn_status.u.unbound`: the domain that may bind an unbound port.
pub use xen_sys::evtchn_status__bindgen_ty_1__bindgen_ty_1 as EvtchnStatusUnbound;
/// `evtchn_status.u.interdomain`: the remote end of an interdomain port.
pub use xen_sys::evtchn_status__bindgen_ty_1__bindgen_ty_2 as EvtchnStatusInterdomain;
/// `struct evtchn_unmask`: unmask a port (and deliver a pending event).
pub use xen_sys::evtchn_unmask as EvtchnUnmask;

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
