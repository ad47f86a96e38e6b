//! The P2M frame-list tree a PV guest publishes in shared_info so the toolstack can save it.
//!
//! `xl save` and `xl migrate` read the guest's pfn → mfn list while the guest still runs. A
//! 64-bit PV guest that leaves `arch.p2m_cr3` at 0 describes its list as a three-level tree of
//! machine frames: `arch.pfn_to_mfn_frame_list_list` names a "top" page of 512 frames of "mid"
//! pages, each holding 512 frames of leaf pages, each leaf holding 512 p2m entries;
//! `arch.max_pfn` is the number of entries. The leaves are the pages of the p2m list itself
//! (start_info's `mfn_list`); this module builds the top and mid pages above them.
//!
//! Restore and migration move every page to new machine frames and rewrite the leaves, so the
//! tree is refilled ([`P2mTree::fill`]) and republished after every resume.

use crate::abi::SharedInfo;
use crate::memory::{Mfn, PAGE_SIZE};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// Frame numbers held by one page of the tree (and p2m entries held by one leaf page).
pub const FRAMES_PER_PAGE: usize = PAGE_SIZE / 8;

/// Most entries a tree with one top page can describe (the toolstack's own limit).
pub const MAX_ENTRIES: u64 = (FRAMES_PER_PAGE * FRAMES_PER_PAGE * FRAMES_PER_PAGE) as u64;

/// Why the tree cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P2mError {
    /// No entries, or more than one top page can describe.
    BadSize(u64),
    /// The p2m list does not start on a page boundary, so its pages cannot be the leaves.
    Unaligned(u64),
    /// A page of the p2m list or of the tree has no machine frame.
    NoFrame(usize),
}

impl fmt::Display for P2mError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P2mError::BadSize(n) => write!(
                f,
                "p2m: {n} entries cannot be described by a frame-list tree (1 to {MAX_ENTRIES})"
            ),
            P2mError::Unaligned(va) => {
                write!(f, "p2m: the p2m list at {va:#x} is not page-aligned")
            }
            P2mError::NoFrame(va) => write!(f, "p2m: page at {va:#x} has no machine frame"),
        }
    }
}

impl core::error::Error for P2mError {}

/// One page of frame numbers.
#[repr(C, align(4096))]
struct FramePage([u64; FRAMES_PER_PAGE]);

/// The top and mid pages of the frame-list tree above a p2m list.
pub struct P2mTree {
    top: Box<FramePage>,
    mids: Vec<Box<FramePage>>,
    list: u64,
    entries: u64,
}

impl fmt::Debug for P2mTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2mTree")
            .field("list", &format_args!("{:#x}", self.list))
            .field("entries", &self.entries)
            .field("mids", &self.mids.len())
            .finish()
    }
}

impl P2mTree {
    /// Allocates the tree for the p2m list at virtual address `list` with `entries` entries.
    pub fn new(list: u64, entries: u64) -> Result<P2mTree, P2mError> {
        if entries == 0 || entries > MAX_ENTRIES {
            return Err(P2mError::BadSize(entries));
        }
        if !list.is_multiple_of(PAGE_SIZE as u64) {
            return Err(P2mError::Unaligned(list));
        }
        let leaves = Self::leaves_for(entries);
        let mids = leaves.div_ceil(FRAMES_PER_PAGE);
        let page = || Box::new(FramePage([0; FRAMES_PER_PAGE]));
        Ok(P2mTree {
            top: page(),
            mids: (0..mids).map(|_| page()).collect(),
            list,
            entries,
        })
    }

    fn leaves_for(entries: u64) -> usize {
        (entries as usize).div_ceil(FRAMES_PER_PAGE)
    }

    /// The number of p2m entries the tree describes (`arch.max_pfn`).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the machine frames of the leaves into the mid pages and those of the mid pages
    /// into the top page, translating each page's address with `virt_to_mfn`; returns the top
    /// page's frame. Call again whenever the frames may have moved (after a resume).
    pub fn fill(&mut self, virt_to_mfn: impl Fn(usize) -> Option<Mfn>) -> Result<Mfn, P2mError> {
        let leaves = Self::leaves_for(self.entries);
        for i in 0..leaves {
            let va = self.list as usize + i * PAGE_SIZE;
            let mfn = virt_to_mfn(va).ok_or(P2mError::NoFrame(va))?;
            self.mids[i / FRAMES_PER_PAGE].0[i % FRAMES_PER_PAGE] = mfn;
        }
        for (i, mid) in self.mids.iter().enumerate() {
            let va = mid.0.as_ptr() as usize;
            self.top.0[i] = virt_to_mfn(va).ok_or(P2mError::NoFrame(va))?;
        }
        let va = self.top.0.as_ptr() as usize;
        virt_to_mfn(va).ok_or(P2mError::NoFrame(va))
    }

