//! The async xenstore client over a [`Transport`].

use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use futures_util::stream::Stream;

use super::error::{XenstoreError, XenstoreProtocolError, XenstoreTransportError};
use super::protocol::{ClientCore, Reply, Stats};
use super::wire::{self, MsgType, Perm, Request, WatchEvent, XenstoreWireError, XsErrno};

/// How many times [`Xenstore::transaction`] tries before giving up with `EAGAIN`.
pub const DEFAULT_TRANSACTION_ATTEMPTS: u32 = 8;

/// The byte stream to xenstored: on a guest the xenstore ring page plus its event channel.
///
/// The client never busy-polls: when [`read`](Transport::read) returns 0 it calls
/// [`poll_readable`](Transport::poll_readable), and when [`write`](Transport::write) accepts
/// nothing it calls [`poll_writable`](Transport::poll_writable); on `Pending` it returns
/// `Pending` itself and waits for the waker. A transport may keep only the most recently
/// registered waker: the client re-registers whenever one of its waiters stops waiting.
pub trait Transport {
    /// Writes as much of `buf` as fits; returns how many bytes were taken (0 if none fit).
    fn write(&mut self, buf: &[u8]) -> Result<usize, XenstoreTransportError>;
    /// Reads what is available into `buf`; returns how many bytes (0 if none).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreTransportError>;
    /// Kicks the other side (event channel notify). Called after bytes were written or read.
    fn notify(&mut self);
    /// `Ready` if [`read`](Transport::read) may now return data; otherwise registers
    /// `cx.waker()` to be woken when the other side notifies, and returns `Pending`. To avoid
    /// lost wake-ups, check again for data after registering.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// `Ready` if [`write`](Transport::write) may now accept bytes; otherwise registers
    /// `cx.waker()` and returns `Pending` (same rules as `poll_readable`).
    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

struct Inner<T> {
    core: ClientCore,
    transport: T,
}

/// Bound on consecutive I/O passes in one poll, in case a transport keeps saying `Ready`
/// without moving data; after that the task yields (wakes itself) rather than spin here.
const MAX_IO_PASSES: usize = 64;

/// Bound on the bytes read in one poll (a few maximum-size messages), in case the other side
/// never stops writing: after that the task yields (wakes itself) and other tasks run.
pub const MAX_READ_PER_POLL: usize = 16 * 1024;

impl<T: Transport> Inner<T> {
    /// Moves bytes both ways until the transport can do no more, then registers `cx`'s waker
    /// with it. Transport failures kill the connection (reported through the core).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if self.core.fatal_error().is_some() {
            return;
        }
        if let Err(e) = self.drive_inner(cx) {
            log::warn!("xenstore transport failed: {e}");
            self.core.fail(XenstoreError::Transport(e));
        }
    }

    fn drive_inner(&mut self, cx: &mut Context<'_>) -> Result<(), XenstoreTransportError> {
        let mut buf = [0u8; 512];
        let mut budget = MAX_READ_PER_POLL;
        for _ in 0..MAX_IO_PASSES {
            let mut wrote = false;
            while !self.core.pending_output().is_empty() {
                let n = self.transport.write(self.core.pending_output())?;
                if n == 0 {
                    break;
                }
                self.core.consume_output(n);
                wrote = true;
            }
            if wrote {
                self.transport.notify();
            }
            let mut read = false;
            if self.core.has_waiters() {
                while budget > 0 {
                    let want = buf.len().min(budget);
                    let n = self.transport.read(&mut buf[..want])?;
                    if n == 0 {
                        break;
                    }
                    let n = n.min(want);
                    budget -= n;
                    read = true;
                    // Protocol errors are counted and logged by the core; fatal ones fail the
                    // connection there.
                    let _ = self.core.receive(&buf[..n]);
                    if self.core.fatal_error().is_some() {
                        return Ok(());
                    }
                }
                if read {
                    self.transport.notify();
                }
                if budget == 0 {
                    break;
                }
            }
            if wrote || read {
                continue;
            }
            // No progress: register for whatever we wait on. A Ready here means the state
            // changed meanwhile, so go round again.
            let mut again = false;
            if !self.core.pending_output().is_empty() && self.transport.poll_writable(cx).is_ready()
            {
                again = true;
            }
            if self.core.has_waiters() && self.transport.poll_readable(cx).is_ready() {
                again = true;
            }
            if !again {
                return Ok(());
            }
        }
        cx.waker().wake_by_ref();
        Ok(())
    }
}

