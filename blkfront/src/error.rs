//! Errors of the block frontend.

use alloc::string::String;
use xenia_ring::RingError;
use xenia_xen::events::EventError;
use xenia_xen::grant::GrantError;
use xenia_xen::xenbus::XenbusError;

/// Errors of the block frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkError {
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
    /// The backend answered this request with a response of another operation.
    BadResponse,
    /// The ring is broken: the backend corrupted its indices. Every request fails.
    Ring(RingError),
}

impl From<XenbusError> for BlkError {
    fn from(e: XenbusError) -> Self {
        BlkError::Xenbus(e)
    }
}
impl From<EventError> for BlkError {
    fn from(e: EventError) -> Self {
        BlkError::Event(e)
    }
}
impl From<GrantError> for BlkError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::NoMemory => BlkError::NoMemory,
            e => BlkError::Grant(e),
        }
    }
}

impl core::fmt::Display for BlkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlkError::Xenbus(e) => write!(f, "blkfront: {e}"),
            BlkError::Event(e) => write!(f, "blkfront: {e}"),
            BlkError::Grant(e) => write!(f, "blkfront: {e}"),
            BlkError::NoMemory => write!(f, "blkfront: out of memory"),
            BlkError::NoSuchDevice(n) => write!(f, "blkfront: no vbd named {n:?}"),
            BlkError::BadInfo(k, v) => write!(f, "blkfront: backend {k} is invalid: {v:?}"),
            BlkError::ReadOnly => write!(f, "blkfront: the disk is read-only"),
            BlkError::OutOfRange {
                sector,
                count,
                sectors,
            } => write!(
                f,
                "blkfront: sectors {sector}+{count} beyond the disk's {sectors}"
            ),
            BlkError::BadLength(l) => {
                write!(
                    f,
                    "blkfront: length {l} is not a multiple of the sector size"
                )
            }
            BlkError::Unsupported => write!(f, "blkfront: operation not supported"),
            BlkError::Io(s) => write!(f, "blkfront: I/O error (status {s})"),
            BlkError::BadResponse => write!(f, "blkfront: backend answered with another operation"),
            BlkError::Ring(e) => write!(f, "blkfront: ring broken: {e}"),
        }
    }
}
