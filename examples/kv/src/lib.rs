//! The HTTP front end of the `kv` example, generic over any `embedded_io_async` stream and any
//! [`Device`], so it runs over `xenia::net::TcpStream` and a Xen disk in the guest and over
//! in-memory streams and disks in host tests.
//!
//! Routes:
//!
//! | request | answer |
//! |---|---|
//! | `GET /kv` | 200, the keys (percent-encoded), one per line, sorted |
//! | `GET /kv/<key>` | 200 with the value, 404 if absent, 500 if the record no longer checks out |
//! | `PUT /kv/<key>` | 201 once the value is written **and flushed**; 413 above 1 MiB, 507 when the log is full |
//! | `DELETE /kv/<key>` | 204 once the tombstone is written and flushed, 404 if absent |
//!
//! `<key>` is percent-decoded (1 ..= 512 bytes). HTTP/1.1 keep-alive; `Content-Length` bodies
//! only (chunked: 501); 400 on a malformed request, 405 on another method.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use embedded_io_async::{Read, Write};
use xenia_kv::format::{MAX_KEY, MAX_VALUE};
use xenia_kv::{Device, KvError, Store};

/// The largest request head.
pub const MAX_HEAD: usize = 8 * 1024;

pub use http::head::End;
use http::head::{parse_head, Parsed};
use http::input::Input;

/// Percent-decodes a path segment; `None` if malformed.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Percent-encodes a key for a listing line (unreserved characters stay as they are).
pub fn percent_encode(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &c in key {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// A response: status, reason, content type, body.
struct Response {
    code: u16,
    reason: &'static str,
    ctype: &'static str,
    body: Vec<u8>,
}

fn text(code: u16, reason: &'static str, body: &str) -> Response {
    Response {
        code,
        reason,
        ctype: "text/plain",
        body: body.as_bytes().to_vec(),
    }
}

fn store_error<E: core::fmt::Display>(e: &KvError<E>) -> Response {
    match e {
        KvError::BadKey => text(400, "Bad Request", "bad key\n"),
        KvError::TooLarge => text(413, "Payload Too Large", "value too large\n"),
        KvError::Full => text(507, "Insufficient Storage", "the log is full\n"),
        other => text(
            500,
            "Internal Server Error",
            &format!("store error: {other}\n"),
        ),
    }
}

async fn write_response<S: Write>(s: &mut S, r: &Response, ka: bool) -> Result<(), ()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        r.code,
        r.reason,
        r.ctype,
        r.body.len(),
        if ka { "keep-alive" } else { "close" }
    );
    s.write_all(head.as_bytes()).await.map_err(drop)?;
    s.write_all(&r.body).await.map_err(drop)?;
    s.flush().await.map_err(drop)
}

/// Answers one request whose body (if any) has been read.
async fn handle<D: Device>(store: &Store<D>, method: &str, path: &str, body: Vec<u8>) -> Response {
    let path = path.split('?').next().unwrap_or("");
    if path == "/kv" || path == "/kv/" {
        if method != "GET" {
            return text(405, "Method Not Allowed", "method not allowed\n");
        }
        let mut keys: Vec<String> = store.keys().iter().map(|k| percent_encode(k)).collect();
        keys.sort();
        let mut out = String::new();
        for k in keys {
            out.push_str(&k);
            out.push('\n');
        }
        return text(200, "OK", &out);
    }
    let Some(raw) = path.strip_prefix("/kv/") else {
        return text(404, "Not Found", "not found\n");
    };
    let Some(key) = percent_decode(raw) else {
        return text(400, "Bad Request", "bad percent-encoding in the key\n");
    };
    if key.is_empty() || key.len() > MAX_KEY {
        return text(400, "Bad Request", "bad key\n");
    }
    match method {
        "GET" => match store.get(&key).await {
            Ok(Some(v)) => Response {
                code: 200,
                reason: "OK",
                ctype: "application/octet-stream",
                body: v,
            },
            Ok(None) => text(404, "Not Found", "no such key\n"),
            Err(e) => store_error(&e),
        },
        "PUT" => match store.put(&key, &body).await {
            Ok(()) => text(201, "Created", "stored\n"),
            Err(e) => store_error(&e),
        },
        "DELETE" => match store.delete(&key).await {
            Ok(true) => Response {
                code: 204,
                reason: "No Content",
                ctype: "text/plain",
                body: Vec::new(),
            },
            Ok(false) => text(404, "Not Found", "no such key\n"),
            Err(e) => store_error(&e),
        },
        _ => text(405, "Method Not Allowed", "method not allowed\n"),
    }
}

/// Serves one connection's requests until it ends.
pub async fn serve<S: Read + Write, D: Device>(store: &Store<D>, s: &mut S) -> End {
    let mut input = Input::new(MAX_HEAD);
    loop {
        let head = loop {
            if !input.is_empty() {
                match parse_head(input.pending(), MAX_VALUE) {
                    Parsed::Complete(h) => break h,
                    Parsed::Bad(code, reason) => {
                        let r = text(code, reason, &format!("{code} {reason}\n"));
                        return match write_response(s, &r, false).await {
                            Ok(()) => End::Closed,
                            Err(()) => End::Io,
                        };
                    }
                    Parsed::Partial => {}
                }
            }
            match input.fill(s).await {
                Ok(Some(0)) if input.is_empty() => return End::ClientClosed,
                Ok(Some(0)) | Err(_) => return End::Io,
                Ok(Some(_)) => {}
                Ok(None) => {
                    let r = text(431, "Request Header Fields Too Large", "head too large\n");
                    let _ = write_response(s, &r, false).await;
                    return End::Closed;
                }
            }
        };
        input.consume(head.head_len);
        let Some(body) = input.body(s, head.content_length).await else {
            return End::Io;
        };
        let r = handle(store, &head.method, &head.path, body).await;
        if write_response(s, &r, head.keep_alive).await.is_err() {
            return End::Io;
        }
        if !head.keep_alive {
            return End::Closed;
        }
    }
}
