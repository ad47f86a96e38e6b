//! `xl network-detach` and `xl network-attach` against the simulated host: the backend goes to
//! Closing while a peer holds a TCP connection to the guest's echo service; the guest closes
//! its frontend at once (the toolstack then removes the device); when the vif is attached
//! again (new backend, same MAC) the stack connects it and the same connection echoes again.
//! One test: the runtime boots once a process.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use xenia::net::{self, IpConfig, TcpListener};
use xenia_sim::netback::{Netback, VifConfig};
use xenia_sim::peer::PeerDevice;
use xenia_sim::{Backend, Host};

#[derive(Default)]
struct Script {
    go: bool,
    out: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    connected_once: bool,
    state: Option<tcp::State>,
    /// The peer's side of the vif attached again.
    new_dev: Option<PeerDevice>,
}

/// 10.0.0.1: once `go`, connects to the guest's port 80 and exchanges `out` / `got`.
struct Client {
    dev: PeerDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    script: Rc<RefCell<Script>>,
}

impl Backend for Client {
    fn step(&mut self, host: &mut Host) -> bool {
        let now = Instant::from_micros((host.now_ns() / 1000) as i64);
        let mut sc = self.script.borrow_mut();
        if let Some(d) = sc.new_dev.take() {
            self.dev = d;
        }
        let s = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        if sc.go && !sc.connected_once {
            sc.connected_once = true;
            s.connect(
                self.iface.context(),
                (IpAddress::v4(10, 0, 0, 2), 80),
                40002,
            )
            .unwrap();
        }
        let before = (sc.sent, sc.got.len());
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        let s = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        let Script { out, sent, got, .. } = &mut *sc;
        xenia_sim::peer::exchange(s, out, sent, got);
        sc.state = Some(s.state());
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        self.dev.take_moved() || before != (sc.sent, sc.got.len())
    }
}

#[test]
fn detach_then_attach_serves_the_same_connection_again() {
    let sim = xenia_sim::runtime::boot();
    xenia::console::init_log(Some("info"));
    let nb0 = Netback::new(&sim, VifConfig::new(0));
    let script = Rc::new(RefCell::new(Script::default()));
    {
        let mut dev = PeerDevice::new(nb0.clone());
        let iface = dev.interface(11);
        let mut sockets = SocketSet::new(vec![]);
        let tcp = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 4096]),
            tcp::SocketBuffer::new(vec![0; 4096]),
        ));
        sim.add_backend(Box::new(Client {
            dev,
            iface,
            sockets,
            tcp,
            script: script.clone(),
        }));
    }
    let sim2 = sim.clone();
    xenia::block_on(xenia::__run_app(async move {
        let sim = sim2;
        net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        let listener = TcpListener::bind(80).unwrap();
        script.borrow_mut().go = true;
        let mut conn = xenia::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the client connects in time")
            .unwrap();
        xenia::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                conn.write_all(&buf[..n]).await.unwrap();
            }
        });
        let wait_for = |want: &'static [u8]| {
            let script = script.clone();
            async move {
                for _ in 0..600 {
                    if script.borrow().got == want {
                        return;
                    }
                    xenia::sleep(Duration::from_millis(50)).await;
                }
                let sc = script.borrow();
                panic!(
                    "the peer got {:?}, want {:?} (socket {:?})",
                    String::from_utf8_lossy(&sc.got),
                    String::from_utf8_lossy(want),
                    sc.state
                );
            }
        };
        script
            .borrow_mut()
            .out
            .extend_from_slice(b"before-detach\n");
        wait_for(b"before-detach\n").await;

        // Detach: the frontend closes promptly and the toolstack removes the device.
        let t0 = xenia::time::Instant::now();
        nb0.toolstack_detach();
        while !nb0.is_removed() {
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "the frontend did not close within 1 s"
            );
            xenia::sleep(Duration::from_millis(5)).await;
        }
        let fe = format!("/local/domain/{}/device/vif/0", xenia_sim::GUEST_DOMID);
        assert!(!sim.xenstored().borrow().exists(&fe));
        // The app keeps running meanwhile.
        xenia::sleep(Duration::from_millis(500)).await;

        // Attach again (same index and MAC): the stack connects it by itself.
        let nb1 = Netback::new(&sim, VifConfig::new(0));
        script.borrow_mut().new_dev = Some(PeerDevice::new(nb1.clone()));
        script.borrow_mut().out.extend_from_slice(b"after-attach\n");
        wait_for(b"before-detach\nafter-attach\n").await;
        assert!(nb1.is_connected(), "the new vif is connected");
        assert_eq!(
            script.borrow().state,
            Some(tcp::State::Established),
            "the same connection"
        );
    }));
}
