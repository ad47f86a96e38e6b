//! Virtual device numbers (`virtual-device`, the `device/vbd/<n>` index) from disk names,
//! following the encoding of Xen's docs/misc/vbd-interface.txt (whole disks only).

/// The virtual device number of a whole disk named `xvdX`, `sdX` or `hdX` (`xvda` = 51712,
/// `xvdq` = 268439552, `sda` = 2048, `hda` = 768). `None` for other names and partitions.
pub fn vdev_from_name(name: &str) -> Option<u32> {
    let (prefix, letters) = if let Some(l) = name.strip_prefix("xvd") {
        ("xvd", l)
    } else if let Some(l) = name.strip_prefix("sd") {
        ("sd", l)
    } else if let Some(l) = name.strip_prefix("hd") {
        ("hd", l)
    } else {
        return None;
    };
    let disk = disk_number(letters)?;
    match prefix {
        "xvd" if disk < 16 => Some(202 << 8 | disk << 4),
        "xvd" if disk < (1 << 20) => Some(1 << 28 | disk << 8),
        "sd" if disk < 16 => Some(8 << 8 | disk << 4),
        "hd" => [3 << 8, 3 << 8 | 64, 22 << 8, 22 << 8 | 64]
            .get(disk as usize)
            .copied(),
        _ => None,
    }
}

/// `a` = 0, ..., `z` = 25, `aa` = 26, ... (bijective base 26).
fn disk_number(letters: &str) -> Option<u32> {
    if letters.is_empty() || letters.len() > 4 {
        return None;
    }
    let mut n: u32 = 0;
    for c in letters.bytes() {
        if !c.is_ascii_lowercase() {
            return None;
        }
        n = n * 26 + u32::from(c - b'a') + 1;
    }
    Some(n - 1)
}

#[cfg(test)]
mod tests {
    use super::vdev_from_name;

    #[test]
    fn names() {
        assert_eq!(vdev_from_name("xvda"), Some(51712));
        assert_eq!(vdev_from_name("xvdb"), Some(51728));
        assert_eq!(vdev_from_name("xvdp"), Some(51952));
        assert_eq!(vdev_from_name("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vdev_from_name("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vdev_from_name("sda"), Some(2048));
        assert_eq!(vdev_from_name("sdb"), Some(2064));
        assert_eq!(vdev_from_name("hda"), Some(768));
        assert_eq!(vdev_from_name("hdc"), Some(5632));
        assert_eq!(vdev_from_name("hde"), None);
        assert_eq!(vdev_from_name("xvda1"), None);
        assert_eq!(vdev_from_name("xvd"), None);
        assert_eq!(vdev_from_name("xvdA"), None);
        assert_eq!(vdev_from_name("nvme0"), None);
        assert_eq!(vdev_from_name("sdq"), None);
    }
}
