//! Transmit offloads, as pure functions: the checksum fields of a TCP/IPv4 frame that the
//! backend completes (`NETTXF_csum_blank`) or segments (GSO), and the tx ring slots of a
//! frame (the GSO extra-info slot after the first one). No ring, grant or page in sight: the
//! caller copies the frame into pages and pushes the slots.
//!
//! The rules (io/netif.h, Linux's netback): a `csum_blank` frame's TCP checksum field holds
//! the folded, non-inverted sum of the IPv4 pseudo-header (addresses, protocol, TCP length);
//! its IPv4 header is complete (total length, header checksum). A GSO frame is at most
//! [`MAX_GSO_FRAME`] bytes; its first slot carries the whole length and
//! `csum_blank | data_validated | extra_info` (and `more_data` if more slots follow), the
//! next slot is a `netif_extra_info` of type GSO (segment payload size, `TCPV4`), then the
//! remaining data slots; no data slot crosses a page and there are at most
//! [`MAX_TX_DATA_SLOTS`] of them.

use crate::checksum::{fold, pseudo_header_sum, sum_words};
use alloc::vec::Vec;
use xenia_xen::abi::netif_wire::TxRequestSlot;
use xenia_xen::abi::{
    NETTXF_csum_blank, NETTXF_data_validated, NETTXF_extra_info, NETTXF_more_data, NetifExtraInfo,
    NetifExtraInfoGso, NetifExtraInfoU, NetifTxRequest, XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_MAX_TX_SIZE, XEN_NETIF_NR_SLOTS_MIN,
};
use xenia_xen::grant::GrantRef;
use xenia_xen::memory::PAGE_SIZE;

/// The largest frame (Ethernet header included) sent as one GSO super-frame.
pub const MAX_GSO_FRAME: usize = XEN_NETIF_MAX_TX_SIZE as usize;
/// The most data slots one tx frame may use (netback drops longer ones, and disables the
/// vif a little beyond).
pub const MAX_TX_DATA_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN as usize;

use crate::checksum::{ETHERTYPE_IPV4, IPPROTO_TCP};
use crate::ETH_HLEN;
const TCP_MIN_HLEN: usize = 20;
/// Offset of the checksum field in a TCP header.
const TCP_CSUM: usize = 16;

/// What the backend is asked to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offload {
    /// Nothing: the frame is complete.
    None,
    /// Complete the TCP checksum (`NETTXF_csum_blank`).
    Csum,
    /// Segment the frame into TCP segments of `mss` payload bytes (GSO, TCPv4).
    Gso {
        /// Payload bytes per segment (`gso.size`).
        mss: u16,
    },
}

/// Why a frame cannot be sent with a checksum offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffloadError {
    /// Not an IPv4 frame carrying TCP.
    NotTcpIpv4,
    /// Its headers are inconsistent (lengths, a fragment, IPv4 options beyond the frame).
    Malformed,
    /// Too long for the offload asked for.
    TooLong,
}

/// Whether `frame` is an Ethernet frame carrying TCP over IPv4.
pub(crate) fn is_tcp_ipv4(frame: &[u8]) -> bool {
    frame.len() >= ETH_HLEN + 20
        && u16::from_be_bytes([frame[12], frame[13]]) == ETHERTYPE_IPV4
        && frame[ETH_HLEN + 9] == IPPROTO_TCP
}

/// Prepares a TCP/IPv4 frame whose TCP checksum the backend completes: checks the headers,
/// writes the IPv4 total length (the frame's) and header checksum, and puts the pseudo-header
/// sum in the TCP checksum field. Returns the TCP payload length.
pub(crate) fn prepare_csum_blank(frame: &mut [u8]) -> Result<usize, OffloadError> {
    if !is_tcp_ipv4(frame) {
        return Err(OffloadError::NotTcpIpv4);
    }
    if frame.len() > MAX_GSO_FRAME {
        return Err(OffloadError::TooLong);
    }
    let ip = ETH_HLEN;
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    if frame[ip] >> 4 != 4 || ihl < 20 || ip + ihl + TCP_MIN_HLEN > frame.len() {
        return Err(OffloadError::Malformed);
    }
    // A fragment (MF set or an offset) cannot be offloaded.
    if u16::from_be_bytes([frame[ip + 6], frame[ip + 7]]) & 0x3fff != 0 {
        return Err(OffloadError::Malformed);
    }
    let ip_len = frame.len() - ETH_HLEN;
    let tot_len = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
    // smoltcp writes 0 when the length does not fit 16 bits; anything else must be the frame's.
    if tot_len != 0 && tot_len != ip_len {
        return Err(OffloadError::Malformed);
    }
    let tcp = ip + ihl;
    let doff = usize::from(frame[tcp + 12] >> 4) * 4;
    if doff < TCP_MIN_HLEN || tcp + doff > frame.len() {
        return Err(OffloadError::Malformed);
    }
    frame[ip + 2..ip + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    frame[ip + 10..ip + 12].fill(0);
    let csum = !fold(sum_words(0, &frame[ip..ip + ihl]));
    frame[ip + 10..ip + 12].copy_from_slice(&csum.to_be_bytes());
    let mut src = [0; 4];
    let mut dst = [0; 4];
    src.copy_from_slice(&frame[ip + 12..ip + 16]);
    dst.copy_from_slice(&frame[ip + 16..ip + 20]);
    let tcp_len = frame.len() - tcp;
    let pseudo = pseudo_header_sum(src, dst, tcp_len as u16);
    frame[tcp + TCP_CSUM..tcp + TCP_CSUM + 2].copy_from_slice(&pseudo.to_be_bytes());
    Ok(tcp_len - doff)
}

/// How many data slots (pages, each filled from its start) a frame of `len` bytes takes.
pub(crate) fn data_slots(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE).max(1)
}

