//! The server loop over in-memory streams on a virtual clock: routing, keep-alive, pipelining,
//! heads split anywhere, and every limit (head deadline, body rate, idle timeout, sizes, the
//! shared body budget), with the heap a connection holds counted by this binary's allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use xenia_http::{
    any, get, post, put, Clock, End, Json, Limits, MinRate, Request, Response, EVICT_MIN_STALL,
};
use xenia_http::{Router, Server, Status};

/// The system allocator, counting the bytes this thread holds (tests run on several threads).
struct Counting;

thread_local! {
    static IN_USE: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    let _ = IN_USE.try_with(|c| c.set(c.get() + n));
}

fn in_use() -> isize {
    IN_USE.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) };
        add(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: as above.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            add(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Virtual time: a timer that nothing else can beat moves the clock to its deadline at once;
/// a stream waiting for a later event moves it to that event.
#[derive(Default)]
struct VClock {
    now: Cell<Duration>,
    /// When the stream's next event is due (it waits until then).
    stream_due: Cell<Option<Duration>>,
    /// Time stands still: timers never fire.
    frozen: Cell<bool>,
}

impl Clock for VClock {
    fn now(&self) -> Duration {
        self.now.get()
    }

    fn sleep_until(&self, at: Duration) -> impl Future<Output = ()> {
        let c = self;
        std::future::poll_fn(move |cx| {
            if c.now.get() >= at {
                return Poll::Ready(());
            }
            if c.frozen.get() {
                return Poll::Pending;
            }
            match c.stream_due.get() {
                Some(due) if due < at => {
                    c.now.set(due.max(c.now.get()));
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                _ => {
                    c.now.set(at);
                    Poll::Ready(())
                }
            }
        })
    }
}

/// What a client does.
#[derive(Clone)]
enum Ev {
    /// Sends bytes.
    Send(Vec<u8>),
    /// Waits this long.
    Wait(Duration),
    /// Goes silent, never closing.
    Stall,
}

/// A client's script, delivered at most `chunk` bytes a read; what the server wrote.
struct Conn {
    clock: Rc<VClock>,
    script: VecDeque<Ev>,
    due: Option<Duration>,
    chunk: usize,
    out: Vec<u8>,
    reads: usize,
}

impl Conn {
    fn new(clock: &Rc<VClock>, script: Vec<Ev>, chunk: usize) -> Conn {
        Conn {
            clock: clock.clone(),
            script: script.into(),
            due: None,
            chunk,
            out: Vec::new(),
            reads: 0,
        }
    }
}

impl embedded_io_async::ErrorType for Conn {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for Conn {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.reads += 1;
        std::future::poll_fn(|_| loop {
            match self.script.front_mut() {
                None => return Poll::Ready(Ok(0)),
                Some(Ev::Stall) => return Poll::Pending,
                Some(Ev::Wait(d)) => {
                    let due = *self.due.get_or_insert(self.clock.now.get() + *d);
                    if self.clock.now.get() < due {
                        self.clock.stream_due.set(Some(due));
                        return Poll::Pending;
                    }
                    self.due = None;
                    self.clock.stream_due.set(None);
                    self.script.pop_front();
                }
                Some(Ev::Send(b)) => {
                    let n = buf.len().min(self.chunk).min(b.len());
                    buf[..n].copy_from_slice(&b[..n]);
                    b.drain(..n);
                    if b.is_empty() {
                        self.script.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
            }
        })
        .await
    }
}

impl embedded_io_async::Write for Conn {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Polls `f` to the end; a wait nothing will end (no wake) is a bug in the test or the loop.
fn run<F: Future>(f: F) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut f = pin!(f);
    for _ in 0..1_000_000 {
        flag.0.store(false, Ordering::Relaxed);
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        assert!(
            flag.0.load(Ordering::Relaxed),
            "the server waits for nothing"
        );
    }
    panic!("no end");
}

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|_| async { Response::html(Status::OK, "<h1>hi</h1>") }),
        )
        .route(
            "/health",
            get(|_| async { Response::json(Status::OK, Json::new().str("status", "ok").finish()) }),
        )
        .route(
            "/echo",
            post(|r: Request| async move { Response::bytes(Status::OK, r.into_body()) }),
        )
        .route(
            "/stats",
            get(|r: Request| async move {
                let s = r.server();
                Response::json(Status::OK, Json::new().num("requests", s.requests).finish())
            }),
        )
        .route(
            "/kv/*",
            any(|r: Request| async move {
                let q = r.query().unwrap_or("").to_string();
                Response::text(Status::OK, format!("{} {} {q}", r.method(), r.path()))
            }),
        )
        .route(
            "/kv/special",
            put(|_| async { Response::text(Status::CREATED, "special") }),
        )
}

fn limits() -> Limits {
    Limits {
        max_connections: 4,
        max_head: 1024,
        max_body: 64 * 1024,
        max_body_total: 100 * 1024,
        idle_timeout: Duration::from_secs(60),
        head_timeout: Duration::from_secs(10),
        body_rate: MinRate {
            bytes: 1000,
            per: Duration::from_secs(5),
        },
        write_timeout: Duration::from_secs(30),
        error_timeout: Duration::from_secs(2),
    }
}

#[derive(Debug, PartialEq)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse(mut buf: &[u8]) -> Vec<Resp> {
    let mut v = Vec::new();
    while !buf.is_empty() {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut h);
        let n = match r.parse(buf).expect("a response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response"),
        };
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.into(), String::from_utf8_lossy(h.value).into()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .unwrap()
            .1
            .parse()
            .unwrap();
        v.push(Resp {
            status: r.code.unwrap(),
            headers,
            body: buf[n..n + len].to_vec(),
        });
        buf = &buf[n + len..];
    }
    v
}

