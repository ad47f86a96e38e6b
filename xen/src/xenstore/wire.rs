//! The xenstore wire format (`io/xs_wire.h`): message header, message types, payload syntax.
//!
//! Every message in either direction is a 16-byte header (`type`, `req_id`, `tx_id`, `len`, each
//! a little-endian `u32`) followed by `len` bytes of payload, `len <=` [`XENSTORE_PAYLOAD_MAX`].
//! [`Packet`] is a checked view over such bytes in the style of smoltcp: `new_unchecked` wraps
//! any buffer, `new_checked` also validates the lengths so the accessors cannot go out of
//! bounds. [`FrameReader`] cuts a byte stream into messages. [`Request`] builds and parses
//! request payloads with the NUL conventions of each type; the `parse_*` functions decode reply
//! payloads. Everything here comes from the other side and is validated: errors, never panics.

use crate::abi::{self, XSD_ERRORS};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest absolute path xenstored accepts (`XENSTORE_ABS_PATH_MAX`).
pub use crate::abi::XENSTORE_ABS_PATH_MAX;
/// Largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub use crate::abi::XENSTORE_PAYLOAD_MAX;
/// Longest relative path a domain should send (`XENSTORE_REL_PATH_MAX`).
pub use crate::abi::XENSTORE_REL_PATH_MAX;
/// Size of the message header (`struct xsd_sockmsg`).
pub const HEADER_LEN: usize = abi::XSD_SOCKMSG_SIZE;

/// Byte offsets of the header fields (`struct xsd_sockmsg`).
pub mod field {
    use core::ops::Range;
    /// `type`: one of [`MsgType`](super::MsgType).
    pub const TYPE: Range<usize> = 0..4;
    /// `req_id`: echoed by the daemon in its reply.
    pub const REQ_ID: Range<usize> = 4..8;
    /// `tx_id`: transaction id, 0 outside transactions.
    pub const TX_ID: Range<usize> = 8..12;
    /// `len`: payload length.
    pub const LEN: Range<usize> = 12..16;
    /// The payload starts here.
    pub const PAYLOAD: usize = 16;
}

/// Errors found in bytes that claim to be xenstore messages or payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoreWireError {
    /// The buffer is shorter than the header, or than the header plus `len`.
    Truncated,
    /// The header's `len` exceeds [`XENSTORE_PAYLOAD_MAX`]: a protocol violation.
    PayloadTooLong(u32),
    /// The header's `type` is not a known [`MsgType`].
    UnknownType(u32),
    /// A string that must end with a NUL byte does not.
    MissingNul,
    /// A string is not valid UTF-8.
    NotUtf8,
    /// A permission string is not `<n|r|w|b><domid>`.
    BadPermission,
    /// A number (domid, transaction id, ...) is not a valid unsigned decimal.
    BadNumber,
    /// A reply that should be `OK` is something else.
    NotOk,
    /// A field that must not be empty is empty, or a list that needs an item has none.
    Empty,
    /// Bytes follow the last field of a payload with a fixed number of fields.
    TrailingData,
    /// A string to be sent contains a NUL byte, which would break the framing of fields.
    EmbeddedNul,
    /// A request's payload would exceed [`XENSTORE_PAYLOAD_MAX`].
    RequestTooLong(usize),
    /// A path is malformed (empty, bad characters, doubled or trailing slash) or too long.
    BadPath,
    /// The payload does not fit the syntax of the message type.
    Malformed,
}

impl fmt::Display for XenstoreWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenstoreWireError::Truncated => f.write_str("truncated xenstore message"),
            XenstoreWireError::PayloadTooLong(n) => {
                write!(f, "xenstore payload length {n} exceeds 4096")
            }
            XenstoreWireError::UnknownType(t) => write!(f, "unknown xenstore message type {t}"),
            XenstoreWireError::MissingNul => f.write_str("string without terminating NUL"),
            XenstoreWireError::NotUtf8 => f.write_str("string is not UTF-8"),
            XenstoreWireError::BadPermission => f.write_str("malformed permission string"),
            XenstoreWireError::BadNumber => f.write_str("malformed decimal number"),
            XenstoreWireError::NotOk => f.write_str("reply is not OK"),
            XenstoreWireError::Empty => f.write_str("empty field"),
            XenstoreWireError::TrailingData => f.write_str("trailing data after payload"),
            XenstoreWireError::EmbeddedNul => f.write_str("string contains a NUL byte"),
            XenstoreWireError::RequestTooLong(n) => {
                write!(f, "request payload of {n} bytes exceeds 4096")
            }
            XenstoreWireError::BadPath => f.write_str("malformed or too long xenstore path"),
            XenstoreWireError::Malformed => f.write_str("malformed payload"),
        }
    }
}

impl core::error::Error for XenstoreWireError {}

