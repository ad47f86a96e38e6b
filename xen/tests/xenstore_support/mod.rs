//! Test support for the xenstore tests: a tiny single-threaded executor that detects stalls
//! and busy-polling, and a transport into the simulated xenstored with chunking, reply
//! reordering and fault injection.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use xenia_sim::xenstored::{ConnId, Xenstored, XenstoredError};
use xenia_xen::xenstore::wire::{FrameReader, Message};
use xenia_xen::xenstore::{Transport, XenstoreTransportError};

// ------------------------------------------------------------------------------------------
// Executor.

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Task<'a> {
    fut: Option<Pin<Box<dyn Future<Output = ()> + 'a>>>,
    flag: Arc<Flag>,
    waker: Waker,
}

/// Runs tasks on this thread. A task is polled only after its waker was woken, so a lost
/// wake-up shows up as a stall, and a future that wakes itself forever as a huge poll count.
pub struct Executor<'a> {
    tasks: Vec<Task<'a>>,
    pub polls: u64,
}

/// Upper bound on polls in one `run_until_stalled`; reaching it means something busy-polls.
pub const POLL_LIMIT: u64 = 200_000;

impl<'a> Executor<'a> {
    pub fn new() -> Self {
        Executor {
            tasks: Vec::new(),
            polls: 0,
        }
    }

    pub fn spawn(&mut self, f: impl Future<Output = ()> + 'a) {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        self.tasks.push(Task {
            fut: Some(Box::pin(f)),
            waker: Waker::from(flag.clone()),
            flag,
        });
    }

    /// Polls woken tasks until none is woken. Returns whether all tasks have finished.
    pub fn run_until_stalled(&mut self) -> bool {
        loop {
            let mut progressed = false;
            for t in &mut self.tasks {
                if t.fut.is_some() && t.flag.0.swap(false, Ordering::SeqCst) {
                    progressed = true;
                    self.polls += 1;
                    assert!(
                        self.polls < POLL_LIMIT,
                        "busy-polling: {} polls",
                        self.polls
                    );
                    let mut cx = Context::from_waker(&t.waker);
                    if let Some(f) = t.fut.as_mut() {
                        if f.as_mut().poll(&mut cx).is_ready() {
                            t.fut = None;
                        }
                    }
                }
            }
            if !progressed {
                return self.tasks.iter().all(|t| t.fut.is_none());
            }
        }
    }

    /// Runs until all tasks finish; panics on a stall (a lost wake-up or a reply that never
    /// comes).
    pub fn run(&mut self) {
        assert!(
            self.run_until_stalled(),
            "executor stalled with unfinished tasks"
        );
    }

    pub fn unfinished(&self) -> usize {
        self.tasks.iter().filter(|t| t.fut.is_some()).count()
    }
}

/// Runs one future to completion on a fresh executor.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let out = Rc::new(RefCell::new(None));
    {
        let o = out.clone();
        let mut ex = Executor::new();
        ex.spawn(async move {
            *o.borrow_mut() = Some(f.await);
        });
        ex.run();
    }
    let v = out.borrow_mut().take().expect("finished");
    v
}

// ------------------------------------------------------------------------------------------
// Transport.

/// A change to one message from the daemon, on its way to the client.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Deliver unchanged.
    None,
    /// Replace `req_id`.
    ReqId(u32),
    /// Replace the raw type.
    Type(u32),
    /// Replace `tx_id`.
    TxId(u32),
    /// Replace the payload (and `len` accordingly).
    Payload(Vec<u8>),
    /// Set `len` to this value without changing the bytes sent (beyond 4096: a framing
    /// violation).
    Len(u32),
    /// Deliver only the first `n` bytes of the message, then the connection breaks.
    TruncateAndClose(usize),
    /// Send these bytes before the message.
    Prefix(Vec<u8>),
    /// Drop the message.
    Drop,
    /// Deliver the message twice.
    Duplicate,
}

#[derive(Default)]
pub struct Counters {
    pub writes: u64,
    pub bytes_written: u64,
    pub reads: u64,
    pub notifies: u64,
    pub readable_pending: u64,
    /// `req_id`s of delivered messages, in delivery order.
    pub delivered: Vec<u32>,
}

/// A transport into a shared simulated xenstored.
pub struct TestTransport {
    pub xsd: Rc<RefCell<Xenstored>>,
    pub conn: ConnId,
    /// Most bytes per `write` call.
    pub max_write: usize,
    /// Most bytes per `read` call.
    pub max_read: usize,
    /// Faults for the next messages from the daemon, in order.
    pub faults: VecDeque<Fault>,
    /// Hold messages until this many are waiting, then deliver them in reverse order.
    pub reverse_batch: usize,
    /// Hold all messages until [`release`](Self::release).
    pub hold: bool,
    /// The one waker this transport keeps (the last registered).
    waker: Option<Waker>,
    held: Vec<Vec<u8>>,
    reader: FrameReader,
    ready: VecDeque<u8>,
    closed: bool,
    close_after_ready: bool,
    pub counters: Rc<RefCell<Counters>>,
}

