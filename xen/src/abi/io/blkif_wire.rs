//! The blkif codec: ring slots in the x86-64 layout (`protocol` = `x86_64-abi`), encoded from
//! and decoded into the structures of `io/blkif.h` (re-exported flat in [`crate::abi::io`]), for
//! frontends and backends alike.
//!
//! Xen's C structures have padding (`id` is 8-byte aligned after a 4-byte header), so they
//! cannot be copied into shared memory as they are: the padding would carry stale bytes. A
//! ring slot is therefore an array of little-endian 64-bit words ([`RequestSlot`],
//! [`ResponseSlot`], both [`RingMessage`]s) that the encoders fill field by field, padding
//! zeroed. The decoders copy the fields out into the plain structures; [`RequestSlot::decode`]
//! also checks what a backend must not trust (segment counts, operations).
//!
//! A frontend encodes with [`RequestSlot::request`], [`RequestSlot::discard`] and
//! [`RequestSlot::indirect`] (segments of an indirect request go into the indirect pages
//! with [`encode_segment`]) and decodes with [`ResponseSlot::response`]. A backend decodes
//! with [`RequestSlot::decode`] (and [`decode_segment`] for indirect pages) and answers with
//! [`ResponseSlot::new`].

use super::blkif::{
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_SEGS_PER_INDIRECT_FRAME,
};
use crate::abi::GrantRef;
use xenia_ring::RingMessage;

#[cfg(not(target_endian = "little"))]
compile_error!("the blkif x86_64 ABI is little-endian");

/// Words of a request slot: 112 bytes (`sizeof(union blkif_sring_entry)`).
pub const REQUEST_WORDS: usize = 14;
/// Words of a response: 16 bytes (`sizeof(struct blkif_response)`).
pub const RESPONSE_WORDS: usize = 2;
/// Byte offset of `indirect_grefs` in `struct blkif_request_indirect`.
const INDIRECT_GREFS_OFFSET: usize = 28;

/// One request slot of the block ring, as it lies in shared memory.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestSlot(pub [u64; REQUEST_WORDS]);

/// One response slot of the block ring, as it lies in shared memory.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseSlot(pub [u64; RESPONSE_WORDS]);

// SAFETY: `#[repr(transparent)]` over an array of u64: no padding, every bit pattern valid.
unsafe impl RingMessage for RequestSlot {}
// SAFETY: as for RequestSlot.
unsafe impl RingMessage for ResponseSlot {}

/// A request as a backend sees it after [`RequestSlot::decode`]: its fields copied out and
/// checked against the protocol's fixed limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `BLKIF_OP_{READ,WRITE,WRITE_BARRIER,FLUSH_DISKCACHE}` or any other operation with the
    /// direct layout: `nr_segments` is at most [`BLKIF_MAX_SEGMENTS_PER_REQUEST`]; see
    /// [`segments`](Self::segments).
    Direct(BlkifRequest),
    /// `BLKIF_OP_DISCARD`.
    Discard(BlkifRequestDiscard),
    /// `BLKIF_OP_INDIRECT`: `indirect_op` is read or write, `nr_segments` is 1 ..= what
    /// [`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`] pages hold; see
    /// [`indirect_pages`](Self::indirect_pages).
    Indirect(BlkifRequestIndirect),
}

impl Request {
    /// The request's `id` (echoed in its response).
    pub fn id(&self) -> u64 {
        match self {
            Request::Direct(r) => r.id,
            Request::Discard(r) => r.id,
            Request::Indirect(r) => r.id,
        }
    }

    /// The operation a response to this request names: `indirect_op` for an indirect
    /// request (as Linux's blkback answers), else `operation`.
    pub fn response_operation(&self) -> u8 {
        match self {
            Request::Direct(r) => r.operation,
            Request::Discard(r) => r.operation,
            Request::Indirect(r) => r.indirect_op,
        }
    }

    /// The segments of a direct request (empty for the other kinds).
    pub fn segments(&self) -> &[BlkifRequestSegment] {
        match self {
            // `decode` checked nr_segments <= BLKIF_MAX_SEGMENTS_PER_REQUEST.
            Request::Direct(r) => &r.seg[..usize::from(r.nr_segments).min(r.seg.len())],
            _ => &[],
        }
    }

