//! `io/*.h`: what a frontend shares with its backend: ring entries of the network and block
//! devices, the xenstore and console pages, xenbus states and the xenstore wire protocol.
//!
//! The header modules are re-exported flat (into [`crate::abi`] too). The codecs of the two
//! device protocols, used by frontends and backends alike, are modules of their own (not
//! re-exported flat, since they are not C definitions): [`blkif_wire`] (block ring slots in
//! the x86-64 layout, which has padding, encoded from and decoded into the `Blkif*`
//! structures) and [`netif_wire`] (network ring slots and the extra-info slots that share
//! them).

mod blkif;
pub mod blkif_wire;
mod console;
mod netif;
pub mod netif_wire;
mod ring;
mod xenbus;
mod xs_wire;

pub use blkif::*;
pub use console::*;
pub use netif::*;
pub use ring::*;
pub use xenbus::*;
pub use xs_wire::*;
