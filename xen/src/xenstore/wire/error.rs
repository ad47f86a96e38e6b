//! What is wrong with bytes that claim to be xenstore messages or payloads.

use core::fmt;

/// Errors found in bytes that claim to be xenstore messages or payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoreWireError {
    /// The buffer is shorter than the header, or than the header plus `len`.
    Truncated,
    /// The header's `len` exceeds [`XENSTORE_PAYLOAD_MAX`](super::XENSTORE_PAYLOAD_MAX): a protocol violation.
    PayloadTooLong(u32),
    /// The header's `type` is not a known [`MsgType`](super::MsgType).
    UnknownType(u32),
    /// A string that must end with a NUL byte does not.
    MissingNul,
    /// A string is not valid UTF-8.
    NotUtf8,
    /// A permission string is not `<n|r|w|b><domid>`.
    BadPermission,
    /// A number (domid, transaction id, ...) is not a valid unsigned decimal.
    BadNumber,
    /// A reply that should be `OK` is something else.
    NotOk,
    /// A field that must not be empty is empty, or a list that needs an item has none.
    Empty,
    /// Bytes follow the last field of a payload with a fixed number of fields.
    TrailingData,
    /// A string to be sent contains a NUL byte, which would break the framing of fields.
    EmbeddedNul,
    /// A request's payload would exceed [`XENSTORE_PAYLOAD_MAX`](super::XENSTORE_PAYLOAD_MAX).
    RequestTooLong(usize),
    /// A path is malformed (empty, bad characters, doubled or trailing slash) or too long.
    BadPath,
    /// The payload does not fit the syntax of the message type.
    Malformed,
}

impl fmt::Display for XenstoreWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenstoreWireError::Truncated => f.write_str("truncated xenstore message"),
            XenstoreWireError::PayloadTooLong(n) => {
                write!(f, "xenstore payload length {n} exceeds 4096")
            }
            XenstoreWireError::UnknownType(t) => write!(f, "unknown xenstore message type {t}"),
            XenstoreWireError::MissingNul => f.write_str("string without terminating NUL"),
            XenstoreWireError::NotUtf8 => f.write_str("string is not UTF-8"),
            XenstoreWireError::BadPermission => f.write_str("malformed permission string"),
            XenstoreWireError::BadNumber => f.write_str("malformed decimal number"),
            XenstoreWireError::NotOk => f.write_str("reply is not OK"),
            XenstoreWireError::Empty => f.write_str("empty field"),
            XenstoreWireError::TrailingData => f.write_str("trailing data after payload"),
            XenstoreWireError::EmbeddedNul => f.write_str("string contains a NUL byte"),
            XenstoreWireError::RequestTooLong(n) => {
                write!(f, "request payload of {n} bytes exceeds 4096")
            }
            XenstoreWireError::BadPath => f.write_str("malformed or too long xenstore path"),
            XenstoreWireError::Malformed => f.write_str("malformed payload"),
        }
    }
}

impl core::error::Error for XenstoreWireError {}
