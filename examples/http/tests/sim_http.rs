//! The whole example path on the host: a client on a smoltcp peer (the simulated dom0 side of
//! the link) → simulated netback → netfront → `xenia::net` → the HTTP service → back. Routes,
//! keep-alive, 400, 404, a 1 MiB echo, 64 concurrent clients, and hostile netback responses.
//! One test: the runtime boots once a process.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use http::{SystemInfo, MAX_BODY};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use xenia::net::{IpConfig, Ipv4Addr, ListenConfig, TcpListener};
use xenia_http::Server;
use xenia_sim::netback::Fault;
use xenia_sim::peer_host::PeerHost;
use xenia_sim::runtime::{boot_with_peer, Rig};

#[derive(Debug)]
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

/// Complete responses at the start of `buf`, and how many bytes they took.
fn parse_responses(buf: &[u8]) -> (Vec<Response>, usize) {
    let mut v = Vec::new();
    let mut at = 0;
    loop {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut h);
        let n = match r.parse(&buf[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => break,
            Err(e) => panic!("bad response: {e:?}"),
        };
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .expect("content-length")
            .1
            .parse()
            .unwrap();
        if buf.len() < at + n + len {
            break;
        }
        v.push(Response {
            status: r.code.unwrap(),
            headers,
            body: buf[at + n..at + n + len].to_vec(),
        });
        at += n + len;
    }
    (v, at)
}

/// Connects from the peer to port 80, sends `req`, and reads until `want` responses came (or
/// the server closed). Waits in 1 ms steps of simulated time, at most 60 s.
async fn exchange(peer: &Rc<RefCell<PeerHost>>, req: &[u8], want: usize) -> (Vec<Response>, bool) {
    exchange_on(peer, 80, req, want).await
}

/// [`exchange`] with the server on `port`.
async fn exchange_on(
    peer: &Rc<RefCell<PeerHost>>,
    port: u16,
    req: &[u8],
    want: usize,
) -> (Vec<Response>, bool) {
    let h = peer
        .borrow_mut()
        .connect((IpAddress::v4(10, 0, 0, 2), port), 65535);
    let mut sent = 0;
    let mut got = Vec::new();
    let start = xenia::time::Instant::now();
    let closed = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "client stuck: sent {sent}/{}, got {} bytes",
            req.len(),
            got.len()
        );
        {
            let mut p = peer.borrow_mut();
            let s = p.sockets.get_mut::<tcp::Socket>(h);
            xenia_sim::peer::exchange(s, req, &mut sent, &mut got);
            if parse_responses(&got).0.len() >= want {
                break false;
            }
            if !s.may_recv() && s.state() != tcp::State::SynSent {
                break true;
            }
        }
        xenia::sleep(Duration::from_millis(1)).await;
    };
    {
        let mut p = peer.borrow_mut();
        p.sockets.get_mut::<tcp::Socket>(h).close();
    }
    // Let the close go out, then free the socket.
    xenia::sleep(Duration::from_millis(5)).await;
    peer.borrow_mut().sockets.remove(h);
    let (r, used) = parse_responses(&got);
    assert_eq!(used, got.len(), "trailing bytes after the responses");
    (r, closed)
}

fn info() -> SystemInfo {
    let st = xenia::net::stats();
    SystemInfo {
        uptime_ms: 0,
        heap_in_use: 0,
        rx_packets: st.device.rx_packets,
        tx_packets: st.device.tx_packets,
        packets_dropped: st.drops(),
        tcp_half_open: st.tcp_half_open,
        tcp_syn_dropped: st.tcp_syn_dropped,
        tcp_orphans: st.tcp_orphans,
        tcp_reaped: st.tcp_reaped,
        tcp_sockets: st.sockets,
    }
}

