//! `io/xenbus.h`: the states a frontend and a backend step through in xenstore.

use crate::abi::UnknownValue;
use core::fmt;
use core::str::FromStr;

/// `enum xenbus_state` (`XenbusState`): a device end's state, kept as a decimal number in its
/// xenstore `state` node.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XenbusState {
    /// `XenbusStateUnknown`: no state yet (also what a missing node means).
    #[default]
    Unknown = 0,
    /// `XenbusStateInitialising`: the end is setting itself up.
    Initialising = 1,
    /// `XenbusStateInitWait`: the backend waits for the frontend's details (and has published
    /// its own).
    InitWait = 2,
    /// `XenbusStateInitialised`: the frontend has published its rings and event channel.
    Initialised = 3,
    /// `XenbusStateConnected`: the device is up.
    Connected = 4,
    /// `XenbusStateClosing`: the end is shutting the device down.
    Closing = 5,
    /// `XenbusStateClosed`: the device is down.
    Closed = 6,
    /// `XenbusStateReconfiguring`: a reconfiguration is in progress.
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`: the reconfiguration is done.
    Reconfigured = 8,
}

impl XenbusState {
    /// Every state, in numeric order.
    pub const ALL: [XenbusState; 9] = [
        XenbusState::Unknown,
        XenbusState::Initialising,
        XenbusState::InitWait,
        XenbusState::Initialised,
        XenbusState::Connected,
        XenbusState::Closing,
        XenbusState::Closed,
        XenbusState::Reconfiguring,
        XenbusState::Reconfigured,
    ];

    /// The decimal string to write to a `state` node.
    pub fn as_str(self) -> &'static str {
        ["0", "1", "2", "3", "4", "5", "6", "7", "8"][self as usize]
    }

    /// Parses a `state` node's value: a decimal number, optionally surrounded by ASCII
    /// whitespace (and NULs, which some writers leave at the end).
    pub fn from_bytes(value: &[u8]) -> Result<XenbusState, ParseXenbusStateError> {
        let v = value.trim_ascii();
        let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let v = v[..end].trim_ascii_end();
        if v.is_empty() {
            return Err(ParseXenbusStateError::NotANumber);
        }
        let mut n: u32 = 0;
        for &d in v {
            if !d.is_ascii_digit() {
                return Err(ParseXenbusStateError::NotANumber);
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u32::from(d - b'0')))
                .ok_or(ParseXenbusStateError::NotANumber)?;
        }
        XenbusState::try_from(n).map_err(ParseXenbusStateError::Unknown)
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = UnknownValue;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        XenbusState::ALL
            .get(value as usize)
            .copied()
            .ok_or(UnknownValue {
                what: "xenbus_state",
                value,
            })
    }
}

impl From<XenbusState> for u32 {
    fn from(s: XenbusState) -> u32 {
        s as u32
    }
}

impl FromStr for XenbusState {
    type Err = ParseXenbusStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        XenbusState::from_bytes(s.as_bytes())
    }
}

/// Why a `state` node's value is not a [`XenbusState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseXenbusStateError {
    /// The value is not a decimal number of at most 32 bits.
    NotANumber,
    /// The number is not a known state.
    Unknown(UnknownValue),
}

impl fmt::Display for ParseXenbusStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseXenbusStateError::NotANumber => f.write_str("xenbus state is not a number"),
            ParseXenbusStateError::Unknown(u) => u.fmt(f),
        }
    }
}

impl core::error::Error for ParseXenbusStateError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ParseXenbusStateError::NotANumber => None,
            ParseXenbusStateError::Unknown(u) => Some(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for (i, s) in XenbusState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(XenbusState::try_from(i as u32), Ok(*s));
            assert_eq!(s.as_str().parse::<XenbusState>(), Ok(*s));
        }
        assert_eq!(
            XenbusState::try_from(9),
            Err(UnknownValue {
                what: "xenbus_state",
                value: 9
            })
        );
        assert!(XenbusState::try_from(u32::MAX).is_err());
    }

    #[test]
    fn parses_what_xenstore_holds() {
        assert_eq!(XenbusState::from_bytes(b"4"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::from_bytes(b" 6\n"), Ok(XenbusState::Closed));
        assert_eq!(
            XenbusState::from_bytes(b"1\0"),
            Ok(XenbusState::Initialising)
        );
        assert_eq!(
            XenbusState::from_bytes(b"00000000004"),
            Ok(XenbusState::Connected)
        );
        assert_eq!(
            XenbusState::from_bytes(b"9"),
            Err(ParseXenbusStateError::Unknown(UnknownValue {
                what: "xenbus_state",
                value: 9
            }))
        );
        for bad in [
            &b""[..],
            b" ",
            b"-1",
            b"+4",
            b"4x",
            b"x",
            b"0x4",
            b"4 4",
            b"4294967296",
        ] {
            assert_eq!(
                XenbusState::from_bytes(bad),
                Err(ParseXenbusStateError::NotANumber),
                "{bad:?}"
            );
        }
        assert_eq!(
            "12345".parse::<XenbusState>(),
            Err(ParseXenbusStateError::Unknown(UnknownValue {
                what: "xenbus_state",
                value: 12345
            }))
        );
    }
}
