//! Netfront errors.

use alloc::string::String;
use xenia_ring::RingError;
use xenia_xen::events::EventError;
use xenia_xen::grant::GrantError;
use xenia_xen::xenbus::XenbusError;

/// Netfront errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
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
}

impl From<XenbusError> for NetError {
    fn from(e: XenbusError) -> Self {
        NetError::Xenbus(e)
    }
}

impl From<GrantError> for NetError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::NoMemory => NetError::NoMemory,
            e => NetError::Grant(e),
        }
    }
}

impl From<EventError> for NetError {
    fn from(e: EventError) -> Self {
        NetError::Event(e)
    }
}

impl From<RingError> for NetError {
    fn from(e: RingError) -> Self {
        NetError::Ring(e)
    }
}

impl From<xenia_xen::xenstore::XenstoreError> for NetError {
    fn from(e: xenia_xen::xenstore::XenstoreError) -> Self {
        NetError::Xenbus(XenbusError::Xenstore(e))
    }
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::Xenbus(e) => write!(f, "netfront: {e}"),
            NetError::Grant(e) => write!(f, "netfront: {e}"),
            NetError::Event(e) => write!(f, "netfront: event channel: {e:?}"),
            NetError::Ring(e) => write!(f, "netfront: ring: {e}"),
            NetError::NoRxCopy => write!(f, "netfront: backend lacks feature-rx-copy"),
            NetError::BadMac(m) => write!(f, "netfront: bad MAC address {m:?}"),
            NetError::BadMtu(m) => write!(f, "netfront: bad MTU {m:?}"),
            NetError::BadConfig(what) => write!(f, "netfront: bad configuration: {what}"),
            NetError::NoMemory => write!(f, "netfront: out of memory"),
            NetError::FrameTooLarge(n) => write!(f, "netfront: cannot send a {n}-byte frame"),
            NetError::Busy => write!(f, "netfront: tx ring or buffers full"),
            NetError::NotConnected => write!(f, "netfront: not connected"),
        }
    }
}
