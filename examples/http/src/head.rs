//! Reading an HTTP/1.1 request head with httparse: method, target, keep-alive and the body's
//! length, or the error response a malformed head deserves. Shared by the http and kv examples.

use alloc::string::String;

/// Most headers a request may have.
const MAX_HEADERS: usize = 32;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client closed the connection (between requests).
    ClientClosed,
    /// We closed it: `Connection: close`, HTTP/1.0, or after an error response.
    Closed,
    /// Reading or writing failed.
    Io,
}

/// A request head, parsed.
pub struct Head {
    /// The method (`GET`, `PUT`, ...).
    pub method: String,
    /// The request target.
    pub path: String,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The body's length (`Content-Length`, 0 without one).
    pub content_length: usize,
    /// The head's length in bytes; the body starts there.
    pub head_len: usize,
}

/// What [`parse_head`] found.
pub enum Parsed {
    /// A whole head.
    Complete(Head),
    /// Not all of the head has arrived yet.
    Partial,
    /// An error response to send before closing: status and reason.
    Bad(u16, &'static str),
}

/// Parses a request head at the start of `buf`, refusing bodies longer than `max_body`.
pub fn parse_head(buf: &[u8], max_body: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Bad(431, "Request Header Fields Too Large")
        }
        Err(_) => return Parsed::Bad(400, "Bad Request"),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Bad(400, "Bad Request");
    };
    let mut keep_alive = version == 1;
    let mut content_length = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = core::str::from_utf8(h.value).ok().map(str::trim);
            let n = match v.and_then(|v| {
                (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<usize>().ok())
                    .flatten()
            }) {
                Some(n) => n,
                None => return Parsed::Bad(400, "Bad Request"),
            };
            // Two different lengths make the message's end ambiguous.
            if content_length.is_some_and(|c| c != n) {
                return Parsed::Bad(400, "Bad Request");
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad(501, "Not Implemented");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if v.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > max_body {
        return Parsed::Bad(413, "Payload Too Large");
    }
    Parsed::Complete(Head {
        method: method.into(),
        path: path.into(),
        keep_alive,
        content_length,
        head_len,
    })
}