/// Message types (`enum xsd_sockmsg_type`): Xen's enum from [`crate::abi`], the one definition
/// of the numbers (checked against the C header by `xen/tests/layout.rs`).
///
/// A raw `type` from the daemon becomes a `MsgType` only through [`parse_msg_type`] (or
/// `MsgType::try_from`), which rejects numbers the header does not define.
pub use crate::abi::XsdSockmsgType as MsgType;

/// The message type numbered `raw`, or [`XenstoreWireError::UnknownType`] if the header defines none.
pub fn parse_msg_type(raw: u32) -> Result<MsgType, XenstoreWireError> {
    MsgType::try_from(raw).map_err(|e| XenstoreWireError::UnknownType(e.value))
}

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

fn get_u32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}

fn set_u32(b: &mut [u8], r: core::ops::Range<usize>, v: u32) {
    b[r].copy_from_slice(&v.to_le_bytes());
}

/// A view over the bytes of one xenstore message (header plus payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer until
    /// [`check_len`](Self::check_len) has succeeded. Use for buffers you built yourself.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, XenstoreWireError> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header is present, that `len <= XENSTORE_PAYLOAD_MAX` and that the whole
    /// payload is present. Bytes after the payload are allowed (see [`total_len`](Self::total_len)).
    pub fn check_len(&self) -> Result<(), XenstoreWireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(XenstoreWireError::Truncated);
        }
        let len = get_u32(b, field::LEN);
        if len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(XenstoreWireError::PayloadTooLong(len));
        }
        if b.len() < HEADER_LEN + len as usize {
            return Err(XenstoreWireError::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw `type` field.
    pub fn raw_type(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::TYPE)
    }

    /// The `type` field, rejecting unknown types.
    pub fn msg_type(&self) -> Result<MsgType, XenstoreWireError> {
        parse_msg_type(self.raw_type())
    }

    /// The `req_id` field.
    pub fn req_id(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REQ_ID)
    }

    /// The `tx_id` field.
    pub fn tx_id(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::TX_ID)
    }

    /// The `len` field.
    pub fn len(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::LEN)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.len() as usize
    }

    /// The payload (`len` bytes after the header).
    pub fn payload(&self) -> &[u8] {
        let len = self.len() as usize;
        &self.buffer.as_ref()[field::PAYLOAD..field::PAYLOAD + len]
    }

    /// The header as a value.
    pub fn header(&self) -> Header {
        Header {
            msg_type: self.raw_type(),
            req_id: self.req_id(),
            tx_id: self.tx_id(),
            len: self.len(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the `type` field.
    pub fn set_msg_type(&mut self, t: MsgType) {
        set_u32(self.buffer.as_mut(), field::TYPE, t as u32)
    }

    /// Sets the `type` field to any value (for tests of the other side's validation).
    pub fn set_raw_type(&mut self, t: u32) {
        set_u32(self.buffer.as_mut(), field::TYPE, t)
    }

    /// Sets the `req_id` field.
    pub fn set_req_id(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::REQ_ID, v)
    }

    /// Sets the `tx_id` field.
    pub fn set_tx_id(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::TX_ID, v)
    }

    /// Sets the `len` field.
    pub fn set_len(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::LEN, v)
    }

    /// The payload, mutable (`len` must already be set).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        &mut self.buffer.as_mut()[field::PAYLOAD..field::PAYLOAD + len]
    }
}

/// A decoded header (`struct xsd_sockmsg`); `msg_type` is raw so unknown types can be reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Raw `type`.
    pub msg_type: u32,
    /// `req_id`.
    pub req_id: u32,
    /// `tx_id`.
    pub tx_id: u32,
    /// `len`.
    pub len: u32,
}

impl Header {
    /// Decodes a header from the first [`HEADER_LEN`] bytes, validating `len`.
    pub fn parse(b: &[u8]) -> Result<Header, XenstoreWireError> {
        if b.len() < HEADER_LEN {
            return Err(XenstoreWireError::Truncated);
        }
        let h = Header {
            msg_type: get_u32(b, field::TYPE),
            req_id: get_u32(b, field::REQ_ID),
            tx_id: get_u32(b, field::TX_ID),
            len: get_u32(b, field::LEN),
        };
        if h.len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(XenstoreWireError::PayloadTooLong(h.len));
        }
        Ok(h)
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        set_u32(&mut b, field::TYPE, self.msg_type);
        set_u32(&mut b, field::REQ_ID, self.req_id);
        set_u32(&mut b, field::TX_ID, self.tx_id);
        set_u32(&mut b, field::LEN, self.len);
        b
    }
}

/// One whole message, owned: what [`FrameReader`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header (with `len == payload.len()`).
    pub header: Header,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// Builds a message from its parts; fails if the payload is too long.
    pub fn new(
        msg_type: MsgType,
        req_id: u32,
        tx_id: u32,
        payload: Vec<u8>,
    ) -> Result<Message, XenstoreWireError> {
        if payload.len() > XENSTORE_PAYLOAD_MAX {
            return Err(XenstoreWireError::RequestTooLong(payload.len()));
        }
        Ok(Message {
            header: Header {
                msg_type: msg_type as u32,
                req_id,
                tx_id,
                len: payload.len() as u32,
            },
            payload,
        })
    }

    /// The `type`, rejecting unknown types.
    pub fn msg_type(&self) -> Result<MsgType, XenstoreWireError> {
        parse_msg_type(self.header.msg_type)
    }

    /// Appends the encoded message (header then payload) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode_into(&mut v);
        v
    }
}

