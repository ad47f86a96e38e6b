//! `io/*.h`: what a frontend shares with its backend: ring entries of the network and block
//! devices, the xenstore and console pages, xenbus states and the xenstore wire protocol.

mod blkif;
mod console;
mod netif;
mod ring;
mod xenbus;
mod xs_wire;

pub use blkif::*;
pub use console::*;
pub use netif::*;
pub use ring::*;
pub use xenbus::*;
pub use xs_wire::*;