/// An async xenstore client. Requests from several tasks may be in flight at once; each
/// future is woken when its reply arrives. Futures are cancel-safe: dropping one abandons its
/// request (the reply is discarded when it comes).
pub struct Xenstore<T: Transport> {
    inner: spin::Mutex<Inner<T>>,
}

impl<T: Transport> Xenstore<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Xenstore<T> {
        Xenstore {
            inner: spin::Mutex::new(Inner {
                core: ClientCore::new(),
                transport,
            }),
        }
    }

    /// Runs `f` on the transport (for its owner's bookkeeping).
    pub fn with_transport<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.inner.lock().transport)
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.inner.into_inner().transport
    }

    /// Requests whose reply has not come yet (a suspend waits for none to be in flight).
    pub fn outstanding(&self) -> usize {
        self.inner.lock().core.outstanding()
    }

    /// After the domain resumed in a new domain (call once the transport talks to the new
    /// connection): outstanding requests fail with [`XenstoreError::Interrupted`] and every
    /// watch is registered again (see [`ClientCore::resume`]).
    pub fn resume(&self) {
        let wakers = {
            let mut inner = self.inner.lock();
            inner.core.resume();
            inner.core.take_wakers()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Counters of unexpected things the daemon sent.
    pub fn stats(&self) -> Stats {
        self.inner.lock().core.stats().clone()
    }

    /// The last protocol error seen.
    pub fn last_protocol_error(&self) -> Option<XenstoreProtocolError> {
        self.inner.lock().core.last_error().cloned()
    }

    /// The error that killed the connection, if it is dead.
    pub fn fatal_error(&self) -> Option<XenstoreError> {
        self.inner.lock().core.fatal_error().cloned()
    }

    /// Runs `f` on the core, then wakes whoever it asked to wake (outside the lock).
    fn with_core<R>(&self, f: impl FnOnce(&mut Inner<T>) -> R) -> R {
        let (r, wakers) = {
            let mut inner = self.inner.lock();
            let r = f(&mut inner);
            (r, inner.core.take_wakers())
        };
        wake_all(wakers);
        r
    }

    /// Sends a request and waits for its successful reply (any request; the typed methods
    /// below are built on this).
    pub async fn request(&self, tx_id: u32, req: Request<'_>) -> Result<Reply, XenstoreError> {
        let req_id = self.start_request(tx_id, &req)?;
        ReplyFuture {
            xs: self,
            req_id,
            done: false,
        }
        .await
    }

    /// Queues a request. Out of line, like [`ReplyFuture`]'s poll and drop: every xenstore
    /// operation awaited anywhere would otherwise carry its own inlined copy of the client
    /// (setup code, where size matters more than a call).
    #[inline(never)]
    fn start_request(&self, tx_id: u32, req: &Request<'_>) -> Result<u32, XenstoreError> {
        self.with_core(|i| i.core.start_request(tx_id, req))
    }

    async fn read_in(&self, tx: u32, path: &str) -> Result<Vec<u8>, XenstoreError> {
        Ok(self.request(tx, Request::Read(path)).await?.payload)
    }

    async fn write_in(&self, tx: u32, path: &str, value: &[u8]) -> Result<(), XenstoreError> {
        self.request(tx, Request::Write(path, value)).await?;
        Ok(())
    }

    async fn directory_in(&self, tx: u32, path: &str) -> Result<Vec<String>, XenstoreError> {
        let r = self.request(tx, Request::Directory(path)).await?;
        self.decode(r.msg_type, wire::parse_directory(&r.payload))
    }

    async fn get_perms_in(&self, tx: u32, path: &str) -> Result<Vec<Perm>, XenstoreError> {
        let r = self.request(tx, Request::GetPerms(path)).await?;
        self.decode(r.msg_type, wire::parse_perms(&r.payload))
    }

    /// Turns a payload decoding failure into a counted protocol error.
    fn decode<V>(
        &self,
        msg_type: MsgType,
        r: Result<V, XenstoreWireError>,
    ) -> Result<V, XenstoreError> {
        r.map_err(|error| {
            let e = XenstoreProtocolError::BadPayload { msg_type, error };
            self.inner.lock().core.note_error(e.clone());
            XenstoreError::Protocol(e)
        })
    }

    /// Reads the value at `path`.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, XenstoreError> {
        self.read_in(0, path).await
    }

    /// Reads the value at `path`, or `None` if it does not exist.
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, XenstoreError> {
        match self.read(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the value at `path` as UTF-8.
    pub async fn read_string(&self, path: &str) -> Result<String, XenstoreError> {
        value_to_string(self.read(path).await?)
    }

    /// Reads the value at `path` as an unsigned decimal `u32`.
    pub async fn read_u32(&self, path: &str) -> Result<u32, XenstoreError> {
        value_to_u32(&self.read(path).await?)
    }

    /// Reads the value at `path` as an unsigned decimal `u64`.
    pub async fn read_u64(&self, path: &str) -> Result<u64, XenstoreError> {
        value_to_u64(&self.read(path).await?)
    }

    /// Writes `value` at `path`, creating missing parents.
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XenstoreError> {
        self.write_in(0, path, value.as_ref()).await
    }

    /// Lists the children of `path` (leaf names).
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, XenstoreError> {
        self.directory_in(0, path).await
    }

    /// Creates `path` (and missing parents) if it does not exist.
    pub async fn mkdir(&self, path: &str) -> Result<(), XenstoreError> {
        self.request(0, Request::Mkdir(path)).await.map(drop)
    }

    /// Removes `path` and everything below it.
    pub async fn rm(&self, path: &str) -> Result<(), XenstoreError> {
        self.request(0, Request::Rm(path)).await.map(drop)
    }

    /// The permissions of `path` (first entry: owner and default access).
    pub async fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XenstoreError> {
        self.get_perms_in(0, path).await
    }

    /// Sets the permissions of `path`.
    pub async fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XenstoreError> {
        self.request(0, Request::SetPerms(path, perms.to_vec()))
            .await
            .map(drop)
    }

    /// The home path of domain `domid` (`/local/domain/<domid>`), as xenstored says.
    pub async fn get_domain_path(&self, domid: u16) -> Result<String, XenstoreError> {
        let r = self.request(0, Request::GetDomainPath(domid)).await?;
        let s = self.decode(r.msg_type, wire::parse_single_str(&r.payload))?;
        Ok(String::from(s))
    }

    /// Whether xenstored talks to domain `domid`.
    pub async fn is_domain_introduced(&self, domid: u16) -> Result<bool, XenstoreError> {
        let r = self.request(0, Request::IsDomainIntroduced(domid)).await?;
        self.decode(r.msg_type, wire::parse_bool(&r.payload))
    }

    /// Registers a watch on `path` (a path, relative or absolute, or `@introduceDomain` /
    /// `@releaseDomain`) with `token`, which must be unique among this client's watches.
    /// The stream yields the initial event xenstored sends on registration, then one per
    /// change of `path` or below. Dropping the stream unregisters the watch (the UNWATCH is
    /// sent with the next I/O).
    pub async fn watch(
        &self,
        path: &str,
        token: &str,
    ) -> Result<WatchStream<'_, T>, XenstoreError> {
        let req_id = self.with_core(|i| i.core.start_watch(path, token))?;
        ReplyFuture {
            xs: self,
            req_id,
            done: false,
        }
        .await?;
        Ok(WatchStream {
            xs: self,
            path: String::from(path),
            token: String::from(token),
            active: true,
        })
    }

    /// Unregisters a watch and waits for xenstored's acknowledgement.
    pub async fn unwatch(&self, mut stream: WatchStream<'_, T>) -> Result<(), XenstoreError> {
        stream.active = false;
        let req_id =
            self.with_core(|i| i.core.start_unwatch(&stream.path, &stream.token, false))?;
        ReplyFuture {
            xs: self,
            req_id,
            done: false,
        }
        .await
        .map(drop)
    }

    /// Starts a transaction.
    pub async fn transaction_start(&self) -> Result<Transaction<'_, T>, XenstoreError> {
        let r = self.request(0, Request::TransactionStart).await?;
        let id = self.decode(r.msg_type, wire::parse_transaction_id(&r.payload))?;
        Ok(Transaction { xs: self, id })
    }

    /// Ends a transaction: commits it (`commit == true`; fails with `EAGAIN` on a conflict) or
    /// discards it.
    pub async fn transaction_end(
        &self,
        tx: Transaction<'_, T>,
        commit: bool,
    ) -> Result<(), XenstoreError> {
        self.request(tx.id, Request::TransactionEnd(commit))
            .await
            .map(drop)
    }

    /// Runs `body` in a transaction and commits it, starting over when xenstored reports a
    /// conflict (`EAGAIN`, at commit or from an operation) at most
    /// [`DEFAULT_TRANSACTION_ATTEMPTS`] times in all. Other errors of `body` abort the
    /// transaction and are returned. After the last attempt the error is `EAGAIN`.
    pub async fn transaction<'a, R, F, Fut>(&'a self, body: F) -> Result<R, XenstoreError>
    where
        F: FnMut(Transaction<'a, T>) -> Fut,
        Fut: Future<Output = Result<R, XenstoreError>>,
    {
        self.transaction_with_attempts(DEFAULT_TRANSACTION_ATTEMPTS, body)
            .await
    }

    /// [`transaction`](Self::transaction) with a chosen number of attempts (at least one is
    /// made).
    pub async fn transaction_with_attempts<'a, R, F, Fut>(
        &'a self,
        attempts: u32,
        mut body: F,
    ) -> Result<R, XenstoreError>
    where
        F: FnMut(Transaction<'a, T>) -> Fut,
        Fut: Future<Output = Result<R, XenstoreError>>,
    {
        for attempt in 0..attempts.max(1) {
            let tx = self.transaction_start().await?;
            match body(tx).await {
                Ok(v) => match tx.commit().await {
                    Ok(()) => return Ok(v),
                    Err(e) if e.is_again() => {
                        log::debug!("xenstore transaction conflict, attempt {}", attempt + 1);
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // The transaction is useless now; a failure to abort it changes nothing.
                    let _ = tx.abort().await;
                    if !e.is_again() {
                        return Err(e);
                    }
                }
            }
        }
        Err(XenstoreError::Xs(XsErrno::EAGAIN))
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

fn value_to_string(v: Vec<u8>) -> Result<String, XenstoreError> {
    String::from_utf8(v).map_err(|_| XenstoreError::BadValue)
}

fn value_to_u64(v: &[u8]) -> Result<u64, XenstoreError> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(XenstoreError::BadValue);
    }
    core::str::from_utf8(v)
        .map_err(|_| XenstoreError::BadValue)?
        .parse()
        .map_err(|_| XenstoreError::BadValue)
}

fn value_to_u32(v: &[u8]) -> Result<u32, XenstoreError> {
    u32::try_from(value_to_u64(v)?).map_err(|_| XenstoreError::BadValue)
}

/// Waits for the reply to one request.
struct ReplyFuture<'a, T: Transport> {
    xs: &'a Xenstore<T>,
    req_id: u32,
    done: bool,
}

