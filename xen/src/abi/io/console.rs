//! `io/console.h`: the PV console page (two byte rings).
//!
//! The page's layout is defined once, in `xenia_ring::console` (which has no Xen dependency and
//! implements the rings on it), and re-exported here under the C names; `xen/tests/layout.rs`
//! checks it against the C header.

use crate::abi::assert_sizes;

pub use xenia_ring::console::{XenconsInterface, XenconsRingIdx};

/// Size of [`XenconsInterface::in`] (`sizeof(in)` in C; not a named constant there).
pub const XENCONS_IN_SIZE: usize = xenia_ring::console::IN_SIZE;
/// Size of [`XenconsInterface::out`] (`sizeof(out)` in C; not a named constant there).
pub const XENCONS_OUT_SIZE: usize = xenia_ring::console::OUT_SIZE;

assert_sizes! {
    XenconsInterface => 3088,
}
