//! Running the runtime on the host against the simulated Xen host (`xenia_xen::sim`), so an app,
//! its drivers and the runtime run end to end in `cargo test`.
//!
//! ```ignore
//! let sim = xenia_xen::sim::Sim::new();
//! xenia::host::boot(&sim);
//! xenia::block_on(async { xenia::xenstore().write("data/x", "1").await.unwrap() });
//! ```
//!
//! The runtime's state is per process (as it is per domain on Xen) and the simulator is per
//! thread: boot once per test process, and run the app on that thread (one test per test
//! binary, or `--test-threads=1` with one boot).

use std::sync::atomic::{AtomicBool, Ordering};
use xenia_xen::sim::Sim;

static BOOTED: AtomicBool = AtomicBool::new(false);

/// Installs `sim` on this thread and brings up the runtime's Xen services (event channels,
/// xenstore, grant table) on the simulated guest.
///
/// # Panics
/// If called twice in one process.
pub fn boot(sim: &Sim) {
    assert!(
        !BOOTED.swap(true, Ordering::SeqCst),
        "xenia::host::boot: the runtime boots once per process"
    );
    sim.install();
    let g = sim.guest_boot();
    // SAFETY: the simulator's pages live as long as the simulated host, which the caller keeps
    // (and `Sim` is a shared handle that keeps them alive); this is the only boot.
    unsafe {
        crate::shared_info::set(g.shared_info);
        crate::services::init(None, g.store_page as usize, g.store_port);
    }
}