impl<T: Transport> Future for ReplyFuture<'_, T> {
    type Output = Result<Reply, XenstoreError>;

    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let req_id = self.req_id;
        let r = self.xs.with_core(|i| {
            if let Some(r) = i.core.poll_reply(req_id, None) {
                return Some(r);
            }
            i.drive(cx);
            let r = i.core.poll_reply(req_id, Some(cx.waker()));
            if r.is_some() {
                // We may have been the one registered with the transport.
                i.core.wake_waiters();
            }
            r
        });
        match r {
            Some(r) => {
                self.done = true;
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }
}

impl<T: Transport> Drop for ReplyFuture<'_, T> {
    #[inline(never)]
    fn drop(&mut self) {
        if !self.done {
            let id = self.req_id;
            self.xs.with_core(|i| {
                i.core.abandon(id);
                i.core.wake_waiters();
            });
        }
    }
}

/// A transaction: the same operations as [`Xenstore`], applied to a snapshot until
/// [`commit`](Transaction::commit). A handle is `Copy`; after it has ended, xenstored rejects
/// its id.
pub struct Transaction<'a, T: Transport> {
    xs: &'a Xenstore<T>,
    id: u32,
}

impl<T: Transport> Clone for Transaction<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Transport> Copy for Transaction<'_, T> {}