/// The tx ring slots of a `len`-byte frame copied into `pages` (grant ref and request id of
/// each page, in order; page `i` holds bytes `i * PAGE_SIZE ..` from its start), with
/// `offload`. The first slot carries the whole length; with GSO the extra-info slot
/// follows it.
pub(crate) fn requests(
    len: usize,
    pages: &[(GrantRef, u16)],
    offload: Offload,
) -> Result<Vec<TxRequestSlot>, OffloadError> {
    let n = data_slots(len);
    if n != pages.len() || len > MAX_GSO_FRAME || n > MAX_TX_DATA_SLOTS {
        return Err(OffloadError::TooLong);
    }
    let mut out = Vec::with_capacity(n + 1);
    for (i, &(gref, id)) in pages.iter().enumerate() {
        let mut flags = if i + 1 < n { NETTXF_more_data } else { 0 };
        if i == 0 {
            match offload {
                Offload::None => {}
                Offload::Csum => flags |= NETTXF_csum_blank | NETTXF_data_validated,
                Offload::Gso { .. } => {
                    flags |= NETTXF_csum_blank | NETTXF_data_validated | NETTXF_extra_info
                }
            }
        }
        let size = if i == 0 {
            len
        } else {
            (len - i * PAGE_SIZE).min(PAGE_SIZE)
        };
        out.push(TxRequestSlot(NetifTxRequest {
            gref,
            offset: 0,
            flags,
            id,
            size: size as u16,
        }));
        if i == 0 {
            if let Offload::Gso { mss } = offload {
                out.push(TxRequestSlot::from_extra_info(&gso_extra(mss)));
            }
        }
    }
    Ok(out)
}

