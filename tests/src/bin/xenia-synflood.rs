//! dom0's SYN flooder for the nested `http-synflood` scenario (tests/tests/nested/net.rs).
//!
//! `xenia-synflood HOST PORT RATE SECS` sends `RATE` TCP SYNs a second for `SECS` seconds to
//! HOST:PORT (an IPv4 address), each from a random source address in 198.18.0.0/15 (the
//! benchmarking range: off-link for the guest, owned by nobody, so no one ever answers the
//! guest's SYN-ACKs or resets them) and a random source port and sequence number. It uses a raw
//! IPv4 socket (`IPPROTO_RAW`, which implies `IP_HDRINCL`; needs root) and writes the IP and
//! TCP headers and checksums itself. The schedule is absolute (SYN `i` leaves at
//! `i / RATE` s), so a late wake-up is caught up and the rate holds on a slow machine.
//!
//! It prints one line at the end, `synflood sent=N failed=F secs=T rate=R` (measured), and
//! exits with 0 when every SYN was sent, 1 when some sends failed, 2 on bad arguments or when
//! the socket cannot be opened.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of the SYN: a 20-byte IP header and a 24-byte TCP header (with an MSS option).
const PACKET_LEN: usize = 44;

/// The Internet checksum (RFC 1071) of `data`, continuing from the partial sum `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One SYN from `src:sport` to `dst:dport` with sequence number `seq`, IP id `id`, and both
/// checksums filled in.
fn syn_packet(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    seq: u32,
    id: u16,
) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    // IPv4 header.
    p[0] = 0x45; // version 4, 5 words
    p[2..4].copy_from_slice(&(PACKET_LEN as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40; // don't fragment
    p[8] = 64; // TTL
    p[9] = 6; // TCP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_sum = checksum(0, &p[..20]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    // TCP header.
    let t = 20;
    p[t..t + 2].copy_from_slice(&sport.to_be_bytes());
    p[t + 2..t + 4].copy_from_slice(&dport.to_be_bytes());
    p[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    p[t + 12] = 6 << 4; // 6 words
    p[t + 13] = 0x02; // SYN
    p[t + 14..t + 16].copy_from_slice(&64240u16.to_be_bytes()); // window
    p[t + 20..t + 24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
                                                            // Pseudo-header: source, destination, zero, protocol, TCP length.
    let mut pseudo = 0u32;
    for w in [&src.octets(), &dst.octets()] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
        pseudo += u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    pseudo += 6 + (PACKET_LEN - 20) as u32;
    let tcp_sum = checksum(pseudo, &p[t..]);
    p[t + 16..t + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

/// xorshift64*: enough randomness for spoofed addresses, ports and sequence numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A raw IPv4 socket that sends packets with our own IP header.
struct RawSocket(libc::c_int);

impl RawSocket {
    fn open() -> std::io::Result<RawSocket> {
        // SAFETY: socket(2) takes no pointers; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RawSocket(fd))
    }

    /// Sends `packet` (IP header included) to `dst`.
    fn send(&self, packet: &[u8], dst: Ipv4Addr) -> std::io::Result<()> {
        // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        // SAFETY: `packet` and `sa` are valid for the lengths given for the whole call, and
        // `self.0` is an open socket.
        let n = unsafe {
            libc::sendto(
                self.0,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: `self.0` is an open socket owned by this value.
        unsafe { libc::close(self.0) };
    }
}

fn usage() -> ! {
    eprintln!("usage: xenia-synflood HOST PORT RATE SECS   (HOST an IPv4 address; root)");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        usage();
    }
    let (Ok(dst), Ok(port), Ok(rate), Ok(secs)) = (
        args[1].parse::<Ipv4Addr>(),
        args[2].parse::<u16>(),
        args[3].parse::<u32>(),
        args[4].parse::<u32>(),
    ) else {
        usage()
    };
    if rate == 0 || rate > 100_000 || secs == 0 || secs > 600 {
        usage();
    }
    let sock = match RawSocket::open() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synflood: cannot open a raw socket: {e}");
            std::process::exit(2);
        }
    };
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let total = u64::from(rate) * u64::from(secs);
    let start = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut first_error = None;
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / u64::from(rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let r = rng.next();
        // 198.18.0.0/15: the top bits of the random number pick the host.
        let host = ((r >> 32) as u32) & 0x1_ffff;
        let src = Ipv4Addr::from(0xc612_0000u32 | host);
        let sport = 1024 + (r as u16 % (65535 - 1024));
        let seq = (r >> 16) as u32;
        let p = syn_packet(src, sport, dst, port, seq, i as u16);
        match sock.send(&p, dst) {
            Ok(()) => sent += 1,
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let t = start.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        eprintln!("synflood: first send error: {e}");
    }
    println!(
        "synflood sent={sent} failed={failed} secs={t:.1} rate={:.1}",
        sent as f64 / t
    );
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let src = Ipv4Addr::new(198, 18, 3, 4);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let p = syn_packet(src, 40000, dst, 80, 0x1234_5678, 7);
        // A header with its checksum in place sums to 0xffff (checksum 0).
        assert_eq!(checksum(0, &p[..20]), 0);
        let mut pseudo = 0u32;
        for w in [src.octets(), dst.octets()] {
            pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
            pseudo += u32::from(u16::from_be_bytes([w[2], w[3]]));
        }
        pseudo += 6 + 24;
        assert_eq!(checksum(pseudo, &p[20..]), 0);
        assert_eq!(p[33], 0x02, "SYN only");
        assert_eq!(&p[22..24], &80u16.to_be_bytes());
    }

    #[test]
    fn known_ip_header_checksum() {
        // RFC 1071-style example header (from Wikipedia's IPv4 checksum example): b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(0, &h), 0xb861);
    }
}
