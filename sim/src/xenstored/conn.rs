//! Connections: wire and local ones, the framing of bytes fed in, output and wakeups.

use super::request::str_payload;
use super::transaction::Tx;
use super::watch::Watch;
use super::{ConnId, Xenstored, XenstoredError};
use std::collections::{BTreeMap, VecDeque};
use std::task::Waker;
use xenia_xen::xenstore::wire::{
    encode_message, FrameReader, Message, MsgType, Request, WatchEvent, XenstoreWireError, XsErrno,
    XENSTORE_PAYLOAD_MAX,
};

#[derive(Debug)]
pub(super) enum Sink {
    Wire { out: VecDeque<u8> },
    Local { events: VecDeque<WatchEvent> },
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) domid: u16,
    pub(super) reader: FrameReader,
    pub(super) sink: Sink,
    pub(super) watches: Vec<Watch>,
    pub(super) txs: BTreeMap<u32, Tx>,
    pub(super) waker: Option<Waker>,
}

impl Xenstored {
    pub(super) fn new_conn(&mut self, domid: u16, sink: Sink) -> ConnId {
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

    pub(super) fn push_output(&mut self, conn: ConnId, f: impl FnOnce(&mut Sink)) {
        if let Some(c) = self.conns.get_mut(&conn) {
            f(&mut c.sink);
            if let Some(w) = c.waker.take() {
                w.wake();
            }
            self.notify.insert(conn);
        }
    }

    pub(super) fn handle_message(&mut self, conn: ConnId, m: Message) {
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
}
