//! `io/console.h`: the PV console page (two byte rings).

use crate::abi::assert_sizes;

/// `XENCONS_RING_IDX`: a free-running console ring index.
pub type XenconsRingIdx = u32;

/// Size of [`XenconsInterface::in`] (`sizeof(in)` in C; not a named constant there).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of [`XenconsInterface::out`] (`sizeof(out)` in C; not a named constant there).
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `struct xencons_interface`: the console page, shared with the console backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Input from the backend (keyboard) to the guest.
    pub r#in: [u8; XENCONS_IN_SIZE],
    /// Output from the guest to the backend.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Bytes of `in` consumed by the guest.
    pub in_cons: XenconsRingIdx,
    /// Bytes of `in` produced by the backend.
    pub in_prod: XenconsRingIdx,
    /// Bytes of `out` consumed by the backend.
    pub out_cons: XenconsRingIdx,
    /// Bytes of `out` produced by the guest.
    pub out_prod: XenconsRingIdx,
}

impl Default for XenconsInterface {
    fn default() -> Self {
        XenconsInterface {
            r#in: [0; XENCONS_IN_SIZE],
            out: [0; XENCONS_OUT_SIZE],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        }
    }
}

assert_sizes! {
    XenconsInterface => 3088,
}
