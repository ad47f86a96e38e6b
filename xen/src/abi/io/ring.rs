//! `io/ring.h`: the header of a shared request/response ring and how many entries fit.
//!
//! The ring logic itself is in the `xenia-ring` crate; this module gives the C layout (for the
//! layout test and for asserting that both agree) and the entry counts the frontends use.

use crate::abi::assert_sizes;

/// `RING_IDX`: a free-running ring index (wraps at 2^32).
pub type RingIdx = u32;

/// The header of a shared ring (`struct *_sring` up to its `ring` array): the four indices and
/// padding to 64 bytes. The entries start right after it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced by the frontend.
    pub req_prod: RingIdx,
    /// The backend wants an event when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Responses produced by the backend.
    pub rsp_prod: RingIdx,
    /// The frontend wants an event when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// `pvt`: private bytes of some protocols (netif's `smartpoll_active`), zeroed.
    pub pvt: [u8; 4],
    /// Padding to 64 bytes, zeroed.
    pub __pad: [u8; 44],
}

impl Default for SringHeader {
    /// The state `SHARED_RING_INIT` leaves: no requests or responses, events wanted at 1.
    fn default() -> Self {
        SringHeader {
            req_prod: 0,
            req_event: 1,
            rsp_prod: 0,
            rsp_event: 1,
            pvt: [0; 4],
            __pad: [0; 44],
        }
    }
}

/// Size of [`SringHeader`]: the offset of the first entry in a shared ring.
pub const SRING_HEADER_SIZE: usize = 64;

/// `__CONST_RING_SIZE`: how many entries of `entry_size` bytes fit in a shared ring of
/// `ring_bytes` bytes after the header, rounded down to a power of two (0 if none fit).
pub const fn const_ring_size(ring_bytes: usize, entry_size: usize) -> usize {
    if entry_size == 0 || ring_bytes <= SRING_HEADER_SIZE {
        return 0;
    }
    let n = (ring_bytes - SRING_HEADER_SIZE) / entry_size;
    if n == 0 {
        0
    } else {
        1 << n.ilog2()
    }
}

assert_sizes! {
    SringHeader => SRING_HEADER_SIZE,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_rounds_down_to_a_power_of_two() {
        assert_eq!(const_ring_size(4096, 12), 256);
        assert_eq!(const_ring_size(4096, 112), 32);
        assert_eq!(const_ring_size(4096, 8), 256);
        assert_eq!(const_ring_size(2 * 4096, 112), 64);
        assert_eq!(const_ring_size(4096, 4032), 1);
        assert_eq!(const_ring_size(4096, 4033), 0);
        assert_eq!(const_ring_size(64, 8), 0);
        assert_eq!(const_ring_size(4096, 0), 0);
    }
}
