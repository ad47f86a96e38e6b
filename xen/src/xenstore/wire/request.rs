//! Requests: their arguments, payload encoding and parsing (the daemon side).

use super::{
    parse_decimal, parse_perms, parse_single_str, split_str, validate_path, validate_watch_path,
    MsgType, Packet, Perm, XenstoreWireError, HEADER_LEN, XENSTORE_PAYLOAD_MAX,
};
use alloc::string::String;
use alloc::vec::Vec;

fn no_nul(s: &str) -> Result<(), XenstoreWireError> {
    if s.as_bytes().contains(&0) {
        Err(XenstoreWireError::EmbeddedNul)
    } else {
        Ok(())
    }
}

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
