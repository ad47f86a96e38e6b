//! From `_start` to the app's `main`: check start_info, bring up the console, map
//! shared_info and all memory, then run the app and shut down with its outcome.

use core::sync::atomic::{AtomicU64, Ordering};
use xenia_xen::abi::{SharedInfo, StartInfo};
use xenia_xen::memory::{self, mfn_to_pfn, pfn_to_virt, PAGE_SHIFT, PAGE_SIZE, VIRT_BASE};
use xenia_xen::sched::{self, ShutdownReason};

static ENTRY_NS: AtomicU64 = AtomicU64::new(0);
static MAIN_NS: AtomicU64 = AtomicU64::new(0);

/// The page we remap onto Xen's shared_info frame.
#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);
static mut SHARED_INFO_PAGE: Page = Page([0; PAGE_SIZE]);

/// What the runtime learned at boot, for the app and the drivers.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// Pages of memory the domain has.
    pub nr_pages: u64,
    /// Bytes given to the heap.
    pub heap_bytes: usize,
    /// Virtual address of the xenstore ring page.
    pub store_page: usize,
    /// Event channel of the xenstore ring.
    pub store_port: u32,
    /// Virtual address of the console ring page.
    pub console_page: usize,
    /// Event channel of the console ring.
    pub console_port: u32,
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();
static CMDLINE: spin::Once<([u8; 1024], usize)> = spin::Once::new();

/// What the runtime learned at boot.
pub fn boot_info() -> BootInfo {
    *BOOT_INFO.get().expect("boot_info() before boot")
}

/// The guest command line (`extra=` / `cmdline=` in the xl config).
pub fn cmdline() -> &'static str {
    CMDLINE
        .get()
        .and_then(|(buf, len)| core::str::from_utf8(&buf[..*len]).ok())
        .unwrap_or("")
}

/// Nanoseconds from the first instruction to the call of the app's `main`.
pub fn boot_ns() -> u64 {
    MAIN_NS
        .load(Ordering::Relaxed)
        .saturating_sub(ENTRY_NS.load(Ordering::Relaxed))
}

/// Stops the domain: flushes the console, then asks Xen to shut down for `reason`.
pub fn shutdown(reason: ShutdownReason) -> ! {
    crate::console::flush(2_000_000_000);
    loop {
        let _ = sched::shutdown(reason);
        // Xen does not return from a successful poweroff/crash; if it refuses, keep asking
        // without spinning hot.
        sched::yield_now();
    }
}

/// Last-resort exit before the console works.
/// Tell the toolstack where the p2m list is, as `arch_shared_info` says: `max_pfn` (which
/// `XENMEM_maximum_gpfn` reports for a PV guest) and the linear p2m list, the one Xen gave us at
/// `mfn_list`, mapped with 4 KiB pages in the page tables at `pt_base` that stay the guest's.
/// libxenctrl walks them to read the guest's memory: without this `xl dump-core` fails with
/// "p2m_size < nr_pages". (libxenctrl sizes the list from the level-2 entries as if it started
/// in the first 2 MiB of its 1 GiB region, which Xen's builder does: it follows the image.)
///
/// # Safety
/// `shared` is the mapped shared_info page; the p2m list is registered.
unsafe fn publish_p2m(shared: *mut SharedInfo, si: &StartInfo) {
    let Some(l4_mfn) = memory::virt_to_mfn(si.pt_base as usize) else {
        crate::println!("xenia: page tables not in the p2m: no core dumps");
        return;
    };
    // SAFETY: the caller's contract: shared_info is mapped; these fields are the guest's to
    // write (Xen only reads them).
    unsafe {
        let arch = &raw mut (*shared).arch;
        (&raw mut (*arch).max_pfn).write_volatile(si.nr_pages);
        (&raw mut (*arch).p2m_vaddr).write_volatile(si.mfn_list);
        (&raw mut (*arch).p2m_generation).write_volatile(0);
        // 64-bit guests: xen_pfn_to_cr3 is the frame shifted by the page size.
        (&raw mut (*arch).p2m_cr3).write_volatile(l4_mfn << PAGE_SHIFT);
    }
}

fn crash_early() -> ! {
    loop {
        let _ = sched::shutdown(ShutdownReason::Crash);
    }
}

/// Minimum memory the runtime accepts (the builder's own minimum is 4 MiB).
const MIN_PAGES: u64 = 1024;

