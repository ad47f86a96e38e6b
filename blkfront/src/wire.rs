//! The x86-64 layout of blkif ring entries (`protocol` = `x86_64-abi`), encoded into and
//! decoded from plain 64-bit words.
//!
//! Xen's C structures have padding (`id` is 8-byte aligned after a 4-byte header), so they
//! cannot be copied into shared memory as they are: padding would carry stale bytes of ours.
//! The ring therefore holds arrays of words ([`Req`], [`Rsp`]) that we fill field by field.
//! The field offsets are checked against [`xenia_xen::abi`] in the tests below.

use xenia_xen::abi::{
    BlkifRequestSegment, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_INDIRECT,
};

#[cfg(not(target_endian = "little"))]
compile_error!("the blkif x86_64 ABI is little-endian");

/// One request slot: 112 bytes (`sizeof(union blkif_sring_entry)`).
pub type Req = [u64; 14];
/// One response: 16 bytes (`sizeof(struct blkif_response)`).
pub type Rsp = [u64; 2];

/// A read/write/flush/barrier request (`struct blkif_request`).
pub fn request(
    operation: u8,
    handle: u16,
    id: u64,
    sector: u64,
    segs: &[BlkifRequestSegment],
) -> Req {
    debug_assert!(segs.len() <= BLKIF_MAX_SEGMENTS_PER_REQUEST);
    let mut w = [0u64; 14];
    // Bytes 0..4: operation, nr_segments, handle; 4..8 padding.
    w[0] = u64::from(operation) | (segs.len() as u64) << 8 | u64::from(handle) << 16;
    w[1] = id;
    w[2] = sector;
    // Segments from byte 24, 8 bytes each: gref (u32), first_sect, last_sect, 2 padding.
    for (slot, s) in w[3..].iter_mut().zip(segs) {
        *slot = segment(s);
    }
    w
}

/// A discard request (`struct blkif_request_discard`).
pub fn discard(operation: u8, flag: u8, handle: u16, id: u64, sector: u64, nr: u64) -> Req {
    let mut w = [0u64; 14];
    w[0] = u64::from(operation) | u64::from(flag) << 8 | u64::from(handle) << 16;
    w[1] = id;
    w[2] = sector;
    w[3] = nr;
    w
}

