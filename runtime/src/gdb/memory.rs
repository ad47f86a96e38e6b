//! What memory the debugger may touch: only pages the guest's page tables map (and map
//! writable, for writes), so that a bad address from GDB is an error reply, never a fault in
//! the stub.

/// Access to the stopped guest's memory, checked page by page.
pub trait Memory {
    /// Whether the page holding `addr` is mapped; `write` asks for a writable mapping.
    fn accessible(&self, addr: u64, write: bool) -> bool;

    /// Reads the byte at `addr` (only called after [`accessible`](Self::accessible) said yes).
    fn read_byte(&self, addr: u64) -> u8;

    /// Writes the byte at `addr` (only called after [`accessible`](Self::accessible) said yes
    /// for a write).
    fn write_byte(&mut self, addr: u64, byte: u8);
}

const PAGE: u64 = 4096;

/// Reads as much of `[addr, addr + buf.len())` as is mapped from the start; returns the count
/// (0 if `addr` itself is not mapped).
pub fn read<M: Memory>(mem: &M, addr: u64, buf: &mut [u8]) -> usize {
    let mut checked_page = None;
    for (i, b) in buf.iter_mut().enumerate() {
        let Some(a) = addr.checked_add(i as u64) else {
            return i;
        };
        if checked_page != Some(a / PAGE) {
            if !mem.accessible(a, false) {
                return i;
            }
            checked_page = Some(a / PAGE);
        }
        *b = mem.read_byte(a);
    }
    buf.len()
}

/// Writes all of `data` at `addr` if every page of the range is mapped writable; writes
/// nothing and returns false otherwise.
pub fn write<M: Memory>(mem: &mut M, addr: u64, data: &[u8]) -> bool {
    let Some(last) = (data.len() as u64)
        .checked_sub(1)
        .map_or(Some(addr), |n| addr.checked_add(n))
    else {
        return false;
    };
    let mut page = addr / PAGE;
    while page <= last / PAGE {
        if !mem.accessible(page * PAGE, true) {
            return false;
        }
        page += 1;
    }
    for (i, &b) in data.iter().enumerate() {
        mem.write_byte(addr + i as u64, b);
    }
    true
}

/// The guest's memory, checked by walking its page tables.
#[cfg(target_os = "none")]
pub struct PageTables {
    /// The virtual address of the top-level (L4) table.
    l4: u64,
}

#[cfg(target_os = "none")]
impl PageTables {
    /// The page tables whose top level is mapped at `l4` (start_info's `pt_base`).
    pub fn new(l4: u64) -> PageTables {
        PageTables { l4 }
    }

    /// The direct-map address of the table an entry points to, if its frame is the domain's.
    fn table(entry: u64) -> Option<u64> {
        use xenia_xen::memory::{
            mfn_to_pfn, nr_pages, pfn_to_mfn, pfn_to_virt, PAGE_SHIFT, PTE_FRAME_MASK,
        };
        let mfn = (entry & PTE_FRAME_MASK) >> PAGE_SHIFT;
        // Xen lets a PV guest use only its own frames as page tables, so the m2p entry exists;
        // the round trip checks it.
        let pfn = mfn_to_pfn(mfn);
        (pfn < nr_pages() && pfn_to_mfn(pfn) == Some(mfn)).then(|| pfn_to_virt(pfn) as u64)
    }
}

#[cfg(target_os = "none")]
impl Memory for PageTables {
    fn accessible(&self, addr: u64, write: bool) -> bool {
        use xenia_xen::memory::{PTE_PRESENT, PTE_PSE, PTE_RW};
        // Canonical addresses only.
        let top = addr >> 47;
        if top != 0 && top != 0x1_ffff {
            return false;
        }
        let mut table = self.l4;
        let mut writable = true;
        for level in (1..=4u32).rev() {
            let idx = (addr >> (12 + 9 * (level - 1))) & 511;
            // SAFETY: `table` is the direct-map address of a page-table frame of ours (the L4
            // from start_info, or checked by `table`), mapped read-only at least.
            let e = unsafe { ((table + idx * 8) as *const u64).read_volatile() };
            if e & PTE_PRESENT == 0 {
                return false;
            }
            writable &= e & PTE_RW != 0;
            if level == 1 || (level <= 3 && e & PTE_PSE != 0) {
                return !write || writable;
            }
            match Self::table(e) {
                Some(t) => table = t,
                None => return false,
            }
        }
        false
    }

    fn read_byte(&self, addr: u64) -> u8 {
        // SAFETY: `accessible` found the page mapped.
        unsafe { (addr as *const u8).read_volatile() }
    }

    fn write_byte(&mut self, addr: u64, byte: u8) {
        // SAFETY: `accessible` found the page mapped writable; the guest is stopped, and a
        // debugger writing its memory is what the user asked for.
        unsafe { (addr as *mut u8).write_volatile(byte) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Two pages at 0x1000 (the second read-only).
    struct Fake(Vec<u8>);

    impl Memory for Fake {
        fn accessible(&self, addr: u64, write: bool) -> bool {
            (0x1000..0x2000).contains(&addr) || (!write && (0x2000..0x3000).contains(&addr))
        }
        fn read_byte(&self, addr: u64) -> u8 {
            self.0[(addr - 0x1000) as usize]
        }
        fn write_byte(&mut self, addr: u64, byte: u8) {
            self.0[(addr - 0x1000) as usize] = byte;
        }
    }

    #[test]
    fn reads_stop_at_the_first_unmapped_byte() {
        let m = Fake((0..0x2000).map(|i| i as u8).collect());
        let mut buf = [0u8; 8];
        assert_eq!(read(&m, 0x2ffc, &mut buf), 4);
        assert_eq!(&buf[..4], &[0xfc, 0xfd, 0xfe, 0xff]);
        assert_eq!(read(&m, 0x3000, &mut buf), 0);
        assert_eq!(read(&m, u64::MAX, &mut buf), 0);
    }

    #[test]
    fn writes_are_all_or_nothing() {
        let mut m = Fake(vec![0; 0x2000]);
        assert!(
            !write(&mut m, 0x1ffe, &[1, 2, 3, 4]),
            "crosses into the read-only page"
        );
        assert_eq!(&m.0[0xffe..0x1002], &[0, 0, 0, 0]);
        assert!(write(&mut m, 0x1ffc, &[1, 2, 3, 4]));
        assert_eq!(&m.0[0xffc..0x1000], &[1, 2, 3, 4]);
        assert!(!write(&mut m, u64::MAX, &[1, 2]));
    }
}
