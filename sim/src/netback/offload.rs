//! What netback and the host's stack do with an offloaded tx frame: check the checksum fields
//! a `csum_blank` frame must carry (a valid IPv4 header, the folded non-inverted
//! pseudo-header sum in the TCP checksum field), complete the TCP checksum, and cut a GSO
//! super-frame into segments of `gso.size` payload bytes, as the host's segmentation would.

use std::format;
use std::string::String;
use std::vec::Vec;

const ETH_HLEN: usize = 14;

fn sum_words(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Header offsets of a TCP/IPv4 frame.
struct Tcp {
    ip: usize,
    tcp: usize,
    payload: usize,
}

fn parse(f: &[u8]) -> Result<Tcp, String> {
    if f.len() < ETH_HLEN + 40 || f[12..14] != [0x08, 0x00] {
        return Err(format!("a {}-byte frame that is not IPv4", f.len()));
    }
    let ip = ETH_HLEN;
    let ihl = usize::from(f[ip] & 0xf) * 4;
    if f[ip] >> 4 != 4 || ihl < 20 || f[ip + 9] != 6 {
        return Err("not TCP over IPv4".into());
    }
    let tot = usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]));
    if tot != f.len() - ETH_HLEN {
        return Err(format!(
            "IPv4 total length {tot} in a frame of {} IP bytes",
            f.len() - ETH_HLEN
        ));
    }
    if fold(sum_words(0, &f[ip..ip + ihl])) != 0xffff {
        return Err("bad IPv4 header checksum".into());
    }
    let tcp = ip + ihl;
    let doff = usize::from(f[tcp + 12] >> 4) * 4;
    if doff < 20 || tcp + doff > f.len() {
        return Err(format!("TCP header of {doff} bytes"));
    }
    Ok(Tcp {
        ip,
        tcp,
        payload: tcp + doff,
    })
}

fn pseudo(f: &[u8], h: &Tcp, tcp_len: usize) -> u16 {
    fold(sum_words(0, &f[h.ip + 12..h.ip + 20]) + 6 + tcp_len as u64)
}

/// Writes the IPv4 header checksum and the full TCP checksum of `f`.
fn finish(f: &mut [u8], h: &Tcp) {
    f[h.ip + 10..h.ip + 12].fill(0);
    let c = !fold(sum_words(0, &f[h.ip..h.tcp]));
    f[h.ip + 10..h.ip + 12].copy_from_slice(&c.to_be_bytes());
    let tcp_len = f.len() - h.tcp;
    f[h.tcp + 16..h.tcp + 18].fill(0);
    let c = !fold(sum_words(u64::from(pseudo(f, h, tcp_len)), &f[h.tcp..]));
    f[h.tcp + 16..h.tcp + 18].copy_from_slice(&c.to_be_bytes());
}

/// `frame` (TCP/IPv4, with a valid IPv4 header, any TCP checksum) with the pseudo-header sum
/// in its TCP checksum field, as a stack leaves a frame for checksum offload. `Err` if it is
/// not such a frame.
pub(super) fn blank(mut frame: Vec<u8>) -> Result<Vec<u8>, String> {
    let h = parse(&frame)?;
    let p = pseudo(&frame, &h, frame.len() - h.tcp);
    frame[h.tcp + 16..h.tcp + 18].copy_from_slice(&p.to_be_bytes());
    Ok(frame)
}

