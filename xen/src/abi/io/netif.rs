//! `io/netif.h`: the network device's ring entries and flags.
//!
//! A netfront shares two rings with its backend: tx (guest → network, [`NetifTxRequest`] /
//! [`NetifTxResponse`]) and rx (network → guest, [`NetifRxRequest`] / [`NetifRxResponse`]).
//! A request or response flagged `*_extra_info` is followed by a [`NetifExtraInfo`] in the
//! next slot of the same ring.

use crate::abi::{assert_sizes, const_ring_size, GrantRef, XEN_PAGE_SIZE};

/// The fewest slots one packet may use that a backend must accept.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;
/// The largest packet (all its slots together) a tx request may describe.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;

/// tx flag: the packet's checksum is blank (to be filled by the backend or the NIC).
pub const NETTXF_csum_blank: u16 = 1 << 0;
/// tx flag: the packet's checksum is known good.
pub const NETTXF_data_validated: u16 = 1 << 1;
/// tx flag: the packet continues in the next request.
pub const NETTXF_more_data: u16 = 1 << 2;
/// tx flag: the next slot holds a [`NetifExtraInfo`].
pub const NETTXF_extra_info: u16 = 1 << 3;

/// `struct netif_tx_request`: one slot of a packet to send.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the page holding the data.
    pub gref: GrantRef,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// The first slot: the whole packet's size; the others: this slot's size.
    pub size: u16,
}

/// Extra info type: none.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra info type: segmentation offload ([`NetifExtraInfoGso`]).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra info type: add a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra info type: remove a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra info type: the packet's hash.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// One past the highest extra info type.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;

/// Extra info flag: another extra info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// GSO type: none.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// GSO type: TCP over IPv4.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// `netif_extra_info.u.gso`: segmentation offload parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoGso {
    /// Maximum segment size.
    pub size: u16,
    /// `XEN_NETIF_GSO_TYPE_*`.
    pub r#type: u8,
    /// Padding, 0.
    pub pad: u8,
    /// `XEN_NETIF_GSO_FEAT_*` (none defined).
    pub features: u16,
}

/// `netif_extra_info.u.mcast`: a multicast address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoMcast {
    /// The Ethernet address.
    pub addr: [u8; 6],
}

/// `netif_extra_info.u.hash`: the packet's hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoHash {
    /// `_XEN_NETIF_CTRL_HASH_TYPE_*`.
    pub r#type: u8,
    /// `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
    pub algorithm: u8,
    /// The hash value (little endian).
    pub value: [u8; 4],
}

/// `netif_extra_info.u`: the type-dependent part of [`NetifExtraInfo`].
///
/// Every member is exactly 6 bytes of plain integers without padding, so the accessors read
/// any member safely whatever was written.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NetifExtraInfoU {
    /// For `XEN_NETIF_EXTRA_TYPE_GSO`.
    pub gso: NetifExtraInfoGso,
    /// For `XEN_NETIF_EXTRA_TYPE_MCAST_{ADD,DEL}`.
    pub mcast: NetifExtraInfoMcast,
    /// For `XEN_NETIF_EXTRA_TYPE_HASH`.
    pub hash: NetifExtraInfoHash,
    /// The raw bytes.
    pub pad: [u16; 3],
}

impl NetifExtraInfoU {
    /// The member as GSO parameters.
    pub fn gso(&self) -> NetifExtraInfoGso {
        // SAFETY: all members are 6 bytes of integers with no padding; any initialized bytes
        // are a valid NetifExtraInfoGso.
        unsafe { self.gso }
    }

    /// The member as a multicast address.
    pub fn mcast(&self) -> NetifExtraInfoMcast {
        // SAFETY: as in `gso`.
        unsafe { self.mcast }
    }

    /// The member as a hash.
    pub fn hash(&self) -> NetifExtraInfoHash {
        // SAFETY: as in `gso`.
        unsafe { self.hash }
    }

    /// The raw member.
    pub fn pad(&self) -> [u16; 3] {
        // SAFETY: as in `gso`.
        unsafe { self.pad }
    }
}

impl Default for NetifExtraInfoU {
    fn default() -> Self {
        NetifExtraInfoU { pad: [0; 3] }
    }
}

impl PartialEq for NetifExtraInfoU {
    fn eq(&self, other: &Self) -> bool {
        self.pad() == other.pad()
    }
}
impl Eq for NetifExtraInfoU {}

