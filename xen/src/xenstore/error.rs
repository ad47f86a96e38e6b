//! Errors of the xenstore client.

use core::fmt;

use super::wire::{MsgType, WireError, XsError};

/// Why the transport (ring and event channel) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The connection is closed (or being reconnected) and carries no more messages.
    Closed,
    /// The peer left the shared state inconsistent (for instance ring indices out of range).
    InvalidPeerState,
    /// Another failure, described.
    Other(&'static str),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Closed => f.write_str("xenstore transport closed"),
            TransportError::InvalidPeerState => f.write_str("xenstore peer state is invalid"),
            TransportError::Other(s) => write!(f, "xenstore transport error: {s}"),
        }
    }
}

/// The daemon broke the protocol. Reported, never a panic; see
/// [`ClientCore::receive`](super::protocol::ClientCore::receive) for which ones are fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The byte stream cannot be cut into messages any more (for instance `len > 4096`). Fatal.
    Framing(WireError),
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
        error: WireError,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Framing(e) => write!(f, "xenstore framing error: {e}"),
            ProtocolError::UnknownType { raw, req_id } => {
                write!(
                    f,
                    "xenstore message of unknown type {raw} (req_id {req_id})"
                )
            }
            ProtocolError::UnexpectedReqId { req_id, msg_type } => {
                write!(
                    f,
                    "xenstore {msg_type:?} reply with unknown req_id {req_id}"
                )
            }
            ProtocolError::UnexpectedReplyType {
                req_id,
                expected,
                got,
            } => write!(
                f,
                "xenstore reply {req_id}: expected {expected:?}, got {got:?}"
            ),
            ProtocolError::TxIdMismatch {
                req_id,
                expected,
                got,
            } => write!(
                f,
                "xenstore reply {req_id}: tx_id {got}, request had {expected}"
            ),
            ProtocolError::BadPayload { msg_type, error } => {
                write!(f, "xenstore {msg_type:?} payload: {error}")
            }
        }
    }
}

/// Errors of xenstore operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// xenstored refused the request (`XS_ERROR`).
    Xs(XsError),
    /// xenstored broke the protocol.
    Protocol(ProtocolError),
    /// The transport failed; the connection is dead.
    Transport(TransportError),
    /// The request was rejected before sending (bad path, payload too long, NUL in a string).
    InvalidRequest(WireError),
    /// The value read is not of the requested form (not UTF-8, not a number).
    BadValue,
    /// Too many requests are outstanding.
    TooManyRequests,
    /// A watch with this token is already registered on this connection.
    WatchTokenInUse,
}

impl Error {
    /// Whether this is xenstored's `ENOENT`.
    pub fn is_not_found(&self) -> bool {
        *self == Error::Xs(XsError::ENOENT)
    }

    /// Whether this is xenstored's `EAGAIN` (a transaction conflict).
    pub fn is_again(&self) -> bool {
        *self == Error::Xs(XsError::EAGAIN)
    }
}

impl From<XsError> for Error {
    fn from(e: XsError) -> Error {
        Error::Xs(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        Error::Protocol(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Error {
        Error::Transport(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xs(e) => write!(f, "{e}"),
            Error::Protocol(e) => write!(f, "{e}"),
            Error::Transport(e) => write!(f, "{e}"),
            Error::InvalidRequest(e) => write!(f, "invalid xenstore request: {e}"),
            Error::BadValue => f.write_str("xenstore value is not of the expected form"),
            Error::TooManyRequests => f.write_str("too many outstanding xenstore requests"),
            Error::WatchTokenInUse => f.write_str("xenstore watch token already in use"),
        }
    }
}
