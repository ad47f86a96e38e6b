//! A simulated xenstored that speaks xs_wire (host only).
//!
//! One [`Xenstored`] holds the tree: nodes with a value and permissions, addressed by absolute
//! path. Clients are connections ([`ConnId`]) with a domain id: wire connections exchange
//! xs_wire bytes ([`Xenstored::feed`], [`Xenstored::take_output`]); local connections (for the
//! simulated backends) call [`Xenstored::request`] and collect watch events with
//! [`Xenstored::take_events`]. The dom0 helpers ([`Xenstored::write`], [`Xenstored::read`], ...)
//! change the tree directly as domain 0 and fire watches like any other change.
//!
//! Semantics follow Xen's `docs/misc/xenstore.txt`:
//! - permissions: the first entry names the owner (full access) and the access of unlisted
//!   domains; later entries grant per-domain access; domain 0 bypasses all checks. New nodes
//!   inherit their parent's permissions, with the creating domain as owner unless it is dom0;
//! - relative paths are resolved against `/local/domain/<domid>`;
//! - watches fire once on registration, then on changes of their path or below (and on removal
//!   of a parent, reporting the watched path), only for domains allowed to read the node;
//!   events for relative watches carry relative paths;
//! - transactions work on a snapshot; a commit fails with `EAGAIN` when a node the transaction
//!   read or wrote (or whose children it listed or changed) was changed since it started.
//!   [`Xenstored::force_commit_conflicts`] makes the next commits fail regardless, for tests.
//!
//! Not simulated: quotas (except a cap on watches and transactions per connection),
//! `DIRECTORY_PART`, `CONTROL`, `SET_TARGET`, `RESUME` (they answer `ENOSYS`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::rc::Rc;
use std::string::{String, ToString};
use std::task::{Context, Poll, Waker};
use std::vec::Vec;
use std::{format, vec};

use xenia_xen::xenstore::wire::{
    self, encode_message, Access, FrameReader, Message, MsgType, Perm, Request, WatchEvent,
    XenstoreWireError, XsErrno, XENSTORE_PAYLOAD_MAX,
};
use xenia_xen::xenstore::{Transport, XenstoreTransportError};

/// Most watches one connection may register.
pub const MAX_WATCHES_PER_CONN: usize = 128;
/// Most transactions one connection may have open.
pub const MAX_TRANSACTIONS_PER_CONN: usize = 16;

/// A connection to the simulated daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Why the daemon refused bytes from a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoredError {
    /// No such connection.
    UnknownConnection,
    /// The connection was closed (by [`Xenstored::disconnect`] or after a protocol violation).
    Closed,
    /// The client broke the framing (for instance `len > 4096`); the connection is now closed,
    /// as the real xenstored does.
    Protocol(XenstoreWireError),
    /// Local connections take typed requests, not bytes (and have no byte output).
    NotWire,
}

impl core::fmt::Display for XenstoredError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XenstoredError::UnknownConnection => {
                f.write_str("simulated xenstored: no such connection")
            }
            XenstoredError::Closed => f.write_str("simulated xenstored: connection closed"),
            XenstoredError::Protocol(e) => {
                write!(f, "simulated xenstored: client broke the framing: {e}")
            }
            XenstoredError::NotWire => {
                f.write_str("simulated xenstored: a local connection carries no bytes")
            }
        }
    }
}

impl core::error::Error for XenstoredError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            XenstoredError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
    /// Generation of the last change to this node or its set of children.
    gen: u64,
}

/// A change to report to watches.
#[derive(Clone, Debug)]
struct Change {
    path: String,
    /// The node and everything below were removed.
    recursive: bool,
    /// The node's permissions (before removal, for a removal). Empty for special events.
    perms: Vec<Perm>,
}

/// A view of the tree that operations work on: the live tree, or a transaction's snapshot.
#[derive(Clone, Debug, Default)]
struct Store {
    nodes: BTreeMap<String, Node>,
    /// Paths read or written (conflict detection).
    accessed: BTreeSet<String>,
    /// Paths created, changed or removed (including parents whose children changed).
    written: BTreeSet<String>,
    /// Watch events, in order.
    changes: Vec<Change>,
}

