//! MAC address text (`aa:bb:cc:dd:ee:ff`, as the toolstack writes it).

use alloc::string::String;

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case, surrounding whitespace ignored)
/// into a unicast address. Multicast addresses and all zeroes are refused.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
        return None;
    }
    Some(mac)
}

/// Formats an address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let m = parse_mac("00:16:3e:0A:bc:ff").unwrap();
        assert_eq!(m, [0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff]);
        assert_eq!(format_mac(&m), "00:16:3e:0a:bc:ff");
        assert_eq!(
            parse_mac(" 00:16:3e:00:00:01\n"),
            Some([0, 0x16, 0x3e, 0, 0, 1])
        );
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "00:16:3e:00:00",
            "00:16:3e:00:00:01:02",
            "00:16:3e:00:00:1",
            "00:16:3e:00:00:001",
            "00-16-3e-00-00-01",
            "00:16:3e:00:00:g1",
            "+0:16:3e:00:00:01",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}
