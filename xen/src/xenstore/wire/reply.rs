//! Reply payloads: NUL-terminated fields, lists, numbers, acknowledgements, errors.

use super::{XenstoreWireError, XsErrno};
use alloc::string::String;
use alloc::vec::Vec;

/// Splits off one NUL-terminated field, returning it (without the NUL) and the rest.
pub fn split_cstr(b: &[u8]) -> Result<(&[u8], &[u8]), XenstoreWireError> {
    let nul = b
        .iter()
        .position(|&c| c == 0)
        .ok_or(XenstoreWireError::MissingNul)?;
    Ok((&b[..nul], &b[nul + 1..]))
}

/// Splits off one NUL-terminated UTF-8 string.
pub fn split_str(b: &[u8]) -> Result<(&str, &[u8]), XenstoreWireError> {
    let (s, rest) = split_cstr(b)?;
    Ok((
        core::str::from_utf8(s).map_err(|_| XenstoreWireError::NotUtf8)?,
        rest,
    ))
}

/// Parses a payload that is exactly one NUL-terminated UTF-8 string.
pub fn parse_single_str(b: &[u8]) -> Result<&str, XenstoreWireError> {
    let (s, rest) = split_str(b)?;
    if !rest.is_empty() {
        return Err(XenstoreWireError::TrailingData);
    }
    Ok(s)
}

/// Parses a list of NUL-terminated UTF-8 strings (a `DIRECTORY` reply). An empty payload is an
/// empty list; a payload not ending in NUL is an error.
pub fn parse_str_list(mut b: &[u8]) -> Result<Vec<&str>, XenstoreWireError> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let (s, rest) = split_str(b)?;
        v.push(s);
        b = rest;
    }
    Ok(v)
}

/// Parses a `DIRECTORY` reply: the leaf names of the children.
pub fn parse_directory(b: &[u8]) -> Result<Vec<String>, XenstoreWireError> {
    let names = parse_str_list(b)?;
    if names.iter().any(|n| n.is_empty() || n.contains('/')) {
        return Err(XenstoreWireError::Malformed);
    }
    Ok(names.into_iter().map(String::from).collect())
}

/// Parses an acknowledgement (`OK` followed by a NUL).
pub fn parse_ok(b: &[u8]) -> Result<(), XenstoreWireError> {
    if b == b"OK\0" {
        Ok(())
    } else {
        Err(XenstoreWireError::NotOk)
    }
}

/// Parses an unsigned decimal number (no sign, no spaces, no empty string).
pub fn parse_decimal(s: &str) -> Result<u32, XenstoreWireError> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(XenstoreWireError::BadNumber);
    }
    s.parse::<u32>().map_err(|_| XenstoreWireError::BadNumber)
}

/// Parses a `TRANSACTION_START` reply: the transaction id in decimal. Id 0 means "no
/// transaction" and is rejected.
pub fn parse_transaction_id(b: &[u8]) -> Result<u32, XenstoreWireError> {
    let id = parse_decimal(parse_single_str(b)?)?;
    if id == 0 {
        return Err(XenstoreWireError::BadNumber);
    }
    Ok(id)
}

/// Parses an `ERROR` reply into an [`XsErrno`].
pub fn parse_error(b: &[u8]) -> Result<XsErrno, XenstoreWireError> {
    let s = parse_single_str(b)?;
    if s.is_empty() {
        return Err(XenstoreWireError::Empty);
    }
    Ok(XsErrno::from_name(s))
}

/// Parses an `IS_DOMAIN_INTRODUCED` reply (`T` or `F`).
pub fn parse_bool(b: &[u8]) -> Result<bool, XenstoreWireError> {
    match b {
        b"T\0" => Ok(true),
        b"F\0" => Ok(false),
        _ => Err(XenstoreWireError::Malformed),
    }
}
