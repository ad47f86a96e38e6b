//! The HTTP front end of the `kv` example, generic over any `embedded_io_async` stream and any
//! [`Device`], so it runs over `xenia::net::TcpStream` and a Xen disk in the guest and over
//! in-memory streams and disks in host tests.
//!
//! Routes:
//!
//! | request | answer |
//! |---|---|
//! | `GET /kv[?after=<key>&limit=<n>]` | 200, a page of keys (percent-encoded), one per line, in byte order of the keys: up to `limit` (1 ..= 1000, default 1000) after `after` (percent-encoded); when more follow, a `Link: </kv?after=<last>&limit=<n>>; rel="next"` header |
//! | `GET /kv/<key>` | 200 with the value, 404 if absent, 500 if the record no longer checks out |
//! | `PUT /kv/<key>` | 201 once the value is written **and flushed**; 413 above 1 MiB, 507 when the log is full or a new key would take the index past its memory budget (nothing written) |
//! | `DELETE /kv/<key>` | 204 once the tombstone is written and flushed, 404 if absent |
//!
//! `<key>` is percent-decoded (1 ..= 512 bytes). HTTP/1.1 keep-alive; `Content-Length` bodies
//! only (chunked: 501); 400 on a malformed request, 405 on another method; the server loop and
//! its limits (deadlines, 408, the connection cap) are `xenia-http`'s.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xenia_http::{any, Limits, Request, Response, Router, Status};
use xenia_kv::format::{MAX_KEY, MAX_VALUE};
use xenia_kv::{Device, KvError, Store};

/// Connections served at once (more wait in the listener's backlog).
pub const MAX_CONNECTIONS: usize = 64;

/// The service's limits: heads up to 8 KiB, bodies up to a value's largest size, at most
/// 8 MiB of bodies held at once.
pub fn limits() -> Limits {
    Limits {
        max_connections: MAX_CONNECTIONS,
        max_head: 8 * 1024,
        max_body: MAX_VALUE,
        max_body_total: 8 << 20,
        // The deadlines and rates: xenia-http's defaults.
        ..Limits::default()
    }
}

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

fn text(status: Status, body: &str) -> Response {
    Response::text(status, body)
}

/// The response to a store error: every store error reaches a client through here.
pub fn store_error<E: core::fmt::Display>(e: &KvError<E>) -> Response {
    match e {
        KvError::BadKey => text(Status::BAD_REQUEST, "bad key\n"),
        KvError::TooLarge => text(Status::PAYLOAD_TOO_LARGE, "value too large\n"),
        KvError::Full => text(Status::INSUFFICIENT_STORAGE, "the log is full\n"),
        KvError::IndexFull => text(
            Status::INSUFFICIENT_STORAGE,
            "the index is at its memory budget: no new keys (existing keys can be overwritten or deleted)\n",
        ),
        other => text(
            Status::INTERNAL_SERVER_ERROR,
            &format!("store error: {other}\n"),
        ),
    }
}

/// Most keys a listing page holds (and its default size).
pub const MAX_PAGE: usize = 1000;

/// `GET /kv?after=..&limit=..`: one page of keys. Memory: the page, whatever the store holds.
fn list<D: Device>(store: &Store<D>, query: &str) -> Response {
    let mut after = None;
    let mut limit = MAX_PAGE;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "after" => match percent_decode(v) {
                Some(a) => after = Some(a),
                None => return text(Status::BAD_REQUEST, "bad percent-encoding in after\n"),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                _ => return text(Status::BAD_REQUEST, "limit must be 1 ..= 1000\n"),
            },
            _ => return text(Status::BAD_REQUEST, "unknown query parameter\n"),
        }
    }
    let (keys, more) = store.keys_page(after.as_deref(), limit);
    let mut out = String::new();
    for k in &keys {
        out.push_str(&percent_encode(k));
        out.push('\n');
    }
    let r = text(Status::OK, &out);
    match keys.last() {
        Some(last) if more => r.with_header(
            "Link",
            &format!(
                "</kv?after={}&limit={limit}>; rel=\"next\"",
                percent_encode(last)
            ),
        ),
        _ => r,
    }
}

/// Answers one request whose body (if any) has been read.
async fn handle<D: Device>(store: &Store<D>, req: Request) -> Response {
    let method = req.method();
    let path = req.path();
    if path == "/kv" || path == "/kv/" {
        if method != "GET" {
            return text(Status::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        return list(store, req.query().unwrap_or(""));
    }
    let Some(raw) = path.strip_prefix("/kv/") else {
        return text(Status::NOT_FOUND, "not found\n");
    };
    let Some(key) = percent_decode(raw) else {
        return text(Status::BAD_REQUEST, "bad percent-encoding in the key\n");
    };
    if key.is_empty() || key.len() > MAX_KEY {
        return text(Status::BAD_REQUEST, "bad key\n");
    }
    match method {
        "GET" => match store.get(&key).await {
            Ok(Some(v)) => Response::bytes(Status::OK, v),
            Ok(None) => text(Status::NOT_FOUND, "no such key\n"),
            Err(e) => store_error(&e),
        },
        "PUT" => match store.put(&key, req.body()).await {
            Ok(()) => text(Status::CREATED, "stored\n"),
            Err(e) => store_error(&e),
        },
        "DELETE" => match store.delete(&key).await {
            Ok(true) => Response::text(Status::NO_CONTENT, Vec::new()),
            Ok(false) => text(Status::NOT_FOUND, "no such key\n"),
            Err(e) => store_error(&e),
        },
        _ => text(Status::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

/// The routes over `store`: `/kv` (and `/kv/`) for the listing, `/kv/<key>` for a key.
pub fn app<D: Device + 'static>(store: &'static Store<D>) -> Router {
    Router::new()
        .route("/kv", any(move |r: Request| handle(store, r)))
        .route("/kv/*", any(move |r: Request| handle(store, r)))
}
