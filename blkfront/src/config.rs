//! Options of [`Blkfront::connect_with`](crate::Blkfront::connect_with).

use xenia_xen::abi::{BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_RING_SIZE};

/// Options of [`Blkfront::connect_with`](crate::Blkfront::connect_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkfrontConfig {
    /// Bounce pages granted to the backend (at least [`BLKIF_MAX_SEGMENTS_PER_REQUEST`]);
    /// `ring size * 11` lets every ring slot carry a full direct request.
    pub pool_pages: usize,
    /// Most segments (pages) per indirect request, if the backend offers
    /// `feature-max-indirect-segments` (its value caps this too). 0 or at most 11: indirect
    /// requests are not used.
    pub max_indirect_segments: u32,
    /// Use a ring of up to `2^order` pages (more requests in flight) if the backend offers
    /// `max-ring-page-order`; capped at 4 (16 pages).
    pub max_ring_page_order: u32,
}

impl Default for BlkfrontConfig {
    fn default() -> Self {
        BlkfrontConfig {
            pool_pages: BLKIF_RING_SIZE * BLKIF_MAX_SEGMENTS_PER_REQUEST,
            max_indirect_segments: 64,
            max_ring_page_order: 0,
        }
    }
}
