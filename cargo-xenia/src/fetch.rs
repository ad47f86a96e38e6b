//! `cargo xenia http-get URL [--wait S]`: a minimal HTTP/1.0 GET for scenarios in dom0.
//!
//! `cargo xenia test` copies itself into the nested VM's job (stripped) and gives the scenarios
//! the dom0 command `xenia_http_get URL [--wait S]`: dom0's busybox wget cannot be relied on
//! (it segfaults there resolving even a numeric address). Prints the response body; exits 0 on
//! a 2xx status, 1 otherwise. `--wait S` retries a refused or failed connection for up to S
//! seconds (the guest may still be bringing its network up). Each attempt is bounded by 10 s.

use crate::err;
use crate::error::Result;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The most of a response that is read.
const MAX_RESPONSE: u64 = 1 << 20;
/// One attempt's bound.
const ATTEMPT: Duration = Duration::from_secs(10);

/// `http://HOST[:PORT][/PATH]` → (address, host, path).
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| err!("{url}: only http:// URLs"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| err!("{url}: {e}"))?
        .next()
        .ok_or_else(|| err!("{url}: no address"))?;
    Ok((addr, hostport.to_string(), path.to_string()))
}

fn attempt(addr: &SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(addr, ATTEMPT)?;
    s.set_read_timeout(Some(ATTEMPT))?;
    s.set_write_timeout(Some(ATTEMPT))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut resp = Vec::new();
    s.take(MAX_RESPONSE).read_to_end(&mut resp)?;
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let status = std::str::from_utf8(&resp[..end])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status code"))?;
    Ok((status, resp[end + 4..].to_vec()))
}

/// Fetches `url`; returns the exit status.
pub fn http_get(url: &str, wait: Duration) -> Result<i32> {
    let (addr, host, path) = parse_url(url)?;
    let start = Instant::now();
    loop {
        match attempt(&addr, &host, &path) {
            Ok((status, body)) => {
                std::io::stdout()
                    .write_all(&body)
                    .map_err(|e| err!("stdout: {e}"))?;
                eprintln!("http-get {url}: status {status}");
                return Ok(if (200..300).contains(&status) { 0 } else { 1 });
            }
            Err(e) if start.elapsed() < wait => {
                eprintln!("http-get {url}: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(err!("http-get {url}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (a, h, p) = parse_url("http://10.0.0.2/health").unwrap();
        assert_eq!(a, "10.0.0.2:80".parse().unwrap());
        assert_eq!((h.as_str(), p.as_str()), ("10.0.0.2", "/health"));
        let (a, _, p) = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(a.port(), 8080);
        assert_eq!(p, "/");
        assert!(parse_url("https://x/").is_err());
    }

    #[test]
    fn fetches_from_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // The request may come in several writes: read up to the end of its head.
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "EOF before the end of the request head");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(req.starts_with(b"GET /x HTTP/1.0\r\n"));
            c.write_all(b"HTTP/1.0 200 OK\r\n\r\nbody").unwrap();
        });
        let (status, body) =
            attempt(&format!("127.0.0.1:{port}").parse().unwrap(), "h", "/x").unwrap();
        server.join().unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"body"[..]));
    }
}
