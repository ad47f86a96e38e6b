//! Errors of the xenstore client.

use core::fmt;

use super::wire::{MsgType, XenstoreWireError, XsErrno};

/// Why the transport (ring and event channel) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenstoreTransportError {
    /// The connection is closed (or being reconnected) and carries no more messages.
    Closed,
    /// The peer left the shared state inconsistent (for instance ring indices out of range).
    InvalidPeerState,
    /// Another failure, described.
    Other(&'static str),
}

impl fmt::Display for XenstoreTransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenstoreTransportError::Closed => f.write_str("xenstore transport closed"),
            XenstoreTransportError::InvalidPeerState => {
                f.write_str("xenstore peer state is invalid")
            }
            XenstoreTransportError::Other(s) => write!(f, "xenstore transport error: {s}"),
        }
    }
}

impl core::error::Error for XenstoreTransportError {}

/// The daemon broke the protocol. Reported, never a panic; see
/// [`ClientCore::receive`](super::protocol::ClientCore::receive) for which ones are fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoreProtocolError {
    /// The byte stream cannot be cut into messages any more (for instance `len > 4096`). Fatal.
    Framing(XenstoreWireError),
    /// A message with a `type` this client does not know.
    UnknownType {
        /// The raw type.
        raw: u32,
        /// Its `req_id`.
        req_id: u32,
    },
    /// A reply whose `req_id` matches no outstanding request.
    UnexpectedReqId {
        /// The `req_id`.
        req_id: u32,
        /// The reply's type.
        msg_type: MsgType,
    },
    /// A reply of another type than its request (and not `ERROR`).
    UnexpectedReplyType {
        /// The `req_id`.
        req_id: u32,
        /// The request's type.
        expected: MsgType,
        /// The reply's type.
        got: MsgType,
    },
    /// A reply whose `tx_id` differs from its request's.
    TxIdMismatch {
        /// The `req_id`.
        req_id: u32,
        /// The request's `tx_id`.
        expected: u32,
        /// The reply's `tx_id`.
        got: u32,
    },
    /// A payload that does not fit the syntax of its type.
    BadPayload {
        /// The message type.
        msg_type: MsgType,
        /// What was wrong.
        error: XenstoreWireError,
    },
}

impl fmt::Display for XenstoreProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenstoreProtocolError::Framing(e) => write!(f, "xenstore framing error: {e}"),
            XenstoreProtocolError::UnknownType { raw, req_id } => {
                write!(
                    f,
                    "xenstore message of unknown type {raw} (req_id {req_id})"
                )
            }
            XenstoreProtocolError::UnexpectedReqId { req_id, msg_type } => {
                write!(
                    f,
                    "xenstore {msg_type:?} reply with unknown req_id {req_id}"
                )
            }
            XenstoreProtocolError::UnexpectedReplyType {
                req_id,
                expected,
                got,
            } => write!(
                f,
                "xenstore reply {req_id}: expected {expected:?}, got {got:?}"
            ),
            XenstoreProtocolError::TxIdMismatch {
                req_id,
                expected,
                got,
            } => write!(
                f,
                "xenstore reply {req_id}: tx_id {got}, request had {expected}"
            ),
            XenstoreProtocolError::BadPayload { msg_type, error } => {
                write!(f, "xenstore {msg_type:?} payload: {error}")
            }
        }
    }
}

impl core::error::Error for XenstoreProtocolError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            XenstoreProtocolError::Framing(e)
            | XenstoreProtocolError::BadPayload { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// Errors of xenstore operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoreError {
    /// xenstored refused the request (`XS_ERROR`).
    Xs(XsErrno),
    /// xenstored broke the protocol.
    Protocol(XenstoreProtocolError),
    /// The transport failed; the connection is dead.
    Transport(XenstoreTransportError),
    /// The request was rejected before sending (bad path, payload too long, NUL in a string).
    InvalidRequest(XenstoreWireError),
    /// The value read is not of the requested form (not UTF-8, not a number).
    BadValue,
    /// Too many requests are outstanding.
    TooManyRequests,
    /// A watch with this token is already registered on this connection.
    WatchTokenInUse,
    /// The domain was suspended and resumed in a new domain (restore, migration) while the
    /// request was outstanding: it may or may not have been carried out. Try again.
    Interrupted,
}

impl XenstoreError {
    /// Whether this is xenstored's `ENOENT`.
    pub fn is_not_found(&self) -> bool {
        *self == XenstoreError::Xs(XsErrno::ENOENT)
    }

    /// Whether this is xenstored's `EAGAIN` (a transaction conflict).
    pub fn is_again(&self) -> bool {
        *self == XenstoreError::Xs(XsErrno::EAGAIN)
    }
}

impl From<XsErrno> for XenstoreError {
    fn from(e: XsErrno) -> XenstoreError {
        XenstoreError::Xs(e)
    }
}

impl From<XenstoreProtocolError> for XenstoreError {
    fn from(e: XenstoreProtocolError) -> XenstoreError {
        XenstoreError::Protocol(e)
    }
}

impl From<XenstoreTransportError> for XenstoreError {
    fn from(e: XenstoreTransportError) -> XenstoreError {
        XenstoreError::Transport(e)
    }
}

impl fmt::Display for XenstoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenstoreError::Xs(e) => write!(f, "{e}"),
            XenstoreError::Protocol(e) => write!(f, "{e}"),
            XenstoreError::Transport(e) => write!(f, "{e}"),
            XenstoreError::InvalidRequest(e) => write!(f, "invalid xenstore request: {e}"),
            XenstoreError::BadValue => f.write_str("xenstore value is not of the expected form"),
            XenstoreError::TooManyRequests => f.write_str("too many outstanding xenstore requests"),
            XenstoreError::WatchTokenInUse => f.write_str("xenstore watch token already in use"),
            XenstoreError::Interrupted => f.write_str(
                "xenstore request interrupted: the domain resumed in a new domain; try again",
            ),
        }
    }
}

impl core::error::Error for XenstoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            XenstoreError::Xs(e) => Some(e),
            XenstoreError::Protocol(e) => Some(e),
            XenstoreError::Transport(e) => Some(e),
            XenstoreError::InvalidRequest(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::error::Error as _;
    use std::string::ToString;

    #[test]
    fn errors_say_their_layer_and_chain_their_source() {
        let e = XenstoreError::from(XsErrno::ENOENT);
        assert_eq!(e.to_string(), "xenstored error ENOENT");
        assert_eq!(e.source().unwrap().to_string(), "xenstored error ENOENT");
        let p = XenstoreError::from(XenstoreProtocolError::Framing(
            XenstoreWireError::PayloadTooLong(5000),
        ));
        assert_eq!(
            p.to_string(),
            "xenstore framing error: xenstore payload length 5000 exceeds 4096"
        );
        let inner = p.source().unwrap();
        assert_eq!(
            inner.source().unwrap().to_string(),
            "xenstore payload length 5000 exceeds 4096"
        );
        let t = XenstoreError::from(XenstoreTransportError::Closed);
        assert_eq!(t.source().unwrap().to_string(), "xenstore transport closed");
        assert!(XenstoreError::BadValue.source().is_none());
    }
}
