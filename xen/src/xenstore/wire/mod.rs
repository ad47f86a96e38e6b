//! The xenstore wire format (`io/xs_wire.h`): message header, message types, payload syntax.
//!
//! Every message in either direction is a 16-byte header (`type`, `req_id`, `tx_id`, `len`, each
//! a little-endian `u32`) followed by `len` bytes of payload, `len <=` [`XENSTORE_PAYLOAD_MAX`].
//! [`Packet`] is a checked view over such bytes in the style of smoltcp: `new_unchecked` wraps
//! any buffer, `new_checked` also validates the lengths so the accessors cannot go out of
//! bounds. [`FrameReader`] cuts a byte stream into messages. [`Request`] builds and parses
//! request payloads with the NUL conventions of each type; the `parse_*` functions decode reply
//! payloads. Everything here comes from the other side and is validated: errors, never panics.
//!
//! Modules, from the bytes up: [`frame`] (header, message types, [`Packet`], [`FrameReader`],
//! the daemon's [`encode_message`]), [`error`] ([`XenstoreWireError`]), [`errno`] (the error
//! names of `XS_ERROR` replies, [`XsErrno`]), [`path`] and [`perms`] (path and permission
//! syntax), [`request`] ([`Request`]), [`reply`] (the `parse_*` functions of reply payloads)
//! and [`watch`] ([`WatchEvent`]). Everything is re-exported here.

use crate::abi;

pub mod errno;
pub mod error;
pub mod frame;
pub mod path;
pub mod perms;
pub mod reply;
pub mod request;
pub mod watch;

#[cfg(test)]
mod tests;

pub use errno::*;
pub use error::*;
pub use frame::*;
pub use path::*;
pub use perms::*;
pub use reply::*;
pub use request::*;
pub use watch::*;

/// Longest absolute path xenstored accepts (`XENSTORE_ABS_PATH_MAX`).
pub use crate::abi::XENSTORE_ABS_PATH_MAX;
/// Largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub use crate::abi::XENSTORE_PAYLOAD_MAX;
/// Longest relative path a domain should send (`XENSTORE_REL_PATH_MAX`).
pub use crate::abi::XENSTORE_REL_PATH_MAX;
/// Size of the message header (`struct xsd_sockmsg`).
pub const HEADER_LEN: usize = abi::XSD_SOCKMSG_SIZE;
