//! The error names xenstored replies with (`XS_ERROR` payloads): Xen's `xsd_errors` table.

use crate::abi::{self, XSD_ERRORS};
use alloc::string::String;
use core::fmt;

/// One entry of Xen's `xsd_errors` table ([`abi::XSD_ERRORS`]): an error xenstored may name in
/// an `XS_ERROR` reply. Always a valid entry of the table, so its name and errno come from there.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KnownXsErrno {
    /// Index into [`abi::XSD_ERRORS`], always in range.
    index: u8,
}

impl KnownXsErrno {
    /// Every entry of the table, in the header's order.
    pub const ALL: [KnownXsErrno; XSD_ERRORS.len()] = {
        let mut all = [KnownXsErrno { index: 0 }; XSD_ERRORS.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = KnownXsErrno { index: i as u8 };
            i += 1;
        }
        all
    };

    /// The table entry this is.
    pub const fn entry(self) -> abi::XsdErrors {
        XSD_ERRORS[self.index as usize]
    }

    /// The errno name as sent on the wire (without the NUL), e.g. `"ENOENT"`.
    pub const fn name(self) -> &'static str {
        self.entry().errstring
    }

    /// The errno number (Linux numbering) of the table.
    pub const fn errnum(self) -> i32 {
        self.entry().errnum
    }

    /// The entry named `name` (no NUL), if the table has one.
    pub const fn from_name(name: &str) -> Option<KnownXsErrno> {
        let mut i = 0;
        while i < XSD_ERRORS.len() {
            if str_eq(XSD_ERRORS[i].errstring, name) {
                return Some(KnownXsErrno { index: i as u8 });
            }
            i += 1;
        }
        None
    }

    /// The entry for errno `errnum`, if the table has one.
    pub fn from_errnum(errnum: i32) -> Option<KnownXsErrno> {
        KnownXsErrno::ALL.into_iter().find(|e| e.errnum() == errnum)
    }

    /// The entry named `name`; for the constants below, where a name missing from the table
    /// fails the build.
    const fn named(name: &str) -> KnownXsErrno {
        match KnownXsErrno::from_name(name) {
            Some(e) => e,
            None => panic!("not in the xsd_errors table"),
        }
    }
}

/// `const` string equality (`==` on `str` is not `const`).
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl fmt::Debug for KnownXsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for KnownXsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xenstored error {}", self.name())
    }
}

impl core::error::Error for KnownXsErrno {}

/// An error xenstored reported (`XS_ERROR` payload): an entry of Xen's `xsd_errors` table, or a
/// name the table lacks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum XsErrno {
    /// A name in [`abi::XSD_ERRORS`].
    Known(KnownXsErrno),
    /// A name not in the table (kept so nothing from the peer is lost).
    Unknown(String),
}

/// The errors of the table by name, as `XsErrno::ENOENT` and so on.
#[allow(missing_docs)]
impl XsErrno {
    pub const EINVAL: XsErrno = XsErrno::Known(KnownXsErrno::named("EINVAL"));
    pub const EACCES: XsErrno = XsErrno::Known(KnownXsErrno::named("EACCES"));
    pub const EEXIST: XsErrno = XsErrno::Known(KnownXsErrno::named("EEXIST"));
    pub const EISDIR: XsErrno = XsErrno::Known(KnownXsErrno::named("EISDIR"));
    pub const ENOENT: XsErrno = XsErrno::Known(KnownXsErrno::named("ENOENT"));
    pub const ENOMEM: XsErrno = XsErrno::Known(KnownXsErrno::named("ENOMEM"));
    pub const ENOSPC: XsErrno = XsErrno::Known(KnownXsErrno::named("ENOSPC"));
    pub const EIO: XsErrno = XsErrno::Known(KnownXsErrno::named("EIO"));
    pub const ENOTEMPTY: XsErrno = XsErrno::Known(KnownXsErrno::named("ENOTEMPTY"));
    pub const ENOSYS: XsErrno = XsErrno::Known(KnownXsErrno::named("ENOSYS"));
    pub const EROFS: XsErrno = XsErrno::Known(KnownXsErrno::named("EROFS"));
    pub const EBUSY: XsErrno = XsErrno::Known(KnownXsErrno::named("EBUSY"));
    pub const EAGAIN: XsErrno = XsErrno::Known(KnownXsErrno::named("EAGAIN"));
    pub const EISCONN: XsErrno = XsErrno::Known(KnownXsErrno::named("EISCONN"));
    pub const E2BIG: XsErrno = XsErrno::Known(KnownXsErrno::named("E2BIG"));
    pub const EPERM: XsErrno = XsErrno::Known(KnownXsErrno::named("EPERM"));
}

impl XsErrno {
    /// The errno name as sent on the wire (without the NUL).
    pub fn name(&self) -> &str {
        match self {
            XsErrno::Known(e) => e.name(),
            XsErrno::Unknown(s) => s,
        }
    }

    /// The errno number, for a name in the table.
    pub fn errnum(&self) -> Option<i32> {
        match self {
            XsErrno::Known(e) => Some(e.errnum()),
            XsErrno::Unknown(_) => None,
        }
    }

    /// Maps an errno name to the error; names not in the table become [`XsErrno::Unknown`].
    pub fn from_name(name: &str) -> XsErrno {
        match KnownXsErrno::from_name(name) {
            Some(e) => XsErrno::Known(e),
            None => XsErrno::Unknown(String::from(name)),
        }
    }
}

impl From<KnownXsErrno> for XsErrno {
    fn from(e: KnownXsErrno) -> XsErrno {
        XsErrno::Known(e)
    }
}

impl fmt::Display for XsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xenstored error {}", self.name())
    }
}

impl core::error::Error for XsErrno {}
