//! The netif codec: the slots of the tx and rx rings of `io/netif.h` (re-exported flat in
//! [`crate::abi::io`]) as [`RingMessage`]s, for frontends and backends alike.
//!
//! The netif structures have no padding, so a slot is the structure itself, wrapped to be a
//! ring message. What needs decoding is the other use of a slot: after a request or response
//! flagged `*_extra_info`, the next slot of the same ring holds a [`NetifExtraInfo`] in its
//! first 8 bytes. [`TxRequestSlot::extra_info`] and [`RxResponseSlot::extra_info`] read a slot
//! that way, [`TxRequestSlot::from_extra_info`] and [`RxResponseSlot::from_extra_info`] write
//! one (the rest of the slot zeroed). The conversions go field by field through the
//! little-endian bytes, so any slot content decodes to some value and nothing is trusted.

use super::netif::{
    NetifExtraInfo, NetifExtraInfoU, NetifRxRequest, NetifRxResponse, NetifTxRequest,
    NetifTxResponse,
};
use xenia_ring::RingMessage;

#[cfg(not(target_endian = "little"))]
compile_error!("the netif x86_64 ABI is little-endian");

/// One request slot of the tx ring: a [`NetifTxRequest`] or a [`NetifExtraInfo`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequestSlot(pub NetifTxRequest);

/// One response slot of the tx ring.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponseSlot(pub NetifTxResponse);

/// One request slot of the rx ring.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequestSlot(pub NetifRxRequest);

/// One response slot of the rx ring: a [`NetifRxResponse`] or a [`NetifExtraInfo`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponseSlot(pub NetifRxResponse);

// SAFETY: each is `#[repr(transparent)]` over a `#[repr(C)]` struct of integers without
// padding (sizes checked in `netif.rs`): every bit pattern is valid, no padding is copied.
unsafe impl RingMessage for TxRequestSlot {}
// SAFETY: as above.
unsafe impl RingMessage for TxResponseSlot {}
// SAFETY: as above.
unsafe impl RingMessage for RxRequestSlot {}
// SAFETY: as above.
unsafe impl RingMessage for RxResponseSlot {}

/// An extra info from its 8 bytes: `type`, `flags`, then the 6 bytes of `u` as 3 words.
fn extra_from(ty: u8, flags: u8, pad: [u16; 3]) -> NetifExtraInfo {
    NetifExtraInfo {
        r#type: ty,
        flags,
        u: NetifExtraInfoU { pad },
    }
}

impl TxRequestSlot {
    /// The slot as a request.
    pub fn request(&self) -> NetifTxRequest {
        self.0
    }

    /// The slot as the extra info following a request flagged `NETTXF_extra_info`.
    pub fn extra_info(&self) -> NetifExtraInfo {
        // Bytes 0..4 (gref): type, flags, u[0..2]; 4..6 (offset): u[2..4]; 6..8 (flags):
        // u[4..6].
        let r = &self.0;
        extra_from(
            r.gref as u8,
            (r.gref >> 8) as u8,
            [(r.gref >> 16) as u16, r.offset, r.flags],
        )
    }

    /// A slot holding `e` (bytes 8..12 zeroed).
    pub fn from_extra_info(e: &NetifExtraInfo) -> TxRequestSlot {
        let pad = e.u.pad();
        TxRequestSlot(NetifTxRequest {
            gref: u32::from(e.r#type) | u32::from(e.flags) << 8 | u32::from(pad[0]) << 16,
            offset: pad[1],
            flags: pad[2],
            id: 0,
            size: 0,
        })
    }
}

impl From<NetifTxRequest> for TxRequestSlot {
    fn from(r: NetifTxRequest) -> Self {
        TxRequestSlot(r)
    }
}

impl TxResponseSlot {
    /// The slot as a response.
    pub fn response(&self) -> NetifTxResponse {
        self.0
    }
}

impl From<NetifTxResponse> for TxResponseSlot {
    fn from(r: NetifTxResponse) -> Self {
        TxResponseSlot(r)
    }
}

impl RxRequestSlot {
    /// The slot as a request.
    pub fn request(&self) -> NetifRxRequest {
        self.0
    }
}

impl From<NetifRxRequest> for RxRequestSlot {
    fn from(r: NetifRxRequest) -> Self {
        RxRequestSlot(r)
    }
}

impl RxResponseSlot {
    /// The slot as a response.
    pub fn response(&self) -> NetifRxResponse {
        self.0
    }

