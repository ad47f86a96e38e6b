//! The xenstore client: xs_wire framing, requests, watches, transactions.
//!
//! Layers, from the bytes up:
//! - [`wire`]: the message format of `io/xs_wire.h` (checked views, a framing reader, request
//!   encoding, reply decoding, the daemon's error names).
//! - [`protocol`]: [`ClientCore`], the synchronous, transport-agnostic client state machine
//!   (request ids, reply matching, watch event queues).
//! - [`client`]: [`Xenstore`], the async client over a [`Transport`] (on a guest, the xenstore
//!   ring page and its event channel).
//!
//! The simulated daemon for host tests is `crate::sim::xenstored`.

pub mod client;
pub mod error;
pub mod protocol;
pub mod ring;
pub mod wire;

pub use client::{
    NextEvent, Transaction, Transport, WatchStream, Xenstore, DEFAULT_TRANSACTION_ATTEMPTS,
};
pub use error::{XenstoreError, XenstoreProtocolError, XenstoreTransportError};
pub use protocol::{ClientCore, Reply, Stats};
pub use ring::RingTransport;
pub use wire::{Access, MsgType, Perm, WatchEvent, XenstoreWireError, XsErrno};