#[unsafe(no_mangle)]
extern "C" fn xenia_start(si: *const StartInfo, entry_tsc: u64) -> ! {
    // SAFETY: Xen passes a mapped start_info in rsi; we only read it.
    let si = unsafe { &*si };
    if xenia_xen::start_info::check_magic(si).is_err() {
        // Without the magic nothing in start_info (not even the console) can be trusted.
        crash_early();
    }

    // Console first, so every later failure can be reported; its frame must be the domain's.
    // SAFETY: domU start_info carries the console union's domU variant.
    let (con_mfn, con_port) = unsafe { (si.console.domU.mfn, si.console.domU.evtchn) };
    let con_pfn = mfn_to_pfn(con_mfn);
    if con_pfn >= si.nr_pages || con_port == 0 || con_port >= xenia_xen::events::NR_PORTS {
        crash_early();
    }
    let con_va = pfn_to_virt(con_pfn);
    match core::ptr::NonNull::new(con_va as *mut u8)
        // SAFETY: Xen maps the console page in the bootstrap region; only this Console uses it.
        .map(|p| unsafe { xenia_xen::console::Console::new(p, con_port) })
    {
        Some(Ok(c)) => *crate::console::CONSOLE.lock() = Some(c),
        _ => crash_early(),
    }

    if let Err(e) = xenia_xen::start_info::check(si, MIN_PAGES, mfn_to_pfn) {
        crate::println!("xenia: {e}");
        shutdown(ShutdownReason::Crash);
    }

    // SAFETY: mfn_list is the p2m list Xen mapped for us, with nr_pages entries.
    unsafe { memory::init_p2m(si.mfn_list as *mut u64, si.nr_pages) };

    // Map shared_info over a page of our own image.
    let si_va = (&raw mut SHARED_INFO_PAGE) as u64;
    let pte = (si.shared_info & memory::PTE_FRAME_MASK)
        | memory::PTE_PRESENT
        | memory::PTE_RW
        | memory::PTE_USER
        | memory::PTE_ACCESSED
        | memory::PTE_DIRTY;
    // SAFETY: SHARED_INFO_PAGE is ours, page-aligned, and never accessed as a Rust object.
    let mapped =
        unsafe { xenia_xen::hypercall::update_va_mapping(si_va, pte, memory::UVMF_INVLPG) };
    if let Err(e) = mapped {
        crate::println!("xenia: cannot map shared_info: {e}");
        shutdown(ShutdownReason::Crash);
    }
    crate::shared_info::set(si_va as *mut SharedInfo);
    // SAFETY: shared_info is mapped at si_va; the p2m list is registered.
    unsafe { publish_p2m(si_va as *mut SharedInfo, si) };
    // SAFETY: shared_info is mapped; vCPU 0's time info is valid.
    let snap = unsafe {
        xenia_xen::time::TimeSnapshot::read(
            &raw const (*(si_va as *const SharedInfo)).vcpu_info[0].time,
        )
    };
    ENTRY_NS.store(snap.at(entry_tsc), Ordering::Relaxed);

    crate::traps::init();

    // Command line.
    let len = si
        .cmd_line
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(si.cmd_line.len());
    CMDLINE.call_once(|| {
        let mut buf = [0u8; 1024];
        for (dst, &src) in buf.iter_mut().zip(&si.cmd_line[..len]) {
            *dst = src as u8;
        }
        (buf, len)
    });

    // First frame after the image and Xen's bootstrap data (p2m list, start_info, xenstore
    // and console pages, page tables, boot stack), with a little slack as Xen leaves.
    let pfn_of = |va: u64| (va.saturating_sub(VIRT_BASE) + PAGE_SIZE as u64 - 1) >> PAGE_SHIFT;
    let p2m_end = si.mfn_list + si.nr_pages * 8;
    let pt_end = si.pt_base + si.nr_pt_frames * PAGE_SIZE as u64;
    let si_end = si as *const _ as u64 + PAGE_SIZE as u64;
    let store_pfn = mfn_to_pfn(si.store_mfn);
    let con_pfn = mfn_to_pfn(con_mfn);
    unsafe extern "C" {
        static _end: u8;
    }
    let image_end = &raw const _end as u64;
    let first_free = [
        pfn_of(p2m_end),
        pfn_of(pt_end),
        pfn_of(si_end),
        pfn_of(image_end),
        store_pfn + 1,
        con_pfn + 1,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
        + 3;

    // SAFETY: called once, with the p2m registered and first_free past all bootstrap data.
    let mem = match unsafe { crate::mm::init(si.pt_base, first_free, si.nr_pages) } {
        Ok(m) => m,
        Err(e) => {
            crate::println!("xenia: {e}");
            shutdown(ShutdownReason::Crash);
        }
    };

    BOOT_INFO.call_once(|| BootInfo {
        nr_pages: si.nr_pages,
        heap_bytes: mem.heap_bytes,
        store_page: pfn_to_virt(store_pfn),
        store_port: si.store_evtchn,
        console_page: con_va,
        console_port: con_port,
    });
    crate::console::init_log(crate::cmdline_arg("loglevel"));
    let info = boot_info();
    let domain = crate::domain::Domain {
        shared_info: core::ptr::NonNull::new(si_va as *mut _).expect("shared_info"),
        store_page: core::ptr::NonNull::new(info.store_page as *mut u8).expect("store page"),
        store_port: info.store_port,
        console_port: Some(info.console_port),
    };
    // SAFETY: shared_info and the xenstore page are mapped for the guest's lifetime; once.
    unsafe { crate::domain::start_services(&domain) };
    if mem.mapped_pages < mem.nr_pages {
        log::warn!(
            "only {} of {} pages are mapped (the kernel area is 2 GiB)",
            mem.mapped_pages,
            mem.nr_pages
        );
    }

    crate::gdb::start_if_requested(si.pt_base);

    MAIN_NS.store(crate::time::now_ns().unwrap_or(0), Ordering::Relaxed);
    unsafe extern "Rust" {
        fn __xenia_app_main() -> bool;
    }
    // SAFETY: defined by the app through `#[xenia::main]`.
    let ok = unsafe { __xenia_app_main() };
    shutdown(if ok {
        ShutdownReason::Poweroff
    } else {
        ShutdownReason::Crash
    })
}