    /// The grants of the pages holding an indirect request's segments (empty for the other
    /// kinds): as many as its `nr_segments` need.
    pub fn indirect_pages(&self) -> &[GrantRef] {
        match self {
            Request::Indirect(r) => {
                let n = indirect_pages_for(usize::from(r.nr_segments));
                &r.indirect_grefs[..n.min(r.indirect_grefs.len())]
            }
            _ => &[],
        }
    }
}

/// Why [`RequestSlot::decode`] refused a request. Each error carries the request's id and the
/// operation its error response should name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkifDecodeError {
    /// A direct request with more than [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] segments.
    TooManySegments {
        /// The request's id.
        id: u64,
        /// The request's operation.
        operation: u8,
        /// The segment count it claimed.
        nr_segments: u16,
    },
    /// An indirect request whose `indirect_op` is not read or write, or whose segment count
    /// is 0 or more than [`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`] pages hold.
    BadIndirect {
        /// The request's id.
        id: u64,
        /// Its `indirect_op`.
        indirect_op: u8,
        /// The segment count it claimed.
        nr_segments: u16,
    },
}

impl BlkifDecodeError {
    /// The id of the refused request.
    pub fn id(&self) -> u64 {
        match *self {
            BlkifDecodeError::TooManySegments { id, .. }
            | BlkifDecodeError::BadIndirect { id, .. } => id,
        }
    }

    /// The operation the error response names.
    pub fn response_operation(&self) -> u8 {
        match *self {
            BlkifDecodeError::TooManySegments { operation, .. } => operation,
            BlkifDecodeError::BadIndirect { indirect_op, .. } => indirect_op,
        }
    }
}

impl core::fmt::Display for BlkifDecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BlkifDecodeError::TooManySegments {
                id,
                operation,
                nr_segments,
            } => write!(
                f,
                "blkif request {id} (operation {operation}) has {nr_segments} segments, more \
                 than the {BLKIF_MAX_SEGMENTS_PER_REQUEST} a direct request can carry"
            ),
            BlkifDecodeError::BadIndirect {
                id,
                indirect_op,
                nr_segments,
            } => write!(
                f,
                "blkif indirect request {id} is unusable: operation {indirect_op} with \
                 {nr_segments} segments (read or write with 1 to \
                 {BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST} pages of segments expected)"
            ),
        }
    }
}

impl core::error::Error for BlkifDecodeError {}

/// Indirect pages needed for `nr_segments` segments.
pub const fn indirect_pages_for(nr_segments: usize) -> usize {
    nr_segments.div_ceil(BLKIF_SEGS_PER_INDIRECT_FRAME)
}

/// ORs `v` into the 4 little-endian bytes at byte offset `byte` of the words.
fn put_u32(w: &mut [u64], byte: usize, v: u32) {
    w[byte / 8] |= u64::from(v) << (8 * (byte % 8));
}

/// The 4 little-endian bytes at byte offset `byte` of the words.
fn get_u32(w: &[u64], byte: usize) -> u32 {
    (w[byte / 8] >> (8 * (byte % 8))) as u32
}

impl RequestSlot {
    /// Encodes a read/write/flush/barrier request (`struct blkif_request`) with `segs` as its
    /// segments (at most [`BLKIF_MAX_SEGMENTS_PER_REQUEST`]; extra ones are not encoded).
    pub fn request(
        operation: u8,
        handle: u16,
        id: u64,
        sector: u64,
        segs: &[BlkifRequestSegment],
    ) -> RequestSlot {
        debug_assert!(segs.len() <= BLKIF_MAX_SEGMENTS_PER_REQUEST);
        let segs = &segs[..segs.len().min(BLKIF_MAX_SEGMENTS_PER_REQUEST)];
        let mut w = [0u64; REQUEST_WORDS];
        // Bytes 0..4: operation, nr_segments, handle; 4..8 padding.
        w[0] = u64::from(operation) | (segs.len() as u64) << 8 | u64::from(handle) << 16;
        w[1] = id;
        w[2] = sector;
        // Segments from byte 24, 8 bytes each.
        for (slot, s) in w[3..].iter_mut().zip(segs) {
            *slot = encode_segment(s);
        }
        RequestSlot(w)
    }