fn can(perms: &[Perm], domid: u16, want_write: bool) -> bool {
    if domid == 0 {
        return true;
    }
    let Some(first) = perms.first() else {
        return false;
    };
    if first.domid == domid {
        return true;
    }
    let access = perms[1..]
        .iter()
        .find(|p| p.domid == domid)
        .map_or(first.access, |p| p.access);
    if want_write {
        access.can_write()
    } else {
        access.can_read()
    }
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// Whether `path` is `ancestor` or below it.
fn is_child(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

fn child_prefix(path: &str) -> String {
    if path == "/" {
        String::from("/")
    } else {
        let mut s = String::from(path);
        s.push('/');
        s
    }
}

impl Store {
    fn touch(&mut self, path: &str) {
        self.accessed.insert(path.to_string());
        self.written.insert(path.to_string());
    }

    fn get(&mut self, domid: u16, path: &str, write: bool) -> Result<&mut Node, XsErrno> {
        self.accessed.insert(path.to_string());
        let node = self.nodes.get_mut(path).ok_or(XsErrno::ENOENT)?;
        if !can(&node.perms, domid, write) {
            return Err(XsErrno::EACCES);
        }
        Ok(node)
    }

    fn children(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k[prefix.len()..].to_string())
            .collect()
    }

    fn descendants(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn read(&mut self, domid: u16, path: &str) -> Result<Vec<u8>, XsErrno> {
        Ok(self.get(domid, path, false)?.value.clone())
    }

    /// Creates `path` and missing parents (empty values) if needed; returns whether it existed.
    fn create(&mut self, domid: u16, path: &str) -> Result<bool, XsErrno> {
        if self.nodes.contains_key(path) {
            self.get(domid, path, true)?;
            return Ok(true);
        }
        // Find the deepest existing ancestor; it must be writable.
        let mut missing = vec![path.to_string()];
        let mut anc = parent_of(path).ok_or(XsErrno::EINVAL)?;
        while !self.nodes.contains_key(anc) {
            missing.push(anc.to_string());
            anc = parent_of(anc).ok_or(XsErrno::ENOENT)?;
        }
        let mut perms = self.get(domid, anc, true)?.perms.clone();
        if domid != 0 {
            if let Some(first) = perms.first_mut() {
                first.domid = domid;
            }
        }
        self.touch(anc);
        for p in missing.iter().rev() {
            self.nodes.insert(
                p.clone(),
                Node {
                    value: Vec::new(),
                    perms: perms.clone(),
                    gen: 0,
                },
            );
            self.touch(p);
        }
        Ok(false)
    }

    fn write(&mut self, domid: u16, path: &str, value: &[u8]) -> Result<(), XsErrno> {
        self.create(domid, path)?;
        self.touch(path);
        let node = self.nodes.get_mut(path).ok_or(XsErrno::EIO)?;
        node.value = value.to_vec();
        let perms = node.perms.clone();
        self.changes.push(Change {
            path: path.to_string(),
            recursive: false,
            perms,
        });
        Ok(())
    }

    fn mkdir(&mut self, domid: u16, path: &str) -> Result<(), XsErrno> {
        if !self.create(domid, path)? {
            let perms = self
                .nodes
                .get(path)
                .map(|n| n.perms.clone())
                .unwrap_or_default();
            self.changes.push(Change {
                path: path.to_string(),
                recursive: false,
                perms,
            });
        }
        Ok(())
    }

    fn rm(&mut self, domid: u16, path: &str) -> Result<(), XsErrno> {
        let parent = parent_of(path).ok_or(XsErrno::EINVAL)?;
        if !self.nodes.contains_key(path) {
            self.accessed.insert(path.to_string());
            self.accessed.insert(parent.to_string());
            return if self.nodes.contains_key(parent) {
                Ok(())
            } else {
                Err(XsErrno::ENOENT)
            };
        }
        let perms = self.get(domid, path, true)?.perms.clone();
        for d in self.descendants(path) {
            self.nodes.remove(&d);
            self.touch(&d);
        }
        self.nodes.remove(path);
        self.touch(path);
        self.touch(parent);
        self.changes.push(Change {
            path: path.to_string(),
            recursive: true,
            perms,
        });
        Ok(())
    }

    fn directory(&mut self, domid: u16, path: &str) -> Result<Vec<String>, XsErrno> {
        self.get(domid, path, false)?;
        Ok(self.children(path))
    }

    fn get_perms(&mut self, domid: u16, path: &str) -> Result<Vec<Perm>, XsErrno> {
        Ok(self.get(domid, path, false)?.perms.clone())
    }

    fn set_perms(&mut self, domid: u16, path: &str, perms: &[Perm]) -> Result<(), XsErrno> {
        if perms.is_empty() {
            return Err(XsErrno::EINVAL);
        }
        let node = self.get(domid, path, true)?;
        if domid != 0 {
            // Only the owner may change permissions, and it may not give the node away.
            if node.perms.first().map(|p| p.domid) != Some(domid) {
                return Err(XsErrno::EACCES);
            }
            if perms[0].domid != domid {
                return Err(XsErrno::EPERM);
            }
        }
        node.perms = perms.to_vec();
        self.touch(path);
        self.changes.push(Change {
            path: path.to_string(),
            recursive: false,
            perms: perms.to_vec(),
        });
        Ok(())
    }

    fn take_log(&mut self) -> (BTreeSet<String>, Vec<Change>) {
        self.accessed.clear();
        (
            std::mem::take(&mut self.written),
            std::mem::take(&mut self.changes),
        )
    }
}

#[derive(Debug)]
struct Tx {
    store: Store,
    start_gen: u64,
}

#[derive(Debug)]
struct Watch {
    /// As registered (relative, absolute or `@special`).
    wpath: String,
    /// Resolved absolute path (or `@special`).
    abs: String,
    token: String,
    /// For relative watches: the prefix to strip from event paths (`/local/domain/<d>/`).
    base: Option<String>,
}

#[derive(Debug)]
enum Sink {
    Wire { out: VecDeque<u8> },
    Local { events: VecDeque<WatchEvent> },
}

#[derive(Debug)]
struct Conn {
    domid: u16,
    reader: FrameReader,
    sink: Sink,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, Tx>,
    waker: Option<Waker>,
}

/// The simulated daemon. See the [module documentation](self).
#[derive(Debug)]
pub struct Xenstored {
    main: Store,
    gen: u64,
    /// Generation at which a path was last removed (for conflict detection).
    tombstones: BTreeMap<String, u64>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    next_tx: u32,
    forced_conflicts: u32,
    introduced: BTreeSet<u16>,
    notify: BTreeSet<ConnId>,
    commits: u64,
    conflicts: u64,
    /// Initial watch events waiting for their WATCH reply to be queued first.
    pending_initial: Vec<(ConnId, String, String)>,
}

impl Default for Xenstored {
    fn default() -> Self {
        Xenstored::new()
    }
}

fn resolve(domid: u16, path: &str) -> Result<String, XsErrno> {
    wire::validate_path(path).map_err(|_| XsErrno::EINVAL)?;
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let abs = format!("/local/domain/{domid}/{path}");
    if abs.len() > wire::XENSTORE_ABS_PATH_MAX {
        return Err(XsErrno::EINVAL);
    }
    Ok(abs)
}

fn ok_payload() -> Vec<u8> {
    b"OK\0".to_vec()
}

fn str_payload(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Xenstored {
    /// A daemon with `/`, `/local` and `/local/domain`, owned by dom0 and private.
    pub fn new() -> Xenstored {
        let mut main = Store::default();
        for p in ["/", "/local", "/local/domain"] {
            main.nodes.insert(
                p.to_string(),
                Node {
                    value: Vec::new(),
                    perms: vec![Perm::new(0, Access::None)],
                    gen: 0,
                },
            );
        }
        Xenstored {
            main,
            gen: 0,
            tombstones: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            next_tx: 1,
            forced_conflicts: 0,
            introduced: BTreeSet::new(),
            notify: BTreeSet::new(),
            commits: 0,
            conflicts: 0,
            pending_initial: Vec::new(),
        }
    }

    /// Creates the home of domain `domid` (`/local/domain/<domid>`, owned by it, private to
    /// it), marks it introduced and fires `@introduceDomain` — what the toolstack does when it
    /// builds a domain.
    pub fn add_domain(&mut self, domid: u16) {
        let home = format!("/local/domain/{domid}");
        let _ = self.mkdir(&home);
        let _ = self.set_perms(&home, &[Perm::new(domid, Access::None)]);
        self.introduced.insert(domid);
        self.fire_special("@introduceDomain");
    }

    // --- connections -----------------------------------------------------------------------

    fn new_conn(&mut self, domid: u16, sink: Sink) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                domid,
                reader: FrameReader::new(),
                sink,
                watches: Vec::new(),
                txs: BTreeMap::new(),
                waker: None,
            },
        );
        id
    }

    /// Opens a wire connection for domain `domid` (bytes in with [`feed`](Self::feed), out with
    /// [`take_output`](Self::take_output)).
    pub fn connect(&mut self, domid: u16) -> ConnId {
        self.new_conn(
            domid,
            Sink::Wire {
                out: VecDeque::new(),
            },
        )
    }

    /// Opens a local connection for domain `domid`: typed requests with
    /// [`request`](Self::request), watch events with [`take_events`](Self::take_events).
    pub fn connect_local(&mut self, domid: u16) -> ConnId {
        self.new_conn(
            domid,
            Sink::Local {
                events: VecDeque::new(),
            },
        )
    }

    /// Closes a connection: its watches and transactions go away.
    pub fn disconnect(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(w) = c.waker {
                w.wake();
            }
        }
        self.notify.remove(&conn);
        self.prune_tombstones();
    }

    /// Whether `conn` is open.
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// The domain of a connection.
    pub fn domid(&self, conn: ConnId) -> Option<u16> {
        self.conns.get(&conn).map(|c| c.domid)
    }

    /// Feeds request bytes from a wire connection; each complete request is handled at once and
    /// its reply (and any watch events) appended to the output. A framing violation closes the
    /// connection.
    pub fn feed(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), XenstoredError> {
        let mut input = bytes;
        while !input.is_empty() {
            let c = self
                .conns
                .get_mut(&conn)
                .ok_or(XenstoredError::UnknownConnection)?;
            if !matches!(c.sink, Sink::Wire { .. }) {
                return Err(XenstoredError::NotWire);
            }
            match c.reader.push(input) {
                Ok((used, msg)) => {
                    input = &input[used..];
                    if let Some(m) = msg {
                        self.handle_message(conn, m);
                    }
                }
                Err(e) => {
                    self.disconnect(conn);
                    return Err(XenstoredError::Protocol(e));
                }
            }
        }
        Ok(())
    }

    /// Bytes waiting on a wire connection's output.
    pub fn output_len(&self, conn: ConnId) -> usize {
        match self.conns.get(&conn).map(|c| &c.sink) {
            Some(Sink::Wire { out }) => out.len(),
            _ => 0,
        }
    }

    /// Takes all output of a wire connection.
    pub fn take_output(&mut self, conn: ConnId) -> Vec<u8> {
        match self.conns.get_mut(&conn).map(|c| &mut c.sink) {
            Some(Sink::Wire { out }) => out.drain(..).collect(),
            _ => Vec::new(),
        }
    }

    /// Moves up to `buf.len()` bytes of output into `buf`; returns how many.
    pub fn read_output(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        match self.conns.get_mut(&conn).map(|c| &mut c.sink) {
            Some(Sink::Wire { out }) => {
                let n = buf.len().min(out.len());
                for (b, x) in buf.iter_mut().zip(out.drain(..n)) {
                    *b = x;
                }
                n
            }
            _ => 0,
        }
    }

    /// Registers a waker to be woken (once) when output or events are queued for `conn`.
    pub fn register_waker(&mut self, conn: ConnId, waker: &Waker) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.waker = Some(waker.clone());
        }
    }

    /// The connections that got output or events since the last call.
    pub fn take_notifications(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.notify).into_iter().collect()
    }

    /// Takes the watch events queued for a local connection.
    pub fn take_events(&mut self, conn: ConnId) -> Vec<WatchEvent> {
        match self.conns.get_mut(&conn).map(|c| &mut c.sink) {
            Some(Sink::Local { events }) => events.drain(..).collect(),
            _ => Vec::new(),
        }
    }

    fn push_output(&mut self, conn: ConnId, f: impl FnOnce(&mut Sink)) {
        if let Some(c) = self.conns.get_mut(&conn) {
            f(&mut c.sink);
            if let Some(w) = c.waker.take() {
                w.wake();
            }
            self.notify.insert(conn);
        }
    }

    // --- test hooks and counters -----------------------------------------------------------

    /// Makes the next `n` transaction commits fail with `EAGAIN`, conflict or not.
    pub fn force_commit_conflicts(&mut self, n: u32) {
        self.forced_conflicts = n;
    }

    /// Transactions committed successfully so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Commits refused with `EAGAIN` so far (forced ones included).
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// Open transactions of a connection.
    pub fn open_transactions(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.txs.len())
    }

    /// Registered watches of a connection.
    pub fn watch_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.watches.len())
    }

    // --- dom0 helpers ----------------------------------------------------------------------

    /// Writes `value` at absolute `path` as dom0, creating parents; fires watches.
    pub fn write(&mut self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.write(0, &path, value.as_ref());
        self.finish_main_op();
        r
    }

    /// Reads the value at absolute `path` as dom0.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.read(0, &path);
        self.finish_main_op();
        r
    }

    /// Reads the value at `path` as UTF-8 (`EINVAL` if it is not).
    pub fn read_string(&mut self, path: &str) -> Result<String, XsErrno> {
        String::from_utf8(self.read(path)?).map_err(|_| XsErrno::EINVAL)
    }

    /// Whether `path` exists.
    pub fn exists(&self, path: &str) -> bool {
        self.main.nodes.contains_key(path)
    }

    /// Creates `path` as dom0 if missing; fires watches if created.
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.mkdir(0, &path);
        self.finish_main_op();
        r
    }

    /// Removes `path` and its descendants as dom0; fires watches.
    pub fn rm(&mut self, path: &str) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.rm(0, &path);
        self.finish_main_op();
        r
    }

    /// Lists the children of `path`.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.directory(0, &path);
        self.finish_main_op();
        r
    }

    /// The permissions of `path`.
    pub fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.get_perms(0, &path);
        self.finish_main_op();
        r
    }

    /// Sets the permissions of `path` as dom0; fires watches.
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.set_perms(0, &path, perms);
        self.finish_main_op();
        r
    }

    /// `/local/domain/<domid>`.
    pub fn get_domain_path(&self, domid: u16) -> String {
        format!("/local/domain/{domid}")
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

    /// Releases domain `domid` (as dom0's `RELEASE`): fires `@releaseDomain`.
    pub fn release_domain(&mut self, domid: u16) {
        self.introduced.remove(&domid);
        self.fire_special("@releaseDomain");
    }

    // --- request handling ------------------------------------------------------------------

    fn handle_message(&mut self, conn: ConnId, m: Message) {
        let h = m.header;
        let result = match MsgType::try_from(h.msg_type) {
            Ok(t) => match Request::parse(t, &m.payload) {
                Ok(req) => self.request_inner(conn, h.tx_id, &req),
                Err(XenstoreWireError::UnknownType(_)) => Err(XsErrno::ENOSYS),
                Err(_) => Err(XsErrno::EINVAL),
            },
            Err(_) => Err(XsErrno::EINVAL),
        };
        let mut out = Vec::new();
        let (t, payload) = match result {
            Ok((t, payload)) if payload.len() <= XENSTORE_PAYLOAD_MAX => (t, payload),
            Ok(_) => (MsgType::Error, str_payload("E2BIG")),
            Err(e) => (MsgType::Error, str_payload(e.name())),
        };
        // Cannot fail: the payload was bounded above.
        let _ = encode_message(t, h.req_id, h.tx_id, &payload, &mut out);
        self.push_output(conn, |s| {
            if let Sink::Wire { out: o } = s {
                o.extend(out);
            }
        });
        // Events the request caused for this connection's own watches follow its reply.
        self.flush_pending_initial(conn);
    }

    /// Handles a typed request for `conn` in transaction `tx_id` (0: none). Returns the reply
    /// payload. Watch events go to the connections' outputs or event queues.
    pub fn request(
        &mut self,
        conn: ConnId,
        tx_id: u32,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, XsErrno> {
        let r = self.request_inner(conn, tx_id, req).map(|(_, p)| p);
        self.flush_pending_initial(conn);
        r
    }

    fn request_inner(
        &mut self,
        conn: ConnId,
        tx_id: u32,
        req: &Request<'_>,
    ) -> Result<(MsgType, Vec<u8>), XsErrno> {
        let domid = self.conns.get(&conn).ok_or(XsErrno::EIO)?.domid;
        let t = req.msg_type();
        let payload = match req {
            Request::Read(_)
            | Request::Write(..)
            | Request::Mkdir(_)
            | Request::Rm(_)
            | Request::Directory(_)
            | Request::GetPerms(_)
            | Request::SetPerms(..) => self.store_op(conn, domid, tx_id, req)?,
            Request::Watch(p, token) => {
                self.add_watch(conn, domid, p, token)?;
                ok_payload()
            }
            Request::Unwatch(p, token) => {
                let abs = if p.starts_with('@') {
                    p.to_string()
                } else {
                    resolve(domid, p)?
                };
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                let i = c
                    .watches
                    .iter()
                    .position(|w| w.abs == abs && w.token == *token)
                    .ok_or(XsErrno::ENOENT)?;
                c.watches.remove(i);
                ok_payload()
            }
            Request::TransactionStart => {
                if tx_id != 0 {
                    return Err(XsErrno::EINVAL);
                }
                let snapshot = Store {
                    nodes: self.main.nodes.clone(),
                    ..Store::default()
                };
                let id = self.alloc_tx_id();
                let start_gen = self.gen;
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                if c.txs.len() >= MAX_TRANSACTIONS_PER_CONN {
                    return Err(XsErrno::ENOSPC);
                }
                c.txs.insert(
                    id,
                    Tx {
                        store: snapshot,
                        start_gen,
                    },
                );
                str_payload(&id.to_string())
            }
            Request::TransactionEnd(commit) => {
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                let tx = c.txs.remove(&tx_id).ok_or(XsErrno::ENOENT)?;
                let r = if *commit { self.commit(tx) } else { Ok(()) };
                self.prune_tombstones();
                r?;
                ok_payload()
            }
            Request::GetDomainPath(d) => str_payload(&self.get_domain_path(*d)),
            Request::IsDomainIntroduced(d) => {
                if self.introduced.contains(d) {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                }
            }
            Request::Introduce(d, _mfn, _port) => {
                if domid != 0 {
                    return Err(XsErrno::EACCES);
                }
                if *d == 0 {
                    return Err(XsErrno::EINVAL);
                }
                self.introduced.insert(*d);
                self.fire_special("@introduceDomain");
                ok_payload()
            }
            Request::Release(d) => {
                if domid != 0 {
                    return Err(XsErrno::EACCES);
                }
                if !self.introduced.contains(d) {
                    return Err(XsErrno::ENOENT);
                }
                self.release_domain(*d);
                ok_payload()
            }
            Request::ResetWatches => {
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                c.watches.clear();
                c.txs.clear();
                self.prune_tombstones();
                ok_payload()
            }
            Request::Resume(_) | Request::SetTarget(..) => return Err(XsErrno::ENOSYS),
        };
        Ok((t, payload))
    }

    fn alloc_tx_id(&mut self) -> u32 {
        loop {
            let id = self.next_tx;
            self.next_tx = self.next_tx.wrapping_add(1);
            if id != 0 && !self.conns.values().any(|c| c.txs.contains_key(&id)) {
                return id;
            }
        }
    }

    fn store_op(
        &mut self,
        conn: ConnId,
        domid: u16,
        tx_id: u32,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, XsErrno> {
        if tx_id == 0 {
            let r = Self::apply(&mut self.main, domid, req);
            self.finish_main_op();
            return r;
        }
        let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
        let tx = c.txs.get_mut(&tx_id).ok_or(XsErrno::ENOENT)?;
        Self::apply(&mut tx.store, domid, req)
    }

    fn apply(store: &mut Store, domid: u16, req: &Request<'_>) -> Result<Vec<u8>, XsErrno> {
        match req {
            Request::Read(p) => store.read(domid, &resolve(domid, p)?),
            Request::Write(p, v) => {
                if p.len() + 1 + v.len() > XENSTORE_PAYLOAD_MAX {
                    return Err(XsErrno::E2BIG);
                }
                store.write(domid, &resolve(domid, p)?, v)?;
                Ok(ok_payload())
            }
            Request::Mkdir(p) => {
                store.mkdir(domid, &resolve(domid, p)?)?;
                Ok(ok_payload())
            }
            Request::Rm(p) => {
                store.rm(domid, &resolve(domid, p)?)?;
                Ok(ok_payload())
            }
            Request::Directory(p) => {
                let names = store.directory(domid, &resolve(domid, p)?)?;
                let mut v = Vec::new();
                for n in names {
                    v.extend_from_slice(n.as_bytes());
                    v.push(0);
                }
                if v.len() > XENSTORE_PAYLOAD_MAX {
                    return Err(XsErrno::E2BIG);
                }
                Ok(v)
            }
            Request::GetPerms(p) => {
                let perms = store.get_perms(domid, &resolve(domid, p)?)?;
                let mut s = String::new();
                for perm in perms {
                    let _ = write!(s, "{perm}\0");
                }
                Ok(s.into_bytes())
            }
            Request::SetPerms(p, perms) => {
                store.set_perms(domid, &resolve(domid, p)?, perms)?;
                Ok(ok_payload())
            }
            _ => Err(XsErrno::EINVAL),
        }
    }

    /// After an operation on the live tree: stamp generations, record removals, fire watches.
    fn finish_main_op(&mut self) {
        let (written, changes) = self.main.take_log();
        if written.is_empty() && changes.is_empty() {
            return;
        }
        self.gen += 1;
        let gen = self.gen;
        for p in written {
            match self.main.nodes.get_mut(&p) {
                Some(n) => n.gen = gen,
                None => {
                    self.tombstones.insert(p, gen);
                }
            }
        }
        for ch in changes {
            self.fire(&ch);
        }
    }

    fn changed_since(&self, path: &str, since: u64) -> bool {
        self.main.nodes.get(path).is_some_and(|n| n.gen > since)
            || self.tombstones.get(path).is_some_and(|&g| g > since)
    }

    fn commit(&mut self, tx: Tx) -> Result<(), XsErrno> {
        if self.forced_conflicts > 0 {
            self.forced_conflicts -= 1;
            self.conflicts += 1;
            return Err(XsErrno::EAGAIN);
        }
        if tx
            .store
            .accessed
            .iter()
            .any(|p| self.changed_since(p, tx.start_gen))
        {
            self.conflicts += 1;
            return Err(XsErrno::EAGAIN);
        }
        self.commits += 1;
        let Store {
            mut nodes,
            written,
            changes,
            ..
        } = tx.store;
        if written.is_empty() && changes.is_empty() {
            return Ok(());
        }
        self.gen += 1;
        let gen = self.gen;
        for p in written {
            match nodes.remove(&p) {
                Some(mut n) => {
                    n.gen = gen;
                    self.main.nodes.insert(p, n);
                }
                None => {
                    self.main.nodes.remove(&p);
                    self.tombstones.insert(p, gen);
                }
            }
        }
        for ch in changes {
            self.fire(&ch);
        }
        Ok(())
    }

    /// Drops removal records no open transaction can need.
    fn prune_tombstones(&mut self) {
        let oldest = self
            .conns
            .values()
            .flat_map(|c| c.txs.values().map(|t| t.start_gen))
            .min();
        match oldest {
            None => self.tombstones.clear(),
            Some(g) => self.tombstones.retain(|_, &mut t| t > g),
        }
    }

    // --- watches ---------------------------------------------------------------------------

    fn add_watch(
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

    fn flush_pending_initial(&mut self, conn: ConnId) {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_initial)
            .into_iter()
            .partition(|(c, _, _)| *c == conn);
        self.pending_initial = rest;
        for (c, path, token) in mine {
            self.deliver(c, &path, &token);
        }
    }

    fn deliver(&mut self, conn: ConnId, path: &str, token: &str) {
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

    fn fire(&mut self, ch: &Change) {
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

    fn fire_special(&mut self, name: &str) {
        self.fire(&Change {
            path: name.to_string(),
            recursive: false,
            perms: Vec::new(),
        });
    }
}

/// A [`Transport`] straight into a shared [`Xenstored`] (no ring): requests are handled as
/// they are written, replies are read back in chunks of at most `max_chunk` bytes. For host
/// tests of code that uses the xenstore client.
#[derive(Debug, Clone)]
pub struct DirectTransport {
    xsd: Rc<RefCell<Xenstored>>,
    conn: ConnId,
    max_chunk: usize,
}

impl DirectTransport {
    /// Connects a new wire connection of domain `domid` to `xsd`.
    pub fn connect(xsd: &Rc<RefCell<Xenstored>>, domid: u16) -> DirectTransport {
        let conn = xsd.borrow_mut().connect(domid);
        DirectTransport {
            xsd: xsd.clone(),
            conn,
            max_chunk: usize::MAX,
        }
    }

    /// Limits how many bytes one `read` or `write` moves (to exercise reassembly).
    pub fn with_max_chunk(mut self, n: usize) -> DirectTransport {
        self.max_chunk = n.max(1);
        self
    }

    /// The connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }
}

impl Transport for DirectTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, XenstoreTransportError> {
        let n = buf.len().min(self.max_chunk);
        match self.xsd.borrow_mut().feed(self.conn, &buf[..n]) {
            Ok(()) => Ok(n),
            Err(XenstoredError::Protocol(_))
            | Err(XenstoredError::Closed)
            | Err(XenstoredError::UnknownConnection) => Err(XenstoreTransportError::Closed),
            Err(XenstoredError::NotWire) => {
                Err(XenstoreTransportError::Other("not a wire connection"))
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreTransportError> {
        let mut x = self.xsd.borrow_mut();
        if !x.is_connected(self.conn) {
            return Err(XenstoreTransportError::Closed);
        }
        let n = buf.len().min(self.max_chunk);
        Ok(x.read_output(self.conn, &mut buf[..n]))
    }

    fn notify(&mut self) {}

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut x = self.xsd.borrow_mut();
        if x.output_len(self.conn) > 0 || !x.is_connected(self.conn) {
            Poll::Ready(())
        } else {
            x.register_waker(self.conn, cx.waker());
            Poll::Pending
        }
    }

    fn poll_writable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenia_xen::xenstore::wire::Packet;

    fn call(x: &mut Xenstored, c: ConnId, tx: u32, req: Request<'_>) -> (MsgType, Vec<u8>) {
        let mut b = Vec::new();
        req.encode(7, tx, &mut b).unwrap();
        x.feed(c, &b).unwrap();
        let out = x.take_output(c);
        let p = Packet::new_checked(&out[..]).unwrap();
        assert_eq!(p.req_id(), 7);
        assert_eq!(p.tx_id(), tx);
        (p.msg_type().unwrap(), p.payload().to_vec())
    }

    #[test]
    fn basic_tree() {
        let mut x = Xenstored::new();
        x.write("/a/b/c", "v").unwrap();
        assert_eq!(x.read("/a/b/c").unwrap(), b"v");
        assert_eq!(x.read("/a/b").unwrap(), b"");
        assert_eq!(x.directory("/a").unwrap(), vec!["b"]);
        x.write("/a/b2", "").unwrap();
        x.write("/a/b-x", "").unwrap();
        assert_eq!(x.directory("/a").unwrap(), vec!["b", "b-x", "b2"]);
        x.rm("/a/b").unwrap();
        assert!(!x.exists("/a/b/c"));
        assert_eq!(x.directory("/a").unwrap(), vec!["b-x", "b2"]);
        assert_eq!(x.rm("/a/b"), Ok(()), "removing a missing node is fine");
        assert_eq!(
            x.rm("/zz/b"),
            Err(XsErrno::ENOENT),
            "but not under a missing parent"
        );
        assert_eq!(x.rm("/"), Err(XsErrno::EINVAL));
        assert_eq!(x.read("/nope"), Err(XsErrno::ENOENT));
        assert_eq!(x.write("a//b", ""), Err(XsErrno::EINVAL));
    }

    #[test]
    fn wire_requests_and_relative_paths() {
        let mut x = Xenstored::new();
        x.add_domain(3);
        let c = x.connect(3);
        assert_eq!(
            call(&mut x, c, 0, Request::Write("data/x", b"1")),
            (MsgType::Write, b"OK\0".to_vec())
        );
        assert_eq!(x.read("/local/domain/3/data/x").unwrap(), b"1");
        assert_eq!(
            call(&mut x, c, 0, Request::Read("/local/domain/3/data/x")),
            (MsgType::Read, b"1".to_vec())
        );
        assert_eq!(
            call(&mut x, c, 0, Request::Read("/local/domain")),
            (MsgType::Error, b"EACCES\0".to_vec())
        );
        assert_eq!(
            call(&mut x, c, 0, Request::GetPerms("data/x")),
            (MsgType::GetPerms, b"n3\0".to_vec())
        );
        assert_eq!(
            call(&mut x, c, 0, Request::GetDomainPath(3)),
            (MsgType::GetDomainPath, b"/local/domain/3\0".to_vec())
        );
        // Unknown type and malformed payload.
        let mut b = Vec::new();
        encode_message(MsgType::Read, 1, 0, b"x", &mut b).unwrap();
        b[0] = 99;
        x.feed(c, &b).unwrap();
        let out = x.take_output(c);
        assert_eq!(
            Packet::new_checked(&out[..]).unwrap().payload(),
            b"EINVAL\0"
        );
        let mut b = Vec::new();
        encode_message(MsgType::Read, 1, 0, b"no-nul", &mut b).unwrap();
        x.feed(c, &b).unwrap();
        let out = x.take_output(c);
        assert_eq!(
            Packet::new_checked(&out[..]).unwrap().payload(),
            b"EINVAL\0"
        );
        // Oversize length kills the connection.
        let mut b = Vec::new();
        encode_message(MsgType::Read, 1, 0, b"", &mut b).unwrap();
        b[12..16].copy_from_slice(&5000u32.to_le_bytes());
        assert!(matches!(x.feed(c, &b), Err(XenstoredError::Protocol(_))));
        assert!(!x.is_connected(c));
    }

    #[test]
    fn permissions() {
        let mut x = Xenstored::new();
        x.add_domain(1);
        x.add_domain(2);
        let c1 = x.connect_local(1);
        let c2 = x.connect_local(2);
        x.request(c1, 0, &Request::Write("secret", b"s")).unwrap();
        assert_eq!(
            x.request(c2, 0, &Request::Read("/local/domain/1/secret")),
            Err(XsErrno::EACCES)
        );
        assert_eq!(
            x.request(c2, 0, &Request::Write("/local/domain/1/secret", b"x")),
            Err(XsErrno::EACCES)
        );
        assert_eq!(
            x.request(c2, 0, &Request::Write("/local/domain/1/new", b"x")),
            Err(XsErrno::EACCES)
        );
        // Grant read to 2.
        x.request(
            c1,
            0,
            &Request::SetPerms(
                "secret",
                vec![Perm::new(1, Access::None), Perm::new(2, Access::Read)],
            ),
        )
        .unwrap();
        assert_eq!(
            x.request(c2, 0, &Request::Read("/local/domain/1/secret")),
            Ok(b"s".to_vec())
        );
        assert_eq!(
            x.request(c2, 0, &Request::Write("/local/domain/1/secret", b"x")),
            Err(XsErrno::EACCES)
        );
        // Only the owner sets perms; it cannot give the node away.
        assert_eq!(
            x.request(
                c2,
                0,
                &Request::SetPerms("/local/domain/1/secret", vec![Perm::new(2, Access::Both)])
            ),
            Err(XsErrno::EACCES)
        );
        assert_eq!(
            x.request(
                c1,
                0,
                &Request::SetPerms("secret", vec![Perm::new(2, Access::Both)])
            ),
            Err(XsErrno::EPERM)
        );
        // A node dom0 creates in 1's home inherits 1's ownership; one 2 creates in a
        // writable shared dir is owned by 2.
        x.write("/local/domain/1/backend-made", "").unwrap();
        assert_eq!(
            x.get_perms("/local/domain/1/backend-made").unwrap(),
            vec![Perm::new(1, Access::None)]
        );
        x.write("/shared", "").unwrap();
        x.set_perms("/shared", &[Perm::new(0, Access::Both)])
            .unwrap();
        x.request(c2, 0, &Request::Write("/shared/mine", b""))
            .unwrap();
        assert_eq!(
            x.get_perms("/shared/mine").unwrap(),
            vec![Perm::new(2, Access::Both)]
        );
    }

    #[test]
    fn watches_fire_on_registration_change_and_parent_removal() {
        let mut x = Xenstored::new();
        x.add_domain(4);
        let c = x.connect_local(4);
        x.watch(c, "device", "tok").unwrap();
        assert_eq!(
            x.take_events(c),
            vec![WatchEvent {
                path: "device".into(),
                token: "tok".into()
            }]
        );
        x.write("/local/domain/4/device/vif/0", "x").unwrap();
        x.write("/local/domain/4/other", "x").unwrap();
        assert_eq!(x.take_events(c)[0].path, "device/vif/0");
        assert!(x.take_events(c).is_empty());
        x.rm("/local/domain/4").unwrap();
        assert_eq!(x.take_events(c)[0].path, "device");
        assert_eq!(x.watch(c, "device", "tok"), Err(XsErrno::EEXIST));
        // The same watch given as an absolute path is the same watch.
        assert_eq!(
            x.watch(c, "/local/domain/4/device", "tok"),
            Err(XsErrno::EEXIST)
        );
        assert_eq!(x.watch(c, "/local/domain/4/device", "tok2"), Ok(()));
        assert_eq!(x.take_events(c)[0].path, "/local/domain/4/device");
        x.unwatch(c, "/local/domain/4/device", "tok2").unwrap();
        x.unwatch(c, "device", "tok").unwrap();
        assert_eq!(x.unwatch(c, "device", "tok"), Err(XsErrno::ENOENT));
        x.take_events(c);
        x.write("/local/domain/4/device/x", "").unwrap();
        assert!(x.take_events(c).is_empty());
    }

    #[test]
    fn watch_events_respect_read_permission() {
        let mut x = Xenstored::new();
        x.add_domain(1);
        x.add_domain(2);
        let c2 = x.connect_local(2);
        x.watch(c2, "/local/domain/1", "t").unwrap();
        x.take_events(c2);
        x.write("/local/domain/1/private", "x").unwrap();
        assert!(x.take_events(c2).is_empty());
        x.write("/local/domain/1/public", "x").unwrap();
        x.set_perms("/local/domain/1/public", &[Perm::new(1, Access::Read)])
            .unwrap();
        assert_eq!(x.take_events(c2).len(), 1);
    }

    #[test]
    fn transactions_conflict_and_commit() {
        let mut x = Xenstored::new();
        let c = x.connect(0);
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        call(&mut x, c, tx, Request::Write("/t/a", b"1"));
        assert!(!x.exists("/t/a"), "not visible before commit");
        assert_eq!(
            call(&mut x, c, tx, Request::Read("/t/a")),
            (MsgType::Read, b"1".to_vec())
        );
        assert_eq!(
            call(&mut x, c, tx, Request::TransactionEnd(true)),
            (MsgType::TransactionEnd, b"OK\0".to_vec())
        );
        assert_eq!(x.read("/t/a").unwrap(), b"1");
        // Conflict: read in tx, changed outside.
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        call(&mut x, c, tx, Request::Read("/t/a"));
        call(&mut x, c, tx, Request::Write("/t/b", b"2"));
        x.write("/t/a", "other").unwrap();
        assert_eq!(
            call(&mut x, c, tx, Request::TransactionEnd(true)),
            (MsgType::Error, b"EAGAIN\0".to_vec())
        );
        assert!(!x.exists("/t/b"));
        // Unrelated change: no conflict.
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        call(&mut x, c, tx, Request::Read("/t/a"));
        x.write("/elsewhere", "z").unwrap();
        assert_eq!(
            call(&mut x, c, tx, Request::TransactionEnd(true)).0,
            MsgType::TransactionEnd
        );
        // Node created outside after a failed read inside: conflict.
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        assert_eq!(
            call(&mut x, c, tx, Request::Read("/t/new")).0,
            MsgType::Error
        );
        x.write("/t/new", "z").unwrap();
        assert_eq!(
            call(&mut x, c, tx, Request::TransactionEnd(true)).1,
            b"EAGAIN\0"
        );
        // Removed outside: conflict via tombstone.
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        call(&mut x, c, tx, Request::Read("/t/new"));
        x.rm("/t/new").unwrap();
        assert_eq!(
            call(&mut x, c, tx, Request::TransactionEnd(true)).1,
            b"EAGAIN\0"
        );
        // Forced conflict; unknown tx; abort.
        x.force_commit_conflicts(1);
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        assert_eq!(
            call(&mut x, c, tx, Request::TransactionEnd(true)).1,
            b"EAGAIN\0"
        );
        assert_eq!(call(&mut x, c, 999, Request::Read("/t/a")).1, b"ENOENT\0");
        let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
        let tx = wire::parse_transaction_id(&p).unwrap();
        call(&mut x, c, tx, Request::Rm("/t"));
        call(&mut x, c, tx, Request::TransactionEnd(false));
        assert!(x.exists("/t/a"));
        assert_eq!(x.open_transactions(c), 0);
        assert!(x.tombstones.is_empty());
    }

    #[test]
    fn transaction_commit_fires_watches_and_removes() {
        let mut x = Xenstored::new();
        let w = x.connect_local(0);
        x.write("/t/old/leaf", "1").unwrap();
        x.watch(w, "/t", "t").unwrap();
        x.take_events(w);
        let c = x.connect_local(0);
        let tx = wire::parse_transaction_id(&x.request(c, 0, &Request::TransactionStart).unwrap())
            .unwrap();
        x.request(c, tx, &Request::Rm("/t/old")).unwrap();
        x.request(c, tx, &Request::Write("/t/new", b"n")).unwrap();
        assert!(x.take_events(w).is_empty(), "nothing before commit");
        x.request(c, tx, &Request::TransactionEnd(true)).unwrap();
        let paths: Vec<_> = x.take_events(w).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, vec!["/t/old", "/t/new"]);
        assert!(!x.exists("/t/old/leaf"));
        assert_eq!(x.read("/t/new").unwrap(), b"n");
    }

    #[test]
    fn special_watches() {
        let mut x = Xenstored::new();
        let c = x.connect_local(0);
        x.watch(c, "@introduceDomain", "i").unwrap();
        x.watch(c, "@releaseDomain", "r").unwrap();
        assert_eq!(x.take_events(c).len(), 2);
        x.add_domain(9);
        let ev = x.take_events(c);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].token, "i");
        assert_eq!(
            x.request(c, 0, &Request::IsDomainIntroduced(9)).unwrap(),
            b"T\0"
        );
        x.request(c, 0, &Request::Release(9)).unwrap();
        assert_eq!(x.take_events(c)[0].token, "r");
        let d = x.connect_local(9);
        assert_eq!(
            x.request(d, 0, &Request::Introduce(4, 1, 1)),
            Err(XsErrno::EACCES)
        );
    }
}
