//! Errors returned by hypercalls.

use core::fmt;

/// A negative errno returned by a hypercall (Xen's `public/errno.h` numbering, which is Linux's).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct XenError(pub i32);

impl XenError {
    /// Operation not permitted.
    pub const EPERM: XenError = XenError(1);
    /// No such file or directory / entry.
    pub const ENOENT: XenError = XenError(2);
    /// No such process (no such domain).
    pub const ESRCH: XenError = XenError(3);
    /// I/O error.
    pub const EIO: XenError = XenError(5);
    /// Try again.
    pub const EAGAIN: XenError = XenError(11);
    /// Out of memory.
    pub const ENOMEM: XenError = XenError(12);
    /// Permission denied.
    pub const EACCES: XenError = XenError(13);
    /// Bad address.
    pub const EFAULT: XenError = XenError(14);
    /// Device or resource busy.
    pub const EBUSY: XenError = XenError(16);
    /// Already exists.
    pub const EEXIST: XenError = XenError(17);
    /// Invalid argument.
    pub const EINVAL: XenError = XenError(22);
    /// No space left.
    pub const ENOSPC: XenError = XenError(28);
    /// Function not implemented.
    pub const ENOSYS: XenError = XenError(38);

    /// Turns a hypercall's return value into a result: negative values are errors.
    pub fn check(ret: i64) -> Result<u64, XenError> {
        if ret < 0 {
            Err(XenError(ret.unsigned_abs().min(i32::MAX as u64) as i32))
        } else {
            Ok(ret as u64)
        }
    }

    /// The errno's symbolic name, where known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            5 => "EIO",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            _ => return None,
        })
    }
}

impl fmt::Debug for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "XenError({n})"),
            None => write!(f, "XenError({})", self.0),
        }
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "hypercall failed: {n}"),
            None => write!(f, "hypercall failed: errno {}", self.0),
        }
    }
}

impl core::error::Error for XenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_splits_errors_from_values() {
        assert_eq!(XenError::check(0), Ok(0));
        assert_eq!(XenError::check(7), Ok(7));
        assert_eq!(XenError::check(-22), Err(XenError::EINVAL));
        assert_eq!(XenError::check(i64::MIN), Err(XenError(i32::MAX)));
        assert_eq!(
            alloc::format!("{}", XenError::EPERM),
            "hypercall failed: EPERM"
        );
    }
}