/// The GSO extra info of a TCPv4 super-frame of `mss`-byte segments.
pub(crate) fn gso_extra(mss: u16) -> NetifExtraInfo {
    NetifExtraInfo {
        r#type: XEN_NETIF_EXTRA_TYPE_GSO,
        flags: 0,
        u: NetifExtraInfoU {
            gso: NetifExtraInfoGso {
                size: mss,
                r#type: XEN_NETIF_GSO_TYPE_TCPV4,
                pad: 0,
                features: 0,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;

    /// An Ethernet + IPv4 + TCP frame with `payload` bytes of payload, checksums zero.
    fn tcp_frame(payload: usize, tot_len: Option<u16>) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HLEN + 20 + 20 + payload];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = ETH_HLEN;
        f[ip] = 0x45;
        let len = tot_len.unwrap_or((20 + 20 + payload) as u16);
        f[ip + 2..ip + 4].copy_from_slice(&len.to_be_bytes());
        f[ip + 6] = 0x40; // DF
        f[ip + 8] = 64;
        f[ip + 9] = IPPROTO_TCP;
        f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 2]);
        f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 1]);
        let tcp = ip + 20;
        f[tcp + 12] = 5 << 4;
        for (i, b) in f[tcp + 20..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        f
    }

    /// The full TCP checksum computed the textbook way (pseudo-header, segment, inverted).
    fn full_tcp_checksum(f: &[u8]) -> u16 {
        let ip = ETH_HLEN;
        let tcp = &f[ip + 20..];
        let mut pseudo = vec![];
        pseudo.extend_from_slice(&f[ip + 12..ip + 20]);
        pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        let mut seg = tcp.to_vec();
        seg[16] = 0;
        seg[17] = 0;
        !fold(sum_words(sum_words(0, &pseudo), &seg))
    }

    #[test]
    fn csum_blank_writes_the_pseudo_header_sum_and_a_valid_ip_header() {
        for payload in [0, 1, 1447, 1448, 60_000] {
            let mut f = tcp_frame(payload, None);
            assert_eq!(prepare_csum_blank(&mut f), Ok(payload));
            let ip = ETH_HLEN;
            // The IPv4 header sums to 0xffff with its checksum.
            assert_eq!(fold(sum_words(0, &f[ip..ip + 20])), 0xffff);
            // Completing the checksum the way a backend does (sum the segment with the
            // pseudo-header sum in place, invert) gives the textbook checksum.
            let tcp = ip + 20;
            let completed = !fold(sum_words(0, &f[tcp..]));
            assert_eq!(completed, full_tcp_checksum(&f), "payload {payload}");
            let partial = u16::from_be_bytes([f[tcp + 16], f[tcp + 17]]);
            assert_eq!(
                partial,
                pseudo_header_sum([10, 0, 0, 2], [10, 0, 0, 1], (20 + payload) as u16)
            );
        }
    }

    #[test]
    fn csum_blank_fills_a_zero_total_length_and_refuses_a_wrong_one() {
        let mut f = tcp_frame(100, Some(0));
        assert_eq!(prepare_csum_blank(&mut f), Ok(100));
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 140);
        let mut f = tcp_frame(100, Some(99));
        assert_eq!(prepare_csum_blank(&mut f), Err(OffloadError::Malformed));
    }

    #[test]
    fn csum_blank_refuses_what_is_not_plain_tcp_over_ipv4() {
        let mut f = tcp_frame(10, None);
        f[12] = 0x86; // IPv6 ethertype
        assert_eq!(prepare_csum_blank(&mut f), Err(OffloadError::NotTcpIpv4));
        let mut f = tcp_frame(10, None);
        f[ETH_HLEN + 9] = 17; // UDP
        assert_eq!(prepare_csum_blank(&mut f), Err(OffloadError::NotTcpIpv4));
        let mut f = tcp_frame(10, None);
        f[ETH_HLEN + 6] = 0x20; // more fragments
        assert_eq!(prepare_csum_blank(&mut f), Err(OffloadError::Malformed));
        let mut f = tcp_frame(10, None);
        f[ETH_HLEN] = 0x4f; // 60-byte IP header: the TCP header no longer fits
        assert_eq!(prepare_csum_blank(&mut f), Err(OffloadError::Malformed));
        let mut f = tcp_frame(10, None);
        f[ETH_HLEN + 20 + 12] = 15 << 4; // 60-byte TCP header in a 30-byte segment
        assert_eq!(prepare_csum_blank(&mut f), Err(OffloadError::Malformed));
        assert_eq!(
            prepare_csum_blank(&mut tcp_frame(MAX_GSO_FRAME, Some(0))),
            Err(OffloadError::TooLong)
        );
        assert_eq!(
            prepare_csum_blank(&mut [0u8; 20]),
            Err(OffloadError::NotTcpIpv4)
        );
    }

    fn pages(n: usize) -> Vec<(GrantRef, u16)> {
        (0..n).map(|i| (100 + i as GrantRef, i as u16)).collect()
    }

    #[test]
    fn a_gso_super_frame_is_first_slot_extra_info_then_the_rest() {
        let len = MAX_GSO_FRAME;
        let n = data_slots(len);
        assert_eq!(n, 16, "64 KiB fits 16 page-aligned slots");
        let slots = requests(len, &pages(n), Offload::Gso { mss: 1448 }).unwrap();
        assert_eq!(slots.len(), 17);
        let first = slots[0].request();
        assert_eq!(usize::from(first.size), len);
        assert_eq!(
            first.flags,
            NETTXF_csum_blank | NETTXF_data_validated | NETTXF_extra_info | NETTXF_more_data
        );
        let extra = slots[1].extra_info();
        assert_eq!(extra.r#type, XEN_NETIF_EXTRA_TYPE_GSO);
        assert_eq!(extra.flags, 0);
        assert_eq!(extra.u.gso().size, 1448);
        assert_eq!(extra.u.gso().r#type, XEN_NETIF_GSO_TYPE_TCPV4);
        let rest: Vec<_> = slots[2..].iter().map(|s| s.request()).collect();
        for (i, r) in rest.iter().enumerate() {
            assert_eq!(r.offset, 0);
            assert!(usize::from(r.offset) + usize::from(r.size) <= PAGE_SIZE);
            let last = i + 1 == rest.len();
            assert_eq!(r.flags, if last { 0 } else { NETTXF_more_data });
            assert_eq!(r.id, i as u16 + 1);
        }
        // The first slot holds what the others do not: one page.
        let others: usize = rest.iter().map(|r| usize::from(r.size)).sum();
        assert_eq!(len - others, PAGE_SIZE);
    }

    #[test]
    fn plain_and_csum_frames_have_no_extra_slot() {
        let one = requests(60, &pages(1), Offload::None).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].request().flags, 0);
        assert_eq!(one[0].request().size, 60);
        let two = requests(PAGE_SIZE + 1, &pages(2), Offload::Csum).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(
            two[0].request().flags,
            NETTXF_csum_blank | NETTXF_data_validated | NETTXF_more_data
        );
        assert_eq!(two[1].request().size, 1);
        assert_eq!(two[1].request().flags, 0);
        // A one-page GSO frame: no more_data on the first slot, the extra slot after it.
        let g = requests(3000, &pages(1), Offload::Gso { mss: 1000 }).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0].request().flags,
            NETTXF_csum_blank | NETTXF_data_validated | NETTXF_extra_info
        );
        assert_eq!(g[1].extra_info().u.gso().size, 1000);
    }

    #[test]
    fn layouts_beyond_the_limits_are_refused() {
        assert_eq!(
            requests(MAX_GSO_FRAME + 1, &pages(17), Offload::None),
            Err(OffloadError::TooLong)
        );
        assert_eq!(
            requests(5000, &pages(1), Offload::None),
            Err(OffloadError::TooLong)
        );
    }
}
