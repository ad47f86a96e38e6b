//! Errors of the block frontend.

use alloc::string::String;
use xenia_ring::RingError;
use xenia_xen::events::EventError;
use xenia_xen::grant::GrantError;
use xenia_xen::xenbus::XenbusError;

/// Errors of the block frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkfrontError {
    /// The xenbus handshake or a xenstore access failed.
    Xenbus(XenbusError),
    /// An event-channel operation failed.
    Event(EventError),
    /// A grant-table operation failed.
    Grant(GrantError),
    /// No page could be allocated.
    NoMemory,
    /// No vbd device has this name.
    NoSuchDevice(String),
    /// The backend published a missing or invalid disk property (key, value).
    BadInfo(&'static str, String),
    /// The disk is read-only: the write or discard was not sent.
    ReadOnly,
    /// The sectors lie (partly) beyond the end of the disk: nothing was sent.
    OutOfRange {
        /// First sector asked for.
        sector: u64,
        /// Number of sectors asked for.
        count: u64,
        /// Sectors of the disk.
        sectors: u64,
    },
    /// The buffer length is not a multiple of the sector size.
    BadLength(usize),
    /// The backend does not offer the operation (feature absent, or `BLKIF_RSP_EOPNOTSUPP`).
    Unsupported,
    /// The backend answered with an error status (`BLKIF_RSP_ERROR` or another negative value).
    Io(i16),
    /// The ring is broken: the backend corrupted its indices. Every request fails.
    Ring(RingError),
    /// The backend broke the blkif protocol (the violation): the device is broken and every
    /// request in flight or made later fails with this error.
    Broken(Violation),
    /// The domain resumed in a new domain (restore, migration): this connection's ring,
    /// grants and event channel are gone. A request that was in flight may or may not have
    /// been carried out; connect the device again and resubmit it.
    Resumed,
}

/// A response no honest backend sends. The first one marks the device broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// The response's id names no request we ever sent (the id).
    UnknownId(u64),
    /// The response's id names a request that was already answered (the id).
    DuplicateId(u64),
    /// The response names another operation than its request's.
    WrongOperation {
        /// The response's id.
        id: u64,
        /// The operation the response named.
        op: u8,
        /// The request's operation.
        expected: u8,
    },
    /// The response's status is none of `BLKIF_RSP_OKAY`, `BLKIF_RSP_ERROR` and
    /// `BLKIF_RSP_EOPNOTSUPP`.
    BadStatus {
        /// The response's id.
        id: u64,
        /// The status it carried.
        status: i16,
    },
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Violation::UnknownId(id) => write!(f, "response with unknown id {id:#x}"),
            Violation::DuplicateId(id) => {
                write!(f, "second response to the request with id {id:#x}")
            }
            Violation::WrongOperation { id, op, expected } => write!(
                f,
                "response to id {id:#x} names operation {op}, the request was {expected}"
            ),
            Violation::BadStatus { id, status } => {
                write!(f, "response to id {id:#x} has impossible status {status}")
            }
        }
    }
}

impl core::error::Error for Violation {}

impl From<XenbusError> for BlkfrontError {
    fn from(e: XenbusError) -> Self {
        BlkfrontError::Xenbus(e)
    }
}
impl From<EventError> for BlkfrontError {
    fn from(e: EventError) -> Self {
        BlkfrontError::Event(e)
    }
}
impl From<GrantError> for BlkfrontError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::NoMemory => BlkfrontError::NoMemory,
            e => BlkfrontError::Grant(e),
        }
    }
}

impl core::fmt::Display for BlkfrontError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlkfrontError::Xenbus(e) => write!(f, "blkfront: {e}"),
            BlkfrontError::Event(e) => write!(f, "blkfront: {e}"),
            BlkfrontError::Grant(e) => write!(f, "blkfront: {e}"),
            BlkfrontError::NoMemory => write!(f, "blkfront: out of memory"),
            BlkfrontError::NoSuchDevice(n) => write!(f, "blkfront: no vbd named {n:?}"),
            BlkfrontError::BadInfo(k, v) => write!(f, "blkfront: backend {k} is invalid: {v:?}"),
            BlkfrontError::ReadOnly => write!(f, "blkfront: the disk is read-only"),
            BlkfrontError::OutOfRange {
                sector,
                count,
                sectors,
            } => write!(
                f,
                "blkfront: sectors {sector}+{count} beyond the disk's {sectors}"
            ),
            BlkfrontError::BadLength(l) => {
                write!(
                    f,
                    "blkfront: length {l} is not a multiple of the sector size"
                )
            }
            BlkfrontError::Unsupported => write!(f, "blkfront: operation not supported"),
            BlkfrontError::Io(s) => write!(f, "blkfront: I/O error (status {s})"),
            BlkfrontError::Ring(e) => write!(f, "blkfront: ring broken: {e}"),
            BlkfrontError::Resumed => f.write_str(
                "blkfront: the domain resumed in a new domain; the device must be reconnected",
            ),
            BlkfrontError::Broken(v) => write!(
                f,
                "blkfront: device broken: the backend broke the protocol ({v})"
            ),
        }
    }
}

impl core::error::Error for BlkfrontError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            BlkfrontError::Xenbus(e) => Some(e),
            BlkfrontError::Event(e) => Some(e),
            BlkfrontError::Grant(e) => Some(e),
            BlkfrontError::Ring(e) => Some(e),
            BlkfrontError::Broken(v) => Some(v),
            _ => None,
        }
    }
}
