//! Watches: registration, initial events, firing on changes and delivery.

use super::conn::Sink;
use super::perms::can;
use super::request::str_payload;
use super::tree::{is_child, resolve, Change};
use super::{ConnId, Xenstored, MAX_WATCHES_PER_CONN};
use xenia_xen::xenstore::wire::{self, encode_message, MsgType, Request, WatchEvent, XsErrno};

#[derive(Debug)]
pub(super) struct Watch {
    /// As registered (relative, absolute or `@special`).
    pub(super) wpath: String,
    /// Resolved absolute path (or `@special`).
    pub(super) abs: String,
    pub(super) token: String,
    /// For relative watches: the prefix to strip from event paths (`/local/domain/<d>/`).
    pub(super) base: Option<String>,
}

impl Xenstored {
    /// Registered watches of a connection.
    pub fn watch_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.watches.len())
    }

    /// Registers a watch for a connection (typically a local one); fires the initial event.
    pub fn watch(&mut self, conn: ConnId, path: &str, token: &str) -> Result<(), XsErrno> {
        self.request(conn, 0, &Request::Watch(path, token))
            .map(drop)
    }

    /// Removes a watch of a connection.
    pub fn unwatch(&mut self, conn: ConnId, path: &str, token: &str) -> Result<(), XsErrno> {
        self.request(conn, 0, &Request::Unwatch(path, token))
            .map(drop)
    }

    pub(super) fn add_watch(
        &mut self,
        conn: ConnId,
        domid: u16,
        wpath: &str,
        token: &str,
    ) -> Result<(), XsErrno> {
        let (abs, base) = if wpath.starts_with('@') {
            wire::validate_watch_path(wpath).map_err(|_| XsErrno::EINVAL)?;
            (wpath.to_string(), None)
        } else {
            let abs = resolve(domid, wpath)?;
            let base = (!wpath.starts_with('/')).then(|| format!("/local/domain/{domid}/"));
            (abs, base)
        };
        let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
        if c.watches.iter().any(|w| w.abs == abs && w.token == token) {
            return Err(XsErrno::EEXIST);
        }
        if c.watches.len() >= MAX_WATCHES_PER_CONN {
            return Err(XsErrno::E2BIG);
        }
        c.watches.push(Watch {
            wpath: wpath.to_string(),
            abs,
            token: token.to_string(),
            base,
        });
        // The initial event is sent after the reply: remember it.
        self.pending_initial
            .push((conn, wpath.to_string(), token.to_string()));
        Ok(())
    }

    pub(super) fn flush_pending_initial(&mut self, conn: ConnId) {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_initial)
            .into_iter()
            .partition(|(c, _, _)| *c == conn);
        self.pending_initial = rest;
        for (c, path, token) in mine {
            self.deliver(c, &path, &token);
        }
    }

    pub(super) fn deliver(&mut self, conn: ConnId, path: &str, token: &str) {
        let mut payload = str_payload(path);
        payload.extend_from_slice(&str_payload(token));
        let mut bytes = Vec::new();
        if encode_message(MsgType::WatchEvent, 0, 0, &payload, &mut bytes).is_err() {
            return;
        }
        let ev = WatchEvent {
            path: path.to_string(),
            token: token.to_string(),
        };
        self.push_output(conn, |s| match s {
            Sink::Wire { out } => out.extend(bytes),
            Sink::Local { events } => events.push_back(ev),
        });
    }

    pub(super) fn fire(&mut self, ch: &Change) {
        let mut deliveries = Vec::new();
        for (&id, c) in &self.conns {
            if !ch.perms.is_empty() && !can(&ch.perms, c.domid, false) {
                continue;
            }
            for w in &c.watches {
                let abs_event = if is_child(&ch.path, &w.abs) {
                    &ch.path
                } else if ch.recursive && is_child(&w.abs, &ch.path) {
                    &w.abs
                } else {
                    continue;
                };
                let path = match &w.base {
                    Some(base) => match abs_event.strip_prefix(base.as_str()) {
                        Some(rel) => rel.to_string(),
                        None => w.wpath.clone(),
                    },
                    None => abs_event.clone(),
                };
                deliveries.push((id, path, w.token.clone()));
            }
        }
        for (id, path, token) in deliveries {
            self.deliver(id, &path, &token);
        }
    }

    pub(super) fn fire_special(&mut self, name: &str) {
        self.fire(&Change {
            path: name.to_string(),
            recursive: false,
            perms: Vec::new(),
        });
    }
}