#[test]
fn http_service_end_to_end_over_the_simulated_link() {
    let Rig {
        sim,
        netback: nb,
        peer,
    } = boot_with_peer(64, 7, 40000);
    let server: &'static Server = Box::leak(Box::new(Server::new(http::app(info), http::limits())));
    let polls0 = sim.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);

    let nb2 = nb.clone();
    let stats = xenia::block_on(async move {
        let nb = nb2;
        let stack = xenia::net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(stack.ipv4(), Some((Ipv4Addr::new(10, 0, 0, 2), 24)));
        let listener = TcpListener::bind_on(
            stack,
            80,
            http::limits().listen_config(ListenConfig {
                backlog: 64,
                ..ListenConfig::default()
            }),
        )
        .unwrap();
        assert!(matches!(
            TcpListener::bind_on(stack, 80, ListenConfig::default()),
            Err(xenia::NetError::AddrInUse(80))
        ));
        xenia::spawn(server.run(listener));

        // Every route, keep-alive: several requests on one connection.
        let (r, closed) = exchange(
            &peer,
            b"GET / HTTP/1.1\r\nHost: g\r\n\r\nGET /health HTTP/1.1\r\n\r\nGET /stats HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            4,
        )
        .await;
        assert!(!closed);
        assert_eq!(
            r.iter().map(|r| r.status).collect::<Vec<_>>(),
            [200, 200, 200, 200]
        );
        assert!(String::from_utf8_lossy(&r[0].body).contains("Xenia"));
        assert_eq!(r[1].body, b"{\"status\":\"ok\"}\n");
        let st = String::from_utf8(r[2].body.clone()).unwrap();
        assert!(st.contains("\"requests\":3,"), "{st}");
        assert!(st.contains("\"rx_packets\":"), "{st}");
        assert_eq!(r[3].body, b"hello");
        assert!(r
            .iter()
            .all(|r| r.header("connection") == Some("keep-alive")));

        // 404, then 400 (which closes the connection).
        let (r, _) = exchange(&peer, b"GET /missing HTTP/1.1\r\n\r\n", 1).await;
        assert_eq!(r[0].status, 404);
        let (r, closed) = exchange(&peer, b"NOT HTTP AT ALL\r\n\r\n", 2).await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, 400);
        assert!(closed, "the server closes after a 400");

        // A 1 MiB echo, byte for byte.
        let body: Vec<u8> = (0..MAX_BODY).map(|i| (i * 7 + i / 1021) as u8).collect();
        let mut req = format!(
            "POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let t = xenia::time::Instant::now();
        let (r, _) = exchange(&peer, &req, 1).await;
        eprintln!("1 MiB echo took {:?} of simulated time", t.elapsed());
        assert_eq!(r[0].status, 200);
        assert!(r[0].body == body, "the 1 MiB echo differs");

        // A listener granted fewer body bytes than the limits ask (as a small domain's memory
        // budget grants, `xenia::net::budget`): the server keeps its bodies within the grant.
        let small: &'static Server =
            Box::leak(Box::new(Server::new(http::app(info), http::limits())));
        let granted = ListenConfig {
            app_bytes_shared: 64 * 1024,
            ..http::limits().listen_config(ListenConfig::default())
        };
        let l81 = TcpListener::bind_on(stack, 81, granted).unwrap();
        xenia::spawn(small.run(l81));
        xenia::sleep(Duration::from_millis(1)).await;
        assert_eq!(small.max_body_total(), 64 * 1024);
        assert_eq!(server.max_body_total(), http::MAX_BODY_TOTAL);
        let post = |n: usize| {
            let mut r = format!("POST /echo HTTP/1.1\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            r.resize(r.len() + n, b'x');
            r
        };
        let (r, _) = exchange_on(&peer, 81, &post(100 * 1024), 1).await;
        assert_eq!(r[0].status, 413, "a body larger than the granted total");
        let (r, _) = exchange_on(&peer, 81, &post(32 * 1024), 1).await;
        assert_eq!(r[0].status, 200, "a body within it");
        assert_eq!(r[0].body.len(), 32 * 1024);

        // 64 clients at once, all answered.
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let p = peer.clone();
            tasks.push(xenia::spawn(async move {
                exchange(&p, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", 1)
                    .await
                    .0
            }));
        }
        for t in tasks {
            let r = t.await;
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].body, b"{\"status\":\"ok\"}\n");
        }

        // Failures a backend may report (error statuses) and extra-info slots: each frame is
        // dropped by netfront and counted; TCP retransmits what was lost and the service keeps
        // answering.
        let drops0 = xenia::net::stats().drops();
        for f in [
            Fault::RxErrorStatus,
            Fault::RxExtraInfo,
            Fault::TxErrorStatus,
        ] {
            nb.fault(f);
            let (r, _) = exchange(&peer, b"GET /health HTTP/1.1\r\n\r\n", 1).await;
            assert_eq!(r.len(), 1, "after {f:?}");
            assert_eq!(r[0].body, b"{\"status\":\"ok\"}\n", "after {f:?}");
        }
        let st = xenia::net::stats();
        assert!(st.drops() > drops0, "the faults were counted: {st:?}");
        // Still serving after all that.
        let (r, _) = exchange(&peer, b"GET /health HTTP/1.1\r\n\r\n", 1).await;
        assert_eq!(r[0].status, 200);
        assert!(!xenia::net::stats().ring_broken);
        // A response no honest backend sends breaks the device: the stack says so, and the
        // next client gets no answer (bounded wait) instead of a wedged service.
        nb.fault(Fault::RxIdOutOfRange);
        let lost = xenia::timeout(
            Duration::from_secs(5),
            exchange(&peer, b"GET /health HTTP/1.1\r\n\r\n", 1),
        )
        .await;
        assert!(lost.is_err(), "an answer over a broken device");
        let st = xenia::net::stats();
        assert!(st.ring_broken, "{st:?}");
        assert_eq!(st.device.broken, 1, "{st:?}");
        // Closed connections gave their sockets back: the 64-socket backlog and a few
        // closing ones remain.
        xenia::sleep(Duration::from_secs(15)).await;
        xenia::net::stats()
    });
    eprintln!("{stats:?}");
    assert!(
        stats.sockets <= 64 + 4,
        "{} sockets left in the stack",
        stats.sockets
    );
    assert_eq!(server.stats().requests, 4 + 1 + 1 + 1 + 64 + 3 + 1);
    let polls = sim.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);
    eprintln!("{} sched_op calls", polls - polls0);
}
