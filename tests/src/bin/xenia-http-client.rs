//! dom0's HTTP test client for the `http` example (runs in dom0 of the nested-Xen tests).
//!
//! `xenia-http-client HOST PORT` checks every route (bodies included), keep-alive, 400, 404, a
//! large echo (once, then 32 times), 64 concurrent clients, and that `/health` and `/stats`
//! still answer afterwards. It prints one line per check, `ok NAME detail` or `FAIL NAME why`, and a last line
//! `summary pass=N fail=M`; exit status 0 only when nothing failed. Every socket has
//! timeouts, so it always ends.
//!
//! Two more modes help when a check fails now and then:
//! - `xenia-http-client HOST PORT --echo TIMES BYTES` (soak): TIMES echoes of BYTES, each on a
//!   new connection, with the same `FAIL`/`summary` lines;
//! - `xenia-http-client --serve PORT`: the same `/health` and `/echo` served by Linux (one
//!   thread per connection), to run the client against a server that is not Xenia.
//!
//! - `xenia-http-client HOST PORT --synflood ATTACKER RATE SECS` (the `http-synflood`
//!   scenario): a `/stats` baseline, then runs `ATTACKER HOST PORT RATE SECS` (the
//!   `xenia-synflood` binary) as a child process and, while it floods and for 10 s after, asks
//!   `GET /health` and `GET /stats` once a second, each on a new connection, printing every
//!   measurement as a `flood ...` line for the test to judge (see `synflood`).
//! - `xenia-http-client HOST PORT --slowloris ATTACKER SLOW HUGE SECS` (the `http-slowloris`
//!   scenario): the same, with `ATTACKER HOST PORT SLOW HUGE SECS` (the `xenia-slowloris`
//!   binary: slow heads and huge announced bodies) as the attacker.
//!
//! A differing echo is described by its differing byte ranges and the sent bytes nearest to
//! what came back, so a reordering, a stale buffer and random damage look different.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Reads one response (status line, headers, Content-Length body) from `s`, with `buf`
/// holding bytes read before.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Response, String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or_default();
            if version != "HTTP/1.1" {
                return Err(format!("bad status line {status_line:?}"));
            }
            let status: u16 = parts
                .next()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .ok_or("no Content-Length")?;
            let start = end + 4;
            while buf.len() < start + len {
                read_more(s, buf)?;
            }
            let body = buf[start..start + len].to_vec();
            buf.drain(..start + len);
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        read_more(s, buf)?;
    }
}

fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 16384];
    let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed early".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// One request on a new connection.
fn request(addr: SocketAddr, req: &[u8]) -> Result<Response, String> {
    request_within(addr, req, TIMEOUT)
}

/// One request on a new connection, with `timeout` for the connect and each read and write.
fn request_within(addr: SocketAddr, req: &[u8], timeout: Duration) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(req).map_err(|e| format!("write: {e}"))?;
    read_response(&mut s, &mut Vec::new())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: guest\r\n\r\n").into_bytes()
}

fn check_status(r: &Response, want: u16) -> Result<(), String> {
    if r.status == want {
        Ok(())
    } else {
        Err(format!(
            "status {} (want {want}), body {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ))
    }
}

fn route_index(a: SocketAddr) -> Result<String, String> {
    let r = request(a, &get("/"))?;
    check_status(&r, 200)?;
    let body = String::from_utf8_lossy(&r.body);
    if r.header("content-type") != Some("text/html") || !body.contains("<h1>Hello from a Xenia") {
        return Err(format!("not the page: {body:?}"));
    }
    Ok(format!("{} bytes of html", r.body.len()))
}

fn route_health(a: SocketAddr) -> Result<String, String> {
    let r = request(a, &get("/health"))?;
    check_status(&r, 200)?;
    if r.body != b"{\"status\":\"ok\"}\n" {
        return Err(format!("body {:?}", String::from_utf8_lossy(&r.body)));
    }
    Ok(String::from_utf8_lossy(&r.body).trim().to_string())
}

fn route_stats(a: SocketAddr) -> Result<String, String> {
    let r = request(a, &get("/stats"))?;
    check_status(&r, 200)?;
    let body = String::from_utf8_lossy(&r.body).trim().to_string();
    for key in [
        "\"uptime_ms\":",
        "\"requests\":",
        "\"heap_in_use\":",
        "\"packets_dropped\":",
    ] {
        if !body.contains(key) {
            return Err(format!("no {key} in {body:?}"));
        }
    }
    Ok(body)
}

fn echo(a: SocketAddr, len: usize) -> Result<String, String> {
    let body: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1021) as u8).collect();
    let mut req = format!("POST /echo HTTP/1.1\r\nContent-Length: {len}\r\n\r\n").into_bytes();
    req.extend_from_slice(&body);
    let t = Instant::now();
    let r = request(a, &req)?;
    check_status(&r, 200)?;
    if r.body != body {
        return Err(format!(
            "echo of {len} bytes differs ({} back): {}",
            r.body.len(),
            describe_difference(&body, &r.body)
        ));
    }
    Ok(format!("{len} bytes back identical in {:?}", t.elapsed()))
}

