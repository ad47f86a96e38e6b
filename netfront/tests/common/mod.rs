//! Guest setup over the simulated host, shared by the netfront tests.
#![allow(dead_code)]

use xenia_netfront::{Netfront, NetfrontConfig, NetfrontError};
use xenia_sim::netback::{Netback, VifConfig};

#[allow(unused_imports)] // not every test file uses both
pub use xenia_sim::{block_on, Guest};

/// What the netfront tests do with the simulated guest.
pub trait NetGuest {
    /// Adds vif `cfg.index` with its netback.
    fn add_vif(&self, cfg: VifConfig) -> Netback;
    /// Connects netfront `index` (default buffers).
    fn connect(&self, index: u32) -> Result<Netfront<'static>, NetfrontError>;
    /// Connects netfront `index` with `config`.
    fn connect_with(
        &self,
        index: u32,
        config: NetfrontConfig,
    ) -> Result<Netfront<'static>, NetfrontError>;
}

impl NetGuest for Guest {
    fn add_vif(&self, cfg: VifConfig) -> Netback {
        Netback::new(&self.sim, cfg)
    }

    fn connect(&self, index: u32) -> Result<Netfront<'static>, NetfrontError> {
        self.connect_with(index, NetfrontConfig::default())
    }

    fn connect_with(
        &self,
        index: u32,
        config: NetfrontConfig,
    ) -> Result<Netfront<'static>, NetfrontError> {
        self.block_on(Netfront::connect_with(
            self.xs,
            self.ev,
            self.grants(),
            index,
            config,
        ))
    }
}

/// A guest on a fresh simulated host.
pub fn guest() -> Guest {
    Guest::new()
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