    /// The slot as the extra info following a response flagged `NETRXF_extra_info`.
    pub fn extra_info(&self) -> NetifExtraInfo {
        // Bytes 0..2 (id): type, flags; 2..8 (offset, flags, status): u.
        let r = &self.0;
        extra_from(
            r.id as u8,
            (r.id >> 8) as u8,
            [r.offset, r.flags, r.status as u16],
        )
    }

    /// A slot holding `e`.
    pub fn from_extra_info(e: &NetifExtraInfo) -> RxResponseSlot {
        let pad = e.u.pad();
        RxResponseSlot(NetifRxResponse {
            id: u16::from(e.r#type) | u16::from(e.flags) << 8,
            offset: pad[0],
            flags: pad[1],
            status: pad[2] as i16,
        })
    }
}

impl From<NetifRxResponse> for RxResponseSlot {
    fn from(r: NetifRxResponse) -> Self {
        RxResponseSlot(r)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::abi::{
        NetifExtraInfoGso, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO,
        XEN_NETIF_GSO_TYPE_TCPV4,
    };
    use std::vec::Vec;

    fn gso() -> NetifExtraInfo {
        NetifExtraInfo {
            r#type: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: XEN_NETIF_EXTRA_FLAG_MORE,
            u: NetifExtraInfoU {
                gso: NetifExtraInfoGso {
                    size: 1448,
                    r#type: XEN_NETIF_GSO_TYPE_TCPV4,
                    pad: 0,
                    features: 0x1234,
                },
            },
        }
    }

    /// The C layout of an extra info: type, flags, then `u`'s 6 bytes.
    fn extra_bytes(e: &NetifExtraInfo) -> Vec<u8> {
        let mut b = std::vec![e.r#type, e.flags];
        b.extend(e.u.pad().iter().flat_map(|w| w.to_le_bytes()));
        b
    }

    fn tx_bytes(r: &NetifTxRequest) -> Vec<u8> {
        let mut b = r.gref.to_le_bytes().to_vec();
        for w in [r.offset, r.flags, r.id, r.size] {
            b.extend(w.to_le_bytes());
        }
        b
    }

    fn rx_bytes(r: &NetifRxResponse) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [r.id, r.offset, r.flags, r.status as u16] {
            b.extend(w.to_le_bytes());
        }
        b
    }

    #[test]
    fn extra_info_lies_in_the_first_bytes_of_a_slot() {
        let e = gso();
        let want = extra_bytes(&e);
        assert_eq!(want[2..4], 1448u16.to_le_bytes());
        let tx = TxRequestSlot::from_extra_info(&e);
        let b = tx_bytes(&tx.0);
        assert_eq!(b[..8], want[..]);
        assert_eq!(b[8..], [0; 4]);
        assert_eq!(tx.extra_info(), e);
        assert_eq!(tx.extra_info().u.gso().size, 1448);
        let rx = RxResponseSlot::from_extra_info(&e);
        assert_eq!(rx_bytes(&rx.0), want);
        assert_eq!(rx.extra_info(), e);
    }

    #[test]
    fn any_slot_decodes_as_extra_info() {
        let r = NetifRxResponse {
            id: 0x0201,
            offset: 0x0403,
            flags: 0x0605,
            status: 0x0807,
        };
        let e = RxResponseSlot(r).extra_info();
        assert_eq!(extra_bytes(&e), rx_bytes(&r));
        assert_eq!((e.r#type, e.flags), (1, 2));
        let t = NetifTxRequest {
            gref: 0x0403_0201,
            offset: 0x0605,
            flags: 0x0807,
            id: 9,
            size: 10,
        };
        let e = TxRequestSlot(t).extra_info();
        assert_eq!(extra_bytes(&e)[..], tx_bytes(&t)[..8]);
        assert_eq!(TxRequestSlot::from(t).request(), t);
        assert_eq!(RxResponseSlot::from(r).response(), r);
    }
}
