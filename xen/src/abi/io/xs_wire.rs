//! `io/xs_wire.h`: the xenstore wire protocol (message header, message types, error names) and
//! the xenstore ring page.

use crate::abi::{assert_sizes, UnknownValue};

/// `enum xsd_sockmsg_type`: the type of a xenstore message (`XS_FOO_BAR` is `FooBar`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsdSockmsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`): a xenstored control command.
    Control = 0,
    /// `XS_DIRECTORY`: list a node's children.
    Directory = 1,
    /// `XS_READ`: read a node.
    Read = 2,
    /// `XS_GET_PERMS`: read a node's permissions.
    GetPerms = 3,
    /// `XS_WATCH`: watch a path.
    Watch = 4,
    /// `XS_UNWATCH`: stop watching a path.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`: start a transaction.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`: commit (`"T"`) or abort (`"F"`) a transaction.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`: introduce a domain to xenstored (toolstack).
    Introduce = 8,
    /// `XS_RELEASE`: release a domain (toolstack).
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`: the home path of a domain.
    GetDomainPath = 10,
    /// `XS_WRITE`: write a node.
    Write = 11,
    /// `XS_MKDIR`: create a node.
    Mkdir = 12,
    /// `XS_RM`: remove a node and its children.
    Rm = 13,
    /// `XS_SET_PERMS`: set a node's permissions.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`: a watch fired (unsolicited, from xenstored).
    WatchEvent = 15,
    /// `XS_ERROR`: the reply to a failed request (payload: an errno name).
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`: whether a domain is introduced.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`: resume a domain (toolstack).
    Resume = 18,
    /// `XS_SET_TARGET`: let a domain act on another (toolstack).
    SetTarget = 19,
    /// `XS_RESET_WATCHES`: remove all our watches.
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`: list a large directory in parts.
    DirectoryPart = 22,
}

impl XsdSockmsgType {
    /// `XS_DEBUG`: the old name of [`XsdSockmsgType::Control`].
    pub const DEBUG: XsdSockmsgType = XsdSockmsgType::Control;

    /// Every message type, in numeric order.
    pub const ALL: [XsdSockmsgType; XS_TYPE_COUNT as usize - 1] = {
        use XsdSockmsgType::*;
        [
            Control,
            Directory,
            Read,
            GetPerms,
            Watch,
            Unwatch,
            TransactionStart,
            TransactionEnd,
            Introduce,
            Release,
            GetDomainPath,
            Write,
            Mkdir,
            Rm,
            SetPerms,
            WatchEvent,
            Error,
            IsDomainIntroduced,
            Resume,
            SetTarget,
            ResetWatches,
            DirectoryPart,
        ]
    };
}

/// `XS_TYPE_COUNT`: one past the highest message type (20 is unused).
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: a message type guaranteed to stay invalid.
pub const XS_INVALID: u32 = 0xffff;

impl TryFrom<u32> for XsdSockmsgType {
    type Error = UnknownValue;

    fn try_from(value: u32) -> Result<Self, UnknownValue> {
        use XsdSockmsgType::*;
        Ok(match value {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            _ => {
                return Err(UnknownValue {
                    what: "xsd_sockmsg_type",
                    value,
                })
            }
        })
    }
}

impl From<XsdSockmsgType> for u32 {
    fn from(t: XsdSockmsgType) -> u32 {
        t as u32
    }
}

/// Old `XS_WRITE` flag string: write whether or not the node exists.
pub const XS_WRITE_NONE: &str = "NONE";
/// Old `XS_WRITE` flag string: create the node if needed.
pub const XS_WRITE_CREATE: &str = "CREATE";
/// Old `XS_WRITE` flag string: create the node, failing if it exists.
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `struct xsd_errors`: an errno and the name xenstored sends for it in an `XS_ERROR` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsdErrors {
    /// The errno (Linux numbering).
    pub errnum: i32,
    /// Its name, e.g. `"ENOENT"`.
    pub errstring: &'static str,
}

/// The `xsd_errors` table: the errors xenstored reports, in the header's order.
pub const XSD_ERRORS: [XsdErrors; 16] = [
    XsdErrors {
        errnum: 22,
        errstring: "EINVAL",
    },
    XsdErrors {
        errnum: 13,
        errstring: "EACCES",
    },
    XsdErrors {
        errnum: 17,
        errstring: "EEXIST",
    },
    XsdErrors {
        errnum: 21,
        errstring: "EISDIR",
    },
    XsdErrors {
        errnum: 2,
        errstring: "ENOENT",
    },
    XsdErrors {
        errnum: 12,
        errstring: "ENOMEM",
    },
    XsdErrors {
        errnum: 28,
        errstring: "ENOSPC",
    },
    XsdErrors {
        errnum: 5,
        errstring: "EIO",
    },
    XsdErrors {
        errnum: 39,
        errstring: "ENOTEMPTY",
    },
    XsdErrors {
        errnum: 38,
        errstring: "ENOSYS",
    },
    XsdErrors {
        errnum: 30,
        errstring: "EROFS",
    },
    XsdErrors {
        errnum: 16,
        errstring: "EBUSY",
    },
    XsdErrors {
        errnum: 11,
        errstring: "EAGAIN",
    },
    XsdErrors {
        errnum: 106,
        errstring: "EISCONN",
    },
    XsdErrors {
        errnum: 7,
        errstring: "E2BIG",
    },
    XsdErrors {
        errnum: 1,
        errstring: "EPERM",
    },
];

/// The errno of an `XS_ERROR` payload (`"ENOENT"`, with or without its trailing NUL), if it is
/// in [`XSD_ERRORS`].
pub fn xsd_errnum(name: &[u8]) -> Option<i32> {
    let name = name.strip_suffix(b"\0").unwrap_or(name);
    XSD_ERRORS
        .iter()
        .find(|e| e.errstring.as_bytes() == name)
        .map(|e| e.errnum)
}

/// The name xenstored uses for `errnum`, if it is in [`XSD_ERRORS`].
pub fn xsd_errstring(errnum: i32) -> Option<&'static str> {
    XSD_ERRORS
        .iter()
        .find(|e| e.errnum == errnum)
        .map(|e| e.errstring)
}

/// `struct xsd_sockmsg`: the header before every xenstore message's payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// An [`XsdSockmsgType`] (as a number: a peer may send anything).
    pub r#type: u32,
    /// Chosen by the client, echoed in the reply.
    pub req_id: u32,
    /// The transaction id, or 0.
    pub tx_id: u32,
    /// Length of the payload that follows.
    pub len: u32,
}

/// Size of [`XsdSockmsg`] on the wire.
pub const XSD_SOCKMSG_SIZE: usize = 16;

impl XsdSockmsg {
    /// The message type, if known.
    pub fn msg_type(&self) -> Result<XsdSockmsgType, UnknownValue> {
        XsdSockmsgType::try_from(self.r#type)
    }

    /// The header as it goes on the ring (native, i.e. little, endian).
    pub fn to_bytes(&self) -> [u8; XSD_SOCKMSG_SIZE] {
        let mut b = [0; XSD_SOCKMSG_SIZE];
        for (i, w) in [self.r#type, self.req_id, self.tx_id, self.len]
            .into_iter()
            .enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        b
    }

    /// The header read from the ring. Nothing is validated: check `len` against
    /// [`XENSTORE_PAYLOAD_MAX`] and the type with [`XsdSockmsg::msg_type`].
    pub fn from_bytes(b: &[u8; XSD_SOCKMSG_SIZE]) -> XsdSockmsg {
        let w = |i: usize| u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        XsdSockmsg {
            r#type: w(0),
            req_id: w(1),
            tx_id: w(2),
            len: w(3),
        }
    }
}

/// `XS_WATCH_PATH`: index of the path among an `XS_WATCH_EVENT`'s NUL-separated fields.
pub const XS_WATCH_PATH: usize = 0;
/// `XS_WATCH_TOKEN`: index of the token among an `XS_WATCH_EVENT`'s fields.
pub const XS_WATCH_TOKEN: usize = 1;

// The xenstore page's layout is defined once, in `xenia_ring::xenstore` (which has no Xen
// dependency and implements the rings on it), and re-exported here under the C names; the
// layout test checks it against the C header.
pub use xenia_ring::xenstore::{XenstoreDomainInterface, XenstoreRingIdx};

/// Size of each of the two byte rings of the xenstore page.
pub const XENSTORE_RING_SIZE: usize = xenia_ring::xenstore::RING_SIZE;

/// The largest payload of one xenstore message.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// The longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// The longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// Server feature: the `connection` field and reconnection are supported.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 =
    xenia_ring::xenstore::SERVER_FEATURE_RECONNECTION;
/// Server feature: the `error` field is supported.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = xenia_ring::xenstore::SERVER_FEATURE_ERROR;

/// `connection`: the connection is up.
pub const XENSTORE_CONNECTED: u32 = xenia_ring::xenstore::CONNECTED;
/// `connection`: the guest asks for a reconnection (rings reset).
pub const XENSTORE_RECONNECT: u32 = xenia_ring::xenstore::RECONNECT;

/// `error`: no error.
pub const XENSTORE_ERROR_NONE: u32 = xenia_ring::xenstore::ERROR_NONE;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = xenia_ring::xenstore::ERROR_COMM;
/// `error`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = xenia_ring::xenstore::ERROR_RINGIDX;
/// `error`: protocol violation.
pub const XENSTORE_ERROR_PROTO: u32 = xenia_ring::xenstore::ERROR_PROTO;

assert_sizes! {
    XsdSockmsg => XSD_SOCKMSG_SIZE,
    XenstoreDomainInterface => 2 * XENSTORE_RING_SIZE + 7 * 4,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_round_trip() {
        let mut valid = 0;
        for v in 0..=XS_INVALID + 1 {
            if let Ok(t) = XsdSockmsgType::try_from(v) {
                assert_eq!(t as u32, v);
                assert_eq!(u32::from(t), v);
                valid += 1;
            }
        }
        // Every number below XS_TYPE_COUNT but the retired 20.
        assert_eq!(valid, XS_TYPE_COUNT - 1);
        assert!(XsdSockmsgType::try_from(20).is_err());
        assert!(XsdSockmsgType::try_from(XS_TYPE_COUNT).is_err());
        assert!(XsdSockmsgType::try_from(XS_INVALID).is_err());
        assert_eq!(XsdSockmsgType::DEBUG, XsdSockmsgType::Control);
        // ALL is every valid type once, in numeric order.
        assert_eq!(XsdSockmsgType::ALL.len() as u32, valid);
        assert!(XsdSockmsgType::ALL
            .windows(2)
            .all(|w| (w[0] as u32) < (w[1] as u32)));
    }

    #[test]
    fn header_bytes_round_trip() {
        let h = XsdSockmsg {
            r#type: XsdSockmsgType::Read as u32,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 12,
        };
        let b = h.to_bytes();
        assert_eq!(&b[..8], &[2, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(XsdSockmsg::from_bytes(&b), h);
        assert_eq!(h.msg_type(), Ok(XsdSockmsgType::Read));
        let bad = XsdSockmsg { r#type: 99, ..h };
        assert!(bad.msg_type().is_err());
    }

    #[test]
    fn error_names() {
        assert_eq!(xsd_errnum(b"ENOENT"), Some(2));
        assert_eq!(xsd_errnum(b"EACCES\0"), Some(13));
        assert_eq!(xsd_errnum(b"ENOENT\0\0"), None);
        assert_eq!(xsd_errnum(b"EWHATEVER"), None);
        assert_eq!(xsd_errnum(b""), None);
        assert_eq!(xsd_errstring(106), Some("EISCONN"));
        assert_eq!(xsd_errstring(0), None);
        for e in XSD_ERRORS {
            assert_eq!(xsd_errnum(e.errstring.as_bytes()), Some(e.errnum));
            assert_eq!(xsd_errstring(e.errnum), Some(e.errstring));
        }
    }
}
