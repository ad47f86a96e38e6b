//! Memory: map all of the domain's memory, allocate frames, and run the global heap.
//!
//! Xen's builder maps only the image and its bootstrap data (up to the next 4 MiB boundary).
//! At boot we extend the page tables so that every pseudo-physical frame `pfn` is mapped at
//! `VIRT_BASE + pfn * 4096`, taking page-table frames from the first free frames (which are
//! already mapped, and stay ahead of the mapping frontier: one table per 512 frames mapped).
//! A window after the direct map gets page tables too, for mapping frames that are not ours.
//! What remains after boot is handed to the global allocator ([talc]).

use core::ptr;
use spin::Mutex;
use talc::{Span, Talc, Talck};
use xenia_xen::abi::MmuUpdate;
use xenia_xen::hypercall;
use xenia_xen::memory::{
    self, mfn_to_pfn, pfn_to_mfn, pfn_to_virt, Pfn, PAGE_SHIFT, PAGE_SIZE, PTE_ACCESSED, PTE_DIRTY,
    PTE_FRAME_MASK, PTE_PRESENT, PTE_PSE, PTE_RW, PTE_USER, UVMF_INVLPG, VIRT_BASE,
};

#[global_allocator]
static HEAP: Talck<Mutex<()>, crate::panic::ReportOom> = Talc::new(crate::panic::ReportOom).lock();

/// Pages reserved after the direct map for [`memory::map_frames`].
pub const MAP_WINDOW_PAGES: usize = 1024;
const MMU_NORMAL_PT_UPDATE: u64 = xenia_xen::abi::MMU_NORMAL_PT_UPDATE as u64;
const TABLE_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
const PAGE_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;

/// Why memory setup failed (boot prints it on the console and crashes).
#[derive(Debug)]
pub enum MemError {
    /// A hypercall failed.
    Xen(xenia_xen::XenError),
    /// Xen's initial page tables have a shape we do not handle (e.g. a large page).
    UnexpectedMapping(u64),
    /// We ran out of frames for page tables.
    OutOfFrames,
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::Xen(e) => write!(f, "memory setup failed: {e}"),
            MemError::UnexpectedMapping(va) => write!(
                f,
                "memory setup failed: Xen's initial page tables map {va:#x} in a shape we do \
                 not handle (a large page?)"
            ),
            MemError::OutOfFrames => {
                f.write_str("memory setup failed: no frames left for page tables")
            }
        }
    }
}

impl core::error::Error for MemError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            MemError::Xen(e) => Some(e),
            _ => None,
        }
    }
}

impl From<xenia_xen::XenError> for MemError {
    fn from(e: xenia_xen::XenError) -> Self {
        MemError::Xen(e)
    }
}

/// What memory setup produced.
#[derive(Debug, Clone, Copy)]
pub struct MemInfo {
    /// Frames of the domain.
    pub nr_pages: u64,
    /// Frames mapped in the direct map (all, unless memory exceeds the 2 GiB kernel area).
    pub mapped_pages: u64,
    /// Bytes given to the heap.
    pub heap_bytes: usize,
}

struct Mapper {
    l4_mfn: u64,
    next_free: Pfn,
    limit: Pfn,
    batch: [MmuUpdate; 128],
    batched: usize,
}

impl Mapper {
    fn table_va(mfn: u64) -> *const u64 {
        pfn_to_virt(mfn_to_pfn(mfn)) as *const u64
    }

    fn read_entry(table_mfn: u64, idx: usize) -> u64 {
        // SAFETY: page-table frames are mapped (read-only) in the direct map; idx < 512.
        unsafe { Self::table_va(table_mfn).add(idx).read_volatile() }
    }

    fn flush(&mut self) -> Result<(), MemError> {
        if self.batched > 0 {
            let mut done = 0u32;
            // SAFETY: the batch holds `batched` well-formed updates of our own page tables.
            unsafe {
                hypercall::mmu_update(self.batch.as_ptr(), self.batched as u32, &mut done, 0x7ff0)?
            };
            self.batched = 0;
        }
        Ok(())
    }

    fn queue(&mut self, ptr: u64, val: u64) -> Result<(), MemError> {
        self.batch[self.batched] = MmuUpdate { ptr, val };
        self.batched += 1;
        if self.batched == self.batch.len() {
            self.flush()?;
        }
        Ok(())
    }

