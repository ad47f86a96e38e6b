//! A TCP connection across a save and restore against the simulated host
//! ([`SuspendOutcome::NewDomain`]): a peer holds a connection to the guest's echo service,
//! the guest is restored into a "new domain" (netback back in `InitWait`, every port and
//! grant gone), the stack's driver connects the vif again with the same MAC under the same
//! smoltcp interface, and the same connection echoes again (the peer retransmits what was
//! lost). One test: the runtime boots once a process.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use xenia::lifecycle;
use xenia::net::{self, IpConfig, TcpListener};
use xenia_sim::netback::{Netback, VifConfig};
use xenia_sim::peer::PeerDevice;
use xenia_sim::{Backend, Host, SuspendOutcome};

#[derive(Default)]
struct Script {
    go: bool,
    out: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    connected_once: bool,
    state: Option<tcp::State>,
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
        let s = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        if sc.go && !sc.connected_once {
            sc.connected_once = true;
            s.connect(
                self.iface.context(),
                (IpAddress::v4(10, 0, 0, 2), 80),
                40001,
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
fn a_tcp_connection_survives_a_restore() {
    let sim = xenia_sim::runtime::boot();
    let nb = Netback::new(&sim, VifConfig::new(0));
    let script = Rc::new(RefCell::new(Script::default()));
    {
        let mut dev = PeerDevice::new(nb.clone());
        let iface = dev.interface(7);
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
        let mac_before = net::stack().unwrap().mac();
        let listener = TcpListener::bind(80).unwrap();
        script.borrow_mut().go = true;
        let mut conn = xenia::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the client connects in time")
            .unwrap();
        // The guest echoes whatever comes, on this one connection.
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
            .extend_from_slice(b"before-restore\n");
        wait_for(b"before-restore\n").await;

        sim.set_suspend_outcome(SuspendOutcome::NewDomain);
        let shutdown = format!("/local/domain/{}/control/shutdown", xenia_sim::GUEST_DOMID);
        sim.xenstored()
            .borrow_mut()
            .write(&shutdown, "suspend")
            .unwrap();
        xenia::timeout(Duration::from_secs(5), lifecycle::resumed(0))
            .await
            .expect("the guest did not resume");
        assert!(
            !nb.is_connected(),
            "the restore dropped the backend's rings"
        );

        // The same connection, after the vif reconnected.
        script
            .borrow_mut()
            .out
            .extend_from_slice(b"after-restore\n");
        wait_for(b"before-restore\nafter-restore\n").await;
        assert!(nb.is_connected(), "the vif reconnected");
        assert_eq!(net::stack().unwrap().mac(), mac_before);
        assert_eq!(
            script.borrow().state,
            Some(tcp::State::Established),
            "the same connection"
        );
    }));
}
