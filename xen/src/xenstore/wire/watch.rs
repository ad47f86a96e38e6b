//! Watch events (`XS_WATCH_EVENT`).

use super::{split_str, XenstoreWireError};
use alloc::string::String;

/// A watch that fired (`XS_WATCH_EVENT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (relative if the watch was registered with a relative path).
    pub path: String,
    /// The token given when the watch was registered.
    pub token: String,
}

/// Parses a `WATCH_EVENT` payload: `path\0token\0`.
pub fn parse_watch_event(b: &[u8]) -> Result<WatchEvent, XenstoreWireError> {
    let (path, rest) = split_str(b)?;
    let (token, rest) = split_str(rest)?;
    if !rest.is_empty() {
        return Err(XenstoreWireError::TrailingData);
    }
    if path.is_empty() {
        return Err(XenstoreWireError::Empty);
    }
    Ok(WatchEvent {
        path: String::from(path),
        token: String::from(token),
    })
}
