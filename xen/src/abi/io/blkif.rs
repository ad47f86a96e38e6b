//! `io/blkif.h`: the block device's ring entries, operations and statuses.
//!
//! These are the **x86-64** layouts: the 64-bit `id` and `sector_number` are 8-byte aligned
//! (on i386 the same C structures are packed differently, e.g. `blkif_request.id` at offset 4).
//! A 64-bit backend talks to a 64-bit frontend with these; a backend serving 32-bit guests
//! translates.

use crate::abi::{assert_sizes, const_ring_size, GrantRef, XEN_PAGE_SIZE};

/// `blkif_vdev_t`: the virtual device handle.
pub type BlkifVdev = u16;
/// `blkif_sector_t`: a sector number (512-byte sectors, whatever the device's sector size).
pub type BlkifSector = u64;

/// Operation: read.
pub const BLKIF_OP_READ: u8 = 0;
/// Operation: write.
pub const BLKIF_OP_WRITE: u8 = 1;
/// Operation: write with a barrier (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// Operation: flush the disk cache (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// Operation: reserved (was a vendor extension).
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// Operation: discard sectors (`feature-discard`, [`BlkifRequestDiscard`]).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// Operation: indirect request (`feature-max-indirect-segments`, [`BlkifRequestIndirect`]).
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// Segments a direct request carries.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Pages of segments an indirect request may name.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;

/// `struct blkif_request_segment`: a granted page and the sectors of it to transfer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    /// Grant of the data page.
    pub gref: GrantRef,
    /// First 512-byte sector of the page to transfer.
    pub first_sect: u8,
    /// Last 512-byte sector of the page to transfer (inclusive).
    pub last_sect: u8,
}

/// Segments in one indirect page (not in Xen's header; Linux's
/// `BLKIF_SEGS_PER_INDIRECT_FRAME`: a page of [`BlkifRequestSegment`]s).
pub const BLKIF_SEGS_PER_INDIRECT_FRAME: usize =
    XEN_PAGE_SIZE / core::mem::size_of::<BlkifRequestSegment>();

/// `struct blkif_request`: a read, write, barrier or flush request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Number of entries of `seg` used.
    pub nr_segments: u8,
    /// The virtual device.
    pub handle: BlkifVdev,
    /// Echoed in the response.
    pub id: u64,
    /// Start sector on the device.
    pub sector_number: BlkifSector,
    /// The data pages.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// `BLKIF_OP_DISCARD` flag: the discarded data must be made unreadable (`discard-secure`).
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// `struct blkif_request_discard`: a `BLKIF_OP_DISCARD` request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// `BLKIF_OP_DISCARD`.
    pub operation: u8,
    /// `BLKIF_DISCARD_*`.
    pub flag: u8,
    /// The virtual device.
    pub handle: BlkifVdev,
    /// Echoed in the response.
    pub id: u64,
    /// Start sector.
    pub sector_number: BlkifSector,
    /// Number of sectors.
    pub nr_sectors: u64,
}

/// `struct blkif_request_indirect`: a `BLKIF_OP_INDIRECT` request, whose segments are in
/// granted pages.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// `BLKIF_OP_INDIRECT`.
    pub operation: u8,
    /// The real operation: `BLKIF_OP_{READ,WRITE}`.
    pub indirect_op: u8,
    /// Number of segments in the indirect pages.
    pub nr_segments: u16,
    /// Echoed in the response.
    pub id: u64,
    /// Start sector.
    pub sector_number: BlkifSector,
    /// The virtual device.
    pub handle: BlkifVdev,
    /// Grants of the pages of [`BlkifRequestSegment`]s.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
}

/// `struct blkif_response`: the answer to any request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}

/// Response status: operation not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// Response status: error.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// Response status: success.
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `union blkif_sring_entry`: one slot of the block ring.
#[repr(C)]
#[derive(Clone, Copy)]
pub union BlkifSringEntry {
    /// As a request.
    pub req: BlkifRequest,
    /// As a response.
    pub rsp: BlkifResponse,
}

/// Entries of a one-page block ring (`__CONST_RING_SIZE(blkif, XEN_PAGE_SIZE)`; Linux's
/// `BLK_RING_SIZE` for `ring-page-order` 0).
pub const BLKIF_RING_SIZE: usize =
    const_ring_size(XEN_PAGE_SIZE, core::mem::size_of::<BlkifSringEntry>());

/// The `info` node of a vbd backend: the device is a CD-ROM.
pub const VDISK_CDROM: u32 = 0x1;
/// The `info` node of a vbd backend: the media is removable.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// The `info` node of a vbd backend: the device is read-only.
pub const VDISK_READONLY: u32 = 0x4;

assert_sizes! {
    BlkifRequestSegment => 8,
    BlkifRequest => 112,
    BlkifRequestDiscard => 32,
    BlkifRequestIndirect => 64,
    BlkifResponse => 16,
    BlkifSringEntry => 112,
}
static_assertions::const_assert_eq!(BLKIF_RING_SIZE, 32);
static_assertions::const_assert_eq!(BLKIF_SEGS_PER_INDIRECT_FRAME, 512);
// Discard and indirect requests travel in the same ring slots.
static_assertions::const_assert!(
    core::mem::size_of::<BlkifRequestDiscard>() <= core::mem::size_of::<BlkifSringEntry>()
);
static_assertions::const_assert!(
    core::mem::size_of::<BlkifRequestIndirect>() <= core::mem::size_of::<BlkifSringEntry>()
);
