//! The error type shared by all rings.

use core::fmt;

/// What can go wrong on a ring.
///
/// Protocol errors caused by the peer ([`ProducerOverrun`](RingError::ProducerOverrun),
/// [`ConsumerOverrun`](RingError::ConsumerOverrun)) carry the offending index values so they
/// can be logged. A [`FrontRing`](crate::FrontRing) or [`BackRing`](crate::BackRing) that saw
/// one stays in that error state: every later consuming operation returns the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingError {
    /// The peer's producer index is further ahead of our consumer index than the protocol
    /// allows (or behind it): `producer - consumer` (wrapping) exceeded `max_ahead`.
    ///
    /// For a request/response ring `max_ahead` is the number of requests (front) or slots
    /// (back) that can legitimately be outstanding; for a byte ring it is the buffer size.
    ProducerOverrun {
        /// The producer index the peer published.
        producer: u32,
        /// Our consumer index.
        consumer: u32,
        /// The largest legal value of `producer - consumer` (wrapping).
        max_ahead: u32,
    },
    /// The peer's consumer index of a byte ring is not within `size` bytes behind our
    /// producer index (it claims to have consumed data that was never written, or it lags
    /// more than a whole buffer).
    ConsumerOverrun {
        /// Our producer index.
        producer: u32,
        /// The consumer index the peer published.
        consumer: u32,
        /// The size of the ring buffer in bytes.
        size: u32,
    },
    /// No free request slot: as many requests are outstanding as the ring has entries.
    Full,
    /// [`BackRing::push_response`](crate::BackRing::push_response) was called without a
    /// consumed request that still lacks its response (the response slot would overwrite a
    /// request the backend has not read).
    NoPendingRequest,
    /// The shared area is too small for the ring header and one entry (or the entry type is
    /// zero-sized), or a byte ring's size is not a non-zero power of two.
    BadSize {
        /// The size that was given, in bytes.
        len: usize,
    },
    /// The shared area is not aligned enough for its header or entries.
    Misaligned {
        /// The address that was given.
        addr: usize,
        /// The alignment that is needed.
        align: usize,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::ProducerOverrun {
                producer,
                consumer,
                max_ahead,
            } => write!(
                f,
                "peer producer index {producer:#x} is more than {max_ahead} ahead of consumer index {consumer:#x}"
            ),
            RingError::ConsumerOverrun {
                producer,
                consumer,
                size,
            } => write!(
                f,
                "peer consumer index {consumer:#x} is not within {size} bytes behind producer index {producer:#x}"
            ),
            RingError::Full => f.write_str("ring is full"),
            RingError::NoPendingRequest => {
                f.write_str("no consumed request is waiting for a response")
            }
            RingError::BadSize { len } => write!(f, "unusable ring size {len}"),
            RingError::Misaligned { addr, align } => {
                write!(f, "ring address {addr:#x} is not aligned to {align}")
            }
        }
    }
}

impl core::error::Error for RingError {}