impl core::fmt::Debug for NetifExtraInfoU {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetifExtraInfoU")
            .field("pad", &self.pad())
            .finish()
    }
}

/// `struct netif_extra_info`: an extra slot after a request or response flagged
/// `*_extra_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub r#type: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The type-dependent part.
    pub u: NetifExtraInfoU,
}

/// `struct netif_tx_response`: the backend's answer to a tx request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request`: a page offered to the backend for a received packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding.
    pub pad: u16,
    /// Grant of the page.
    pub gref: GrantRef,
}

/// rx flag: the packet's checksum is known good.
pub const NETRXF_data_validated: u16 = 1 << 0;
/// rx flag: the packet's checksum is blank (it is local, never hit the wire).
pub const NETRXF_csum_blank: u16 = 1 << 1;
/// rx flag: the packet continues in the next response.
pub const NETRXF_more_data: u16 = 1 << 2;
/// rx flag: the next slot holds a [`NetifExtraInfo`].
pub const NETRXF_extra_info: u16 = 1 << 3;
/// rx flag: a GSO prefix (obsolete protocol).
pub const NETRXF_gso_prefix: u16 = 1 << 4;

/// `struct netif_rx_response`: a received packet (or a slot of one).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes in this slot if >= 0, else `NETIF_RSP_*`.
    pub status: i16,
}

/// Response status: the packet was dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Response status: error.
pub const NETIF_RSP_ERROR: i16 = -1;
/// Response status: success.
pub const NETIF_RSP_OKAY: i16 = 0;
/// Response status: the slot of an extra info (no data).
pub const NETIF_RSP_NULL: i16 = 1;

/// `union netif_tx_sring_entry`: one slot of the tx ring.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NetifTxSringEntry {
    /// As a request.
    pub req: NetifTxRequest,
    /// As a response.
    pub rsp: NetifTxResponse,
}

/// `union netif_rx_sring_entry`: one slot of the rx ring.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NetifRxSringEntry {
    /// As a request.
    pub req: NetifRxRequest,
    /// As a response.
    pub rsp: NetifRxResponse,
}

/// Entries of a one-page tx ring (`__CONST_RING_SIZE(netif_tx, XEN_PAGE_SIZE)`; Linux's
/// `NET_TX_RING_SIZE`).
pub const NETIF_TX_RING_SIZE: usize =
    const_ring_size(XEN_PAGE_SIZE, core::mem::size_of::<NetifTxSringEntry>());
/// Entries of a one-page rx ring (`__CONST_RING_SIZE(netif_rx, XEN_PAGE_SIZE)`; Linux's
/// `NET_RX_RING_SIZE`).
pub const NETIF_RX_RING_SIZE: usize =
    const_ring_size(XEN_PAGE_SIZE, core::mem::size_of::<NetifRxSringEntry>());

assert_sizes! {
    NetifTxRequest => 12,
    NetifTxResponse => 4,
    NetifRxRequest => 8,
    NetifRxResponse => 8,
    NetifExtraInfoGso => 6,
    NetifExtraInfoMcast => 6,
    NetifExtraInfoHash => 6,
    NetifExtraInfoU => 6,
    NetifExtraInfo => 8,
    NetifTxSringEntry => 12,
    NetifRxSringEntry => 8,
}
static_assertions::const_assert_eq!(NETIF_TX_RING_SIZE, 256);
static_assertions::const_assert_eq!(NETIF_RX_RING_SIZE, 256);
// An extra info travels in a request slot of either ring.
static_assertions::const_assert!(
    core::mem::size_of::<NetifExtraInfo>() <= core::mem::size_of::<NetifRxSringEntry>()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_info_members_alias() {
        let mut u = NetifExtraInfoU::default();
        u.gso = NetifExtraInfoGso {
            size: 1448,
            r#type: XEN_NETIF_GSO_TYPE_TCPV4,
            pad: 0,
            features: 0,
        };
        assert_eq!(u.gso().size, 1448);
        assert_eq!(u.gso().r#type, XEN_NETIF_GSO_TYPE_TCPV4);
        assert_eq!(u.pad()[0], 1448);
        assert_eq!(u.mcast().addr[..3], [0xa8, 0x05, 1]);
    }
}
