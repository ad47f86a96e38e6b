//! A request head: finding its end incrementally as bytes arrive (each byte is looked at once),
//! then parsing it once with httparse into method, target, headers, keep-alive and the body's
//! length, or the error status a malformed head deserves.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Status;

/// Most headers a request may have (more: 431).
pub const MAX_HEADERS: usize = 32;

/// Finds where a request head ends (the first empty line), remembering how far it has looked:
/// feeding it the same growing buffer again scans only the new bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadScanner {
    /// Bytes looked at so far.
    scanned: usize,
    /// Where the current line starts.
    line_start: usize,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub const fn new() -> Self {
        HeadScanner {
            scanned: 0,
            line_start: 0,
        }
    }

    /// Bytes looked at so far.
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Looks at the bytes of `buf` not seen before (`buf` starts with the head and only grows
    /// between calls); the head's length once its empty line (`\r\n` or a bare `\n`) is in.
    pub fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        while self.scanned < buf.len() {
            let i = self.scanned;
            self.scanned += 1;
            if buf[i] == b'\n' {
                let line = &buf[self.line_start..i];
                if line.is_empty() || line == b"\r" {
                    return Some(i + 1);
                }
                self.line_start = i + 1;
            }
        }
        None
    }
}

/// One header of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its name, as sent.
    pub name: String,
    /// Its value (not necessarily UTF-8).
    pub value: Vec<u8>,
}

/// A request head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method (`GET`, `PUT`, ...).
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The headers, in order.
    pub headers: Vec<Header>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The body's length (`Content-Length`, 0 without one).
    pub content_length: usize,
}

/// Parses a whole request head (`head` ends with its empty line, as [`HeadScanner`] found it).
/// Errors: 400 for a malformed head or ambiguous length, 431 for too many headers, 501 for a
/// `Transfer-Encoding` (chunked bodies are not supported).
pub fn parse_head(head: &[u8]) -> Result<Head, Status> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        // A head that ends with its empty line but httparse wants more is malformed.
        Ok(httparse::Status::Partial) => return Err(Status::BAD_REQUEST),
        Err(httparse::Error::TooManyHeaders) => return Err(Status::HEADER_FIELDS_TOO_LARGE),
        Err(_) => return Err(Status::BAD_REQUEST),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Status::BAD_REQUEST);
    };
    let mut keep_alive = version == 1;
    let mut content_length = None;
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = core::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(Status::BAD_REQUEST)?;
            // Two different lengths make the message's end ambiguous.
            if content_length.is_some_and(|c| c != n) {
                return Err(Status::BAD_REQUEST);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Status::NOT_IMPLEMENTED);
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        }
        out.push(Header {
            name: h.name.into(),
            value: h.value.into(),
        });
    }
    Ok(Head {
        method: method.into(),
        target: target.into(),
        headers: out,
        keep_alive,
        content_length: content_length.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] =
        b"POST /echo?x=1 HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";

    #[test]
    fn a_head_split_at_every_byte_parses_the_same() {
        let whole_len = HeadScanner::new().scan(REQ).unwrap();
        assert_eq!(&REQ[whole_len..], b"hello");
        let whole = parse_head(&REQ[..whole_len]).unwrap();
        for split in 0..REQ.len() {
            let mut s = HeadScanner::new();
            let first = s.scan(&REQ[..split]);
            let len = first.or_else(|| s.scan(REQ)).unwrap();
            assert_eq!(len, whole_len, "split at {split}");
            assert_eq!(parse_head(&REQ[..len]).unwrap(), whole, "split at {split}");
        }
        assert_eq!(whole.method, "POST");
        assert_eq!(whole.target, "/echo?x=1");
        assert_eq!(whole.content_length, 5);
        assert!(whole.keep_alive);
        assert_eq!(whole.headers.len(), 3);
    }

    #[test]
    fn a_byte_at_a_time_scans_each_byte_once() {
        let mut s = HeadScanner::new();
        let mut found = None;
        for n in 1..=REQ.len() {
            if let Some(l) = s.scan(&REQ[..n]) {
                found = Some((n, l));
                break;
            }
            assert_eq!(s.scanned(), n);
        }
        let (n, l) = found.unwrap();
        assert_eq!(n, l, "found as soon as its last byte arrived");
    }

    #[test]
    fn bare_newlines_end_a_head_too() {
        assert_eq!(
            HeadScanner::new().scan(b"GET / HTTP/1.1\nA: b\n\nrest"),
            Some(21)
        );
        let h = parse_head(b"GET / HTTP/1.1\nA: b\n\n").unwrap();
        assert_eq!(h.target, "/");
    }

    #[test]
    fn bad_heads_get_their_status() {
        let bad = |h: &[u8]| parse_head(h).unwrap_err().code();
        assert_eq!(bad(b"NOT HTTP AT ALL\r\n\r\n"), 400);
        assert_eq!(bad(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(bad(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            bad(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            bad(b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(alloc::format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(bad(&many), 431);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |h: &[u8]| parse_head(h).unwrap().keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }
}