/// `times` echoes of `len` bytes, each on a new connection: a large echo that fails now and
/// then (a race) shows here.
fn echo_repeat(a: SocketAddr, times: usize, len: usize) -> Result<String, String> {
    let t = Instant::now();
    for i in 0..times {
        echo(a, len).map_err(|e| format!("echo {i} of {times}: {e}"))?;
    }
    Ok(format!(
        "{times} echoes of {len} bytes identical in {:?}",
        t.elapsed()
    ))
}

/// Where `got` differs from `want`: the differing ranges (up to 8), and for the first one
/// where its bytes come from in `want`, if they come from somewhere else in it.
fn describe_difference(want: &[u8], got: &[u8]) -> String {
    let n = want.len().min(got.len());
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n {
        if want[i] != got[i] {
            let start = i;
            // A range ends after 64 equal bytes in a row.
            let mut same = 0;
            while i < n && same < 64 {
                same = if want[i] == got[i] { same + 1 } else { 0 };
                i += 1;
            }
            ranges.push((start, i - same));
        } else {
            i += 1;
        }
    }
    let mut out = format!("{} differing range(s):", ranges.len());
    for (s, e) in ranges.iter().take(8) {
        out += &format!(" [{s:#x}..{e:#x}) ({} B)", e - s);
    }
    if let Some(&(s, e)) = ranges.first() {
        let w = &got[s..e.min(s + 16)];
        // The sent bytes nearest to what came back: their distance from where it belongs.
        let shift = want
            .windows(w.len())
            .enumerate()
            .filter(|(_, x)| *x == w)
            .map(|(j, _)| j as i64 - s as i64)
            .min_by_key(|d| d.abs());
        out += &format!(
            "; first: want {:02x?} got {:02x?}, nearest sent copy of those bytes at {}",
            &want[s..(s + 16).min(n)],
            &got[s..(s + 16).min(n)],
            shift.map_or("none".to_string(), |d| format!("{d:+} bytes"))
        );
    }
    out
}

fn keep_alive(a: SocketAddr, n: usize) -> Result<String, String> {
    let mut s = connect(a)?;
    let mut buf = Vec::new();
    for i in 0..n {
        let req: Vec<u8> = if i % 2 == 0 {
            get("/health")
        } else {
            let b = format!("request {i}");
            let mut r =
                format!("POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n", b.len()).into_bytes();
            r.extend_from_slice(b.as_bytes());
            r
        };
        s.write_all(&req).map_err(|e| format!("write {i}: {e}"))?;
        let r = read_response(&mut s, &mut buf).map_err(|e| format!("response {i}: {e}"))?;
        check_status(&r, 200)?;
        if r.header("connection") != Some("keep-alive") {
            return Err(format!("response {i} without keep-alive"));
        }
        if i % 2 == 1 && r.body != format!("request {i}").as_bytes() {
            return Err(format!("response {i}: wrong echo"));
        }
    }
    Ok(format!("{n} requests on one connection"))
}

fn status_only(a: SocketAddr, req: &[u8], want: u16) -> Result<String, String> {
    let r = request(a, req)?;
    check_status(&r, want)?;
    Ok(format!("status {}", r.status))
}

