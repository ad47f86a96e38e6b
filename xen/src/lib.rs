//! The guest's view of Xen.
//!
//! Hypercalls, the ABI structures Xen and the backends share with us, event channels, grant
//! tables, the xenstore client, xenbus, the PV console and time. On the guest target
//! (`x86_64-unknown-none`) the hypercalls go through the hypercall page; on the host they go to
//! whatever defines the link-time seam `_xenia_hypercall` (the `xenia-sim` crate, a
//! hypercall-level simulator of a Xen host), so the same driver code runs in `cargo test`. Only
//! [`hypercall`], [`memory`] and [`single`] know which of the two they run on, and none has
//! host-only public API.
#![no_std]

extern crate alloc;
// The host build checks single-vCPU ownership per OS thread (`single`).
#[cfg(not(target_os = "none"))]
extern crate std;

pub mod abi;
pub mod console;
pub mod error;
pub mod events;
pub mod grant;
pub mod hypercall;
pub mod memory;
pub mod p2m;
pub mod sched;
pub mod seam;
pub mod single;
pub mod start_info;
pub mod time;
pub mod xenbus;
pub mod xenstore;

pub use error::XenError;
