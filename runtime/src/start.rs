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

/// The P2M frame-list tree published in shared_info for the toolstack.
static P2M_TREE: spin::Mutex<Option<xenia_xen::p2m::P2mTree>> = spin::Mutex::new(None);

/// Maps Xen's shared_info frame `mfn` over our page [`SHARED_INFO_PAGE`].
fn map_shared_info(mfn_addr: u64) -> Result<*mut SharedInfo, xenia_xen::XenError> {
    let si_va = (&raw mut SHARED_INFO_PAGE) as u64;
    let pte = (mfn_addr & memory::PTE_FRAME_MASK)
        | memory::PTE_PRESENT
        | memory::PTE_RW
        | memory::PTE_USER
        | memory::PTE_ACCESSED
        | memory::PTE_DIRTY;
    // SAFETY: SHARED_INFO_PAGE is ours, page-aligned, and never accessed as a Rust object.
    unsafe { xenia_xen::hypercall::update_va_mapping(si_va, pte, memory::UVMF_INVLPG)? };
    Ok(si_va as *mut SharedInfo)
}

/// Maps [`SHARED_INFO_PAGE`]'s own frame back at its address (the toolstack refuses to save
/// page tables that map a frame that is not the domain's, such as shared_info).
fn unmap_shared_info() -> Result<(), xenia_xen::XenError> {
    let si_va = (&raw mut SHARED_INFO_PAGE) as u64;
    let own = memory::virt_to_mfn(si_va as usize).ok_or(xenia_xen::XenError::EINVAL)?;
    let pte = (own << PAGE_SHIFT)
        | memory::PTE_PRESENT
        | memory::PTE_RW
        | memory::PTE_USER
        | memory::PTE_ACCESSED
        | memory::PTE_DIRTY;
    // SAFETY: SHARED_INFO_PAGE is ours; mapping its own frame makes it a plain page again.
    unsafe { xenia_xen::hypercall::update_va_mapping(si_va, pte, memory::UVMF_INVLPG)? };
    Ok(())
}

/// Builds (once) and publishes the P2M frame-list tree in shared_info, so `xl save` and
/// `xl migrate` can read our p2m list. Logs and carries on if it cannot: only saving is lost.
fn publish_p2m(si: &StartInfo, shared: *mut SharedInfo) {
    let mut tree = P2M_TREE.lock();
    if tree.is_none() {
        match xenia_xen::p2m::P2mTree::new(si.mfn_list, si.nr_pages) {
            Ok(t) => *tree = Some(t),
            Err(e) => {
                log::warn!("{e}: the domain cannot be saved or migrated");
                return;
            }
        }
    }
    if let Some(t) = tree.as_mut() {
        // SAFETY: shared is the mapped shared_info page.
        if let Err(e) = unsafe { t.publish(shared, memory::virt_to_mfn) } {
            log::warn!("{e}: the domain cannot be saved or migrated");
        }
    }
}

/// Xen's side of a suspend: canonicalise start_info, unmap shared_info, suspend, and on return
/// map shared_info again and republish the P2M. Runs without logging between the unmapping and
/// the remapping (time and events read shared_info).
pub(crate) fn suspend_domain() -> Result<
    (
        crate::lifecycle::Resumed,
        Option<crate::lifecycle::NewDomainPorts>,
    ),
    crate::lifecycle::SuspendError,
