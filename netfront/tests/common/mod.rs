//! Guest setup over the simulated host, shared by the netfront tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use xenia_netfront::{NetConfig, NetError, Netfront};
use xenia_xen::events::EventChannels;
use xenia_xen::grant::GrantTable;
use xenia_xen::sim::netback::{Netback, VifConfig};
use xenia_xen::sim::Sim;
use xenia_xen::xenstore::{RingTransport, Xenstore};

/// Runs a future as the guest's executor would: poll, scan events, block in the "hypervisor".
pub fn block_on<F: Future>(ev: &EventChannels, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        if ev.scan() == 0 {
            ev.block(0).unwrap();
        }
    }
    panic!("future did not complete");
}

/// A simulated guest: its host, event channels, xenstore client and grant table.
pub struct Guest {
    pub sim: Sim,
    pub ev: &'static EventChannels,
    pub xs: Xenstore<RingTransport>,
    pub grants: &'static GrantTable,
}

pub fn guest() -> Guest {
    let sim = Sim::new();
    sim.install();
    let boot = sim.guest_boot();
    // SAFETY: the simulator's pages outlive the test; one EventChannels and transport per sim.
    let ev: &'static EventChannels =
        Box::leak(Box::new(unsafe { EventChannels::new(boot.shared_info) }));
    // SAFETY: as above.
    let t = unsafe {
        RingTransport::new(
            std::ptr::NonNull::new(boot.store_page).unwrap(),
            boot.store_port,
            ev,
        )
    }
    .unwrap();
    let grants: &'static GrantTable = Box::leak(Box::new(GrantTable::new(1).unwrap()));
    Guest {
        sim,
        ev,
        xs: Xenstore::new(t),
        grants,
    }
}

impl Guest {
    /// Adds vif `cfg.index` with its netback.
    pub fn add_vif(&self, cfg: VifConfig) -> Netback {
        Netback::new(&self.sim, cfg)
    }

    /// Connects netfront `index` (default buffers).
    pub fn connect(&self, index: u32) -> Result<Netfront<'static>, NetError> {
        self.connect_with(index, NetConfig::default())
    }

    /// Connects netfront `index` with `config`.
    pub fn connect_with(
        &self,
        index: u32,
        config: NetConfig,
    ) -> Result<Netfront<'static>, NetError> {
        block_on(
            self.ev,
            Netfront::connect_with(&self.xs, self.ev, self.grants, index, config),
        )
    }

    /// Lets the simulated dom0 work (as it would while the guest runs).
    pub fn run(&self) {
        self.sim.run();
    }

    /// Reads a node of the simulated xenstore as dom0.
    pub fn xs_read(&self, path: &str) -> Option<String> {
        self.sim.xenstored().borrow_mut().read_string(path).ok()
    }
}

/// A frame of `len` bytes: an Ethernet header (to `dst` from `src`, ethertype 0x88b5, the
/// local experimental one) and a pattern seeded by `seed`.
pub fn frame(dst: [u8; 6], src: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    assert!(len >= 14);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend((0..len - 14).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    f
}

pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