    /// Encodes `r` (its `nr_segments` first segments; at most
    /// [`BLKIF_MAX_SEGMENTS_PER_REQUEST`]).
    pub fn from_request(r: &BlkifRequest) -> RequestSlot {
        let n = usize::from(r.nr_segments).min(r.seg.len());
        Self::request(r.operation, r.handle, r.id, r.sector_number, &r.seg[..n])
    }

    /// Encodes a discard request (`struct blkif_request_discard`, `BLKIF_OP_DISCARD`).
    pub fn discard(flag: u8, handle: u16, id: u64, sector: u64, nr_sectors: u64) -> RequestSlot {
        let mut w = [0u64; REQUEST_WORDS];
        w[0] = u64::from(BLKIF_OP_DISCARD) | u64::from(flag) << 8 | u64::from(handle) << 16;
        w[1] = id;
        w[2] = sector;
        w[3] = nr_sectors;
        RequestSlot(w)
    }

    /// Encodes an indirect request (`struct blkif_request_indirect`): `nr_segments`
    /// segments of operation `indirect_op` in the pages granted as `indirect` (at most
    /// [`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`]; extra ones are not encoded).
    pub fn indirect(
        indirect_op: u8,
        nr_segments: u16,
        handle: u16,
        id: u64,
        sector: u64,
        indirect: &[GrantRef],
    ) -> RequestSlot {
        debug_assert!(indirect.len() <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
        let mut w = [0u64; REQUEST_WORDS];
        // Bytes 0..4: operation, indirect_op, nr_segments; 4..8 padding.
        w[0] = u64::from(BLKIF_OP_INDIRECT)
            | u64::from(indirect_op) << 8
            | u64::from(nr_segments) << 16;
        w[1] = id;
        w[2] = sector;
        // Byte 24: handle, 2 bytes of padding; grants from byte 28, 4 bytes each.
        w[3] = u64::from(handle);
        for (i, g) in indirect
            .iter()
            .take(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
            .enumerate()
        {
            put_u32(&mut w, INDIRECT_GREFS_OFFSET + 4 * i, *g);
        }
        RequestSlot(w)
    }

    /// The operation byte (the first byte of every request).
    pub fn operation(&self) -> u8 {
        self.0[0] as u8
    }

    /// The request id (at byte 8 in every request layout).
    pub fn id(&self) -> u64 {
        self.0[1]
    }

    /// Copies the slot out as a `struct blkif_request` without any check (`nr_segments` may
    /// exceed the array; [`decode`](Self::decode) checks).
    pub fn as_request(&self) -> BlkifRequest {
        let w = &self.0;
        let mut seg = [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
        for (s, &x) in seg.iter_mut().zip(&w[3..]) {
            *s = decode_segment(x);
        }
        BlkifRequest {
            operation: w[0] as u8,
            nr_segments: (w[0] >> 8) as u8,
            handle: (w[0] >> 16) as u16,
            id: w[1],
            sector_number: w[2],
            seg,
        }
    }

    /// Copies the slot out as a `struct blkif_request_discard` without any check.
    pub fn as_discard(&self) -> BlkifRequestDiscard {
        let w = &self.0;
        BlkifRequestDiscard {
            operation: w[0] as u8,
            flag: (w[0] >> 8) as u8,
            handle: (w[0] >> 16) as u16,
            id: w[1],
            sector_number: w[2],
            nr_sectors: w[3],
        }
    }

    /// Copies the slot out as a `struct blkif_request_indirect` without any check.
    pub fn as_indirect(&self) -> BlkifRequestIndirect {
        let w = &self.0;
        let mut indirect_grefs = [0; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
        for (i, g) in indirect_grefs.iter_mut().enumerate() {
            *g = get_u32(w, INDIRECT_GREFS_OFFSET + 4 * i);
        }
        BlkifRequestIndirect {
            operation: w[0] as u8,
            indirect_op: (w[0] >> 8) as u8,
            nr_segments: (w[0] >> 16) as u16,
            id: w[1],
            sector_number: w[2],
            handle: w[3] as u16,
            indirect_grefs,
        }
    }

    /// Decodes the request by its operation and checks the protocol's fixed limits (a
    /// backend checks its own, such as the indirect segments it offered, on the result).
    /// Segments themselves (sector ranges within a page) are not checked.
    pub fn decode(&self) -> Result<Request, BlkifDecodeError> {
        match self.operation() {
            BLKIF_OP_DISCARD => Ok(Request::Discard(self.as_discard())),
            BLKIF_OP_INDIRECT => {
                let r = self.as_indirect();
                let n = usize::from(r.nr_segments);
                if !matches!(r.indirect_op, BLKIF_OP_READ | BLKIF_OP_WRITE)
                    || n == 0
                    || indirect_pages_for(n) > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST
                {
                    return Err(BlkifDecodeError::BadIndirect {
                        id: r.id,
                        indirect_op: r.indirect_op,
                        nr_segments: r.nr_segments,
                    });
                }
                Ok(Request::Indirect(r))
            }
            _ => {
                let r = self.as_request();
                if usize::from(r.nr_segments) > BLKIF_MAX_SEGMENTS_PER_REQUEST {
                    return Err(BlkifDecodeError::TooManySegments {
                        id: r.id,
                        operation: r.operation,
                        nr_segments: r.nr_segments.into(),
                    });
                }
                Ok(Request::Direct(r))
            }
        }
    }
}

impl ResponseSlot {
    /// Encodes a response (`struct blkif_response`), padding zeroed.
    pub fn new(id: u64, operation: u8, status: i16) -> ResponseSlot {
        // Byte 8: operation; 9 padding; 10..12 status; 12..16 padding.
        ResponseSlot([id, u64::from(operation) | u64::from(status as u16) << 16])
    }

    /// Encodes `r`.
    pub fn from_response(r: &BlkifResponse) -> ResponseSlot {
        Self::new(r.id, r.operation, r.status)
    }

    /// Decodes the response (any bit pattern is a response; the caller checks its fields).
    pub fn response(&self) -> BlkifResponse {
        let w = &self.0;
        BlkifResponse {
            id: w[0],
            operation: w[1] as u8,
            status: (w[1] >> 16) as u16 as i16,
        }
    }
}

/// One segment as it is stored in an indirect page: 8 bytes (gref, first_sect, last_sect,
/// 2 bytes of padding), as a little-endian word.
pub fn encode_segment(s: &BlkifRequestSegment) -> u64 {
    u64::from(s.gref) | u64::from(s.first_sect) << 32 | u64::from(s.last_sect) << 40
}

/// Decodes a segment word of a request slot or an indirect page (padding ignored).
pub fn decode_segment(w: u64) -> BlkifRequestSegment {
    BlkifRequestSegment {
        gref: w as u32,
        first_sect: (w >> 32) as u8,
        last_sect: (w >> 40) as u8,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::abi::{BlkifSringEntry, BLKIF_OP_FLUSH_DISKCACHE};
    use core::mem::{offset_of, size_of};
    use std::vec::Vec;

    #[test]
    fn offsets_match_the_abi() {
        assert_eq!(size_of::<RequestSlot>(), size_of::<BlkifSringEntry>());
        assert_eq!(size_of::<ResponseSlot>(), size_of::<BlkifResponse>());
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
        assert_eq!(
            offset_of!(BlkifRequestIndirect, indirect_grefs),
            INDIRECT_GREFS_OFFSET
        );
        assert_eq!(offset_of!(BlkifResponse, id), 0);
        assert_eq!(offset_of!(BlkifResponse, operation), 8);
        assert_eq!(offset_of!(BlkifResponse, status), 10);
    }

    fn bytes(w: &[u64]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn segs() -> [BlkifRequestSegment; 2] {
        [
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
        ]
    }

    #[test]
    fn encodes_fields_at_their_offsets() {
        let r = RequestSlot::request(1, 0xcafe, 0x1122_3344_5566_7788, 0x99, &segs());
        let b = bytes(&r.0);
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
        let ind = bytes(&RequestSlot::indirect(1, 300, 0xbeef, 5, 6, &[10, 11, 12]).0);
        assert_eq!(&ind[0..4], &[6, 1, 44, 1]);
        assert_eq!(&ind[24..28], &[0xef, 0xbe, 0, 0]);
        assert_eq!(&ind[28..40], &[10, 0, 0, 0, 11, 0, 0, 0, 12, 0, 0, 0]);
        assert!(ind[40..].iter().all(|&x| x == 0));
        let d = bytes(&RequestSlot::discard(1, 7, 3, 100, 200).0);
        assert_eq!(&d[0..4], &[5, 1, 7, 0]);
        assert_eq!(u64::from_le_bytes(d[24..32].try_into().unwrap()), 200);
        let mut rsp = [0u8; 16];
        rsp[0] = 42;
        rsp[8] = 3;
        rsp[10..12].copy_from_slice(&(-2i16).to_le_bytes());
        let w = ResponseSlot([
            u64::from_le_bytes(rsp[..8].try_into().unwrap()),
            u64::from_le_bytes(rsp[8..].try_into().unwrap()),
        ]);
        assert_eq!(
            w.response(),
            BlkifResponse {
                id: 42,
                operation: 3,
                status: -2
            }
        );
        assert_eq!(bytes(&ResponseSlot::new(42, 3, -2).0), rsp);
    }

    #[test]
    fn requests_round_trip() {
        let r = RequestSlot::request(BLKIF_OP_WRITE, 0xcafe, 77, 123, &segs());
        let Ok(Request::Direct(d)) = r.decode() else {
            panic!("not a direct request");
        };
        assert_eq!(
            (d.operation, d.nr_segments, d.handle, d.id, d.sector_number),
            (BLKIF_OP_WRITE, 2, 0xcafe, 77, 123)
        );
        assert_eq!(Request::Direct(d).segments(), &segs());
        assert_eq!(RequestSlot::from_request(&d), r);

        let f = RequestSlot::request(BLKIF_OP_FLUSH_DISKCACHE, 1, 8, 0, &[]);
        assert_eq!(f.decode().unwrap().segments(), &[]);
        assert_eq!(
            f.decode().unwrap().response_operation(),
            BLKIF_OP_FLUSH_DISKCACHE
        );

        let dis = RequestSlot::discard(1, 7, 3, 100, 200).decode().unwrap();
        assert_eq!(
            dis,
            Request::Discard(BlkifRequestDiscard {
                operation: BLKIF_OP_DISCARD,
                flag: 1,
                handle: 7,
                id: 3,
                sector_number: 100,
                nr_sectors: 200,
            })
        );

        let ind = RequestSlot::indirect(BLKIF_OP_READ, 600, 2, 5, 6, &[10, 11])
            .decode()
            .unwrap();
        assert_eq!(ind.id(), 5);
        assert_eq!(ind.response_operation(), BLKIF_OP_READ);
        assert_eq!(ind.indirect_pages(), &[10, 11]);
        let Request::Indirect(i) = ind else {
            panic!("not indirect")
        };
        assert_eq!((i.nr_segments, i.handle, i.sector_number), (600, 2, 6));

        for s in segs() {
            assert_eq!(decode_segment(encode_segment(&s)), s);
        }
        // Padding bytes of a segment word are ignored.
        assert_eq!(
            decode_segment(encode_segment(&segs()[0]) | 0xffff << 48),
            segs()[0]
        );
    }

    #[test]
    fn decode_refuses_what_breaks_the_protocol() {
        let mut r = RequestSlot::request(BLKIF_OP_READ, 0, 9, 0, &[]);
        r.0[0] |= 12 << 8;
        assert_eq!(
            r.decode(),
            Err(BlkifDecodeError::TooManySegments {
                id: 9,
                operation: BLKIF_OP_READ,
                nr_segments: 12
            })
        );
        for (op, n) in [
            (BLKIF_OP_READ, 0),
            (BLKIF_OP_DISCARD, 1),
            (BLKIF_OP_WRITE, 4097),
        ] {
            let e = RequestSlot::indirect(op, n, 0, 4, 0, &[])
                .decode()
                .unwrap_err();
            assert_eq!(e.id(), 4);
            assert_eq!(e.response_operation(), op);
        }
        assert!(
            RequestSlot::indirect(BLKIF_OP_WRITE, 4096, 0, 4, 0, &[1; 8])
                .decode()
                .is_ok()
        );
        // Any bit pattern decodes to something or an error, never a panic.
        let junk = RequestSlot([u64::MAX; REQUEST_WORDS]);
        let _ = junk.decode();
        assert_eq!(junk.as_request().seg.len(), BLKIF_MAX_SEGMENTS_PER_REQUEST);
    }
}
