//! The panic handler: print the message, location and call stack on the console, then crash
//! the domain. Also the allocator's out-of-memory handler ([`ReportOom`]), which reports the heap
//! and the call stack of the failed allocation the same way.

use core::alloc::Layout;
use core::panic::PanicInfo;
use talc::{OomHandler, Talc};

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if crate::backtrace::begin_crash() {
        match info.location() {
            Some(l) => crate::println!(
                "panicked at {}:{}:{}: {}",
                l.file(),
                l.line(),
                l.column(),
                info.message()
            ),
            None => crate::println!("panicked: {}", info.message()),
        }
        // The first frame is the return into whoever called the panic handler (core's panic
        // machinery), the next ones lead to the panic site and on to `_start`.
        crate::backtrace::print_here();
        crate::gdb::stop_on_panic();
    } else {
        crate::println!("panicked while reporting a crash: {}", info.message());
    }
    crate::start::shutdown(xenia_xen::sched::ShutdownReason::Crash)
}

/// What the global allocator does when the heap cannot satisfy a request: print the request,
/// the heap's counters and the call stack, then crash the domain.
///
/// There is no memory to wait for in a unikernel, so a failed allocation is fatal, also for
/// fallible APIs such as `Vec::try_reserve` (they never see the error).
pub struct ReportOom;

impl OomHandler for ReportOom {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        // The heap's lock is held here: nothing below may allocate (println! does not).
        if crate::backtrace::begin_crash() {
            let c = talc.get_counters();
            crate::println!(
                "xenia: out of memory: allocating {} bytes (align {}) failed",
                layout.size(),
                layout.align()
            );
            crate::println!(
                "xenia: heap: {} bytes in use in {} allocations, {} bytes free in {} fragments, \
                 {} bytes claimed, {} allocations so far",
                c.allocated_bytes,
                c.allocation_count,
                c.available_bytes,
                c.fragment_count,
                c.claimed_bytes,
                c.total_allocation_count
            );
            crate::backtrace::print_here();
        } else {
            crate::println!("xenia: out of memory while reporting a crash");
        }
        crate::start::shutdown(xenia_xen::sched::ShutdownReason::Crash)
    }
}