    /// Fills the tree (see [`P2mTree::fill`]) and publishes it in `shared`'s `arch` fields.
    ///
    /// # Safety
    /// `shared` must be the domain's mapped shared_info page.
    pub unsafe fn publish(
        &mut self,
        shared: *mut SharedInfo,
        virt_to_mfn: impl Fn(usize) -> Option<Mfn>,
    ) -> Result<Mfn, P2mError> {
        let top = self.fill(virt_to_mfn)?;
        // SAFETY: the caller guarantees shared_info is mapped; the toolstack only reads these.
        unsafe {
            let arch = &raw mut (*shared).arch;
            (&raw mut (*arch).p2m_cr3).write_volatile(0);
            (&raw mut (*arch).max_pfn).write_volatile(self.entries);
            (&raw mut (*arch).pfn_to_mfn_frame_list_list).write_volatile(top);
        }
        Ok(top)
    }

    /// The frame numbers in the top page (for checks).
    pub fn top_frames(&self) -> &[u64] {
        &self.top.0[..self.mids.len()]
    }

    /// The frame numbers in mid page `i` (for checks).
    pub fn mid_frames(&self, i: usize) -> Option<&[u64]> {
        self.mids.get(i).map(|m| &m.0[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A translation that gives every page a distinct frame derived from its address.
    fn frames(va: usize) -> Option<Mfn> {
        Some((va / PAGE_SIZE) as u64 ^ 0x5a5a)
    }

    #[test]
    fn a_walk_like_the_toolstacks_finds_every_leaf() {
        // 70 000 entries: 137 leaves, one mid page.
        let list = 0x4000_0000u64;
        let mut t = P2mTree::new(list, 70_000).unwrap();
        let top = t.fill(frames).unwrap();
        assert_eq!(top, frames(t.top.0.as_ptr() as usize).unwrap());
        let max_pfn = t.entries() - 1;
        let fll_entries = (max_pfn as usize / (FRAMES_PER_PAGE * FRAMES_PER_PAGE)) + 1;
        let fl_entries = (max_pfn as usize / FRAMES_PER_PAGE) + 1;
        assert_eq!(fll_entries, 1);
        assert_eq!(fl_entries, 137);
        assert_eq!(t.top_frames().len(), fll_entries);
        let mid = t.mid_frames(0).unwrap();
        for (i, &mfn) in mid.iter().take(fl_entries).enumerate() {
            assert_eq!(
                mfn,
                frames(list as usize + i * PAGE_SIZE).unwrap(),
                "leaf {i}"
            );
        }
        assert!(mid[fl_entries..].iter().all(|&m| m == 0));
    }

    #[test]
    fn large_lists_use_several_mid_pages() {
        let entries = (FRAMES_PER_PAGE * FRAMES_PER_PAGE + 1) as u64;
        let mut t = P2mTree::new(0, entries).unwrap();
        t.fill(frames).unwrap();
        assert_eq!(t.top_frames().len(), 2);
        assert_eq!(
            t.mid_frames(1).unwrap()[0],
            frames(FRAMES_PER_PAGE * PAGE_SIZE).unwrap()
        );
        assert!(t.top_frames().iter().all(|&m| m != 0));
    }

    #[test]
    fn refill_follows_moved_frames_and_publish_sets_shared_info() {
        let mut t = P2mTree::new(0x10_0000, 1024).unwrap();
        let mut shared = alloc::boxed::Box::new(SharedInfo::default());
        // SAFETY: a live SharedInfo of our own.
        let top = unsafe { t.publish(&mut *shared, frames) }.unwrap();
        assert_eq!(shared.arch.max_pfn, 1024);
        assert_eq!(shared.arch.pfn_to_mfn_frame_list_list, top);
        let moved = |va: usize| frames(va).map(|m| m + 0x100_000);
        // SAFETY: as above.
        let top2 = unsafe { t.publish(&mut *shared, moved) }.unwrap();
        assert_eq!(top2, top + 0x100_000);
        assert_eq!(
            t.mid_frames(0).unwrap()[1],
            frames(0x10_1000).unwrap() + 0x100_000
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(P2mTree::new(0, 0).unwrap_err(), P2mError::BadSize(0));
        assert_eq!(
            P2mTree::new(0, MAX_ENTRIES + 1).unwrap_err(),
            P2mError::BadSize(MAX_ENTRIES + 1)
        );
        assert_eq!(P2mTree::new(8, 10).unwrap_err(), P2mError::Unaligned(8));
        let mut t = P2mTree::new(0x2000, 10).unwrap();
        assert_eq!(t.fill(|_| None).unwrap_err(), P2mError::NoFrame(0x2000));
        assert!(alloc::format!("{}", P2mError::Unaligned(8)).contains("0x8"));
    }
}
