//! Path syntax, checked the way xenstored checks it.

use super::{XenstoreWireError, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};

/// Whether `c` may appear in a xenstore path (alphanumerics and `-/_@`).
fn path_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// Checks a path the way xenstored does: not empty, only `[A-Za-z0-9-/_@]`, no doubled or
/// trailing slash (except the root `/`), at most [`XENSTORE_ABS_PATH_MAX`] bytes when absolute
/// and [`XENSTORE_REL_PATH_MAX`] when relative.
pub fn validate_path(p: &str) -> Result<(), XenstoreWireError> {
    let b = p.as_bytes();
    if b.is_empty() || !b.iter().all(|&c| path_char_ok(c)) {
        return Err(XenstoreWireError::BadPath);
    }
    let max = if b[0] == b'/' {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    if b.len() > max {
        return Err(XenstoreWireError::BadPath);
    }
    if p == "/" {
        return Ok(());
    }
    if p.ends_with('/') || p.contains("//") {
        return Err(XenstoreWireError::BadPath);
    }
    Ok(())
}

/// Checks a watch path: a path ([`validate_path`]) or a special `@name` watch.
pub fn validate_watch_path(p: &str) -> Result<(), XenstoreWireError> {
    if let Some(name) = p.strip_prefix('@') {
        if name.is_empty() || name.len() > XENSTORE_REL_PATH_MAX || !name.bytes().all(path_char_ok)
        {
            return Err(XenstoreWireError::BadPath);
        }
        return Ok(());
    }
    validate_path(p)
}