/// Cuts a byte stream into [`Message`]s.
///
/// Buffers at most one message (header plus [`XENSTORE_PAYLOAD_MAX`] bytes). A header whose
/// `len` is too large is a protocol error that poisons the reader: the stream cannot be
/// resynchronised, so every later call fails with the same error.
#[derive(Debug, Default)]
pub struct FrameReader {
    header: [u8; HEADER_LEN],
    header_fill: usize,
    parsed: Option<Header>,
    payload: Vec<u8>,
    poisoned: Option<XenstoreWireError>,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Consumes bytes from `input` up to the end of the first message it completes. Returns how
    /// many bytes were consumed and the message if one was completed; call again with the rest
    /// of the input.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), XenstoreWireError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let mut used = 0;
        if self.parsed.is_none() {
            let take = (HEADER_LEN - self.header_fill).min(input.len());
            self.header[self.header_fill..self.header_fill + take].copy_from_slice(&input[..take]);
            self.header_fill += take;
            used += take;
            if self.header_fill < HEADER_LEN {
                return Ok((used, None));
            }
            match Header::parse(&self.header) {
                Ok(h) => {
                    self.payload.clear();
                    self.payload.reserve(h.len as usize);
                    self.parsed = Some(h);
                }
                Err(e) => {
                    self.poisoned = Some(e.clone());
                    return Err(e);
                }
            }
        }
        let Some(h) = self.parsed else {
            return Ok((used, None));
        };
        let want = h.len as usize - self.payload.len();
        let take = want.min(input.len() - used);
        self.payload.extend_from_slice(&input[used..used + take]);
        used += take;
        if self.payload.len() == h.len as usize {
            self.parsed = None;
            self.header_fill = 0;
            let payload = core::mem::take(&mut self.payload);
            return Ok((used, Some(Message { header: h, payload })));
        }
        Ok((used, None))
    }

    /// Consumes all of `input`, calling `sink` for each completed message. Stops at the first
    /// framing error.
    pub fn push_all(
        &mut self,
        mut input: &[u8],
        mut sink: impl FnMut(Message),
    ) -> Result<(), XenstoreWireError> {
        while !input.is_empty() {
            let (used, msg) = self.push(input)?;
            input = &input[used..];
            if let Some(m) = msg {
                sink(m);
            }
        }
        Ok(())
    }

    /// Whether part of a message is buffered.
    pub fn is_mid_message(&self) -> bool {
        self.header_fill > 0
    }

    /// The framing error that poisoned this reader, if any.
    pub fn poisoned(&self) -> Option<&XenstoreWireError> {
        self.poisoned.as_ref()
    }
}

// ---------------------------------------------------------------------------------------------
// Payload fields.

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

/// Parses an `IS_DOMAIN_INTRODUCED` reply (`T` or `F`).
pub fn parse_bool(b: &[u8]) -> Result<bool, XenstoreWireError> {
    match b {
        b"T\0" => Ok(true),
        b"F\0" => Ok(false),
        _ => Err(XenstoreWireError::Malformed),
    }
}

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