> {
    use crate::lifecycle::{NewDomainPorts, Resumed, SuspendError};
    // The start_info page (in the direct map, writable): boot handed it to start_services.
    let si = crate::domain::start_info()
        .ok_or(SuspendError::Unsupported("no start_info"))?
        .as_ptr();
    let si_mfn = memory::virt_to_mfn(si as usize).ok_or(SuspendError::Unsupported(
        "start_info is not in the direct map",
    ))?;
    crate::console::flush(100_000_000);
    // SAFETY: start_info is mapped writable in the direct map for the guest's lifetime, and
    // only this function (on the one vCPU, without yielding) writes it.
    let si = unsafe { &mut *si };
    let store_pfn = mfn_to_pfn(si.store_mfn);
    // SAFETY: domU start_info carries the console union's domU variant.
    let con_pfn = unsafe { mfn_to_pfn(si.console.domU.mfn) };
    let restore_frames = |si: &mut StartInfo| {
        si.store_mfn = memory::pfn_to_mfn(store_pfn).unwrap_or(0);
        si.console.domU.mfn = memory::pfn_to_mfn(con_pfn).unwrap_or(0);
    };
    si.store_mfn = store_pfn;
    si.console.domU.mfn = con_pfn;
    if let Err(e) = unmap_shared_info() {
        restore_frames(si);
        return Err(e.into());
    }
    let result = sched::suspend(si_mfn);
    // Back in a domain (the same one, or a new one whose start_info Xen rewrote): shared_info
    // first, as everything else reads it.
    let shared = match map_shared_info(si.shared_info) {
        Ok(p) => p,
        Err(e) => {
            crate::println!("xenia: cannot map shared_info after suspend: {e}");
            shutdown(ShutdownReason::Crash);
        }
    };
    let outcome = match result {
        Ok(true) => {
            // Cancelled: start_info still holds the frames we canonicalised.
            restore_frames(si);
            Ok((Resumed::Cancelled, None))
        }
        Ok(false) => Ok((Resumed::NewDomain, Some(new_domain(si)))),
        Err(e) => {
            restore_frames(si);
            Err(SuspendError::Xen(e))
        }
    };
    publish_p2m(si, shared);
    return outcome;

    /// In a new domain: the rewritten start_info's console and xenstore ports; the console
    /// is attached to its new port (the frames are the same pseudo-physical pages).
    fn new_domain(si: &StartInfo) -> NewDomainPorts {
        // SAFETY: domU start_info carries the console union's domU variant.
        let (con_mfn, con_port) = unsafe { (si.console.domU.mfn, si.console.domU.evtchn) };
        let con_pfn = mfn_to_pfn(con_mfn);
        let mut console = None;
        if con_pfn < si.nr_pages && con_port != 0 && con_port < xenia_xen::events::NR_PORTS {
            let va = pfn_to_virt(con_pfn) as *mut u8;
            if let Some(p) = core::ptr::NonNull::new(va) {
                // SAFETY: the console page of start_info, in the direct map; the old console
                // is replaced (and dropped) under the lock, so only this one uses it.
                if let Ok(c) = unsafe { xenia_xen::console::Console::new(p, con_port) } {
                    *crate::console::CONSOLE.lock() = Some(c);
                    console = Some(con_port);
                }
            }
        }
        NewDomainPorts {
            store: si.store_evtchn,
            console,
        }
    }
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
fn crash_early() -> ! {
    loop {
        let _ = sched::shutdown(ShutdownReason::Crash);
    }
}

/// Minimum memory the runtime accepts (the builder's own minimum is 4 MiB).
const MIN_PAGES: u64 = 1024;

#[unsafe(no_mangle)]
extern "C" fn xenia_start(si_ptr: *mut StartInfo, entry_tsc: u64) -> ! {
    // SAFETY: Xen passes a mapped start_info in rsi; boot only reads it (suspend rewrites it
    // later, through `si_ptr`, after boot's last use of this reference).
    let si = unsafe { &*si_ptr };
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
    let si_va = match map_shared_info(si.shared_info) {
        Ok(p) => p as u64,
        Err(e) => {
            crate::println!("xenia: cannot map shared_info: {e}");
            shutdown(ShutdownReason::Crash);
        }
    };
    crate::shared_info::set(si_va as *mut SharedInfo);
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

    // The p2m tree needs the heap; publish it before anything can ask us to suspend. `xl save`
    // and `xl dump-core` both read it: without it dump-core fails with "p2m_size < nr_pages".
    publish_p2m(si, si_va as *mut SharedInfo);

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
        start_info: core::ptr::NonNull::new(si_ptr),
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
