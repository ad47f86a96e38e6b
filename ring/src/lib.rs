//! Xen's shared-memory ring protocols, independent of any hypervisor interface.
//!
//! Two kinds of rings are used between a Xen guest and its backends:
//!
//! * **Request/response rings** ([`io/ring.h`]): a page (or `2^order` contiguous pages) holding
//!   a small header with four indices and an array of fixed-size entries. The frontend puts
//!   requests in, the backend replaces each consumed request with a response. See
//!   [`SharedRing`], [`FrontRing`] and [`BackRing`].
//! * **Byte rings** (xenstore and console): two one-directional byte streams with a pair of
//!   free-running indices each. See [`ByteRingProducer`], [`ByteRingConsumer`] and the layout
//!   views in [`xenstore`] and [`console`].
//!
//! Everything here works on raw shared memory that the *other domain* can change at any time:
//!
//! * shared memory is only touched through raw pointers with volatile or atomic accesses; no
//!   reference to the shared area as a whole is ever created, and entries are copied out into
//!   local values before anyone looks at them;
//! * indices published by the peer are validated before use: a producer index that runs ahead
//!   of what is possible is a [`RingError`], never an out-of-bounds access or an endless loop;
//! * index arithmetic is wrapping `u32`, exactly as in C.
//!
//! Memory ordering follows Xen's rules: read the peer's producer index, then a read barrier,
//! then the entries; write entries, then a write barrier, then publish the producer index; a
//! full barrier between publishing an index and reading the peer's event index.
//!
//! The crate is `no_std` and needs no allocator.
//!
//! [`io/ring.h`]: https://xenbits.xen.org/gitweb/?p=xen.git;a=blob;f=xen/include/public/io/ring.h
#![no_std]

#[cfg(test)]
extern crate std;

mod bytes;
pub mod console;
mod error;
mod message;
mod page;
mod shared;
pub mod xenstore;

pub use bytes::{ByteRingConsumer, ByteRingProducer};
pub use error::RingError;
pub use message::RingMessage;
pub use shared::{
    ring_bytes, ring_size, BackRing, FrontRing, SharedRing, RING_HEADER_SIZE, XEN_PAGE_SIZE,
};
