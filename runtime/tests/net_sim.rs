//! `xenia::net` against the simulated host: two vifs (a static address on vif 0, DHCP on
//! vif 1), a TCP connection to a peer's echo service through `embedded_io_async`, a refused
//! connection, UDP echo, bind errors, sockets freed after close, and an idle stack that does
//! not busy-poll. The peers are smoltcp interfaces and a DHCP server running as simulated
//! backends on the netbacks' host side. One test: the runtime boots once a process.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use embedded_io_async::{Read, Write};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{DhcpMessageType, Ipv4Address};
use xenia::net::{self, IpConfig, Ipv4Addr, ListenConfig, NetError, TcpListener, TcpStream};
use xenia_sim::netback::{Fault, Netback, VifConfig};
use xenia_sim::peer::{DhcpServer, PeerDevice};
use xenia_sim::{Backend, Host};

/// 10.0.0.1 on vif 0's link: TCP echo on port 7 (one connection at a time), UDP echo on 7.
struct EchoPeer {
    dev: PeerDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    udp: SocketHandle,
    tcp_connections: u32,
}

impl Backend for EchoPeer {
    fn step(&mut self, host: &mut Host) -> bool {
        let now = Instant::from_micros((host.now_ns() / 1000) as i64);
        let before = (
            self.dev.netback().pending_to_guest(),
            self.dev.netback().stats().tx_frames,
        );
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        let s = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        if s.state() == tcp::State::Established && s.remote_endpoint().is_some() {
            let mut buf = [0u8; 8192];
            let room = s.send_capacity() - s.send_queue();
            if s.can_recv() && room > 0 {
                let n = s.recv_slice(&mut buf[..room.min(8192)]).unwrap();
                s.send_slice(&buf[..n]).unwrap();
            }
        }
        if s.state() == tcp::State::CloseWait && s.send_queue() == 0 {
            s.close();
        }
        if !s.is_open() {
            s.listen(7).unwrap();
            self.tcp_connections += 1;
        }
        let u = self.sockets.get_mut::<udp::Socket>(self.udp);
        while let Ok((data, meta)) = u.recv() {
            let data = data.to_vec();
            u.send_slice(&data, meta.endpoint).unwrap();
        }
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        (
            self.dev.netback().pending_to_guest(),
            self.dev.netback().stats().tx_frames,
        ) != before
    }
}

const DHCP_SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x67];
const DHCP_SERVER_IP: Ipv4Address = Ipv4Address::new(192, 168, 7, 1);
const DHCP_OFFER: Ipv4Address = Ipv4Address::new(192, 168, 7, 50);

/// A DHCP server on vif 1's link: offers and acknowledges [`DHCP_OFFER`].
struct DhcpPeer {
    nb: Netback,
    seen: Rc<RefCell<Vec<DhcpMessageType>>>,
}

impl Backend for DhcpPeer {
    fn step(&mut self, _: &mut Host) -> bool {
        let server = DhcpServer {
            mac: DHCP_SERVER_MAC,
            ip: DHCP_SERVER_IP,
            offer: DHCP_OFFER,
        };
        let mut any = false;
        while let Some(f) = self.nb.pop_sent() {
            let Some(Ok(req)) = DhcpServer::parse(&f) else {
                continue;
            };
            self.seen.borrow_mut().push(req.message_type);
            if let Some(reply) = server.reply(&req) {
                self.nb.inject(&reply);
                any = true;
            }
        }
        any
    }
}

fn echo_peer(nb: Netback) -> EchoPeer {
    let mut dev = PeerDevice::new(nb).with_max_pending(63);
    let iface = dev.interface(3);
    let mut sockets = SocketSet::new(vec![]);
    let mut t = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65535]),
        tcp::SocketBuffer::new(vec![0; 65535]),
    );
    t.listen(7).unwrap();
    let tcp = sockets.add(t);
    let mut u = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 16384]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 16384]),
    );
    u.bind(7).unwrap();
    let udp = sockets.add(u);
    EchoPeer {
        dev,
        iface,
        sockets,
        tcp,
        udp,
        tcp_connections: 0,
    }
}

