//! Internet checksums (RFC 1071) for the offloads: the one's-complement sum, the IPv4
//! pseudo-header sum, and completing the partial checksum of a received frame flagged
//! `NETRXF_csum_blank` (its TCP or UDP checksum field holds only the pseudo-header sum, as
//! the sender's stack left it for hardware to finish).

use crate::ETH_HLEN;

/// The IPv4 ethertype.
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// The IP protocol number of TCP.
pub(crate) const IPPROTO_TCP: u8 = 6;
/// The IP protocol number of UDP.
pub(crate) const IPPROTO_UDP: u8 = 17;

/// The one's-complement sum of `data` as big-endian 16-bit words (an odd last byte padded
/// with zero), added to `acc`, unfolded.
pub(crate) fn sum_words(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// `acc` folded to 16 bits (not inverted).
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The folded, non-inverted IPv4 pseudo-header sum for a TCP segment of `tcp_len` bytes.
pub(crate) fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], tcp_len: u16) -> u16 {
    pseudo_sum(src, dst, IPPROTO_TCP, tcp_len)
}

/// The folded, non-inverted IPv4 pseudo-header sum for protocol `proto`, `len` bytes.
fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u16 {
    let acc = sum_words(sum_words(0, &src), &dst) + u64::from(proto) + u64::from(len);
    fold(acc)
}

/// Completes the checksum of a received TCP/IPv4 or UDP/IPv4 frame whose checksum field
/// holds the pseudo-header sum (`NETRXF_csum_blank`): the field becomes the full checksum.
/// Returns false (frame untouched) for any other frame or one whose headers do not hold
/// together; the stack then judges its checksum as it is.
pub(crate) fn complete_rx(frame: &mut [u8]) -> bool {
    if frame.len() < ETH_HLEN + 20 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return false;
    }
    let ip = ETH_HLEN;
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    let tot = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
    if frame[ip] >> 4 != 4 || ihl < 20 || tot < ihl || ip + tot > frame.len() {
        return false;
    }
    // A fragment carries no whole L4 header.
    if u16::from_be_bytes([frame[ip + 6], frame[ip + 7]]) & 0x3fff != 0 {
        return false;
    }
    let l4 = ip + ihl;
    let end = ip + tot;
    let field = match frame[ip + 9] {
        IPPROTO_TCP if end - l4 >= 20 => l4 + 16,
        IPPROTO_UDP if end - l4 >= 8 => l4 + 6,
        _ => return false,
    };
    let mut csum = !fold(sum_words(0, &frame[l4..end]));
    if frame[ip + 9] == IPPROTO_UDP && csum == 0 {
        // UDP sends a computed zero as all ones (zero means "no checksum").
        csum = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;

    /// A TCP or UDP over IPv4 frame with `payload` bytes and the pseudo-header sum in its
    /// checksum field, as a sender leaves it for offload.
    fn partial(proto: u8, payload: usize) -> std::vec::Vec<u8> {
        let l4_hlen = if proto == IPPROTO_TCP { 20 } else { 8 };
        let l4_len = l4_hlen + payload;
        let mut f = vec![0u8; ETH_HLEN + 20 + l4_len];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f[23] = proto;
        f[26..30].copy_from_slice(&[192, 168, 1, 7]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        let l4 = 34;
        if proto == IPPROTO_TCP {
            f[l4 + 12] = 5 << 4;
        } else {
            f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        for (i, b) in f[l4 + l4_hlen..].iter_mut().enumerate() {
            *b = (i * 13 + 5) as u8;
        }
        let field = if proto == IPPROTO_TCP {
            l4 + 16
        } else {
            l4 + 6
        };
        let p = pseudo_sum([192, 168, 1, 7], [10, 0, 0, 2], proto, l4_len as u16);
        f[field..field + 2].copy_from_slice(&p.to_be_bytes());
        f
    }

    /// Whether the L4 checksum verifies the textbook way.
    fn verifies(f: &[u8], proto: u8) -> bool {
        let l4 = &f[34..];
        let p = pseudo_sum([192, 168, 1, 7], [10, 0, 0, 2], proto, l4.len() as u16);
        fold(sum_words(u64::from(p), l4)) == 0xffff
    }

    #[test]
    fn partial_checksums_are_completed() {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            for payload in [0, 1, 1448, 65_000] {
                let mut f = partial(proto, payload);
                assert!(!verifies(&f, proto) || payload == 0 && proto == IPPROTO_UDP);
                assert!(complete_rx(&mut f), "{proto} {payload}");
                assert!(verifies(&f, proto), "{proto} {payload}");
            }
        }
    }

    #[test]
    fn frames_that_do_not_hold_together_are_left_alone() {
        let mut f = partial(IPPROTO_TCP, 10);
        f[17] += 1; // total length beyond the frame
        let before = f.clone();
        assert!(!complete_rx(&mut f));
        assert_eq!(f, before);
        let mut f = partial(IPPROTO_TCP, 10);
        f[23] = 1; // ICMP
        assert!(!complete_rx(&mut f));
        let mut f = partial(IPPROTO_UDP, 10);
        f[20] = 0x20; // more fragments
        assert!(!complete_rx(&mut f));
        assert!(!complete_rx(&mut [0u8; 40]));
    }
}