    /// Takes a free, mapped frame, zeroes it and makes it read-only so it can be a page table.
    fn new_table(&mut self) -> Result<u64, MemError> {
        if self.next_free >= self.limit {
            return Err(MemError::OutOfFrames);
        }
        let pfn = self.next_free;
        self.next_free += 1;
        let mfn = pfn_to_mfn(pfn).ok_or(MemError::OutOfFrames)?;
        let va = pfn_to_virt(pfn);
        if !self.is_mapped(va as u64) {
            return Err(MemError::OutOfFrames);
        }
        // SAFETY: the frame is free and mapped writable (checked just above).
        unsafe { ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE) };
        // SAFETY: nothing references the frame; Xen requires page tables to be read-only.
        unsafe {
            hypercall::update_va_mapping(
                va as u64,
                (mfn << PAGE_SHIFT) | PTE_PRESENT | PTE_USER | PTE_ACCESSED,
                UVMF_INVLPG,
            )?
        };
        Ok(mfn)
    }

    /// Whether `va` is mapped by a 4 KiB page.
    fn is_mapped(&self, va: u64) -> bool {
        let mut table = self.l4_mfn;
        for level in (1..=4).rev() {
            let idx = ((va >> (PAGE_SHIFT + 9 * (level - 1))) & 511) as usize;
            let entry = Self::read_entry(table, idx);
            if entry & PTE_PRESENT == 0 || (level > 1 && entry & PTE_PSE != 0) {
                return false;
            }
            table = (entry & PTE_FRAME_MASK) >> PAGE_SHIFT;
        }
        true
    }

    /// Returns the L1 table (mfn) covering `va`, creating missing intermediate tables.
    fn l1_for(&mut self, va: u64) -> Result<u64, MemError> {
        let mut table = self.l4_mfn;
        for level in (2..=4).rev() {
            let idx = ((va >> (PAGE_SHIFT + 9 * (level - 1))) & 511) as usize;
            let mut entry = Self::read_entry(table, idx);
            if entry & PTE_PRESENT == 0 {
                self.flush()?;
                let new = self.new_table()?;
                self.queue(
                    ((table << PAGE_SHIFT) + idx as u64 * 8) | MMU_NORMAL_PT_UPDATE,
                    (new << PAGE_SHIFT) | TABLE_FLAGS,
                )?;
                self.flush()?;
                entry = (new << PAGE_SHIFT) | TABLE_FLAGS;
            } else if entry & PTE_PSE != 0 {
                return Err(MemError::UnexpectedMapping(va));
            }
            table = (entry & PTE_FRAME_MASK) >> PAGE_SHIFT;
        }
        Ok(table)
    }

    fn map_pfn(&mut self, pfn: Pfn) -> Result<(), MemError> {
        let va = pfn_to_virt(pfn) as u64;
        let l1 = self.l1_for(va)?;
        let idx = ((va >> PAGE_SHIFT) & 511) as usize;
        if Self::read_entry(l1, idx) & PTE_PRESENT == 0 {
            let mfn = pfn_to_mfn(pfn).ok_or(MemError::OutOfFrames)?;
            self.queue(
                ((l1 << PAGE_SHIFT) + idx as u64 * 8) | MMU_NORMAL_PT_UPDATE,
                (mfn << PAGE_SHIFT) | PAGE_FLAGS,
            )?;
        }
        Ok(())
    }
}

/// Maps all memory, sets up the foreign-mapping window and the heap.
///
/// # Safety
/// Call once at boot, with `first_free` the first frame not used by the image or Xen's
/// bootstrap data, and the p2m list registered with [`memory::init_p2m`].
pub unsafe fn init(pt_base: u64, first_free: Pfn, nr_pages: u64) -> Result<MemInfo, MemError> {
    // The direct map must end below the top of the address space, leaving room for the window.
    let max_pages = ((u64::MAX - VIRT_BASE + 1) >> PAGE_SHIFT) - MAP_WINDOW_PAGES as u64 - 1;
    let mapped_pages = nr_pages.min(max_pages);
    let l4_mfn =
        memory::virt_to_mfn(pt_base as usize).ok_or(MemError::UnexpectedMapping(pt_base))?;
    let mut m = Mapper {
        l4_mfn,
        next_free: first_free,
        limit: mapped_pages,
        batch: [MmuUpdate { ptr: 0, val: 0 }; 128],
        batched: 0,
    };
    for pfn in 0..mapped_pages {
        m.map_pfn(pfn)?;
    }
    m.flush()?;
    let window = pfn_to_virt(mapped_pages) as u64;
    for i in 0..MAP_WINDOW_PAGES as u64 {
        m.l1_for(window + i * PAGE_SIZE as u64)?;
    }
    m.flush()?;
    // SAFETY: the window has L1 tables now and nothing else uses those addresses.
    unsafe { memory::init_map_window(window, MAP_WINDOW_PAGES) };

    let heap_start = pfn_to_virt(m.next_free);
    let heap_end = pfn_to_virt(mapped_pages);
    // SAFETY: [heap_start, heap_end) is mapped, free, and handed to the allocator exactly once.
    let span = unsafe {
        HEAP.lock()
            .claim(Span::new(heap_start as *mut u8, heap_end as *mut u8))
    };
    let heap_bytes = span.map(|s| s.size()).unwrap_or(0);
    Ok(MemInfo {
        nr_pages,
        mapped_pages,
        heap_bytes,
    })
}

/// Bytes currently allocated from the heap.
pub fn heap_in_use() -> usize {
    HEAP.lock().get_counters().allocated_bytes
}

/// The heap's counters, or `None` if the heap is locked right now (never waits: for the
/// introspection dump).
pub(crate) fn heap_counters() -> Option<talc::Counters> {
    HEAP.try_lock().map(|h| *h.get_counters())
}
