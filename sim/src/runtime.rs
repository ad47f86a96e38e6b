//! The fixture that boots the `xenia` runtime on the simulator (feature `runtime`), so an app,
//! its drivers and the runtime run end to end in `cargo test`.
//!
//! ```ignore
//! let sim = xenia_sim::runtime::boot();
//! xenia::block_on(async { xenia::xenstore().write("data/x", "1").await.unwrap() });
//! ```
//!
//! The runtime's state is per process (as it is per domain on Xen) and the simulator is per
//! thread: boot once per test process, and run the app on that thread (one test per test
//! binary, or `--test-threads=1` with one boot).

use core::ptr::NonNull;
use std::cell::RefCell;
use std::rc::Rc;

use crate::netback::{Netback, VifConfig};
use crate::peer::PeerDevice;
use crate::peer_host::PeerHost;
use crate::Sim;

/// A new simulated host, installed on this thread, with the runtime's Xen services (event
/// channels, xenstore, grant table) started on its guest through
/// [`xenia::domain::start_services`], as boot starts them on Xen.
///
/// # Panics
/// If called twice in one process.
pub fn boot() -> Sim {
    let sim = Sim::new();
    sim.install();
    let g = sim.guest_boot();
    let domain = xenia::domain::Domain {
        shared_info: NonNull::new(g.shared_info).expect("shared_info page"),
        store_page: NonNull::new(g.store_page).expect("xenstore page"),
        store_port: g.store_port,
        // The runtime's console writes to stdout on the host, so it leaves the console ring
        // (and its port) alone.
        console_port: None,
        start_info: NonNull::new(g.start_info),
    };
    // SAFETY: the simulator's pages live as long as the simulated host, and `Sim` is a shared
    // handle the simulator installed on this thread keeps alive for the rest of the process
    // (nothing uninstalls it); start_services refuses a second call.
    unsafe { xenia::domain::start_services(&domain) };
    sim
}

/// What a network test starts from: the booted simulator, vif 0's netback and the dom0 peer
/// host on it.
pub struct Rig {
    /// The simulated host ([`boot`]).
    pub sim: Sim,
    /// vif 0's backend ([`VifConfig::new`]`(0)`).
    pub netback: Netback,
    /// dom0's end of vif 0 ([`PeerHost::attach`]).
    pub peer: Rc<RefCell<PeerHost>>,
}

/// [`boot`], then vif 0 and a peer host on it whose device holds at most `max_pending` frames
/// for the guest ([`PeerDevice::with_max_pending`]), seeded with `seed`, its clients taking
/// local ports from `first_port` on ([`PeerHost::attach`]).
///
/// # Panics
/// If called twice in one process.
pub fn boot_with_peer(max_pending: usize, seed: u64, first_port: u16) -> Rig {
    let sim = boot();
    let netback = Netback::new(&sim, VifConfig::new(0));
    let dev = PeerDevice::new(netback.clone()).with_max_pending(max_pending);
    let peer = PeerHost::attach(&sim, dev, seed, first_port);
    Rig { sim, netback, peer }
}