/// Runs one connection with `script`; how it ended, the responses, and the virtual time.
fn serve_with(server: &Server, script: Vec<Ev>, chunk: usize) -> (End, Vec<Resp>, Duration) {
    let clock = Rc::new(VClock::default());
    let mut c = Conn::new(&clock, script, chunk);
    let end = run(server.serve(&mut c, &*clock));
    (end, parse(&c.out), clock.now.get())
}

fn serve(input: &[u8], chunk: usize) -> (End, Vec<Resp>) {
    let s = Server::new(app(), limits());
    let (e, r, _) = serve_with(&s, vec![Ev::Send(input.to_vec())], chunk);
    (e, r)
}

fn codes(r: &[Resp]) -> Vec<u16> {
    r.iter().map(|r| r.status).collect()
}

#[test]
fn routes_methods_and_prefixes() {
    let (end, r) = serve(
        b"GET / HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n\
          DELETE /health HTTP/1.1\r\n\r\nGET /kv/a/b?x=1 HTTP/1.1\r\n\r\nPUT /kv/special HTTP/1.1\r\n\r\n\
          GET /kv/special HTTP/1.1\r\n\r\nGET /kv HTTP/1.1\r\n\r\n",
        1000,
    );
    assert_eq!(end, End::ClientClosed);
    assert_eq!(codes(&r), [200, 200, 404, 405, 200, 201, 405, 404]);
    assert_eq!(r[0].header("content-type"), Some("text/html"));
    assert_eq!(r[1].body, b"{\"status\":\"ok\"}\n");
    assert_eq!(r[2].body, b"not found\n");
    assert_eq!(r[3].body, b"method not allowed\n");
    assert_eq!(r[4].body, b"GET /kv/a/b x=1");
    assert_eq!(r[5].body, b"special");
}

#[test]
fn keep_alive_pipelining_and_close() {
    let (end, r) = serve(
        b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /stats HTTP/1.1\r\n\r\n\r\n\
          GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
        1000,
    );
    assert_eq!(end, End::Closed, "HTTP/1.0 closes");
    assert_eq!(codes(&r), [200, 200, 200]);
    assert_eq!(r[0].body, b"hello");
    assert_eq!(r[1].body, b"{\"requests\":2}\n");
    assert_eq!(r[0].header("connection"), Some("keep-alive"));
    assert_eq!(r[2].header("connection"), Some("close"));
    let (end, r) = serve(
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        7,
    );
    assert_eq!((end, codes(&r)), (End::Closed, vec![200]));
}

#[test]
fn split_at_every_byte_answers_the_same() {
    let req: &[u8] = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello worldGET /kv/k?q HTTP/1.1\r\n\r\n";
    let (end, whole) = serve(req, 10_000);
    assert_eq!(end, End::ClientClosed);
    assert_eq!(codes(&whole), [200, 200]);
    for split in 1..req.len() {
        let s = Server::new(app(), limits());
        let script = vec![
            Ev::Send(req[..split].to_vec()),
            Ev::Wait(Duration::from_millis(1)),
            Ev::Send(req[split..].to_vec()),
        ];
        let (end, r, _) = serve_with(&s, script, 10_000);
        assert_eq!((end, &r), (End::ClientClosed, &whole), "split at {split}");
    }
    // One byte a read.
    assert_eq!(serve(req, 1).1, whole);
}

