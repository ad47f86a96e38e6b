//! The client's protocol state machine, without I/O and without async.
//!
//! [`ClientCore`] turns requests into bytes ([`pending_output`](ClientCore::pending_output)),
//! takes the daemon's bytes ([`receive`](ClientCore::receive)), matches replies to requests by
//! `req_id`, and queues watch events per token. It stores [`Waker`]s of whoever waits for a reply
//! or an event and hands them out through [`take_wakers`](ClientCore::take_wakers), so its owner
//! can wake them after releasing its lock. The async client ([`super::Xenstore`]) is a thin layer
//! over it; tests and fuzzers drive it directly.

use alloc::collections::VecDeque;
// Sorted vectors rather than BTreeMaps: a handful of entries, and each BTreeMap<K, V> links
// ~5 KB of tree code into the image.
use alloc::string::String;
use alloc::vec::Vec;
use core::task::{Poll, Waker};
use litemap::LiteMap;

use super::error::{XenstoreError, XenstoreProtocolError};
use super::wire::{
    self, FrameReader, Message, MsgType, Request, WatchEvent, HEADER_LEN, XENSTORE_PAYLOAD_MAX,
};

/// At most this many requests may be outstanding at once.
pub const MAX_PENDING: usize = 1024;
/// At most this many undelivered events are kept per watch; older ones are dropped first.
/// (Watches may fire spuriously and consumers re-read state, so losing some is tolerable.)
pub const MAX_QUEUED_EVENTS: usize = 256;

/// A successful reply: its type is the request's type (never `ERROR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The reply's type.
    pub msg_type: MsgType,
    /// The reply's `tx_id`.
    pub tx_id: u32,
    /// The payload, still to be decoded according to the type.
    pub payload: Vec<u8>,
}

#[derive(Debug)]
enum State {
    Waiting(Option<Waker>),
    Done(Result<Reply, XenstoreError>),
    /// Nobody waits any more: the reply is dropped when it comes.
    Abandoned,
}

#[derive(Debug)]
struct Pending {
    msg_type: MsgType,
    tx_id: u32,
    state: State,
    /// For WATCH requests: the token whose queue this registers.
    watch: Option<(String, String)>,
}

#[derive(Debug)]
enum WatchState {
    /// WATCH sent, reply not yet in.
    Registering,
    /// Registered.
    Active,
    /// The WATCH request was abandoned: unwatch as soon as it succeeds.
    Orphan,
}

#[derive(Debug)]
struct WatchQueue {
    /// The watched path (re-registered after a resume).
    path: String,
    state: WatchState,
    events: VecDeque<WatchEvent>,
    waker: Option<Waker>,
    dropped: u64,
}

/// Counters of what the daemon sent that was not expected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Protocol errors seen (all kinds).
    pub protocol_errors: u64,
    /// Watch events for tokens not registered (legal after an unwatch, so not an error).
    pub stray_events: u64,
    /// Watch events dropped because a queue was full.
    pub dropped_events: u64,
}

/// The transport-agnostic, synchronous client state machine.
#[derive(Debug)]
pub struct ClientCore {
    next_req_id: u32,
    pending: LiteMap<u32, Pending>,
    watches: LiteMap<String, WatchQueue>,
    reader: FrameReader,
    out: Vec<u8>,
    out_head: usize,
    fatal: Option<XenstoreError>,
    to_wake: Vec<Waker>,
    stats: Stats,
    last_error: Option<XenstoreProtocolError>,
}

impl Default for ClientCore {
    fn default() -> Self {
        ClientCore::new()
    }
}

impl ClientCore {
    /// A fresh client with nothing outstanding.
    pub fn new() -> ClientCore {
        ClientCore {
            next_req_id: 0,
            pending: LiteMap::new(),
            watches: LiteMap::new(),
            reader: FrameReader::new(),
            out: Vec::new(),
            out_head: 0,
            fatal: None,
            to_wake: Vec::new(),
            stats: Stats::default(),
            last_error: None,
        }
    }

