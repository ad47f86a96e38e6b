//! Node permissions: access rights and permission entries.

use super::{parse_decimal, parse_str_list, XenstoreWireError};
use alloc::vec::Vec;
use core::fmt;

/// Access rights in a permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The letter on the wire.
    pub fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// Whether this grants reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this grants writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry. In a node's list the first entry names the owner (who always has full
/// access) and the access of every domain not listed; the others grant per-domain access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u16,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// A permission entry.
    pub const fn new(domid: u16, access: Access) -> Perm {
        Perm { domid, access }
    }

    /// Parses `<n|r|w|b><domid>`.
    pub fn parse(s: &str) -> Result<Perm, XenstoreWireError> {
        let mut chars = s.chars();
        let access = match chars.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            _ => return Err(XenstoreWireError::BadPermission),
        };
        let num = chars.as_str();
        let d = parse_decimal(num).map_err(|_| XenstoreWireError::BadPermission)?;
        let domid = u16::try_from(d).map_err(|_| XenstoreWireError::BadPermission)?;
        Ok(Perm { domid, access })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

/// Parses a permission list (`GET_PERMS` reply): one or more NUL-terminated entries.
pub fn parse_perms(b: &[u8]) -> Result<Vec<Perm>, XenstoreWireError> {
    let list = parse_str_list(b)?;
    if list.is_empty() {
        return Err(XenstoreWireError::Empty);
    }
    list.into_iter().map(Perm::parse).collect()
}
