//! dom0's client for the nested lifecycle scenarios (`tests/tests/nested/lifecycle.rs`).
//!
//! `xenia-lifecycle-client HOST PORT NAME -- CMD...` holds one keep-alive HTTP connection to
//! the guest and asks `GET /health` on it, then runs `CMD` (an `xl save -c`, `xl save` +
//! `xl restore`, `xl migrate` ...) while a prober asks `GET /health` on a new connection every
//! 50 ms; after `CMD` it asks again on the kept connection. It prints, one line each:
//! - `ok NAME-before ...` / `FAIL NAME-before ...`: the kept connection answered before;
//! - `ok NAME-cmd ms=N` / `FAIL NAME-cmd ...`: the command succeeded, and how long it took;
//! - `ok NAME-same-connection ...` / `FAIL ...`: the kept connection answered after;
//! - `ok NAME-served-after ...` / `FAIL ...`: a new connection was answered after the command;
//! - `measure NAME gap_ms=N answered=M`: the longest gap between two answered probes while the
//!   command ran (the downtime a client saw) and how many probes were answered.
//!
//! `xenia-lifecycle-client --time NAME -- CMD...` runs `CMD` and prints `measure NAME ms=N`
//! (for timing the steps inside a composite command); it exits with `CMD`'s status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: guest\r\n\r\n";

/// Reads one HTTP/1.1 response (status and Content-Length body) from `s`.
fn read_response(s: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad status line in {head:?}"))?;
            let len: usize = head
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .ok_or("no Content-Length")?;
            while buf.len() < end + 4 + len {
                read_more(s, &mut buf)?;
            }
            return Ok((status, buf[end + 4..end + 4 + len].to_vec()));
        }
        read_more(s, &mut buf)?;
    }
}

fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// `GET /health` on `s`; Ok with the body if the status is 200.
fn health_on(s: &mut TcpStream) -> Result<String, String> {
    s.write_all(GET_HEALTH).map_err(|e| format!("write: {e}"))?;
    let (status, body) = read_response(s)?;
    let body = String::from_utf8_lossy(&body).to_string();
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("status {status}, body {body:?}"))
    }
}

/// `GET /health` on a new connection with `timeout` for each step.
fn health_new(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    health_on(&mut s)
}

fn report(name: &str, what: &str, r: Result<String, String>) -> bool {
    match r {
        Ok(d) => {
            println!("ok {name}-{what} {d}");
            true
        }
        Err(e) => {
            println!("FAIL {name}-{what} {e}");
            false
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 5 && args[1] == "--time" && args[3] == "--" {
        let t0 = Instant::now();
        let status = Command::new(&args[4]).args(&args[5..]).status();
        println!("measure {} ms={}", args[2], t0.elapsed().as_millis());
        std::process::exit(match status {
            Ok(s) => s.code().unwrap_or(1),
            Err(e) => {
                eprintln!("{}: {e}", args[4]);
                127
            }
        });
    }
    if args.len() < 6 || args[4] != "--" {
        eprintln!("usage: xenia-lifecycle-client HOST PORT NAME -- CMD...");
        std::process::exit(2);
    }
    let Some(addr) = format!("{}:{}", args[1], args[2])
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        eprintln!("bad address {} {}", args[1], args[2]);
        std::process::exit(2);
    };
    let name = args[3].as_str();
    let cmd = &args[5..];

    // The kept connection, once the guest is up (it may still be booting).
    let up_by = Instant::now() + Duration::from_secs(60);
    let mut kept = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > up_by => {
                println!("FAIL {name}-before connect: {e}");
                std::process::exit(1);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    // Generous timeouts on it: after a restore TCP must retransmit.
    let _ = kept.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = kept.set_write_timeout(Some(Duration::from_secs(60)));
    let mut ok = report(name, "before", health_on(&mut kept));

    // The prober: one request on a new connection every 50 ms, answers timestamped.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (stop, answers) = (stop.clone(), answers.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if health_new(addr, Duration::from_secs(2)).is_ok() {
                    answers.lock().unwrap().push(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    let t0 = Instant::now();
    let status = Command::new(&cmd[0]).args(&cmd[1..]).status();
    let cmd_ms = t0.elapsed().as_millis();
    let t_end = Instant::now();
    ok &= report(
        name,
        "cmd",
        match status {
            Ok(s) if s.success() => Ok(format!("ms={cmd_ms}")),
            Ok(s) => Err(format!("{cmd:?} exited with {s} after {cmd_ms} ms")),
            Err(e) => Err(format!("{cmd:?}: {e}")),
        },
    );

    // After the command: the kept connection, then a prober answer after the command ended.
    ok &= report(name, "same-connection", health_on(&mut kept));
    let deadline = Instant::now() + Duration::from_secs(30);
    let served_after = loop {
        if let Some(&last) = answers.lock().unwrap().last() {
            if last > t_end {
                break Ok(format!(
                    "first answer {} ms after the command",
                    last.duration_since(t_end).as_millis()
                ));
            }
        }
        if Instant::now() > deadline {
            break Err("no new connection answered within 30 s of the command".to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ok &= report(name, "served-after", served_after);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = prober.join();

    let answers = answers.lock().unwrap();
    let mut gap = Duration::ZERO;
    for w in answers.windows(2) {
        gap = gap.max(w[1].duration_since(w[0]));
    }
    println!(
        "measure {name} gap_ms={} answered={} cmd_ms={cmd_ms}",
        gap.as_millis(),
        answers.len()
    );
    std::process::exit(if ok { 0 } else { 1 });
}