    /// Queues a request; returns its `req_id`. Arguments and payload size are checked here,
    /// before anything is sent.
    pub fn start_request(&mut self, tx_id: u32, req: &Request<'_>) -> Result<u32, XenstoreError> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        if matches!(req.msg_type(), MsgType::Watch | MsgType::Unwatch) {
            // Watches go through start_watch / start_unwatch so their queues are kept right.
            if let Request::Watch(p, t) = req {
                return self.start_watch(p, t);
            }
            if let Request::Unwatch(p, t) = req {
                return self.start_unwatch(p, t, false);
            }
        }
        self.queue(tx_id, req, None)
    }

    fn queue(
        &mut self,
        tx_id: u32,
        req: &Request<'_>,
        watch: Option<(String, String)>,
    ) -> Result<u32, XenstoreError> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(XenstoreError::TooManyRequests);
        }
        let req_id = self.alloc_req_id();
        let tx_id = match req.msg_type() {
            // The daemon ignores tx_id on these; send 0 as xenstore.txt asks for START.
            MsgType::TransactionStart | MsgType::Watch | MsgType::Unwatch => 0,
            _ => tx_id,
        };
        req.encode(req_id, tx_id, &mut self.out)
            .map_err(XenstoreError::InvalidRequest)?;
        self.pending.insert(
            req_id,
            Pending {
                msg_type: req.msg_type(),
                tx_id,
                state: State::Waiting(None),
                watch,
            },
        );
        Ok(req_id)
    }

    fn alloc_req_id(&mut self) -> u32 {
        // Terminates: fewer than MAX_PENDING ids are in use.
        loop {
            let id = self.next_req_id;
            self.next_req_id = self.next_req_id.wrapping_add(1);
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    /// Sets the next `req_id` to try (tests of wrap-around).
    pub fn set_next_req_id(&mut self, id: u32) {
        self.next_req_id = id;
    }

    /// Registers a watch: creates the event queue for `token` and queues a WATCH request.
    /// Events (including the initial one) are queued from now on; if the WATCH fails the queue
    /// is removed.
    pub fn start_watch(&mut self, path: &str, token: &str) -> Result<u32, XenstoreError> {
        if self.watches.contains_key(token) {
            return Err(XenstoreError::WatchTokenInUse);
        }
        let id = self.queue(
            0,
            &Request::Watch(path, token),
            Some((String::from(path), String::from(token))),
        )?;
        self.watches.insert(
            String::from(token),
            WatchQueue {
                path: String::from(path),
                state: WatchState::Registering,
                events: VecDeque::new(),
                waker: None,
                dropped: 0,
            },
        );
        Ok(id)
    }

    /// Removes the watch's queue and queues an UNWATCH request. With `detached`, nobody waits
    /// for the reply (used when a watch stream is dropped).
    pub fn start_unwatch(
        &mut self,
        path: &str,
        token: &str,
        detached: bool,
    ) -> Result<u32, XenstoreError> {
        if let Some(q) = self.watches.remove(token) {
            if let Some(w) = q.waker {
                self.to_wake.push(w);
            }
        }
        let id = self.queue(0, &Request::Unwatch(path, token), None)?;
        if detached {
            self.abandon(id);
        }
        Ok(id)
    }

    /// Takes the reply to `req_id` if it has come; otherwise remembers `waker` (if given) to be
    /// woken when it does. Returns `None` for a request that is still outstanding.
    /// An unknown `req_id` yields an error (it was already taken or never issued).
    pub fn poll_reply(
        &mut self,
        req_id: u32,
        waker: Option<&Waker>,
    ) -> Option<Result<Reply, XenstoreError>> {
        let Some(p) = self.pending.get_mut(&req_id) else {
            return Some(Err(self.fatal.clone().unwrap_or(XenstoreError::Protocol(
                XenstoreProtocolError::UnexpectedReqId {
                    req_id,
                    msg_type: MsgType::Error,
                },
            ))));
        };
        match &mut p.state {
            State::Waiting(w) => {
                if let Some(new) = waker {
                    match w {
                        Some(old) if old.will_wake(new) => {}
                        _ => *w = Some(new.clone()),
                    }
                }
                None
            }
            State::Done(_) => {
                let p = self.pending.remove(&req_id)?;
                match p.state {
                    State::Done(r) => Some(r),
                    _ => None,
                }
            }
            State::Abandoned => None,
        }
    }

    /// Nobody waits for `req_id` any more: its reply will be dropped when it comes (the id stays
    /// in use until then). A WATCH abandoned before its reply is undone once it succeeds.
    pub fn abandon(&mut self, req_id: u32) {
        let Some(p) = self.pending.get_mut(&req_id) else {
            return;
        };
        if let State::Done(_) = p.state {
            let p = self.pending.remove(&req_id);
            // A completed WATCH that nobody will turn into a stream: undo it.
            if let Some(Pending {
                watch: Some((path, token)),
                state: State::Done(Ok(_)),
                ..
            }) = p
            {
                let _ = self.start_unwatch(&path, &token, true);
            }
            return;
        }
        p.state = State::Abandoned;
        if let Some((_, token)) = &p.watch {
            if let Some(q) = self.watches.get_mut(token) {
                q.state = WatchState::Orphan;
            }
        }
    }

    /// Takes the next event of the watch `token`: `Ready(Some(Ok(_)))` for an event,
    /// `Ready(Some(Err(_)))` once the connection died, `Ready(None)` if there is no such watch
    /// (any more); otherwise `Pending`, remembering `waker`.
    pub fn poll_watch_event(
        &mut self,
        token: &str,
        waker: Option<&Waker>,
    ) -> Poll<Option<Result<WatchEvent, XenstoreError>>> {
        let Some(q) = self.watches.get_mut(token) else {
            return Poll::Ready(None);
        };
        if let Some(ev) = q.events.pop_front() {
            return Poll::Ready(Some(Ok(ev)));
        }
        if let Some(e) = &self.fatal {
            // Report the death once, then end the stream.
            let e = e.clone();
            self.watches.remove(token);
            return Poll::Ready(Some(Err(e)));
        }
        if let Some(new) = waker {
            match &q.waker {
                Some(old) if old.will_wake(new) => {}
                _ => q.waker = Some(new.clone()),
            }
        }
        Poll::Pending
    }

    /// How many events of watch `token` were dropped because its queue was full.
    pub fn dropped_events(&self, token: &str) -> u64 {
        self.watches.get(token).map_or(0, |q| q.dropped)
    }

    /// Bytes waiting to be written to the transport.
    pub fn pending_output(&self) -> &[u8] {
        &self.out[self.out_head..]
    }

    /// Marks `n` bytes of [`pending_output`](Self::pending_output) as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out_head = (self.out_head + n).min(self.out.len());
        if self.out_head == self.out.len() {
            self.out.clear();
            self.out_head = 0;
        } else if self.out_head > 4 * (HEADER_LEN + XENSTORE_PAYLOAD_MAX) {
            self.out.drain(..self.out_head);
            self.out_head = 0;
        }
    }

    /// Whether anyone waits for a reply or an event (if not, there is no need to read).
    pub fn has_waiters(&self) -> bool {
        !self.pending.is_empty() || !self.watches.is_empty()
    }

    /// Number of requests whose reply has not come yet (abandoned ones included).
    pub fn outstanding(&self) -> usize {
        self.pending
            .values()
            .filter(|p| !matches!(p.state, State::Done(_)))
            .count()
    }

    /// Feeds bytes from the daemon. Every complete message is handled; the first protocol error
    /// met is returned (the others are only counted), and handling goes on with the next
    /// message. A framing error ([`XenstoreProtocolError::Framing`]) is fatal: the stream cannot be
    /// resynchronised, every outstanding request fails with it, and so do later requests.
    pub fn receive(&mut self, mut bytes: &[u8]) -> Result<(), XenstoreProtocolError> {
        let mut first: Option<XenstoreProtocolError> = None;
        while !bytes.is_empty() && self.fatal.is_none() {
            match self.reader.push(bytes) {
                Ok((used, msg)) => {
                    bytes = &bytes[used..];
                    if let Some(m) = msg {
                        if let Err(e) = self.handle_message(m) {
                            self.note_error(e.clone());
                            first.get_or_insert(e);
                        }
                    }
                }
                Err(w) => {
                    let e = XenstoreProtocolError::Framing(w);
                    self.note_error(e.clone());
                    self.fail(XenstoreError::Protocol(e.clone()));
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Counts a protocol error found by a layer above (for instance a malformed reply payload).
    pub fn note_error(&mut self, e: XenstoreProtocolError) {
        log::warn!("xenstore: {e}");
        self.stats.protocol_errors += 1;
        self.last_error = Some(e);
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last protocol error seen.
    pub fn last_error(&self) -> Option<&XenstoreProtocolError> {
        self.last_error.as_ref()
    }

    /// The error that killed the connection, if it is dead.
    pub fn fatal_error(&self) -> Option<&XenstoreError> {
        self.fatal.as_ref()
    }

    /// Kills the connection: every outstanding request completes with `err`, watch streams end
    /// with it, and later requests fail with it.
    pub fn fail(&mut self, err: XenstoreError) {
        if self.fatal.is_some() {
            return;
        }
        self.fatal = Some(err.clone());
        let ids: Vec<u32> = self.pending.keys().copied().collect();
        for id in ids {
            self.complete(id, Err(err.clone()));
        }
        for q in self.watches.iter_mut().map(|(_, q)| q) {
            if let Some(w) = q.waker.take() {
                self.to_wake.push(w);
            }
        }
        self.out.clear();
        self.out_head = 0;
    }

    /// After the domain resumed in a new domain, on a fresh connection to xenstored (a fatal
    /// error of the old connection is cleared): every
    /// outstanding request fails with [`XenstoreError::Interrupted`] (its reply will never
    /// come), a half-read reply and half-sent requests are dropped, and every watch is
    /// registered again (xenstored then fires each once, as on any registration). Transactions
    /// are gone with the old connection; their next request fails.
    pub fn resume(&mut self) {
        // A new connection: whatever killed the old one is history.
        self.fatal = None;
        self.reader = FrameReader::new();
        self.out.clear();
        self.out_head = 0;
        let ids: Vec<u32> = self.pending.keys().copied().collect();
        for id in ids {
            let done = matches!(
                self.pending.get(&id).map(|p| &p.state),
                Some(State::Done(_))
            );
            if !done {
                self.complete(id, Err(XenstoreError::Interrupted));
            }
        }
        let watches: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(_, q)| !matches!(q.state, WatchState::Orphan))
            .map(|(t, q)| (q.path.clone(), t.clone()))
            .collect();
        for (path, token) in watches {
            match self.queue(
                0,
                &Request::Watch(&path, &token),
                Some((path.clone(), token.clone())),
            ) {
                Ok(id) => {
                    // Nobody waits for this reply: the stream already exists.
                    if let Some(p) = self.pending.get_mut(&id) {
                        p.state = State::Abandoned;
                        p.watch = None;
                    }
                    if let Some(q) = self.watches.get_mut(&token) {
                        q.state = WatchState::Active;
                    }
                }
                Err(e) => log::warn!("xenstore: cannot re-register watch {path}: {e}"),
            }
        }
        self.wake_waiters();
    }

    /// Moves the wakers of everyone waiting (for replies or events) to the wake list, so they
    /// poll again. Used when whoever had registered with the transport stops waiting, since a
    /// transport may keep only the last waker registered with it.
    pub fn wake_waiters(&mut self) {
        for p in self.pending.iter_mut().map(|(_, p)| p) {
            if let State::Waiting(w) = &mut p.state {
                if let Some(w) = w.take() {
                    self.to_wake.push(w);
                }
            }
        }
        for q in self.watches.iter_mut().map(|(_, q)| q) {
            if let Some(w) = q.waker.take() {
                self.to_wake.push(w);
            }
        }
    }

    /// Takes the wakers to wake (call after releasing any lock around the core).
    pub fn take_wakers(&mut self) -> Vec<Waker> {
        core::mem::take(&mut self.to_wake)
    }

    fn complete(&mut self, req_id: u32, result: Result<Reply, XenstoreError>) {
        let Some(p) = self.pending.get_mut(&req_id) else {
            return;
        };
        let watch = p.watch.clone();
        let ok = result.is_ok();
        match core::mem::replace(&mut p.state, State::Abandoned) {
            State::Waiting(w) => {
                p.state = State::Done(result);
                if let Some(w) = w {
                    self.to_wake.push(w);
                }
            }
            State::Abandoned => {
                self.pending.remove(&req_id);
            }
            State::Done(r) => p.state = State::Done(r),
        }
        if let Some((path, token)) = watch {
            let orphan = matches!(
                self.watches.get(&token).map(|q| &q.state),
                Some(WatchState::Orphan)
            );
            if !ok {
                if let Some(q) = self.watches.remove(&token) {
                    if let Some(w) = q.waker {
                        self.to_wake.push(w);
                    }
                }
            } else if orphan {
                if self.fatal.is_none() {
                    let _ = self.start_unwatch(&path, &token, true);
                }
            } else if let Some(q) = self.watches.get_mut(&token) {
                q.state = WatchState::Active;
            }
        }
    }

    fn handle_message(&mut self, m: Message) -> Result<(), XenstoreProtocolError> {
        let h = m.header;
        let t = match MsgType::try_from(h.msg_type) {
            Ok(t) => t,
            Err(_) => {
                let e = XenstoreProtocolError::UnknownType {
                    raw: h.msg_type,
                    req_id: h.req_id,
                };
                // If it claims to answer an outstanding request, that request gets the error.
                if self.pending.contains_key(&h.req_id) {
                    self.complete(h.req_id, Err(XenstoreError::Protocol(e.clone())));
                }
                return Err(e);
            }
        };
        if t == MsgType::WatchEvent {
            let ev = wire::parse_watch_event(&m.payload)
                .map_err(|error| XenstoreProtocolError::BadPayload { msg_type: t, error })?;
            match self.watches.get_mut(&ev.token) {
                Some(q) => {
                    if q.events.len() >= MAX_QUEUED_EVENTS {
                        q.events.pop_front();
                        q.dropped += 1;
                        self.stats.dropped_events += 1;
                    }
                    q.events.push_back(ev);
                    if let Some(w) = q.waker.take() {
                        self.to_wake.push(w);
                    }
                }
                None => self.stats.stray_events += 1,
            }
            return Ok(());
        }
        let Some(p) = self.pending.get(&h.req_id) else {
            return Err(XenstoreProtocolError::UnexpectedReqId {
                req_id: h.req_id,
                msg_type: t,
            });
        };
        if matches!(p.state, State::Done(_)) {
            // A second reply to the same request.
            return Err(XenstoreProtocolError::UnexpectedReqId {
                req_id: h.req_id,
                msg_type: t,
            });
        }
        let expected = p.msg_type;
        if p.tx_id != h.tx_id && expected != MsgType::TransactionStart {
            let e = XenstoreProtocolError::TxIdMismatch {
                req_id: h.req_id,
                expected: p.tx_id,
                got: h.tx_id,
            };
            self.complete(h.req_id, Err(XenstoreError::Protocol(e.clone())));
            return Err(e);
        }
        if t == MsgType::Error {
            return match wire::parse_error(&m.payload) {
                Ok(xs) => {
                    self.complete(h.req_id, Err(XenstoreError::Xs(xs)));
                    Ok(())
                }
                Err(error) => {
                    let e = XenstoreProtocolError::BadPayload { msg_type: t, error };
                    self.complete(h.req_id, Err(XenstoreError::Protocol(e.clone())));
                    Err(e)
                }
            };
        }
        if t != expected {
            let e = XenstoreProtocolError::UnexpectedReplyType {
                req_id: h.req_id,
                expected,
                got: t,
            };
            self.complete(h.req_id, Err(XenstoreError::Protocol(e.clone())));
            return Err(e);
        }
        // Replies whose payload is just an acknowledgement are checked here; the others are
        // decoded by the caller, which knows what it asked for.
        if matches!(
            t,
            MsgType::Write
                | MsgType::Mkdir
                | MsgType::Rm
                | MsgType::SetPerms
                | MsgType::Watch
                | MsgType::Unwatch
                | MsgType::TransactionEnd
                | MsgType::Introduce
                | MsgType::Release
                | MsgType::Resume
                | MsgType::SetTarget
                | MsgType::ResetWatches
        ) {
            if let Err(error) = wire::parse_ok(&m.payload) {
                let e = XenstoreProtocolError::BadPayload { msg_type: t, error };
                self.complete(h.req_id, Err(XenstoreError::Protocol(e.clone())));
                return Err(e);
            }
        }
        self.complete(
            h.req_id,
            Ok(Reply {
                msg_type: t,
                tx_id: h.tx_id,
                payload: m.payload,
            }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::wire::{encode_message, XsErrno};
    use alloc::vec;

    fn reply(t: MsgType, req: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_message(t, req, tx, payload, &mut v).unwrap();
        v
    }

    #[test]
    fn request_bytes_and_reply_matching() {
        let mut c = ClientCore::new();
        let a = c.start_request(0, &Request::Read("/a")).unwrap();
        let b = c.start_request(5, &Request::Write("/b", b"v")).unwrap();
        assert_ne!(a, b);
        let mut expect = Vec::new();
        Request::Read("/a").encode(a, 0, &mut expect).unwrap();
        Request::Write("/b", b"v")
            .encode(b, 5, &mut expect)
            .unwrap();
        assert_eq!(c.pending_output(), &expect[..]);
        c.consume_output(10);
        assert_eq!(c.pending_output(), &expect[10..]);
        c.consume_output(1000);
        assert!(c.pending_output().is_empty());

        assert!(c.poll_reply(a, None).is_none());
        // Out of order.
        c.receive(&reply(MsgType::Write, b, 5, b"OK\0")).unwrap();
        c.receive(&reply(MsgType::Read, a, 0, b"val")).unwrap();
        assert_eq!(c.poll_reply(a, None).unwrap().unwrap().payload, b"val");
        assert_eq!(
            c.poll_reply(b, None).unwrap().unwrap().msg_type,
            MsgType::Write
        );
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn req_ids_wrap_and_skip_ids_in_use() {
        let mut c = ClientCore::new();
        c.set_next_req_id(u32::MAX);
        let a = c.start_request(0, &Request::Read("/a")).unwrap();
        assert_eq!(a, u32::MAX);
        let b = c.start_request(0, &Request::Read("/a")).unwrap();
        assert_eq!(b, 0);
        c.set_next_req_id(u32::MAX);
        let d = c.start_request(0, &Request::Read("/a")).unwrap();
        assert_eq!(d, 1, "ids u32::MAX and 0 are in use");
    }

    #[test]
    fn hostile_replies_are_errors() {
        let mut c = ClientCore::new();
        let a = c.start_request(0, &Request::Read("/a")).unwrap();
        assert_eq!(
            c.receive(&reply(MsgType::Read, a + 1, 0, b"x")),
            Err(XenstoreProtocolError::UnexpectedReqId {
                req_id: a + 1,
                msg_type: MsgType::Read
            })
        );
        assert!(c.poll_reply(a, None).is_none(), "unaffected");
        assert!(matches!(
            c.receive(&reply(MsgType::Directory, a, 0, b"")),
            Err(XenstoreProtocolError::UnexpectedReplyType { .. })
        ));
        assert!(matches!(
            c.poll_reply(a, None),
            Some(Err(XenstoreError::Protocol(
                XenstoreProtocolError::UnexpectedReplyType { .. }
            )))
        ));
        let w = c.start_request(0, &Request::Write("/a", b"")).unwrap();
        assert!(c.receive(&reply(MsgType::Write, w, 0, b"OK")).is_err());
        assert!(matches!(
            c.poll_reply(w, None),
            Some(Err(XenstoreError::Protocol(
                XenstoreProtocolError::BadPayload { .. }
            )))
        ));
        let e = c.start_request(0, &Request::Read("/a")).unwrap();
        assert!(c.receive(&reply(MsgType::Error, e, 0, b"ENOENT")).is_err());
        assert!(matches!(
            c.poll_reply(e, None),
            Some(Err(XenstoreError::Protocol(_)))
        ));
        let e = c.start_request(0, &Request::Read("/a")).unwrap();
        c.receive(&reply(MsgType::Error, e, 0, b"ENOENT\0"))
            .unwrap();
        assert_eq!(
            c.poll_reply(e, None),
            Some(Err(XenstoreError::Xs(XsErrno::ENOENT)))
        );
        let t = c.start_request(3, &Request::Read("/a")).unwrap();
        assert!(matches!(
            c.receive(&reply(MsgType::Read, t, 4, b"")),
            Err(XenstoreProtocolError::TxIdMismatch { .. })
        ));
        // Unknown type.
        let u = c.start_request(0, &Request::Read("/a")).unwrap();
        let mut m = reply(MsgType::Read, u, 0, b"");
        m[0] = 77;
        assert!(matches!(
            c.receive(&m),
            Err(XenstoreProtocolError::UnknownType { raw: 77, .. })
        ));
        assert!(matches!(c.poll_reply(u, None), Some(Err(_))));
        assert!(c.fatal_error().is_none(), "none of these is fatal");
        assert_eq!(c.stats().protocol_errors, 6);
    }

    #[test]
    fn oversize_len_is_fatal() {
        let mut c = ClientCore::new();
        let a = c.start_request(0, &Request::Read("/a")).unwrap();
        let mut m = reply(MsgType::Read, a, 0, b"");
        m[12..16].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(
            c.receive(&m),
            Err(XenstoreProtocolError::Framing(
                wire::XenstoreWireError::PayloadTooLong(5000)
            ))
        );
        assert!(matches!(
            c.poll_reply(a, None),
            Some(Err(XenstoreError::Protocol(_)))
        ));
        assert!(c.start_request(0, &Request::Read("/a")).is_err());
    }

    #[test]
    fn watch_events_are_queued_per_token() {
        let mut c = ClientCore::new();
        let w = c.start_watch("/a", "t1").unwrap();
        assert_eq!(
            c.start_watch("/b", "t1"),
            Err(XenstoreError::WatchTokenInUse)
        );
        // The initial event may come before the reply.
        c.receive(&reply(MsgType::WatchEvent, 0, 0, b"/a\0t1\0"))
            .unwrap();
        c.receive(&reply(MsgType::Watch, w, 0, b"OK\0")).unwrap();
        c.receive(&reply(MsgType::WatchEvent, 0, 0, b"/zz\0other\0"))
            .unwrap();
        assert_eq!(c.stats().stray_events, 1);
        assert!(c.poll_reply(w, None).unwrap().is_ok());
        match c.poll_watch_event("t1", None) {
            Poll::Ready(Some(Ok(ev))) => assert_eq!(ev.path, "/a"),
            other => panic!("{other:?}"),
        }
        assert!(c.poll_watch_event("t1", None).is_pending());
        assert!(c
            .receive(&reply(MsgType::WatchEvent, 0, 0, b"/a\0t1"))
            .is_err());
        c.start_unwatch("/a", "t1", true).unwrap();
        assert_eq!(c.poll_watch_event("t1", None), Poll::Ready(None));
    }

    #[test]
    fn failed_watch_removes_queue() {
        let mut c = ClientCore::new();
        let w = c.start_watch("/a", "t").unwrap();
        c.receive(&reply(MsgType::Error, w, 0, b"EACCES\0"))
            .unwrap();
        assert_eq!(
            c.poll_reply(w, None),
            Some(Err(XenstoreError::Xs(XsErrno::EACCES)))
        );
        assert_eq!(c.poll_watch_event("t", None), Poll::Ready(None));
        assert!(c.start_watch("/a", "t").is_ok(), "token free again");
    }

    #[test]
    fn resume_fails_requests_in_flight_and_registers_watches_again() {
        let mut c = ClientCore::new();
        let w = c.start_watch("/a", "t").unwrap();
        c.receive(&reply(MsgType::Watch, w, 0, b"OK\0")).unwrap();
        assert!(c.poll_reply(w, None).unwrap().is_ok());
        let r = c.start_request(0, &Request::Read("/x")).unwrap();
        c.consume_output(usize::MAX);
        // Half a reply of the old connection is in the reader.
        let half = reply(MsgType::Read, r, 0, b"value");
        c.receive(&half[..10]).unwrap();

        c.resume();
        assert_eq!(c.poll_reply(r, None), Some(Err(XenstoreError::Interrupted)));
        // The watch is registered again: its WATCH is the only output.
        let out = c.pending_output().to_vec();
        let p = wire::Packet::new_checked(&out[..]).unwrap();
        assert_eq!(p.msg_type(), Ok(MsgType::Watch));
        assert_eq!(p.payload(), b"/a\0t\0");
        assert_eq!(out.len(), p.total_len());
        // Its reply is taken by nobody; events reach the same stream as before.
        let id = p.req_id();
        c.consume_output(usize::MAX);
        c.receive(&reply(MsgType::Watch, id, 0, b"OK\0")).unwrap();
        c.receive(&reply(MsgType::WatchEvent, 0, 0, b"/a\0t\0"))
            .unwrap();
        match c.poll_watch_event("t", None) {
            Poll::Ready(Some(Ok(ev))) => assert_eq!(ev.path, "/a"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.outstanding(), 0);

        // A connection that died before the resume is a new one after it.
        c.fail(XenstoreError::Transport(
            crate::xenstore::XenstoreTransportError::InvalidPeerState,
        ));
        assert!(c.start_request(0, &Request::Read("/y")).is_err());
        c.resume();
        assert!(c.fatal_error().is_none());
        assert!(c.start_request(0, &Request::Read("/y")).is_ok());
    }

    #[test]
    fn abandoned_watch_is_undone() {
        let mut c = ClientCore::new();
        let w = c.start_watch("/a", "t").unwrap();
        c.consume_output(usize::MAX);
        c.abandon(w);
        c.receive(&reply(MsgType::Watch, w, 0, b"OK\0")).unwrap();
        let out = c.pending_output().to_vec();
        let p = wire::Packet::new_checked(&out[..]).unwrap();
        assert_eq!(p.msg_type(), Ok(MsgType::Unwatch));
        assert_eq!(p.payload(), b"/a\0t\0");
    }

    #[test]
    fn event_queue_is_bounded() {
        let mut c = ClientCore::new();
        let w = c.start_watch("/a", "t").unwrap();
        c.receive(&reply(MsgType::Watch, w, 0, b"OK\0")).unwrap();
        let ev = reply(MsgType::WatchEvent, 0, 0, b"/a\0t\0");
        for _ in 0..MAX_QUEUED_EVENTS + 10 {
            c.receive(&ev).unwrap();
        }
        assert_eq!(c.dropped_events("t"), 10);
    }

    #[test]
    fn payload_limit_checked_before_sending() {
        let mut c = ClientCore::new();
        let big = vec![b'x'; 4096];
        assert!(matches!(
            c.start_request(0, &Request::Write("/a", &big)),
            Err(XenstoreError::InvalidRequest(
                wire::XenstoreWireError::RequestTooLong(_)
            ))
        ));
        assert!(c.pending_output().is_empty());
        assert_eq!(c.outstanding(), 0);
    }
}