fn no_nul(s: &str) -> Result<(), XenstoreWireError> {
    if s.as_bytes().contains(&0) {
        Err(XenstoreWireError::EmbeddedNul)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// A request with its arguments; [`Request::encode`] lays out the payload with the NUL
/// conventions of its type and [`Request::parse`] decodes one (what xenstored does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `READ path|` → value.
    Read(&'a str),
    /// `WRITE path|value` (the value is not NUL-terminated).
    Write(&'a str, &'a [u8]),
    /// `MKDIR path|`.
    Mkdir(&'a str),
    /// `RM path|`.
    Rm(&'a str),
    /// `DIRECTORY path|` → names.
    Directory(&'a str),
    /// `GET_PERMS path|` → permissions.
    GetPerms(&'a str),
    /// `SET_PERMS path|perm|+`.
    SetPerms(&'a str, Vec<Perm>),
    /// `WATCH path|token|`.
    Watch(&'a str, &'a str),
    /// `UNWATCH path|token|`.
    Unwatch(&'a str, &'a str),
    /// `TRANSACTION_START |` → id.
    TransactionStart,
    /// `TRANSACTION_END T|` (commit) or `F|` (abort).
    TransactionEnd(bool),
    /// `GET_DOMAIN_PATH domid|` → path.
    GetDomainPath(u16),
    /// `INTRODUCE domid|mfn|evtchn|`.
    Introduce(u16, u64, u32),
    /// `RELEASE domid|`.
    Release(u16),
    /// `IS_DOMAIN_INTRODUCED domid|` → `T` or `F`.
    IsDomainIntroduced(u16),
    /// `RESUME domid|`.
    Resume(u16),
    /// `SET_TARGET domid|tdomid|`.
    SetTarget(u16, u16),
    /// `RESET_WATCHES |`.
    ResetWatches,
}

impl<'a> Request<'a> {
    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Request::Read(_) => MsgType::Read,
            Request::Write(..) => MsgType::Write,
            Request::Mkdir(_) => MsgType::Mkdir,
            Request::Rm(_) => MsgType::Rm,
            Request::Directory(_) => MsgType::Directory,
            Request::GetPerms(_) => MsgType::GetPerms,
            Request::SetPerms(..) => MsgType::SetPerms,
            Request::Watch(..) => MsgType::Watch,
            Request::Unwatch(..) => MsgType::Unwatch,
            Request::TransactionStart => MsgType::TransactionStart,
            Request::TransactionEnd(_) => MsgType::TransactionEnd,
            Request::GetDomainPath(_) => MsgType::GetDomainPath,
            Request::Introduce(..) => MsgType::Introduce,
            Request::Release(_) => MsgType::Release,
            Request::IsDomainIntroduced(_) => MsgType::IsDomainIntroduced,
            Request::Resume(_) => MsgType::Resume,
            Request::SetTarget(..) => MsgType::SetTarget,
            Request::ResetWatches => MsgType::ResetWatches,
        }
    }

    /// Checks the arguments (paths valid and short enough, no NUL inside strings).
    pub fn validate(&self) -> Result<(), XenstoreWireError> {
        match self {
            Request::Read(p)
            | Request::Mkdir(p)
            | Request::Rm(p)
            | Request::Directory(p)
            | Request::GetPerms(p)
            | Request::Write(p, _) => validate_path(p),
            Request::SetPerms(p, perms) => {
                validate_path(p)?;
                if perms.is_empty() {
                    return Err(XenstoreWireError::Empty);
                }
                Ok(())
            }
            Request::Watch(p, t) | Request::Unwatch(p, t) => {
                validate_watch_path(p)?;
                no_nul(t)
            }
            _ => Ok(()),
        }
    }

    /// Appends the payload to `out` (after validating; nothing is appended on error). Fails
    /// with [`XenstoreWireError::RequestTooLong`] if it would exceed [`XENSTORE_PAYLOAD_MAX`].
    pub fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), XenstoreWireError> {
        use core::fmt::Write as _;
        self.validate()?;
        let start = out.len();
        let mut s = String::new();
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(b);
            out.push(0);
        };
        match self {
            Request::Read(p)
            | Request::Mkdir(p)
            | Request::Rm(p)
            | Request::Directory(p)
            | Request::GetPerms(p) => put(out, p.as_bytes()),
            Request::Write(p, v) => {
                put(out, p.as_bytes());
                out.extend_from_slice(v);
            }
            Request::SetPerms(p, perms) => {
                put(out, p.as_bytes());
                for perm in perms {
                    s.clear();
                    let _ = write!(s, "{perm}");
                    put(out, s.as_bytes());
                }
            }
            Request::Watch(p, t) | Request::Unwatch(p, t) => {
                put(out, p.as_bytes());
                put(out, t.as_bytes());
            }
            Request::TransactionStart | Request::ResetWatches => put(out, b""),
            Request::TransactionEnd(commit) => put(out, if *commit { b"T" } else { b"F" }),
            Request::GetDomainPath(d)
            | Request::Release(d)
            | Request::IsDomainIntroduced(d)
            | Request::Resume(d) => {
                let _ = write!(s, "{d}");
                put(out, s.as_bytes());
            }
            Request::Introduce(d, mfn, port) => {
                for n in [*d as u64, *mfn, *port as u64] {
                    s.clear();
                    let _ = write!(s, "{n}");
                    put(out, s.as_bytes());
                }
            }
            Request::SetTarget(d, t) => {
                for n in [d, t] {
                    s.clear();
                    let _ = write!(s, "{n}");
                    put(out, s.as_bytes());
                }
            }
        }
        let len = out.len() - start;
        if len > XENSTORE_PAYLOAD_MAX {
            out.truncate(start);
            return Err(XenstoreWireError::RequestTooLong(len));
        }
        Ok(())
    }

    /// Appends the whole message (header and payload) to `out`.
    pub fn encode(
        &self,
        req_id: u32,
        tx_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), XenstoreWireError> {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        if let Err(e) = self.encode_payload(out) {
            out.truncate(start);
            return Err(e);
        }
        let len = (out.len() - start - HEADER_LEN) as u32;
        let mut p = Packet::new_unchecked(&mut out[start..]);
        p.set_msg_type(self.msg_type());
        p.set_req_id(req_id);
        p.set_tx_id(tx_id);
        p.set_len(len);
        Ok(())
    }

    /// Decodes a request payload of type `t` (the daemon side). Paths are checked for syntax
    /// only; resolving relative paths is the daemon's business.
    pub fn parse(t: MsgType, b: &'a [u8]) -> Result<Request<'a>, XenstoreWireError> {
        let domid = |s: &str| -> Result<u16, XenstoreWireError> {
            u16::try_from(parse_decimal(s)?).map_err(|_| XenstoreWireError::BadNumber)
        };
        let req = match t {
            MsgType::Read => Request::Read(parse_single_str(b)?),
            MsgType::Mkdir => Request::Mkdir(parse_single_str(b)?),
            MsgType::Rm => Request::Rm(parse_single_str(b)?),
            MsgType::Directory => Request::Directory(parse_single_str(b)?),
            MsgType::GetPerms => Request::GetPerms(parse_single_str(b)?),
            MsgType::Write => {
                let (p, v) = split_str(b)?;
                Request::Write(p, v)
            }
            MsgType::SetPerms => {
                let (p, rest) = split_str(b)?;
                Request::SetPerms(p, parse_perms(rest)?)
            }
            MsgType::Watch | MsgType::Unwatch => {
                // The reserved trailing field may or may not be present.
                let (p, rest) = split_str(b)?;
                let (tok, _reserved) = split_str(rest)?;
                if t == MsgType::Watch {
                    Request::Watch(p, tok)
                } else {
                    Request::Unwatch(p, tok)
                }
            }
            MsgType::TransactionStart => {
                // `|`; tolerate an empty payload too.
                if !(b.is_empty() || b == b"\0") {
                    return Err(XenstoreWireError::Malformed);
                }
                Request::TransactionStart
            }
            MsgType::ResetWatches => Request::ResetWatches,
            MsgType::TransactionEnd => match parse_single_str(b)? {
                "T" => Request::TransactionEnd(true),
                "F" => Request::TransactionEnd(false),
                _ => return Err(XenstoreWireError::Malformed),
            },
            MsgType::GetDomainPath => Request::GetDomainPath(domid(parse_single_str(b)?)?),
            MsgType::Release => Request::Release(domid(parse_single_str(b)?)?),
            MsgType::IsDomainIntroduced => {
                Request::IsDomainIntroduced(domid(parse_single_str(b)?)?)
            }
            MsgType::Resume => Request::Resume(domid(parse_single_str(b)?)?),
            MsgType::Introduce => {
                let (d, rest) = split_str(b)?;
                let (mfn, rest) = split_str(rest)?;
                let (port, _reserved) = split_str(rest)?;
                let mfn: u64 = if mfn.is_empty() || !mfn.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(XenstoreWireError::BadNumber);
                } else {
                    mfn.parse().map_err(|_| XenstoreWireError::BadNumber)?
                };
                Request::Introduce(domid(d)?, mfn, parse_decimal(port)?)
            }
            MsgType::SetTarget => {
                let (d, rest) = split_str(b)?;
                let (tgt, rest) = split_str(rest)?;
                if !rest.is_empty() {
                    return Err(XenstoreWireError::TrailingData);
                }
                Request::SetTarget(domid(d)?, domid(tgt)?)
            }
            MsgType::Control | MsgType::DirectoryPart | MsgType::WatchEvent | MsgType::Error => {
                return Err(XenstoreWireError::UnknownType(t as u32))
            }
        };
        Ok(req)
    }
}

/// Encodes a reply or event message (the daemon side): header plus payload.
pub fn encode_message(
    t: MsgType,
    req_id: u32,
    tx_id: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), XenstoreWireError> {
    if payload.len() > XENSTORE_PAYLOAD_MAX {
        return Err(XenstoreWireError::RequestTooLong(payload.len()));
    }
    let h = Header {
        msg_type: t as u32,
        req_id,
        tx_id,
        len: payload.len() as u32,
    };
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn msg(t: u32, req: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Header {
            msg_type: t,
            req_id: req,
            tx_id: tx,
            len: payload.len() as u32,
        }
        .to_bytes()
        .to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_layout_is_little_endian() {
        let b = msg(2, 0x01020304, 0xa0b0c0d0, b"x\0");
        assert_eq!(&b[0..4], &[2, 0, 0, 0]);
        assert_eq!(&b[4..8], &[4, 3, 2, 1]);
        assert_eq!(&b[8..12], &[0xd0, 0xc0, 0xb0, 0xa0]);
        assert_eq!(&b[12..16], &[2, 0, 0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Ok(MsgType::Read));
        assert_eq!(p.req_id(), 0x01020304);
        assert_eq!(p.tx_id(), 0xa0b0c0d0);
        assert_eq!(p.payload(), b"x\0");
        assert_eq!(p.total_len(), 18);
    }

    #[test]
    fn type_numbers_match_header() {
        assert_eq!(parse_msg_type(0), Ok(MsgType::Control));
        assert_eq!(parse_msg_type(15), Ok(MsgType::WatchEvent));
        assert_eq!(parse_msg_type(16), Ok(MsgType::Error));
        assert_eq!(parse_msg_type(19), Ok(MsgType::SetTarget));
        assert_eq!(parse_msg_type(20), Err(XenstoreWireError::UnknownType(20)));
        assert_eq!(parse_msg_type(21), Ok(MsgType::ResetWatches));
        assert_eq!(parse_msg_type(22), Ok(MsgType::DirectoryPart));
        assert_eq!(parse_msg_type(23), Err(XenstoreWireError::UnknownType(23)));
        assert_eq!(
            parse_msg_type(0xffff),
            Err(XenstoreWireError::UnknownType(0xffff))
        );
        for t in MsgType::ALL {
            assert_eq!(parse_msg_type(t as u32), Ok(t));
        }
    }

    #[test]
    fn checked_packet_rejects_bad_lengths() {
        assert_eq!(
            Packet::new_checked(&[0u8; 15][..]).unwrap_err(),
            XenstoreWireError::Truncated
        );
        let b = msg(2, 1, 0, b"abc");
        assert_eq!(
            Packet::new_checked(&b[..b.len() - 1]).unwrap_err(),
            XenstoreWireError::Truncated
        );
        let mut big = msg(2, 1, 0, b"");
        big[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(
            Packet::new_checked(&big[..]).unwrap_err(),
            XenstoreWireError::PayloadTooLong(4097)
        );
        let mut huge = msg(2, 1, 0, b"");
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Packet::new_checked(&huge[..]).unwrap_err(),
            XenstoreWireError::PayloadTooLong(u32::MAX)
        );
        let exact = msg(2, 1, 0, &[b'a'; 4096]);
        assert!(Packet::new_checked(&exact[..]).is_ok());
        let unknown = msg(99, 1, 0, b"");
        let p = Packet::new_checked(&unknown[..]).unwrap();
        assert_eq!(p.msg_type(), Err(XenstoreWireError::UnknownType(99)));
    }

    #[test]
    fn request_encodings() {
        let enc = |r: Request<'_>| {
            let mut v = Vec::new();
            r.encode_payload(&mut v).unwrap();
            v
        };
        assert_eq!(enc(Request::Read("/a/b")), b"/a/b\0");
        assert_eq!(enc(Request::Write("a", b"v\0x")), b"a\0v\0x");
        assert_eq!(enc(Request::Watch("/a", "tok")), b"/a\0tok\0");
        assert_eq!(enc(Request::TransactionStart), b"\0");
        assert_eq!(enc(Request::TransactionEnd(true)), b"T\0");
        assert_eq!(enc(Request::TransactionEnd(false)), b"F\0");
        assert_eq!(enc(Request::GetDomainPath(7)), b"7\0");
        assert_eq!(enc(Request::Introduce(3, 1234, 5)), b"3\x001234\x005\0");
        assert_eq!(
            enc(Request::SetPerms(
                "/x",
                vec![Perm::new(3, Access::None), Perm::new(0, Access::Both)]
            )),
            b"/x\0n3\0b0\0"
        );
        let mut whole = Vec::new();
        Request::Read("/a").encode(9, 4, &mut whole).unwrap();
        assert_eq!(whole, msg(2, 9, 4, b"/a\0"));
    }

    #[test]
    fn request_limits_are_enforced_before_sending() {
        let mut out = vec![1, 2, 3];
        let long = "a".repeat(XENSTORE_PAYLOAD_MAX);
        let e = Request::Write("/x", long.as_bytes()).encode(1, 0, &mut out);
        assert_eq!(e, Err(XenstoreWireError::RequestTooLong(4096 + 3)));
        assert_eq!(out, vec![1, 2, 3], "nothing appended on error");
        let path = alloc::format!("/{}", "a".repeat(XENSTORE_ABS_PATH_MAX));
        assert_eq!(
            Request::Read(&path).encode(1, 0, &mut out),
            Err(XenstoreWireError::BadPath)
        );
        let rel = "a".repeat(XENSTORE_REL_PATH_MAX + 1);
        assert_eq!(
            Request::Read(&rel).encode(1, 0, &mut out),
            Err(XenstoreWireError::BadPath)
        );
        let ok_rel = "a".repeat(XENSTORE_REL_PATH_MAX);
        assert!(Request::Read(&ok_rel).encode(1, 0, &mut Vec::new()).is_ok());
        for bad in ["", "a//b", "/a/", "a b", "/a\0b", "/é"] {
            assert_eq!(
                validate_path(bad),
                Err(XenstoreWireError::BadPath),
                "{bad:?}"
            );
        }
        assert_eq!(
            Request::Watch("/a", "t\0k").encode(1, 0, &mut out),
            Err(XenstoreWireError::EmbeddedNul)
        );
        assert!(validate_path("/").is_ok());
        assert!(validate_watch_path("@releaseDomain").is_ok());
        assert!(validate_watch_path("@").is_err());
        assert!(validate_path("@x").is_ok());
        assert!(Request::SetPerms("/x", vec![]).validate().is_err());
    }

    #[test]
    fn request_parse_roundtrip() {
        let reqs = [
            Request::Read("/a"),
            Request::Write("x/y", b"\0\x01v"),
            Request::Mkdir("/m"),
            Request::Rm("/r"),
            Request::Directory("/"),
            Request::GetPerms("/p"),
            Request::SetPerms("/p", vec![Perm::new(1, Access::Read)]),
            Request::Watch("@introduceDomain", "t"),
            Request::Unwatch("/w", ""),
            Request::TransactionStart,
            Request::TransactionEnd(false),
            Request::GetDomainPath(65535),
            Request::Introduce(1, u64::MAX, 9),
            Request::Release(2),
            Request::IsDomainIntroduced(3),
            Request::Resume(4),
            Request::SetTarget(5, 6),
            Request::ResetWatches,
        ];
        for r in reqs {
            let mut v = Vec::new();
            r.encode_payload(&mut v).unwrap();
            assert_eq!(Request::parse(r.msg_type(), &v), Ok(r.clone()));
        }
    }

    #[test]
    fn request_parse_rejects_malformed() {
        assert_eq!(
            Request::parse(MsgType::Read, b"/a"),
            Err(XenstoreWireError::MissingNul)
        );
        assert_eq!(
            Request::parse(MsgType::Read, b"/a\0b\0"),
            Err(XenstoreWireError::TrailingData)
        );
        assert_eq!(
            Request::parse(MsgType::Read, b"\xff\0"),
            Err(XenstoreWireError::NotUtf8)
        );
        assert_eq!(
            Request::parse(MsgType::Watch, b"/a\0tok"),
            Err(XenstoreWireError::MissingNul)
        );
        assert_eq!(
            Request::parse(MsgType::TransactionEnd, b"X\0"),
            Err(XenstoreWireError::Malformed)
        );
        assert_eq!(
            Request::parse(MsgType::GetDomainPath, b"65536\0"),
            Err(XenstoreWireError::BadNumber)
        );
        assert_eq!(
            Request::parse(MsgType::GetDomainPath, b"-1\0"),
            Err(XenstoreWireError::BadNumber)
        );
        assert_eq!(
            Request::parse(MsgType::SetPerms, b"/a\0x1\0"),
            Err(XenstoreWireError::BadPermission)
        );
        assert_eq!(
            Request::parse(MsgType::SetPerms, b"/a\0"),
            Err(XenstoreWireError::Empty)
        );
        assert!(Request::parse(MsgType::WatchEvent, b"").is_err());
    }

    #[test]
    fn reply_parsers() {
        assert_eq!(parse_ok(b"OK\0"), Ok(()));
        assert_eq!(parse_ok(b"OK"), Err(XenstoreWireError::NotOk));
        assert_eq!(parse_ok(b"NO\0"), Err(XenstoreWireError::NotOk));
        assert_eq!(
            parse_directory(b"a\0bb\0c\0").unwrap(),
            vec!["a", "bb", "c"]
        );
        assert_eq!(parse_directory(b"").unwrap(), Vec::<String>::new());
        assert_eq!(parse_directory(b"a\0b"), Err(XenstoreWireError::MissingNul));
        assert_eq!(parse_directory(b"a\0\0"), Err(XenstoreWireError::Malformed));
        assert_eq!(parse_directory(b"a/b\0"), Err(XenstoreWireError::Malformed));
        assert_eq!(
            parse_directory(b"\xc3\x28\0"),
            Err(XenstoreWireError::NotUtf8)
        );
        assert_eq!(parse_transaction_id(b"42\0"), Ok(42));
        assert_eq!(
            parse_transaction_id(b"0\0"),
            Err(XenstoreWireError::BadNumber)
        );
        assert_eq!(
            parse_transaction_id(b"42"),
            Err(XenstoreWireError::MissingNul)
        );
        assert_eq!(
            parse_transaction_id(b"4x\0"),
            Err(XenstoreWireError::BadNumber)
        );
        assert_eq!(
            parse_transaction_id(b"99999999999\0"),
            Err(XenstoreWireError::BadNumber)
        );
        assert_eq!(
            parse_transaction_id(b"+1\0"),
            Err(XenstoreWireError::BadNumber)
        );
        assert_eq!(
            parse_perms(b"n3\0r0\0b65535\0w12\0").unwrap(),
            vec![
                Perm::new(3, Access::None),
                Perm::new(0, Access::Read),
                Perm::new(65535, Access::Both),
                Perm::new(12, Access::Write)
            ]
        );
        assert_eq!(parse_perms(b""), Err(XenstoreWireError::Empty));
        assert_eq!(parse_perms(b"n3"), Err(XenstoreWireError::MissingNul));
        assert_eq!(parse_perms(b"q3\0"), Err(XenstoreWireError::BadPermission));
        assert_eq!(parse_perms(b"r\0"), Err(XenstoreWireError::BadPermission));
        assert_eq!(
            parse_perms(b"r65536\0"),
            Err(XenstoreWireError::BadPermission)
        );
        assert_eq!(parse_bool(b"T\0"), Ok(true));
        assert_eq!(parse_bool(b"F\0"), Ok(false));
        assert!(parse_bool(b"T").is_err());
        assert_eq!(
            parse_watch_event(b"/a/b\0tok\0").unwrap(),
            WatchEvent {
                path: "/a/b".into(),
                token: "tok".into()
            }
        );
        assert_eq!(
            parse_watch_event(b"/a/b\0tok"),
            Err(XenstoreWireError::MissingNul)
        );
        assert_eq!(
            parse_watch_event(b"/a/b"),
            Err(XenstoreWireError::MissingNul)
        );
        assert_eq!(parse_watch_event(b"\0tok\0"), Err(XenstoreWireError::Empty));
        assert_eq!(
            parse_watch_event(b"/a\0t\0x\0"),
            Err(XenstoreWireError::TrailingData)
        );
        assert_eq!(
            parse_watch_event(b"/\xff\0t\0"),
            Err(XenstoreWireError::NotUtf8)
        );
    }

    #[test]
    fn error_replies() {
        for e in KnownXsErrno::ALL {
            let mut b = Vec::from(e.name().as_bytes());
            b.push(0);
            assert_eq!(parse_error(&b), Ok(XsErrno::Known(e)));
            assert_eq!(XsErrno::from(e).errnum(), Some(e.errnum()));
        }
        assert_eq!(KnownXsErrno::ALL.len(), XSD_ERRORS.len());
        for (e, entry) in KnownXsErrno::ALL.iter().zip(XSD_ERRORS) {
            assert_eq!(e.entry(), entry);
            assert_eq!(KnownXsErrno::from_errnum(entry.errnum), Some(*e));
            assert_eq!(KnownXsErrno::from_name(entry.errstring), Some(*e));
        }
        // The named constants are the table's entries of those names and numbers.
        assert_eq!(XsErrno::ENOENT.name(), "ENOENT");
        assert_eq!(XsErrno::ENOENT.errnum(), Some(2));
        assert_eq!(XsErrno::EAGAIN.errnum(), Some(11));
        assert_eq!(XsErrno::EPERM.errnum(), Some(1));
        assert_eq!(XsErrno::Unknown("EWEIRD".into()).errnum(), None);
        assert_eq!(KnownXsErrno::from_name("ENOENT\0"), None);
        assert_eq!(KnownXsErrno::from_name(""), None);
        assert_eq!(KnownXsErrno::from_errnum(0), None);
        assert_eq!(alloc::format!("{:?}", XsErrno::EBUSY), "Known(EBUSY)");
        assert_eq!(
            parse_error(b"EWEIRD\0"),
            Ok(XsErrno::Unknown("EWEIRD".into()))
        );
        assert_eq!(parse_error(b"ENOENT"), Err(XenstoreWireError::MissingNul));
        assert_eq!(parse_error(b"\0"), Err(XenstoreWireError::Empty));
        assert_eq!(parse_error(b"E\xff\0"), Err(XenstoreWireError::NotUtf8));
        assert_eq!(
            parse_error(b"ENOENT\0x"),
            Err(XenstoreWireError::TrailingData)
        );
    }

    #[test]
    fn frame_reader_byte_by_byte() {
        let mut stream = msg(2, 1, 0, b"hello");
        stream.extend(msg(15, 0, 0, b"/a\0t\0"));
        stream.extend(msg(11, 7, 3, b""));
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        for b in &stream {
            let (used, m) = r.push(core::slice::from_ref(b)).unwrap();
            assert_eq!(used, 1);
            got.extend(m);
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].payload, b"hello");
        assert_eq!(got[1].header.msg_type, 15);
        assert_eq!(got[2].header.tx_id, 3);
        assert!(got[2].payload.is_empty());
        assert!(!r.is_mid_message());
    }

    #[test]
    fn frame_reader_stops_at_message_end() {
        let mut stream = msg(2, 1, 0, b"ab");
        stream.extend(msg(2, 2, 0, b"cd"));
        let mut r = FrameReader::new();
        let (used, m) = r.push(&stream).unwrap();
        assert_eq!(used, 18);
        assert_eq!(m.unwrap().header.req_id, 1);
        let (used, m) = r.push(&stream[18..]).unwrap();
        assert_eq!(used, 18);
        assert_eq!(m.unwrap().header.req_id, 2);
    }

    #[test]
    fn frame_reader_poisons_on_oversize_len() {
        let mut h = msg(2, 1, 0, b"");
        h[12..16].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        let mut r = FrameReader::new();
        assert_eq!(r.push(&h[..10]), Ok((10, None)));
        assert_eq!(
            r.push(&h[10..]),
            Err(XenstoreWireError::PayloadTooLong(0x8000_0000))
        );
        assert!(r.push(&msg(2, 1, 0, b"")).is_err());
        assert!(r.poisoned().is_some());
    }
}
