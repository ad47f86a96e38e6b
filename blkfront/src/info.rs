//! What the backend says about the disk ([`DiskInfo`], [`Features`]), and our counters
//! ([`Stats`]).

/// Optional features the backend offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `feature-flush-cache`: [`Blkfront::flush`](crate::Blkfront::flush) sends `BLKIF_OP_FLUSH_DISKCACHE`.
    pub flush_cache: bool,
    /// `feature-barrier`: `BLKIF_OP_WRITE_BARRIER` (used by flush without `flush_cache`).
    pub barrier: bool,
    /// `feature-discard`: [`Blkfront::discard`](crate::Blkfront::discard) is available.
    pub discard: bool,
    /// `discard-granularity` in bytes (defaults to the sector size).
    pub discard_granularity: u32,
    /// `discard-alignment` in bytes (defaults to 0).
    pub discard_alignment: u32,
    /// `discard-secure`: secure discard is available.
    pub discard_secure: bool,
    /// `feature-persistent`: the backend keeps our grants mapped.
    pub persistent: bool,
    /// `feature-max-indirect-segments` (0: none). Offered, but not used by this driver.
    pub max_indirect_segments: u32,
    /// `max-ring-page-order`: the backend accepts rings of up to `2^order` pages.
    pub max_ring_page_order: u32,
}

/// The disk's geometry, as the backend published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in sectors of `sector_size` bytes.
    pub sectors: u64,
    /// Logical sector size in bytes (a power of two, 512 ..= 4096).
    pub sector_size: u32,
    /// Physical sector size in bytes (a multiple of `sector_size`).
    pub physical_sector_size: u32,
    /// The `info` bits (`VDISK_*`).
    pub info: u32,
    /// The disk is read-only (`VDISK_READONLY` or `mode` = `r`).
    pub read_only: bool,
}

/// Counters of the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests put on the ring.
    pub requests: u64,
    /// Responses matched to a request.
    pub responses: u64,
    /// Responses whose id named no request in flight (unknown or duplicate): each breaks
    /// the device.
    pub bad_responses: u64,
    /// Responses whose operation differed from their request's: each breaks the device.
    pub wrong_operation: u64,
    /// Responses with a status blkif.h does not define: each breaks the device.
    pub bad_status: u64,
    /// Times the device was declared broken (0 or 1): a protocol violation or a corrupt ring.
    pub broken: u64,
    /// Feature keys the backend published with a value other than "0" or "1" (taken as off).
    pub bad_features: u64,
    /// Notifications sent to the backend.
    pub notifications: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u32,
}
