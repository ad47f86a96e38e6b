//! Event channels (2-level ABI).

use crate::error::XenError;
use crate::hypercall;
use xen_sys::EVTCHNOP_send;

/// An event channel port number.
pub type Port = u32;

#[repr(C)]
struct EvtchnSend {
    port: u32,
}

/// Notifies the remote end of `port`.
pub fn send(port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnSend { port };
    // SAFETY: arg is a live evtchn_send.
    unsafe { hypercall::event_channel_op(EVTCHNOP_send, &mut arg) }.map(|_| ())
}
