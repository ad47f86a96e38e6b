//! `callback.h`: `CALLBACKOP_*` and the callbacks a PV guest registers (event upcall,
//! failsafe, syscall, NMI).

use super::{assert_sizes, XenCallback};

/// Callback type: the event-channel upcall.
pub const CALLBACKTYPE_event: u16 = 0;
/// Callback type: the failsafe callback (bad segment on return to the guest).
pub const CALLBACKTYPE_failsafe: u16 = 1;
/// Callback type: the 64-bit `syscall` entry.
pub const CALLBACKTYPE_syscall: u16 = 2;
/// Callback type: the old `sysenter` entry (deprecated).
pub const CALLBACKTYPE_sysenter_deprecated: u16 = 3;
/// Callback type: the NMI handler.
pub const CALLBACKTYPE_nmi: u16 = 4;
/// Callback type: the `sysenter` entry.
pub const CALLBACKTYPE_sysenter: u16 = 5;
/// Callback type: the 32-bit `syscall` entry.
pub const CALLBACKTYPE_syscall32: u16 = 7;

/// Callback flag: mask events (set `evtchn_upcall_mask`) on entry.
pub const CALLBACKF_mask_events: u16 = 1 << 0;

/// `CALLBACKOP_register`: register a callback (argument: [`CallbackRegister`]).
pub const CALLBACKOP_register: u32 = 0;
/// `CALLBACKOP_unregister`: unregister a callback (argument: [`CallbackUnregister`]).
pub const CALLBACKOP_unregister: u32 = 1;

/// `struct callback_register`: argument of `CALLBACKOP_register`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*`.
    pub r#type: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// The handler's address.
    pub address: XenCallback,
}

/// `struct callback_unregister`: argument of `CALLBACKOP_unregister`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*`.
    pub r#type: u16,
    /// Unused.
    pub _unused: u16,
}

assert_sizes! {
    CallbackRegister => 16,
    CallbackUnregister => 4,
}
