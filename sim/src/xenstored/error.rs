//! What the daemon says when it refuses bytes from a connection.

use xenia_xen::xenstore::wire::XenstoreWireError;

/// Why the daemon refused bytes from a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoredError {
    /// No such connection.
    UnknownConnection,
    /// The connection was closed (by [`Xenstored::disconnect`](super::Xenstored::disconnect) or after a protocol violation).
    Closed,
    /// The client broke the framing (for instance `len > 4096`); the connection is now closed,
    /// as the real xenstored does.
    Protocol(XenstoreWireError),
    /// Local connections take typed requests, not bytes (and have no byte output).
    NotWire,
}

impl core::fmt::Display for XenstoredError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XenstoredError::UnknownConnection => {
                f.write_str("simulated xenstored: no such connection")
            }
            XenstoredError::Closed => f.write_str("simulated xenstored: connection closed"),
            XenstoredError::Protocol(e) => {
                write!(f, "simulated xenstored: client broke the framing: {e}")
            }
            XenstoredError::NotWire => {
                f.write_str("simulated xenstored: a local connection carries no bytes")
            }
        }
    }
}

impl core::error::Error for XenstoredError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            XenstoredError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}
