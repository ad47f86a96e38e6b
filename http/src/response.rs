//! Statuses, responses and a small JSON object writer.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// An HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Status(u16);

impl Status {
    /// 200 OK.
    pub const OK: Status = Status(200);
    /// 201 Created.
    pub const CREATED: Status = Status(201);
    /// 204 No Content.
    pub const NO_CONTENT: Status = Status(204);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Status = Status(400);
    /// 404 Not Found.
    pub const NOT_FOUND: Status = Status(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 413 Payload Too Large.
    pub const PAYLOAD_TOO_LARGE: Status = Status(413);
    /// 431 Request Header Fields Too Large.
    pub const HEADER_FIELDS_TOO_LARGE: Status = Status(431);
    /// 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Status = Status(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    /// 507 Insufficient Storage.
    pub const INSUFFICIENT_STORAGE: Status = Status(507);

    /// A status from its code; `None` outside 100 ..= 599.
    pub const fn from_code(code: u16) -> Option<Status> {
        if code >= 100 && code <= 599 {
            Some(Status(code))
        } else {
            None
        }
    }

    /// The code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The reason phrase (RFC 9110's), or `"Unknown"`.
    pub const fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            204 => "No Content",
            301 => "Moved Permanently",
            302 => "Found",
            304 => "Not Modified",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            409 => "Conflict",
            413 => "Payload Too Large",
            414 => "URI Too Long",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            507 => "Insufficient Storage",
            _ => "Unknown",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// A response: status, content type and body (sent with `Content-Length`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// More header fields (name, value), sent after `Content-Type`.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A response with this status, content type and body.
    pub fn new(status: Status, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header field. A value holding CR or LF (which would end the field early and let
    /// the rest pass for more header fields) has those bytes replaced by spaces.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        let value = value.replace(['\r', '\n'], " ");
        self.headers.push((name, value));
        self
    }

    /// A `text/plain` response.
    pub fn text(status: Status, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "text/plain", body)
    }

    /// A `text/html` response.
    pub fn html(status: Status, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "text/html", body)
    }

    /// An `application/json` response (the body is a JSON document, see [`Json`]).
    pub fn json(status: Status, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "application/json", body)
    }

    /// An `application/octet-stream` response.
    pub fn bytes(status: Status, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "application/octet-stream", body)
    }

    /// The plain-text error the server sends itself: `"<code> <reason>\n"`.
    pub fn error(status: Status) -> Self {
        Self::text(status, format!("{status}\n"))
    }

    /// The status line and headers.
    pub(crate) fn head(&self, keep_alive: bool) -> String {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\n",
            self.status, self.content_type
        );
        for (name, value) in &self.headers {
            head += &format!("{name}: {value}\r\n");
        }
        head += &format!(
            "Content-Length: {}\r\nConnection: {}\r\n\r\n",
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        head
    }
}

/// Writes a flat JSON object, escaping strings:
/// `Json::new().str("status", "ok").num("n", 3).finish()` is `{"status":"ok","n":3}` and a
/// newline.
#[derive(Debug, Clone, Default)]
pub struct Json {
    out: String,
}

impl Json {
    /// An empty object.
    pub fn new() -> Self {
        Json {
            out: String::from("{"),
        }
    }

    fn key(&mut self, k: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        escape(&mut self.out, k);
        self.out.push(':');
    }

    /// Adds a string member.
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        escape(&mut self.out, v);
        self
    }

    /// Adds a number member.
    pub fn num(mut self, k: &str, v: impl Into<u64>) -> Self {
        self.key(k);
        self.out.push_str(&format!("{}", v.into()));
        self
    }

    /// Adds a boolean member.
    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// The object's text, with a newline.
    pub fn finish(mut self) -> String {
        self.out.push_str("}\n");
        self.out
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_go_in_the_head_and_cannot_split_it() {
        let r = Response::text(Status::OK, "x").with_header("Link", "</a>\r\nX-Evil: 1");
        let head = r.head(true);
        assert!(head.contains("\r\nLink: </a>  X-Evil: 1\r\n"), "{head}");
        assert!(head.ends_with("Content-Length: 1\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn json_escapes_and_separates() {
        let j = Json::new()
            .str("a\"b", "x\ny\u{1}")
            .num("n", 3u64)
            .bool("t", true)
            .finish();
        assert_eq!(j, "{\"a\\\"b\":\"x\\ny\\u0001\",\"n\":3,\"t\":true}\n");
        assert_eq!(Json::new().finish(), "{}\n");
    }

    #[test]
    fn error_bodies_and_heads() {
        let r = Response::error(Status::PAYLOAD_TOO_LARGE);
        assert_eq!(r.body, b"413 Payload Too Large\n");
        assert_eq!(
            r.head(false),
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(Status::from_code(99), None);
        assert_eq!(Status::from_code(507), Some(Status::INSUFFICIENT_STORAGE));
    }
}
