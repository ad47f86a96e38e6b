//! Netfront errors.

use alloc::string::String;
use xenia_ring::RingError;
use xenia_xen::events::EventError;
use xenia_xen::grant::GrantError;
use xenia_xen::xenbus::XenbusError;

/// Netfront errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetfrontError {
    /// Xenbus or xenstore failed (missing node, backend closed, ...).
    Xenbus(XenbusError),
    /// The grant table failed (no free entries, ...).
    Grant(GrantError),
    /// An event channel operation failed.
    Event(EventError),
    /// A ring could not be set up, or the backend broke its protocol.
    Ring(RingError),
    /// The backend does not offer `feature-rx-copy`.
    NoRxCopy,
    /// Our `mac` node does not hold a unicast `aa:bb:cc:dd:ee:ff` address.
    BadMac(String),
    /// The backend's `mtu` node holds a value we cannot use.
    BadMtu(String),
    /// A configuration value is out of range (named).
    BadConfig(&'static str),
    /// No memory for a page.
    NoMemory,
    /// The frame is empty or larger than the device can send (its length).
    FrameTooLarge(usize),
    /// No free tx slot or page now: retry after the backend answered.
    Busy,
    /// The device was disconnected.
    NotConnected,
    /// The backend broke the netif protocol (the violation): the device is broken, nothing
    /// is sent or received any more.
    Broken(Violation),
}

/// A response no honest backend sends. The first one marks the device broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A tx response's id names no tx request in flight (never sent, or already answered).
    TxBadId(u16),
    /// A tx response's status is none of `NETIF_RSP_OKAY`, `_ERROR` and `_DROPPED`.
    TxBadStatus(i16),
    /// An rx response's id is not the one of the request in its ring slot.
    RxBadId {
        /// The id of the request in that slot.
        expected: u16,
        /// The id the response carried.
        got: u16,
    },
    /// An rx response's status is negative but neither `NETIF_RSP_ERROR` nor `_DROPPED`.
    RxBadStatus(i16),
    /// An rx response's data (offset, size) lies beyond its page.
    RxBadSize {
        /// The response's offset.
        offset: u16,
        /// The response's size.
        size: i16,
    },
    /// An rx response carries flags the protocol does not define.
    RxBadFlags(u16),
    /// An rx frame spans more slots than [`MAX_RX_SLOTS`](crate::MAX_RX_SLOTS).
    RxTooManySlots,
    /// An rx frame is longer than the negotiated MTU allows (the bound, in bytes).
    RxOversized(usize),
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Violation::TxBadId(id) => write!(f, "tx response with id {id}, not in flight"),
            Violation::TxBadStatus(s) => write!(f, "tx response with impossible status {s}"),
            Violation::RxBadId { expected, got } => {
                write!(
                    f,
                    "rx response with id {got} in the slot of request {expected}"
                )
            }
            Violation::RxBadStatus(s) => write!(f, "rx response with impossible status {s}"),
            Violation::RxBadSize { offset, size } => write!(
                f,
                "rx response with {size} bytes at offset {offset}, beyond its page"
            ),
            Violation::RxBadFlags(fl) => write!(f, "rx response with unknown flags {fl:#x}"),
            Violation::RxTooManySlots => write!(
                f,
                "rx frame spanning more than {} slots",
                crate::MAX_RX_SLOTS
            ),
            Violation::RxOversized(max) => {
                write!(f, "rx frame longer than the {max} bytes the MTU allows")
            }
        }
    }
}

impl core::error::Error for Violation {}

impl From<XenbusError> for NetfrontError {
    fn from(e: XenbusError) -> Self {
        NetfrontError::Xenbus(e)
    }
}

impl From<GrantError> for NetfrontError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::NoMemory => NetfrontError::NoMemory,
            e => NetfrontError::Grant(e),
        }
    }
}

impl From<EventError> for NetfrontError {
    fn from(e: EventError) -> Self {
        NetfrontError::Event(e)
    }
}

impl From<RingError> for NetfrontError {
    fn from(e: RingError) -> Self {
        NetfrontError::Ring(e)
    }
}

impl From<xenia_xen::xenstore::XenstoreError> for NetfrontError {
    fn from(e: xenia_xen::xenstore::XenstoreError) -> Self {
        NetfrontError::Xenbus(XenbusError::Xenstore(e))
    }
}

impl core::fmt::Display for NetfrontError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetfrontError::Xenbus(e) => write!(f, "netfront: {e}"),
            NetfrontError::Grant(e) => write!(f, "netfront: {e}"),
            NetfrontError::Event(e) => write!(f, "netfront: {e}"),
            NetfrontError::Ring(e) => write!(f, "netfront: ring: {e}"),
            NetfrontError::NoRxCopy => write!(f, "netfront: backend lacks feature-rx-copy"),
            NetfrontError::BadMac(m) => write!(f, "netfront: bad MAC address {m:?}"),
            NetfrontError::BadMtu(m) => write!(f, "netfront: bad MTU {m:?}"),
            NetfrontError::BadConfig(what) => write!(f, "netfront: bad configuration: {what}"),
            NetfrontError::NoMemory => write!(f, "netfront: out of memory"),
            NetfrontError::FrameTooLarge(n) => write!(f, "netfront: cannot send a {n}-byte frame"),
            NetfrontError::Busy => write!(f, "netfront: tx ring or buffers full"),
            NetfrontError::NotConnected => write!(f, "netfront: not connected"),
            NetfrontError::Broken(v) => write!(
                f,
                "netfront: device broken: the backend broke the protocol ({v})"
            ),
        }
    }
}

impl core::error::Error for NetfrontError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            NetfrontError::Xenbus(e) => Some(e),
            NetfrontError::Grant(e) => Some(e),
            NetfrontError::Event(e) => Some(e),
            NetfrontError::Ring(e) => Some(e),
            NetfrontError::Broken(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use core::error::Error;
    use xenia_xen::XenError;

    #[test]
    fn display_is_a_sentence_and_source_is_the_wrapped_error() {
        let e = NetfrontError::Event(EventError::Xen(XenError::EPERM));
        assert_eq!(
            e.to_string(),
            "netfront: event channel: hypercall failed: EPERM"
        );
        let source = e.source().expect("the event error");
        assert_eq!(source.to_string(), "event channel: hypercall failed: EPERM");
        let root = source.source().expect("the hypercall error");
        assert_eq!(root.to_string(), "hypercall failed: EPERM");
        assert!(root.source().is_none());
        assert!(NetfrontError::Busy.source().is_none());
    }
}