/// The frames the host sees for `frame`: itself if it was not offloaded; with its TCP
/// checksum completed if `csum_blank`; its segments if `gso` (payload bytes per segment).
/// `Err` says which rule an offloaded frame breaks.
pub(super) fn take(
    mut frame: Vec<u8>,
    csum_blank: bool,
    gso: Option<u16>,
) -> Result<Vec<Vec<u8>>, String> {
    if !csum_blank {
        return Ok(std::vec![frame]);
    }
    let h = parse(&frame)?;
    let tcp_len = frame.len() - h.tcp;
    let want = pseudo(&frame, &h, tcp_len);
    let got = u16::from_be_bytes([frame[h.tcp + 16], frame[h.tcp + 17]]);
    if got != want {
        return Err(format!(
            "TCP checksum field {got:#06x}, the pseudo-header sum is {want:#06x}"
        ));
    }
    let Some(mss) = gso else {
        finish(&mut frame, &h);
        return Ok(std::vec![frame]);
    };
    let mss = usize::from(mss);
    let payload = &frame[h.payload..];
    if payload.len() <= mss {
        return Err(format!(
            "a GSO frame of {} payload bytes, no more than its {mss}-byte segments",
            payload.len()
        ));
    }
    let headers = &frame[..h.payload];
    let ident = u16::from_be_bytes([frame[h.ip + 4], frame[h.ip + 5]]);
    let seq = u32::from_be_bytes([
        frame[h.tcp + 4],
        frame[h.tcp + 5],
        frame[h.tcp + 6],
        frame[h.tcp + 7],
    ]);
    let flags = frame[h.tcp + 13];
    let n = payload.len().div_ceil(mss);
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let mut s = Vec::with_capacity(headers.len() + chunk.len());
        s.extend_from_slice(headers);
        s.extend_from_slice(chunk);
        let ip_len = (s.len() - ETH_HLEN) as u16;
        s[h.ip + 2..h.ip + 4].copy_from_slice(&ip_len.to_be_bytes());
        s[h.ip + 4..h.ip + 6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
        let off = (i * mss) as u32;
        s[h.tcp + 4..h.tcp + 8].copy_from_slice(&seq.wrapping_add(off).to_be_bytes());
        // FIN and PSH only on the last segment, CWR only on the first.
        let mut fl = flags;
        if i + 1 < n {
            fl &= !(0x01 | 0x08);
        }
        if i > 0 {
            fl &= !0x80;
        }
        s[h.tcp + 13] = fl;
        finish(&mut s, &h);
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 frame with `payload` bytes, valid IPv4 header, the pseudo-header sum in
    /// the TCP checksum field (as a frontend sends a `csum_blank` frame).
    fn blank(payload: usize) -> Vec<u8> {
        let mut f = std::vec![0u8; ETH_HLEN + 40 + payload];
        f[12] = 0x08;
        f[14] = 0x45;
        let l = (40 + payload) as u16;
        f[16..18].copy_from_slice(&l.to_be_bytes());
        f[14 + 8] = 64;
        f[14 + 9] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 2]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        f[34 + 4..34 + 8].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        f[34 + 12] = 5 << 4;
        f[34 + 13] = 0x18 | 0x01; // PSH ACK FIN
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let h = parse_unchecked();
        let c = !fold(sum_words(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let p = pseudo(&f, &h, 20 + payload);
        f[50..52].copy_from_slice(&p.to_be_bytes());
        f
    }

    fn parse_unchecked() -> Tcp {
        Tcp {
            ip: 14,
            tcp: 34,
            payload: 54,
        }
    }

    fn tcp_checksum_ok(f: &[u8]) -> bool {
        let h = parse(f).unwrap();
        fold(sum_words(u64::from(pseudo(f, &h, f.len() - 34)), &f[34..])) == 0xffff
    }

    #[test]
    fn a_gso_frame_is_cut_into_checked_segments() {
        let f = blank(3000);
        let segs = take(f.clone(), true, Some(1448)).unwrap();
        assert_eq!(segs.len(), 3);
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(tcp_checksum_ok(s), "segment {i}");
            let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add(1448 * i as u32));
            let last = i == 2;
            assert_eq!(s[47] & 0x09 != 0, last, "PSH/FIN only on the last");
            payload.extend_from_slice(&s[54..]);
        }
        assert_eq!(payload, f[54..]);
    }

    #[test]
    fn offloaded_frames_breaking_the_rules_are_refused() {
        let mut f = blank(3000);
        f[50] ^= 1; // not the pseudo-header sum (e.g. a full or an inverted checksum)
        assert!(take(f, true, Some(1448))
            .unwrap_err()
            .contains("pseudo-header"));
        let mut f = blank(3000);
        f[24] ^= 1;
        assert!(take(f, true, Some(1448))
            .unwrap_err()
            .contains("header checksum"));
        let mut f = blank(3000);
        f.push(0); // one byte beyond the IPv4 total length
        assert!(take(f, true, None).unwrap_err().contains("total length"));
        assert!(take(blank(1000), true, Some(1448)).is_err());
        // Completed, not segmented, without GSO; untouched without csum_blank.
        let one = take(blank(1000), true, None).unwrap();
        assert!(one.len() == 1 && tcp_checksum_ok(&one[0]));
        assert_eq!(take(std::vec![1, 2, 3], false, None).unwrap(), [[1, 2, 3]]);
    }
}
