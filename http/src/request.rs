//! What a handler gets: method, path, query, headers and the whole body.

use alloc::string::String;
use alloc::vec::Vec;

use crate::head::{Head, Header};
use crate::ServerStats;

/// A request with its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    headers: Vec<Header>,
    body: Vec<u8>,
    server: ServerStats,
}

impl Request {
    /// A request from its parts (the server builds them from the wire; tests build their own).
    pub fn new(method: &str, target: &str, headers: Vec<Header>, body: Vec<u8>) -> Self {
        Request {
            method: method.into(),
            target: target.into(),
            headers,
            body,
            server: ServerStats::default(),
        }
    }

    pub(crate) fn from_head(head: Head, body: Vec<u8>, server: ServerStats) -> Self {
        Request {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body,
            server,
        }
    }

    /// The method (`GET`, `PUT`, ...).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent (path and query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path (the target before any `?`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query (after the first `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The server's counters when this request arrived (this request counted).
    pub fn server(&self) -> ServerStats {
        self.server
    }
}
