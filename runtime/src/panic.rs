//! The panic handler: print the message and location on the console, then crash the domain.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if !PANICKING.swap(true, Ordering::SeqCst) {
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
    }
    crate::start::shutdown(xenia_xen::sched::ShutdownReason::Crash)
}
