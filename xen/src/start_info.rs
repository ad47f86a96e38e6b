//! Checking the `start_info` page Xen hands a PV guest at entry, before trusting any of it.

use crate::abi::StartInfo;
use crate::events::NR_PORTS;
use crate::memory::{PAGE_SIZE, VIRT_BASE};
use core::fmt;

/// The magic a 64-bit PV guest's start_info begins with.
pub const MAGIC: &[u8] = b"xen-3.0-x86_64";

/// What is wrong with a start_info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInfoError {
    /// The magic string is not `xen-3.0-x86_64`.
    BadMagic,
    /// Fewer pages than the guest needs.
    TooLittleMemory {
        /// Pages given.
        pages: u64,
        /// Pages needed.
        needed: u64,
    },
    /// An event channel port outside the 2-level ABI (or zero).
    BadPort(&'static str, u32),
    /// An address that must be page-aligned (or in our mapping) is not.
    BadAddress(&'static str, u64),
    /// A frame that must belong to the domain lies beyond its pages.
    FrameOutOfRange(&'static str, u64),
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartInfoError::BadMagic => write!(f, "start_info: bad magic (not a 64-bit PV start_info)"),
            StartInfoError::TooLittleMemory { pages, needed } => write!(
                f,
                "start_info: {pages} pages ({} KiB) of memory; at least {needed} pages ({} MiB) are needed",
                pages * 4,
                needed * 4 / 1024
            ),
            StartInfoError::BadPort(what, p) => write!(f, "start_info: bad {what} event channel {p}"),
            StartInfoError::BadAddress(what, a) => write!(f, "start_info: bad {what} address {a:#x}"),
            StartInfoError::FrameOutOfRange(what, pfn) => {
                write!(f, "start_info: {what} frame {pfn:#x} is beyond the domain's memory")
            }
        }
    }
}

impl core::error::Error for StartInfoError {}

/// Whether the magic is right (checked first: nothing else is meaningful without it).
pub fn check_magic(si: &StartInfo) -> Result<(), StartInfoError> {
    let ok =
        si.magic.len() >= MAGIC.len() && si.magic.iter().zip(MAGIC).all(|(&a, &b)| a as u8 == b);
    if ok {
        Ok(())
    } else {
        Err(StartInfoError::BadMagic)
    }
}

/// Checks a domU's start_info: magic, memory size, event channels, the addresses of the p2m
/// list, the page tables and shared_info, and that the xenstore and console frames (given as
/// pseudo-physical frames by `pfn_of`) belong to the domain.
pub fn check(
    si: &StartInfo,
    min_pages: u64,
    pfn_of: impl Fn(u64) -> u64,
) -> Result<(), StartInfoError> {
    check_magic(si)?;
    if si.nr_pages < min_pages {
        return Err(StartInfoError::TooLittleMemory {
            pages: si.nr_pages,
            needed: min_pages,
        });
    }
    // SAFETY: a domU's start_info holds the console union's domU variant.
    let (con_mfn, con_port) = unsafe { (si.console.domU.mfn, si.console.domU.evtchn) };
    for (what, port) in [("xenstore", si.store_evtchn), ("console", con_port)] {
        if port == 0 || port >= NR_PORTS {
            return Err(StartInfoError::BadPort(what, port));
        }
    }
    let page = PAGE_SIZE as u64;
    let mapped_end = VIRT_BASE.saturating_add(si.nr_pages.saturating_mul(page));
    if si.mfn_list < VIRT_BASE || !si.mfn_list.is_multiple_of(8) || si.mfn_list >= mapped_end {
        return Err(StartInfoError::BadAddress("p2m list", si.mfn_list));
    }
    if si.pt_base < VIRT_BASE || !si.pt_base.is_multiple_of(page) || si.pt_base >= mapped_end {
        return Err(StartInfoError::BadAddress("page table", si.pt_base));
    }
    if !si.shared_info.is_multiple_of(page) {
        return Err(StartInfoError::BadAddress("shared_info", si.shared_info));
    }
    for (what, mfn) in [("xenstore", si.store_mfn), ("console", con_mfn)] {
        let pfn = pfn_of(mfn);
        if pfn >= si.nr_pages {
            return Err(StartInfoError::FrameOutOfRange(what, pfn));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> StartInfo {
        // SAFETY: start_info is plain data; all-zero is a valid bit pattern.
        let mut si: StartInfo = unsafe { core::mem::zeroed() };
        for (d, s) in si.magic.iter_mut().zip(MAGIC) {
            *d = *s as _;
        }
        si.nr_pages = 8192;
        si.shared_info = 0x1234_5000;
        si.store_mfn = 0x13;
        si.store_evtchn = 1;
        si.console.domU.mfn = 0x14;
        si.console.domU.evtchn = 2;
        si.mfn_list = VIRT_BASE + 0x8000;
        si.pt_base = VIRT_BASE + 0x15000;
        si
    }

    #[test]
    fn a_good_start_info_passes() {
        assert_eq!(check(&good(), 1024, |m| m), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut si = good();
        si.magic[4] = b'4' as _;
        assert_eq!(check(&si, 1024, |m| m), Err(StartInfoError::BadMagic));

        let mut si = good();
        si.nr_pages = 512;
        assert_eq!(
            check(&si, 1024, |m| m),
            Err(StartInfoError::TooLittleMemory {
                pages: 512,
                needed: 1024
            })
        );

        let mut si = good();
        si.store_evtchn = 0;
        assert_eq!(
            check(&si, 1024, |m| m),
            Err(StartInfoError::BadPort("xenstore", 0))
        );
        let mut si = good();
        si.console.domU.evtchn = 5000;
        assert_eq!(
            check(&si, 1024, |m| m),
            Err(StartInfoError::BadPort("console", 5000))
        );

        let mut si = good();
        si.mfn_list = 0x1000;
        assert!(matches!(
            check(&si, 1024, |m| m),
            Err(StartInfoError::BadAddress("p2m list", _))
        ));
        let mut si = good();
        si.pt_base += 8;
        assert!(matches!(
            check(&si, 1024, |m| m),
            Err(StartInfoError::BadAddress("page table", _))
        ));
        let mut si = good();
        si.shared_info += 1;
        assert!(matches!(
            check(&si, 1024, |m| m),
            Err(StartInfoError::BadAddress("shared_info", _))
        ));

        let si = good();
        assert_eq!(
            check(&si, 1024, |m| if m == 0x14 { 9999 } else { m }),
            Err(StartInfoError::FrameOutOfRange("console", 9999))
        );
        let msg = alloc::format!(
            "{}",
            StartInfoError::TooLittleMemory {
                pages: 512,
                needed: 1024
            }
        );
        assert!(msg.contains("2048 KiB") && msg.contains("4 MiB"), "{msg}");
    }
}