impl<'a, T: Transport> Transaction<'a, T> {
    /// The transaction id (the header's `tx_id`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Reads the value at `path`.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, XenstoreError> {
        self.xs.read_in(self.id, path).await
    }

    /// Reads the value at `path`, or `None` if it does not exist.
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, XenstoreError> {
        match self.read(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the value at `path` as UTF-8.
    pub async fn read_string(&self, path: &str) -> Result<String, XenstoreError> {
        value_to_string(self.read(path).await?)
    }

    /// Reads the value at `path` as an unsigned decimal `u32`.
    pub async fn read_u32(&self, path: &str) -> Result<u32, XenstoreError> {
        value_to_u32(&self.read(path).await?)
    }

    /// Writes `value` at `path`.
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XenstoreError> {
        self.xs.write_in(self.id, path, value.as_ref()).await
    }

    /// Lists the children of `path`.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, XenstoreError> {
        self.xs.directory_in(self.id, path).await
    }

    /// Creates `path` if it does not exist.
    pub async fn mkdir(&self, path: &str) -> Result<(), XenstoreError> {
        self.xs
            .request(self.id, Request::Mkdir(path))
            .await
            .map(drop)
    }

    /// Removes `path` and everything below it.
    pub async fn rm(&self, path: &str) -> Result<(), XenstoreError> {
        self.xs.request(self.id, Request::Rm(path)).await.map(drop)
    }

    /// The permissions of `path`.
    pub async fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XenstoreError> {
        self.xs.get_perms_in(self.id, path).await
    }

    /// Sets the permissions of `path`.
    pub async fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XenstoreError> {
        self.xs
            .request(self.id, Request::SetPerms(path, perms.to_vec()))
            .await
            .map(drop)
    }

    /// Commits; `EAGAIN` means another change conflicted and nothing was applied.
    pub async fn commit(self) -> Result<(), XenstoreError> {
        self.xs.transaction_end(self, true).await
    }

    /// Discards the transaction.
    pub async fn abort(self) -> Result<(), XenstoreError> {
        self.xs.transaction_end(self, false).await
    }
}