/// An indirect request (`struct blkif_request_indirect`): `nr_segments` segments in the pages
/// granted as `indirect` (at most [`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`]).
pub fn indirect(
    indirect_op: u8,
    nr_segments: u16,
    handle: u16,
    id: u64,
    sector: u64,
    indirect: &[u32],
) -> Req {
    debug_assert!(indirect.len() <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    let mut w = [0u64; 14];
    // Bytes 0..4: operation, indirect_op, nr_segments; 4..8 padding.
    w[0] =
        u64::from(BLKIF_OP_INDIRECT) | u64::from(indirect_op) << 8 | u64::from(nr_segments) << 16;
    w[1] = id;
    w[2] = sector;
    // Byte 24: handle, 2 bytes of padding; grants from byte 28, 4 bytes each.
    w[3] = u64::from(handle);
    for (i, g) in indirect.iter().enumerate() {
        let byte = 28 + 4 * i;
        w[byte / 8] |= u64::from(*g) << (8 * (byte % 8));
    }
    w
}

/// One segment as it is stored in an indirect page (8 bytes, little-endian).
pub fn segment(s: &BlkifRequestSegment) -> u64 {
    u64::from(s.gref) | u64::from(s.first_sect) << 32 | u64::from(s.last_sect) << 40
}

/// A decoded response: `(id, operation, status)`.
pub fn response(r: Rsp) -> (u64, u8, i16) {
    // Bytes 8: operation; 9 padding; 10..12 status.
    (r[0], r[1] as u8, (r[1] >> 16) as u16 as i16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use xenia_xen::abi::{
        BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifResponse, BlkifSringEntry,
    };

    #[test]
    fn offsets_match_the_abi() {
        assert_eq!(size_of::<Req>(), size_of::<BlkifSringEntry>());
        assert_eq!(size_of::<Rsp>(), size_of::<BlkifResponse>());
        assert_eq!(offset_of!(BlkifRequest, operation), 0);
        assert_eq!(offset_of!(BlkifRequest, nr_segments), 1);
        assert_eq!(offset_of!(BlkifRequest, handle), 2);
        assert_eq!(offset_of!(BlkifRequest, id), 8);
        assert_eq!(offset_of!(BlkifRequest, sector_number), 16);
        assert_eq!(offset_of!(BlkifRequest, seg), 24);
        assert_eq!(offset_of!(BlkifRequestSegment, gref), 0);
        assert_eq!(offset_of!(BlkifRequestSegment, first_sect), 4);
        assert_eq!(offset_of!(BlkifRequestSegment, last_sect), 5);
        assert_eq!(size_of::<BlkifRequestSegment>(), 8);
        assert_eq!(offset_of!(BlkifRequestDiscard, flag), 1);
        assert_eq!(offset_of!(BlkifRequestDiscard, handle), 2);
        assert_eq!(offset_of!(BlkifRequestDiscard, id), 8);
        assert_eq!(offset_of!(BlkifRequestDiscard, sector_number), 16);
        assert_eq!(offset_of!(BlkifRequestDiscard, nr_sectors), 24);
        assert_eq!(offset_of!(BlkifRequestIndirect, indirect_op), 1);
        assert_eq!(offset_of!(BlkifRequestIndirect, nr_segments), 2);
        assert_eq!(offset_of!(BlkifRequestIndirect, id), 8);
        assert_eq!(offset_of!(BlkifRequestIndirect, sector_number), 16);
        assert_eq!(offset_of!(BlkifRequestIndirect, handle), 24);
        assert_eq!(offset_of!(BlkifRequestIndirect, indirect_grefs), 28);
        assert_eq!(offset_of!(BlkifResponse, id), 0);
        assert_eq!(offset_of!(BlkifResponse, operation), 8);
        assert_eq!(offset_of!(BlkifResponse, status), 10);
    }

    fn bytes(w: &[u64]) -> std::vec::Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    extern crate std;

    #[test]
    fn encodes_fields_at_their_offsets() {
        let segs = [
            BlkifRequestSegment {
                gref: 0x0102_0304,
                first_sect: 1,
                last_sect: 7,
            },
            BlkifRequestSegment {
                gref: 9,
                first_sect: 0,
                last_sect: 3,
            },
        ];
        let r = request(1, 0xcafe, 0x1122_3344_5566_7788, 0x99, &segs);
        let b = bytes(&r);
        assert_eq!(&b[0..4], &[1, 2, 0xfe, 0xca]);
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(
            u64::from_le_bytes(b[8..16].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 0x99);
        assert_eq!(&b[24..32], &[4, 3, 2, 1, 1, 7, 0, 0]);
        assert_eq!(&b[32..40], &[9, 0, 0, 0, 0, 3, 0, 0]);
        assert!(b[40..].iter().all(|&x| x == 0));
        let ind = bytes(&indirect(1, 300, 0xbeef, 5, 6, &[10, 11, 12]));
        assert_eq!(&ind[0..4], &[6, 1, 44, 1]);
        assert_eq!(&ind[24..28], &[0xef, 0xbe, 0, 0]);
        assert_eq!(&ind[28..40], &[10, 0, 0, 0, 11, 0, 0, 0, 12, 0, 0, 0]);
        assert!(ind[40..].iter().all(|&x| x == 0));
        let d = bytes(&discard(5, 1, 7, 3, 100, 200));
        assert_eq!(&d[0..4], &[5, 1, 7, 0]);
        assert_eq!(u64::from_le_bytes(d[24..32].try_into().unwrap()), 200);
        let mut rsp = [0u8; 16];
        rsp[0] = 42;
        rsp[8] = 3;
        rsp[10..12].copy_from_slice(&(-2i16).to_le_bytes());
        let w = [
            u64::from_le_bytes(rsp[..8].try_into().unwrap()),
            u64::from_le_bytes(rsp[8..].try_into().unwrap()),
        ];
        assert_eq!(response(w), (42, 3, -2));
    }
}