/// `n` clients at once, in one thread (dom0's C library is not one to trust with threads):
/// all connect first, then all send, then the answers are collected without blocking.
fn concurrent(a: SocketAddr, n: usize) -> Result<String, String> {
    let mut socks = Vec::new();
    for i in 0..n {
        socks.push(connect(a).map_err(|e| format!("client {i}: {e}"))?);
    }
    let t = Instant::now();
    for (i, s) in socks.iter_mut().enumerate() {
        let body = format!("client-{i}");
        let req = format!(
            "POST /echo HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("client {i}: write: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut done: Vec<Option<Result<(), String>>> = vec![None; n];
    while done.iter().any(Option::is_none) {
        if t.elapsed() > TIMEOUT {
            break;
        }
        let mut progress = false;
        for i in 0..n {
            if done[i].is_some() {
                continue;
            }
            let mut chunk = [0u8; 4096];
            match socks[i].read(&mut chunk) {
                Ok(0) => {
                    done[i] = Some(check_one(i, &bufs[i]));
                    progress = true;
                }
                Ok(k) => {
                    bufs[i].extend_from_slice(&chunk[..k]);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => done[i] = Some(Err(format!("client {i}: read: {e}"))),
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let ok = done.iter().filter(|d| matches!(d, Some(Ok(())))).count();
    if ok == n {
        return Ok(format!("{ok}/{n} answered in {:?}", t.elapsed()));
    }
    let errs: Vec<String> = done
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(e.clone()),
            None => Some(format!("client {i}: no answer in {TIMEOUT:?}")),
        })
        .take(5)
        .collect();
    Err(format!("{ok}/{n} answered; {}", errs.join("; ")))
}

/// Client `i`'s whole answer (the server closed after it): one 200 echoing `client-i`.
fn check_one(i: usize, got: &[u8]) -> Result<(), String> {
    let want = format!("client-{i}");
    let text = String::from_utf8_lossy(got);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("client {i}: incomplete answer {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200 ") || body != want {
        return Err(format!("client {i}: wrong answer {text:?}"));
    }
    Ok(())
}

/// How long a request of the flood mode may take before it counts as unanswered (well beyond
/// the 1 s the test asks for, so a slow answer is measured rather than lost).
const FLOOD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the flood the client keeps asking (beyond the guest's 3 s half-open timeout).
const AFTER_FLOOD: Duration = Duration::from_secs(10);

/// One `GET` of the flood mode: prints `flood KIND phase=PHASE t=SECS status=N ms=MS` and,
/// for `/stats`, the JSON body after it (or `err=WHY` when there is no answer); returns the
/// body of a 200.
fn flood_get(a: SocketAddr, path: &str, kind: &str, phase: &str, t0: Instant) -> Option<String> {
    let t = Instant::now();
    let r = request_within(a, &get(path), FLOOD_REQUEST_TIMEOUT);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let at = t.duration_since(t0).as_secs_f64();
    match r {
        Ok(r) => {
            let body = String::from_utf8_lossy(&r.body).trim().to_string();
            let shown = if kind == "stats" { body.as_str() } else { "" };
            println!(
                "flood {kind} phase={phase} t={at:.1} status={} ms={ms:.1} {shown}",
                r.status
            );
            (r.status == 200).then_some(body)
        }
        Err(e) => {
            println!("flood {kind} phase={phase} t={at:.1} status=0 ms={ms:.1} err={e}");
            None
        }
    }
}

/// `--synflood ATTACKER RATE SECS`: the normal client while `ATTACKER` floods the service
/// (see [`under_attack`]).
fn synflood(a: SocketAddr, attacker: &str, rate: &str, secs: &str) -> ! {
    under_attack(a, attacker, &[rate, secs], secs)
}

/// The normal client while `ATTACKER HOST PORT ARGS...` attacks the service for `secs`.
/// Prints `flood baseline JSON`, then per second a `flood health ...` and a `flood stats ...`
/// line (phase `during` while the attacker runs, `after` for [`AFTER_FLOOD`] once it ended),
/// `flood attacker exit=N secs=T`, and last `flood after JSON`, the `/stats` taken
/// [`AFTER_FLOOD`] after the flood. Exits 0 when the baseline, the attacker and the last
/// sample worked; judging the numbers is the test's job.
fn under_attack(a: SocketAddr, attacker: &str, attacker_args: &[&str], secs: &str) -> ! {
    let t0 = Instant::now();
    let fail = |why: String| -> ! {
        println!("FAIL synflood {why}");
        std::process::exit(1);
    };
    // Settle after the readiness probes, then the baseline (a /health, then /stats, as later).
    std::thread::sleep(Duration::from_secs(3));
    flood_get(a, "/health", "health", "before", t0);
    std::thread::sleep(Duration::from_secs(1));
    let Some(base) = flood_get(a, "/stats", "stats", "before", t0) else {
        fail("no baseline /stats".into())
    };
    println!("flood baseline {base}");
    let secs_n: u64 = secs.parse().unwrap_or(0);
    let host = a.ip().to_string();
    let port = a.port().to_string();
    let mut child = match std::process::Command::new(attacker)
        .args([host.as_str(), port.as_str()])
        .args(attacker_args)
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => fail(format!("cannot start {attacker}: {e}")),
    };
    let started = Instant::now();
    // The attacker's own bound: its schedule plus a margin, then it is killed.
    let deadline = Duration::from_secs(secs_n + 60);
    let mut tick = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if started.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                println!("FAIL synflood attacker still running after {deadline:?}: killed");
                break -1;
            }
            Ok(None) => {}
            Err(e) => fail(format!("waiting for the attacker: {e}")),
        }
        flood_get(a, "/health", "health", "during", t0);
        flood_get(a, "/stats", "stats", "during", t0);
        tick += Duration::from_secs(1);
        if let Some(w) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
    };
    let ended = Instant::now();
    println!(
        "flood attacker exit={status} secs={:.1}",
        ended.duration_since(started).as_secs_f64()
    );
    let mut tick = ended;
    while ended.elapsed() < AFTER_FLOOD {
        flood_get(a, "/health", "health", "after", t0);
        tick += Duration::from_secs(1);
        if let Some(w) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
    }
    let Some(after) = flood_get(a, "/stats", "stats", "after", t0) else {
        fail("no /stats after the flood".into())
    };
    println!("flood after {after}");
    std::process::exit(if status == 0 { 0 } else { 1 });
}

/// A check: a detail on success, why on failure.
type Check = dyn Fn() -> Result<String, String>;

/// `--serve PORT`: a plain HTTP/1.1 server answering `GET /health` and `POST /echo` like
/// the http example (one thread per connection), to compare the same client against a server
/// that is not Xenia (e.g. over dom0's loopback).
fn serve(port: u16) -> ! {
    let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
    for s in l.incoming().flatten() {
        std::thread::spawn(move || serve_one(s));
    }
    unreachable!("incoming() never ends")
}

fn serve_one(mut s: TcpStream) -> Result<(), String> {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 16384];
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        buf.drain(..end + 4);
        while buf.len() < len {
            read_more(&mut s, &mut buf)?;
        }
        let body: Vec<u8> = if head.starts_with("POST /echo ") {
            buf[..len].to_vec()
        } else {
            b"{\"status\":\"ok\"}\n".to_vec()
        };
        buf.drain(..len);
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        s.write_all(&out).map_err(|e| e.to_string())?;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--serve" {
        serve(args[2].parse().expect("port"));
    }
    let flood = args.len() == 7 && args[3] == "--synflood";
    let slowloris = args.len() == 8 && args[3] == "--slowloris";
    let echo_mode = args.len() == 6 && args[3] == "--echo";
    if !(args.len() == 3 || echo_mode || flood || slowloris) {
        eprintln!(
            "usage: xenia-http-client HOST PORT [--echo TIMES BYTES | --synflood ATTACKER RATE SECS \
             | --slowloris ATTACKER SLOW HUGE SECS] | xenia-http-client --serve PORT"
        );
        std::process::exit(2);
    }
    let addr = match (args[1].as_str(), args[2].parse::<u16>().unwrap_or(0))
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            eprintln!("bad address {} {}", args[1], args[2]);
            std::process::exit(2);
        }
    };
    // Wait for the service to listen (the guest may still be booting).
    let t = Instant::now();
    while request(addr, &get("/health")).is_err() {
        if t.elapsed() > Duration::from_secs(60) {
            println!("FAIL ready the service never answered");
            println!("summary pass=0 fail=1");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("ok ready after {:?}", t.elapsed());
    if flood {
        synflood(addr, &args[4], &args[5], &args[6]);
    }
    if slowloris {
        under_attack(addr, &args[4], &[&args[5], &args[6], &args[7]], &args[7]);
    }
    if args.len() == 6 {
        // Soak mode: one echo of BYTES, TIMES times, each on a new connection.
        let times: usize = args[4].parse().unwrap_or(1);
        let bytes: usize = args[5].parse().unwrap_or(256 * 1024);
        let mut fail = 0;
        for i in 0..times {
            if let Err(e) = echo(addr, bytes) {
                fail += 1;
                println!("FAIL echo {i}: {e}");
            }
        }
        println!("summary pass={} fail={fail}", times - fail);
        std::process::exit(if fail == 0 { 0 } else { 1 });
    }
    let checks: Vec<(&str, Box<Check>)> = vec![
        ("route-index", Box::new(move || route_index(addr))),
        ("route-health", Box::new(move || route_health(addr))),
        ("route-stats", Box::new(move || route_stats(addr))),
        ("echo-small", Box::new(move || echo(addr, 13))),
        ("echo-large", Box::new(move || echo(addr, 256 * 1024))),
        (
            "echo-repeat",
            Box::new(move || echo_repeat(addr, 32, 256 * 1024)),
        ),
        ("keep-alive", Box::new(move || keep_alive(addr, 10))),
        (
            "bad-request",
            Box::new(move || status_only(addr, b"THIS IS NOT HTTP\r\n\r\n", 400)),
        ),
        (
            "not-found",
            Box::new(move || status_only(addr, &get("/no/such/page"), 404)),
        ),
        ("concurrent", Box::new(move || concurrent(addr, 64))),
        ("health-after", Box::new(move || route_health(addr))),
        ("stats-after", Box::new(move || route_stats(addr))),
    ];
    let (mut pass, mut fail) = (0, 0);
    for (name, check) in checks {
        match check() {
            Ok(detail) => {
                pass += 1;
                println!("ok {name} {detail}");
            }
            Err(e) => {
                fail += 1;
                println!("FAIL {name} {e}");
            }
        }
    }
    println!("summary pass={pass} fail={fail}");
    std::process::exit(if fail == 0 { 0 } else { 1 });
}