#[test]
fn bad_requests_get_their_status_and_close() {
    for (req, code) in [
        (&b"NOT HTTP AT ALL\r\n\r\n"[..], 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: g", 400),
    ] {
        let (end, r) = serve(req, 1000);
        assert_eq!(codes(&r), [code], "{}", String::from_utf8_lossy(req));
        assert_eq!(end, End::Closed);
        assert_eq!(r[0].header("connection"), Some("close"));
    }
    let mut big = b"GET / HTTP/1.1\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2000));
    let (end, r) = serve(&big, 100);
    assert_eq!((end, codes(&r)), (End::Closed, vec![431]));
}

#[test]
fn a_slow_head_gets_408_at_its_deadline() {
    let s = Server::new(app(), limits());
    // One byte a second: the head is still short of its end at 10 s.
    let head = b"GET /health HTTP/1.1\r\nHost: slowloris\r\n\r\n";
    let mut script = Vec::new();
    for &b in head {
        script.push(Ev::Send(vec![b]));
        script.push(Ev::Wait(Duration::from_secs(1)));
    }
    let (end, r, t) = serve_with(&s, script, 1000);
    assert_eq!((end, codes(&r)), (End::TimedOut, vec![408]));
    assert_eq!(
        t,
        Duration::from_secs(10),
        "408 at the head deadline from the first byte"
    );
    assert_eq!(s.stats().timeouts, 1);
    // The same head at 100 ms a byte makes it.
    let mut script = Vec::new();
    for &b in head {
        script.push(Ev::Send(vec![b]));
        script.push(Ev::Wait(Duration::from_millis(100)));
    }
    let (end, r, _) = serve_with(&s, script, 1000);
    assert_eq!((end, codes(&r)), (End::ClientClosed, vec![200]));
}

#[test]
fn idle_connections_close_without_an_answer() {
    let s = Server::new(app(), limits());
    // A new connection gets the head timeout for its first request, from its start.
    let (end, r, t) = serve_with(&s, vec![Ev::Stall], 1000);
    assert_eq!(
        (end, r.len(), t),
        (End::TimedOut, 0, Duration::from_secs(10))
    );
    let late = vec![
        Ev::Wait(Duration::from_secs(8)),
        Ev::Send(b"GET / HTTP/1.1\r\n".to_vec()),
        Ev::Stall,
    ];
    let (end, r, t) = serve_with(&s, late, 1000);
    assert_eq!(
        (end, codes(&r), t),
        (End::TimedOut, vec![408], Duration::from_secs(10))
    );
    // Between keep-alive requests too.
    let (end, r, t) = serve_with(
        &s,
        vec![Ev::Send(b"GET / HTTP/1.1\r\n\r\n".to_vec()), Ev::Stall],
        1000,
    );
    assert_eq!(
        (end, codes(&r), t),
        (End::TimedOut, vec![200], Duration::from_secs(60))
    );
}

#[test]
fn a_promised_body_that_never_comes_costs_a_read_buffer_and_gets_408() {
    let s = Server::new(app(), limits());
    let before = in_use();
    let clock = Rc::new(VClock::default());
    let mut c = Conn::new(
        &clock,
        vec![
            Ev::Send(b"POST /echo HTTP/1.1\r\nContent-Length: 65536\r\n\r\nab".to_vec()),
            Ev::Stall,
        ],
        1000,
    );
    let mut peak = 0;
    let end = {
        let mut f = pin!(s.serve(&mut c, &*clock));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        loop {
            let p = f.as_mut().poll(&mut Context::from_waker(&waker));
            peak = peak.max(in_use() - before);
            if let Poll::Ready(e) = p {
                break e;
            }
        }
    };
    assert_eq!(end, End::TimedOut);
    assert_eq!(codes(&parse(&c.out)), [408]);
    assert_eq!(
        clock.now.get(),
        Duration::from_secs(5),
        "at the body-rate deadline"
    );
    // A 512-byte read buffer, a 4 KiB first body chunk and the parsed head; not 64 KiB.
    assert!(
        peak < 8 * 1024,
        "peak heap {peak} bytes for a 64 KiB promise"
    );
    assert_eq!(s.stats().body_bytes, 0, "the budget is given back");
}

#[test]
fn a_body_must_keep_the_minimum_rate() {
    let s = Server::new(app(), limits());
    // 1000 bytes every 4 s: slow but within 1000 per 5 s.
    let mut script = vec![Ev::Send(
        b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec(),
    )];
    for _ in 0..5 {
        script.push(Ev::Wait(Duration::from_secs(4)));
        script.push(Ev::Send(vec![b'x'; 1000]));
    }
    let (end, r, _) = serve_with(&s, script, 100);
    assert_eq!((end, codes(&r)), (End::ClientClosed, vec![200]));
    assert_eq!(r[0].body.len(), 5000);
    // 999 bytes every 4 s is too slow: 408 five seconds after the window started.
    let mut script = vec![Ev::Send(
        b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec(),
    )];
    for _ in 0..5 {
        script.push(Ev::Wait(Duration::from_secs(4)));
        script.push(Ev::Send(vec![b'x'; 999]));
    }
    let (end, r, t) = serve_with(&s, script, 100);
    assert_eq!((end, codes(&r)), (End::TimedOut, vec![408]));
    assert_eq!(t, Duration::from_secs(5));
}

#[test]
fn bodies_share_one_budget() {
    let s = Server::new(app(), limits());
    // Two connections hold 60 KiB each at once: the second goes past the 100 KiB budget.
    let clock = Rc::new(VClock::default());
    let body = vec![b'y'; 60 * 1024];
    let mut req = b"POST /echo HTTP/1.1\r\nContent-Length: 61440\r\n\r\n".to_vec();
    req.extend_from_slice(&body[..60 * 1024 - 1]);
    let mut a = Conn::new(&clock, vec![Ev::Send(req.clone()), Ev::Stall], 4096);
    let mut b = Conn::new(&clock, vec![Ev::Send(req), Ev::Send(vec![b'y'])], 4096);
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut fa = pin!(s.serve(&mut a, &*clock));
    // Poll `a` until it holds its body (all but the last byte), time standing still.
    clock.frozen.set(true);
    for _ in 0..100 {
        let p = fa.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(p.is_pending());
    }
    clock.frozen.set(false);
    assert!(s.stats().body_bytes >= 60 * 1024, "{:?}", s.stats());
    let end_b = run(s.serve(&mut b, &*clock));
    assert_eq!(end_b, End::Closed);
    assert_eq!(codes(&parse(&b.out)), [503]);
}

#[test]
fn the_stats_count_connections_and_requests() {
    let s = Server::new(app(), limits());
    for _ in 0..3 {
        serve_with(
            &s,
            vec![Ev::Send(
                b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
            )],
            99,
        );
    }
    let st = s.stats();
    assert_eq!(
        (st.connections, st.open_connections, st.requests),
        (3, 0, 6)
    );
}

#[test]
fn a_full_server_evicts_the_stalest_slow_client_for_a_new_one() {
    let l = Limits {
        max_connections: 3,
        ..limits()
    };
    let s = Server::new(app(), l);
    let clock = Rc::new(VClock::default());
    clock.frozen.set(true);
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    // Two slow clients: one mid-head since t=0, one idle after a keep-alive request at t=1.
    let mut a = Conn::new(&clock, vec![Ev::Send(b"GET / HT".to_vec()), Ev::Stall], 100);
    let mut b = Conn::new(
        &clock,
        vec![Ev::Send(b"GET / HTTP/1.1\r\n\r\n".to_vec()), Ev::Stall],
        100,
    );
    let mut fa = Box::pin(s.serve(&mut a, &*clock));
    assert!(fa.as_mut().poll(&mut cx).is_pending());
    clock.now.set(Duration::from_secs(1));
    let mut fb = Box::pin(s.serve(&mut b, &*clock));
    assert!(fb.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.stats().open_connections, 2);
    // The third (another slow head) fills the server: the idle one goes first (it has no
    // request to lose).
    clock.now.set(Duration::from_secs(2));
    let mut c = Conn::new(&clock, vec![Ev::Send(b"GET /x".to_vec()), Ev::Stall], 100);
    let mut fc = Box::pin(s.serve(&mut c, &*clock));
    flag.0.store(false, Ordering::Relaxed);
    assert!(fc.as_mut().poll(&mut cx).is_pending());
    assert!(flag.0.load(Ordering::Relaxed), "the victim was woken");
    assert_eq!(fb.as_mut().poll(&mut cx), Poll::Ready(End::Evicted));
    drop(fb);
    assert_eq!(
        codes(&parse(&b.out)),
        [200],
        "an idle connection closes without another answer"
    );
    assert!(
        fa.as_mut().poll(&mut cx).is_pending(),
        "the head in progress stays"
    );
    // A fourth: now the oldest slow head goes (the third's is newer, and the fourth itself,
    // new and not read yet, counts from its start).
    let mut d = Conn::new(
        &clock,
        vec![Ev::Send(b"GET / HTTP/1.1\r\n\r\n".to_vec())],
        100,
    );
    let mut fd = Box::pin(s.serve(&mut d, &*clock));
    assert_eq!(fd.as_mut().poll(&mut cx), Poll::Ready(End::ClientClosed));
    drop(fd);
    assert_eq!(codes(&parse(&d.out)), [200]);
    assert_eq!(fa.as_mut().poll(&mut cx), Poll::Ready(End::Evicted));
    drop(fa);
    assert_eq!(codes(&parse(&a.out)), [408]);
    assert!(fc.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.stats().evictions, 2);
}

#[test]
fn a_new_connection_is_not_evicted_before_older_slow_ones() {
    let s = Server::new(
        app(),
        Limits {
            max_connections: 3,
            ..limits()
        },
    );
    let clock = Rc::new(VClock::default());
    clock.frozen.set(true);
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    // A slowloris client mid-head since t=0; a new client at t=5 whose bytes are not read
    // yet; at t=6 a third fills the server: the slow one goes, not the new one.
    let mut slow = Conn::new(&clock, vec![Ev::Send(b"GET / HT".to_vec()), Ev::Stall], 100);
    let mut fresh = Conn::new(&clock, vec![Ev::Stall], 100);
    let mut f_slow = Box::pin(s.serve(&mut slow, &*clock));
    assert!(f_slow.as_mut().poll(&mut cx).is_pending());
    clock.now.set(Duration::from_secs(5));
    let mut f_fresh = Box::pin(s.serve(&mut fresh, &*clock));
    assert!(f_fresh.as_mut().poll(&mut cx).is_pending());
    clock.now.set(Duration::from_secs(6));
    let mut third = Conn::new(&clock, vec![Ev::Stall], 100);
    let mut f_third = Box::pin(s.serve(&mut third, &*clock));
    assert!(f_third.as_mut().poll(&mut cx).is_pending());
    assert_eq!(f_slow.as_mut().poll(&mut cx), Poll::Ready(End::Evicted));
    assert!(
        f_fresh.as_mut().poll(&mut cx).is_pending(),
        "the new one stays"
    );
}

#[test]
fn busy_keep_alive_clients_are_not_evicted_for_newcomers() {
    let s = Server::new(
        app(),
        Limits {
            max_connections: 3,
            ..limits()
        },
    );
    let clock = Rc::new(VClock::default());
    clock.frozen.set(true);
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    // Two keep-alive clients between requests (answered at t=1, the next not yet sent).
    clock.now.set(Duration::from_secs(1));
    let req = || vec![Ev::Send(b"GET / HTTP/1.1\r\n\r\n".to_vec()), Ev::Stall];
    let mut a = Conn::new(&clock, req(), 100);
    let mut b = Conn::new(&clock, req(), 100);
    let mut fa = Box::pin(s.serve(&mut a, &*clock));
    let mut fb = Box::pin(s.serve(&mut b, &*clock));
    assert!(fa.as_mut().poll(&mut cx).is_pending());
    assert!(fb.as_mut().poll(&mut cx).is_pending());
    // A newcomer fills the server a moment later: nobody has stalled long enough to go.
    clock.now.set(Duration::from_secs(1) + EVICT_MIN_STALL / 2);
    let mut c = Conn::new(&clock, vec![Ev::Stall], 100);
    let mut fc = Box::pin(s.serve(&mut c, &*clock));
    assert!(fc.as_mut().poll(&mut cx).is_pending());
    assert!(
        fa.as_mut().poll(&mut cx).is_pending(),
        "a busy client stays"
    );
    assert!(
        fb.as_mut().poll(&mut cx).is_pending(),
        "a busy client stays"
    );
    assert_eq!(s.stats().evictions, 0);
    drop(fc);
    // Later the same two have stalled: the next newcomer evicts the longest idle.
    clock.now.set(Duration::from_secs(3));
    let mut d = Conn::new(&clock, vec![Ev::Stall], 100);
    let mut fd = Box::pin(s.serve(&mut d, &*clock));
    assert!(fd.as_mut().poll(&mut cx).is_pending());
    let ends = (fa.as_mut().poll(&mut cx), fb.as_mut().poll(&mut cx));
    assert!(
        matches!(
            ends,
            (Poll::Ready(End::Evicted), Poll::Pending) | (Poll::Pending, Poll::Ready(End::Evicted))
        ),
        "{ends:?}"
    );
}