#[test]
fn net_api_against_simulated_peers() {
    let sim = xenia_sim::runtime::boot();
    let nb0 = Netback::new(&sim, VifConfig::new(0));
    let nb1 = Netback::new(&sim, VifConfig::new(1));
    sim.add_backend(Box::new(echo_peer(nb0.clone())));
    let seen = Rc::new(RefCell::new(Vec::new()));
    sim.add_backend(Box::new(DhcpPeer {
        nb: nb1.clone(),
        seen: seen.clone(),
    }));

    let sim2 = sim.clone();
    let polls =
        move || sim2.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);
    let nb0b = nb0.clone();
    let idle_polls = xenia::block_on(async move {
        let nb0 = nb0b;
        // Nothing works before init.
        assert_eq!(TcpListener::bind(80).unwrap_err(), NetError::NotInitialized);
        assert_eq!(net::stats(), net::Stats::default());

        let s0 = net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(s0.ipv4(), Some((Ipv4Addr::new(10, 0, 0, 2), 24)));
        assert_eq!(s0.mac(), [0x00, 0x16, 0x3e, 0, 0, 0x01]);
        assert!(
            std::ptr::eq(net::init().await.unwrap(), s0),
            "init returns the default stack"
        );
        assert_eq!(
            net::open(0, IpConfig::Dhcp, Default::default())
                .await
                .unwrap_err(),
            NetError::AlreadyOpen(0)
        );
        let base_sockets = s0.stats().sockets;

        // TCP through embedded_io_async: 100 KB out and back.
        let mut c = TcpStream::connect(Ipv4Addr::new(10, 0, 0, 1), 7)
            .await
            .unwrap();
        assert_eq!(c.remote(), Some((Ipv4Addr::new(10, 0, 0, 1), 7)));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 + i / 300) as u8).collect();
        let mut back = vec![0u8; data.len()];
        let writer = async {
            Write::write_all(&mut c, &data).await.unwrap();
            Write::flush(&mut c).await.unwrap();
        };
        writer.await;
        Read::read_exact(&mut c, &mut back).await.unwrap();
        assert!(back == data, "the echo differs");
        // An idle timeout: the echo peer says nothing until spoken to, so a read waits past
        // it and fails; traffic within the limit is fine.
        c.set_idle_timeout(Some(Duration::from_millis(200)));
        let mut small = [0u8; 8];
        let quiet = xenia::timeout(Duration::from_secs(5), c.read(&mut small)).await;
        assert_eq!(quiet, Ok(Err(NetError::IdleTimeout)));
        c.write_all(b"hi").await.unwrap();
        let n = c.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"hi");
        c.close().await.unwrap();

        // Nothing listens on port 9: the peer resets, connect says refused.
        assert_eq!(
            TcpStream::connect(Ipv4Addr::new(10, 0, 0, 1), 9)
                .await
                .unwrap_err(),
            NetError::ConnectionRefused
        );

        // UDP echo.
        let u = net::UdpSocket::bind(0).unwrap();
        assert!(u.port() >= 49152);
        assert_eq!(
            net::UdpSocket::bind(u.port()).unwrap_err(),
            NetError::AddrInUse(u.port())
        );
        u.send_to(b"ping over udp", Ipv4Addr::new(10, 0, 0, 1), 7)
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from, port) = xenia::timeout(Duration::from_secs(5), u.recv_from(&mut buf))
            .await
            .expect("udp echo")
            .unwrap();
        assert_eq!(
            (&buf[..n], from, port),
            (&b"ping over udp"[..], Ipv4Addr::new(10, 0, 0, 1), 7)
        );
        drop(u);

        // Listener errors.
        let l = TcpListener::bind_with(
            8080,
            ListenConfig {
                backlog: 4,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            TcpListener::bind(8080).unwrap_err(),
            NetError::AddrInUse(8080)
        );
        assert!(matches!(
            TcpListener::bind_with(
                81,
                ListenConfig {
                    backlog: 0,
                    ..Default::default()
                }
            ),
            Err(NetError::BadConfig(_))
        ));
        // One listening socket, whatever the backlog (it bounds the accept queue).
        assert_eq!(s0.stats().sockets, base_sockets + 1);
        drop(l);

        // Closed connections give their sockets back.
        xenia::sleep(Duration::from_secs(12)).await;
        let st = s0.stats();
        assert_eq!(st.sockets, base_sockets, "{st:?}");
        assert_eq!(st.tcp_connects, 2);
        // (With TSO the guest sends fewer, larger frames: count bytes.)
        assert!(
            st.device.rx_packets > 70 && st.device.tx_bytes > 100_000,
            "{st:?}"
        );
        assert_eq!(st.drops(), 0);

        // vif 1 by DHCP.
        let s1 = net::open(1, IpConfig::Dhcp, Default::default())
            .await
            .unwrap();
        s1.wait_configured(Duration::from_secs(20)).await.unwrap();
        assert_eq!(s1.ipv4(), Some((Ipv4Addr::new(192, 168, 7, 50), 24)));
        assert!(
            net::stack().is_some_and(|s| s.index() == 0),
            "vif 0 stays the default"
        );

        // An idle stack sleeps: few hypervisor blocks over 30 s.
        let before = polls();
        xenia::sleep(Duration::from_secs(30)).await;
        let idle = polls() - before;

        // A backend that breaks the ring protocol: the netfront stops using the ring, the
        // stack says so; it neither panics nor spins.
        nb0.fault(Fault::RxProducerOverrun);
        // (Nothing else in flight: the next response would overwrite the bogus index.)
        xenia::sleep(Duration::from_millis(100)).await;
        let u = net::UdpSocket::bind(0).unwrap();
        u.send_to(b"after the fault", Ipv4Addr::new(10, 0, 0, 1), 7)
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(
                xenia::timeout(Duration::from_secs(2), u.recv_from(&mut buf))
                    .await
                    .is_ok(),
            );
            u.send_to(b"after the fault", Ipv4Addr::new(10, 0, 0, 1), 7)
                .await
                .unwrap();
        }
        let before = polls();
        xenia::sleep(Duration::from_secs(10)).await;
        let broken = polls() - before;
        let st = s0.stats();
        eprintln!("after the overrun: {got:?}, {broken} sched_op calls in 10 s, {st:?}");
        assert!(st.ring_broken, "{st:?}");
        assert_eq!(got, [false; 3], "nothing arrives over the broken ring");
        assert!(
            broken < 50,
            "{broken} sched_op calls in 10 s with a broken ring"
        );
        idle
    });
    assert_eq!(
        &seen.borrow()[..2],
        &[DhcpMessageType::Discover, DhcpMessageType::Request]
    );
    eprintln!("idle: {idle_polls} sched_op calls in 30 s");
    assert!(
        idle_polls < 100,
        "{idle_polls} sched_op calls in 30 s of idling"
    );
}