/// The events of one watch; see [`Xenstore::watch`]. Implements [`Stream`]; the stream ends
/// (after one error item) if the connection dies.
pub struct WatchStream<'a, T: Transport> {
    xs: &'a Xenstore<T>,
    path: String,
    token: String,
    active: bool,
}

impl<'a, T: Transport> WatchStream<'a, T> {
    /// The watched path, as registered.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Waits for the next event (`None` once the stream has ended).
    pub fn next_event(&mut self) -> NextEvent<'_, 'a, T> {
        NextEvent { stream: self }
    }

    /// Takes an event that has already arrived, without waiting or doing I/O.
    pub fn try_next(&mut self) -> Option<WatchEvent> {
        let token = self.token.as_str();
        match self.xs.with_core(|i| i.core.poll_watch_event(token, None)) {
            Poll::Ready(Some(Ok(ev))) => Some(ev),
            _ => None,
        }
    }
}

impl<T: Transport> Stream for WatchStream<'_, T> {
    type Item = Result<WatchEvent, XenstoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let token = this.token.as_str();
        let r = this.xs.with_core(|i| {
            if let Poll::Ready(r) = i.core.poll_watch_event(token, None) {
                return Poll::Ready(r);
            }
            i.drive(cx);
            let r = i.core.poll_watch_event(token, Some(cx.waker()));
            if r.is_ready() {
                i.core.wake_waiters();
            }
            r
        });
        if let Poll::Ready(None) = r {
            this.active = false;
        }
        r
    }
}

impl<T: Transport> Drop for WatchStream<'_, T> {
    fn drop(&mut self) {
        let (path, token) = (self.path.as_str(), self.token.as_str());
        let active = self.active;
        self.xs.with_core(|i| {
            if active && i.core.fatal_error().is_none() {
                let _ = i.core.start_unwatch(path, token, true);
            }
            i.core.wake_waiters();
        });
    }
}

/// Future of [`WatchStream::next_event`].
pub struct NextEvent<'s, 'a, T: Transport> {
    stream: &'s mut WatchStream<'a, T>,
}

impl<T: Transport> Future for NextEvent<'_, '_, T> {
    type Output = Option<Result<WatchEvent, XenstoreError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.stream).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::cell::Cell;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    /// A xenstored that never stops sending watch events (for a watch nobody set).
    struct Flood {
        msg: Vec<u8>,
        pos: usize,
        reads: Rc<Cell<usize>>,
    }

    impl Transport for Flood {
        fn write(&mut self, buf: &[u8]) -> Result<usize, XenstoreTransportError> {
            Ok(buf.len())
        }
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreTransportError> {
            self.reads.set(self.reads.get() + 1);
            // A regression loops here forever: fail instead.
            assert!(self.reads.get() < 1_000_000, "the read loop has no bound");
            for b in buf.iter_mut() {
                *b = self.msg[self.pos];
                self.pos = (self.pos + 1) % self.msg.len();
            }
            Ok(buf.len())
        }
        fn notify(&mut self) {}
        fn poll_readable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
        fn poll_writable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
    }

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn reads_per_poll_are_bounded_and_the_task_yields() {
        let mut msg = Vec::new();
        wire::encode_message(MsgType::WatchEvent, 0, 0, b"/flood\0token\0", &mut msg).unwrap();
        let reads = Rc::new(Cell::new(0));
        let xs = Xenstore::new(Flood {
            msg,
            pos: 0,
            reads: reads.clone(),
        });
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = core::pin::pin!(xs.read("/a"));
        for round in 1..=3 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let per_poll = reads.get();
            reads.set(0);
            assert!(
                per_poll * 512 <= MAX_READ_PER_POLL + 512,
                "{per_poll} reads in one poll"
            );
            // The task was told to come back: it yields rather than sleeping for good.
            assert_eq!(wakes.0.load(Ordering::SeqCst), round);
        }
    }
}
