//! The http-picoserve example's routes through the simulator (the whole path: a smoltcp peer,
//! simulated netback, netfront, `xenia::net`, the adapter, picoserve): each route's status,
//! content type and body are the http example's, `/echo` sends a body back byte for byte
//! (small and 256 KiB), past `MAX_BODY` it is 413, an unknown path 404, and keep-alive serves
//! several requests on one connection. One test: the runtime boots once a process.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use http::SystemInfo;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use xenia::net::{IpConfig, TcpListener};
use xenia_sim::netback::{Netback, VifConfig};
use xenia_sim::peer::PeerDevice;
use xenia_sim::{Backend, Host};

/// dom0's end of the link: 10.0.0.1, its TCP clients.
struct Peer {
    dev: PeerDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    next_port: u16,
}

struct PeerBackend(Rc<RefCell<Peer>>);

impl Backend for PeerBackend {
    fn step(&mut self, host: &mut Host) -> bool {
        let mut p = self.0.borrow_mut();
        let p = &mut *p;
        let now = Instant::from_micros((host.now_ns() / 1000) as i64);
        p.dev.take_moved();
        p.iface.poll(now, &mut p.dev, &mut p.sockets);
        p.dev.netback().pending_to_guest() > 0 && p.dev.take_moved()
    }
}

fn connect(peer: &Rc<RefCell<Peer>>, buf: usize) -> SocketHandle {
    let mut p = peer.borrow_mut();
    let p = &mut *p;
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    );
    p.next_port = if p.next_port >= 60000 {
        20000
    } else {
        p.next_port + 1
    };
    s.connect(
        p.iface.context(),
        (IpAddress::v4(10, 0, 0, 2), 80),
        p.next_port,
    )
    .unwrap();
    p.sockets.add(s)
}

/// Resets and frees a peer socket (after the reset went out).
async fn drop_socket(peer: &Rc<RefCell<Peer>>, h: SocketHandle) {
    peer.borrow_mut().sockets.get_mut::<tcp::Socket>(h).abort();
    xenia::sleep(Duration::from_millis(5)).await;
    peer.borrow_mut().sockets.remove(h);
}

/// Sends `req` on a new connection and reads until the server closes it (or 20 s).
async fn exchange(peer: &Rc<RefCell<Peer>>, req: &[u8]) -> Vec<u8> {
    let h = connect(peer, 512 * 1024);
    let start = xenia::time::Instant::now();
    let mut sent = 0;
    let mut got = Vec::new();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no end in 20 s: sent {sent}, got {}",
            String::from_utf8_lossy(&got)
        );
        {
            let mut p = peer.borrow_mut();
            let s = p.sockets.get_mut::<tcp::Socket>(h);
            xenia_sim::peer::exchange(s, req, &mut sent, &mut got);
            if !s.may_recv() && s.state() != tcp::State::SynSent {
                break;
            }
        }
        xenia::sleep(Duration::from_millis(1)).await;
    }
    drop_socket(peer, h).await;
    got
}

/// The status, the headers (lowercase names) and the body of one response.
fn parse(resp: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(resp)));
    let head = std::str::from_utf8(&resp[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers, resp[end + 4..].to_vec())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn info() -> SystemInfo {
    SystemInfo {
        uptime_ms: 4711,
        ..SystemInfo::default()
    }
}

#[test]
fn routes_answer_with_the_http_examples_bodies() {
    let sim = xenia_sim::runtime::boot();
    let nb = Netback::new(&sim, VifConfig::new(0));
    let mut dev = PeerDevice::new(nb.clone()).with_max_pending(256);
    let iface = dev.interface(13);
    let peer = Rc::new(RefCell::new(Peer {
        dev,
        iface,
        sockets: SocketSet::new(vec![]),
        next_port: 20000,
    }));
    sim.add_backend(Box::new(PeerBackend(peer.clone())));
    let app = Box::leak(Box::new(http_picoserve::app(info)));

    xenia::block_on(async move {
        let stack = xenia::net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        let listener = TcpListener::bind_on(stack, 80, http_picoserve::listen_config()).unwrap();
        xenia::spawn(http_picoserve::run(app, listener));

        let get =
            |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (st, h, body) = parse(&exchange(&peer, get("/").as_bytes()).await);
        assert_eq!((st, header(&h, "content-type")), (200, Some("text/html")));
        assert_eq!(body, http::INDEX.as_bytes());

        let (st, h, body) = parse(&exchange(&peer, get("/health").as_bytes()).await);
        assert_eq!(
            (st, header(&h, "content-type")),
            (200, Some("application/json"))
        );
        assert_eq!(body, b"{\"status\":\"ok\"}\n");

        let (st, _, body) = parse(&exchange(&peer, get("/stats").as_bytes()).await);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(st, 200);
        assert!(
            body.starts_with("{\"uptime_ms\":4711,\"requests\":"),
            "{body}"
        );
        assert!(body.contains("\"open_connections\":1,"), "{body}");

        let (st, _, _) = parse(&exchange(&peer, get("/nope").as_bytes()).await);
        assert_eq!(st, 404);

        for len in [13usize, 256 * 1024] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut req = format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes();
            req.extend_from_slice(&data);
            let (st, h, body) = parse(&exchange(&peer, &req).await);
            assert_eq!(st, 200);
            assert_eq!(header(&h, "content-length"), Some(len.to_string().as_str()));
            assert!(
                body == data,
                "echo of {len} bytes differs ({} back)",
                body.len()
            );
        }

        let req = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            http_picoserve::MAX_BODY + 1
        );
        let (st, _, _) = parse(&exchange(&peer, req.as_bytes()).await);
        assert_eq!(st, 413);

        // Keep-alive: three requests on one connection, the last one closing it.
        let ka = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2)
            + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let got = exchange(&peer, ka.as_bytes()).await;
        let n = got.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
        assert_eq!(n, 3, "{}", String::from_utf8_lossy(&got));
        assert_eq!(http_picoserve::stats().body_bytes, 0);
    });
}