impl TestTransport {
    pub fn new(xsd: &Rc<RefCell<Xenstored>>, domid: u16) -> TestTransport {
        let conn = xsd.borrow_mut().connect(domid);
        TestTransport {
            xsd: xsd.clone(),
            conn,
            max_write: usize::MAX,
            max_read: usize::MAX,
            faults: VecDeque::new(),
            reverse_batch: 0,
            hold: false,
            waker: None,
            held: Vec::new(),
            reader: FrameReader::new(),
            ready: VecDeque::new(),
            closed: false,
            close_after_ready: false,
            counters: Rc::new(RefCell::new(Counters::default())),
        }
    }

    /// Moves the daemon's output through the fault machinery into `ready`.
    fn pump(&mut self) {
        let bytes = self.xsd.borrow_mut().take_output(self.conn);
        let mut msgs = Vec::new();
        self.reader
            .push_all(&bytes, |m| msgs.push(m))
            .expect("the simulated daemon frames correctly");
        for m in msgs {
            let fault = self.faults.pop_front().unwrap_or(Fault::None);
            self.apply(fault, m);
        }
        if self.hold {
            return;
        }
        if self.reverse_batch > 0 && self.held.len() >= self.reverse_batch {
            while let Some(m) = self.held.pop() {
                self.deliver(m);
            }
        }
    }

    fn apply(&mut self, fault: Fault, m: Message) {
        let mut bytes = m.to_bytes();
        match fault {
            Fault::None => {}
            Fault::ReqId(v) => bytes[4..8].copy_from_slice(&v.to_le_bytes()),
            Fault::Type(v) => bytes[0..4].copy_from_slice(&v.to_le_bytes()),
            Fault::TxId(v) => bytes[8..12].copy_from_slice(&v.to_le_bytes()),
            Fault::Payload(p) => {
                bytes.truncate(16);
                bytes[12..16].copy_from_slice(&(p.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&p);
            }
            Fault::Len(v) => bytes[12..16].copy_from_slice(&v.to_le_bytes()),
            Fault::TruncateAndClose(n) => {
                bytes.truncate(n);
                self.close_after_ready = true;
            }
            Fault::Prefix(p) => self.ready.extend(p),
            Fault::Drop => return,
            Fault::Duplicate => {
                let dup = bytes.clone();
                self.queue(bytes);
                self.queue(dup);
                return;
            }
        }
        self.queue(bytes);
    }

    /// Starts holding all messages, like an event channel that stays silent: the daemon's
    /// output wakes nobody until [`release`](Self::release).
    pub fn hold_silently(&mut self) {
        self.hold = true;
        self.xsd
            .borrow_mut()
            .register_waker(self.conn, Waker::noop());
    }

    /// Stops holding: delivers held messages in order and wakes the registered waker.
    pub fn release(&mut self) {
        self.hold = false;
        for m in std::mem::take(&mut self.held) {
            self.deliver(m);
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn queue(&mut self, bytes: Vec<u8>) {
        if self.reverse_batch > 0 || self.hold {
            self.held.push(bytes);
        } else {
            self.deliver(bytes);
        }
    }

    fn deliver(&mut self, bytes: Vec<u8>) {
        if bytes.len() >= 8 {
            let id = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            self.counters.borrow_mut().delivered.push(id);
        }
        self.ready.extend(bytes);
    }
}

impl Transport for TestTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, XenstoreTransportError> {
        if self.closed {
            return Err(XenstoreTransportError::Closed);
        }
        let n = buf.len().min(self.max_write);
        {
            let mut c = self.counters.borrow_mut();
            c.writes += 1;
            c.bytes_written += n as u64;
        }
        match self.xsd.borrow_mut().feed(self.conn, &buf[..n]) {
            Ok(()) => Ok(n),
            Err(XenstoredError::Protocol(_)) => Err(XenstoreTransportError::Closed),
            Err(_) => Err(XenstoreTransportError::Closed),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreTransportError> {
        self.counters.borrow_mut().reads += 1;
        self.pump();
        if self.ready.is_empty() && self.close_after_ready {
            self.closed = true;
        }
        if self.closed {
            return Err(XenstoreTransportError::Closed);
        }
        let n = buf.len().min(self.max_read).min(self.ready.len());
        for (b, x) in buf.iter_mut().zip(self.ready.drain(..n)) {
            *b = x;
        }
        Ok(n)
    }

    fn notify(&mut self) {
        self.counters.borrow_mut().notifies += 1;
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.pump();
        if !self.ready.is_empty() || self.closed || self.close_after_ready {
            return Poll::Ready(());
        }
        self.counters.borrow_mut().readable_pending += 1;
        // One waker slot here and one per connection in the daemon: the most recent
        // registration wins.
        self.waker = Some(cx.waker().clone());
        if !self.hold {
            self.xsd.borrow_mut().register_waker(self.conn, cx.waker());
        }
        Poll::Pending
    }

    fn poll_writable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}
