//! Message framing: the header (`struct xsd_sockmsg`), message types, checked views over
//! message bytes ([`Packet`]), owned messages, the stream reader ([`FrameReader`]) and the
//! daemon side's message encoder.

use super::{XenstoreWireError, HEADER_LEN, XENSTORE_PAYLOAD_MAX};
use alloc::vec::Vec;

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
