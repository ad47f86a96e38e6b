//! ABI structures and numbers shared with Xen and the backends, checked against the C headers.
//!
//! Everything a guest exchanges with Xen (hypercall arguments, `start_info`, `shared_info`) or
//! with another domain (grant entries, ring entries, xenstore and console pages) is defined or
//! re-exported here, for x86-64 PV guests and the Xen 4.17 public headers at interface version
//! [`XEN_INTERFACE_VERSION`]. Users write `xenia_xen::abi::...` for all of it: the submodules
//! follow the header files (`xen.h`, `grant_table.h`, `io/netif.h`, ...) and are all re-exported
//! flat here.
//!
//! Everything is defined here, with `#[repr(C)]` (none of it comes from `xen-sys`, whose
//! bindings were generated at interface version 0: its `vcpu_time_info` is the pre-4.6 one, with
//! `pad1[3]` where 4.17 has `flags` and `pad1[2]`). The xenstore and console ring pages
//! ([`XenstoreDomainInterface`], [`XenconsInterface`]) are defined once, in `xenia-ring`, and
//! re-exported and checked here.
//!
//! # Naming convention
//!
//! * **Structures and unions**: the C tag or typedef name in UpperCamelCase, without `_t`:
//!   `struct grant_entry_v1` is [`GrantEntryV1`], `evtchn_alloc_unbound` is
//!   [`EvtchnAllocUnbound`], `xenstore_domain_interface` is [`XenstoreDomainInterface`].
//!   Anonymous inner structures and unions are named after the outer type and the member:
//!   `start_info.console` is [`StartInfoConsole`], `netif_extra_info.u.gso` is
//!   [`NetifExtraInfoGso`].
//! * **Scalar typedefs** follow the same rule: `grant_ref_t` is [`GrantRef`], `evtchn_port_t`
//!   is [`EvtchnPort`], `domid_t` is [`Domid`].
//! * **Fields** keep their exact C names; Rust keywords are raw identifiers (`r#type`, `r#ref`,
//!   `r#in`).
//! * **Constants** keep their exact C names (`GTF_permit_access`, `EVTCHNOP_send`,
//!   `XENSTORE_RING_SIZE`), typed as the field or argument they go into (`GTF_*` are `u16`
//!   like `grant_entry_v1.flags`, `GNTST_*` are `i16` like the `status` fields). The few
//!   numbers that are not in the headers (ring sizes, page-table bits) are UPPER_CASE and say
//!   where they come from.
//! * **C enums a peer sends us** are Rust enums with a fallible `TryFrom<u32>`: [`XenbusState`]
//!   (variants named as in C without the `XenbusState` prefix) and [`XsdSockmsgType`] (C's
//!   `XS_FOO_BAR` as `FooBar`).
//!
//! The layout test (`xen/tests/layout.rs`) compiles a C program against the installed Xen
//! headers and compares the size, alignment and offset of every field of every structure here,
//! the types of scalar fields, and the value of every constant.
//!
//! Everything here is plain data and `no_std`.
#![allow(non_upper_case_globals)]

mod callback;
mod elfnote;
mod event_channel;
mod grant_table;
pub mod io;
mod memory;
mod sched;
mod vcpu;
mod version;
mod xen;

pub use callback::*;
pub use elfnote::*;
pub use event_channel::*;
pub use grant_table::*;
pub use io::*;
pub use memory::*;
pub use sched::*;
pub use vcpu::*;
pub use version::*;
pub use xen::*;

use core::fmt;

/// The Xen interface version these definitions follow (`__XEN_LATEST_INTERFACE_VERSION__` of
/// Xen 4.17, i.e. 4.14's interface).
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0e00;

/// A number that names no value of a C enum, e.g. an unknown message type from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownValue {
    /// The C enum the number was meant for (for example `"xenbus_state"`).
    pub what: &'static str,
    /// The number received.
    pub value: u32,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a valid {}", self.value, self.what)
    }
}

impl core::error::Error for UnknownValue {}

/// Asserts at compile time that each type has the given size in bytes.
macro_rules! assert_sizes {
    ($($t:ty => $n:expr),* $(,)?) => {
        $(static_assertions::const_assert_eq!(core::mem::size_of::<$t>(), $n);)*
    };
}
use assert_sizes;

/// Defines integer constants named and valued as in the C headers, each documented as
/// "`NAME`: what" (the layout test compares every value with C's).
macro_rules! c_consts {
    ($what:literal: $t:ty { $($name:ident = $value:expr),* $(,)? }) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: ", $what, ".")]
            pub const $name: $t = $value;
        )*
    };
}
use c_consts;
