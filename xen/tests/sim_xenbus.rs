//! The xenstore client over the real ring transport, and a xenbus handshake, against the
//! simulated host (xenstored, event channels, grant table) and a simulated backend.

use std::cell::RefCell;
use std::rc::Rc;
use xenia_sim::{block_on, Backend, Guest, Host, Sim, DOM0, GUEST_DOMID};
use xenia_xen::abi::XenbusState;
use xenia_xen::grant::{GrantTable, Page};
use xenia_xen::xenbus::{self, Frontend, XenbusError};
use xenia_xen::xenstore::{Access, Perm};

fn guest() -> Guest {
    Guest::new()
}

/// What the toolstack writes for device vif/0 of the guest.
fn toolstack_adds_vif(sim: &Sim) -> (String, String) {
    let xsd = sim.xenstored();
    let mut x = xsd.borrow_mut();
    let fe = format!("/local/domain/{GUEST_DOMID}/device/vif/0");
    let be = format!("/local/domain/0/backend/vif/{GUEST_DOMID}/0");
    x.write(&format!("{fe}/backend"), &be).unwrap();
    x.write(&format!("{fe}/backend-id"), "0").unwrap();
    x.write(&format!("{fe}/state"), "1").unwrap();
    for p in [
        fe.to_string(),
        format!("{fe}/backend"),
        format!("{fe}/backend-id"),
        format!("{fe}/state"),
    ] {
        x.set_perms(
            &p,
            &[
                Perm::new(GUEST_DOMID, Access::None),
                Perm::new(0, Access::Read),
            ],
        )
        .unwrap();
    }
    x.write(&format!("{be}/frontend"), &fe).unwrap();
    x.write(&format!("{be}/frontend-id"), GUEST_DOMID.to_string())
        .unwrap();
    x.write(&format!("{be}/feature-rx-copy"), "1").unwrap();
    x.write(&format!("{be}/state"), "2").unwrap();
    for p in [
        "",
        "/frontend",
        "/frontend-id",
        "/feature-rx-copy",
        "/state",
    ] {
        x.set_perms(
            &format!("{be}{p}"),
            &[
                Perm::new(0, Access::None),
                Perm::new(GUEST_DOMID, Access::Read),
            ],
        )
        .unwrap();
    }
    (fe, be)
}

/// A backend that connects when the frontend is Initialised: maps its ring grant, binds its
/// event channel, writes a byte into the ring page and switches to Connected.
struct SimBackend {
    fe: String,
    be: String,
    xsd: Rc<RefCell<xenia_sim::xenstored::Xenstored>>,
    connected: bool,
    close_instead: bool,
}

impl Backend for SimBackend {
    fn step(&mut self, host: &mut Host) -> bool {
        if self.connected {
            return false;
        }
        let mut x = self.xsd.borrow_mut();
        let state = x
            .read_string(&format!("{}/state", self.fe))
            .unwrap_or_default();
        if state != "3" {
            return false;
        }
        if self.close_instead {
            x.write(&format!("{}/state", self.be), "6").unwrap();
            self.connected = true;
            return true;
        }
        let gref: u32 = x
            .read_string(&format!("{}/ring-ref", self.fe))
            .unwrap()
            .parse()
            .unwrap();
        let port: u32 = x
            .read_string(&format!("{}/event-channel", self.fe))
            .unwrap()
            .parse()
            .unwrap();
        let page = host
            .grants
            .map(DOM0, gref, true)
            .expect("frontend granted its ring");
        // SAFETY: the grant maps a live guest page.
        unsafe { page.write(0xab) };
        let dom0_port = host.dom0_bind(port).expect("frontend offered its port");
        host.dom0_send(dom0_port);
        x.write(&format!("{}/state", self.be), "4").unwrap();
        self.connected = true;
        true
    }
}

#[test]
fn xenstore_over_the_ring_reads_writes_and_watches() {
    let g = guest();
    block_on(g.ev, async {
        g.xs.write("data/greeting", "hello").await.unwrap();
        assert_eq!(g.xs.read_string("data/greeting").await.unwrap(), "hello");
        let mut names = g.xs.directory("data").await.unwrap();
        names.sort();
        assert_eq!(names, vec!["greeting".to_string()]);
        // A watch fires once at registration, then on a dom0 write.
        let mut w = g.xs.watch("control/shutdown", "tok").await.unwrap();
        let first = w.next_event().await.unwrap().unwrap();
        assert_eq!(first.token, "tok");
        g.sim
            .xenstored()
            .borrow_mut()
            .write("/local/domain/1/control/shutdown", "poweroff")
            .unwrap();
        let ev = w.next_event().await.unwrap().unwrap();
        assert!(ev.path.ends_with("control/shutdown"), "{ev:?}");
        assert_eq!(
            g.xs.read_string("control/shutdown").await.unwrap(),
            "poweroff"
        );
        // Another domain's private node is refused.
        assert!(g.xs.read("/local/domain/0/secret").await.is_err());
    });
    // dom0 sees what the guest wrote.
    assert_eq!(
        g.sim
            .xenstored()
            .borrow_mut()
            .read_string("/local/domain/1/data/greeting")
            .unwrap(),
        "hello"
    );
}

#[test]
fn transactions_retry_on_forced_conflicts_over_the_ring() {
    let g = guest();
    g.sim.xenstored().borrow_mut().force_commit_conflicts(2);
    block_on(g.ev, async {
        let attempts = std::cell::Cell::new(0);
        g.xs.transaction(|tx| {
            attempts.set(attempts.get() + 1);
            async move { tx.write("data/tx", "committed").await }
        })
        .await
        .unwrap();
        assert_eq!(attempts.get(), 3, "two forced conflicts, then success");
        assert_eq!(g.xs.read_string("data/tx").await.unwrap(), "committed");
    });
    assert!(g.sim.xenstored().borrow().conflicts() >= 2);
}

#[test]
fn xenbus_handshake_connects_to_a_simulated_backend() {
    let g = guest();
    let (fe, be) = toolstack_adds_vif(&g.sim);
    g.sim.add_backend(Box::new(SimBackend {
        fe,
        be,
        xsd: g.sim.xenstored(),
        connected: false,
        close_instead: false,
    }));
    let table = GrantTable::new(1).unwrap();
    let ring = Page::new().unwrap();
    block_on(g.ev, async {
        assert_eq!(xenbus::devices(g.xs, "vif").await.unwrap(), vec![0]);
        assert!(xenbus::devices(g.xs, "vbd").await.unwrap().is_empty());
        let dev = Frontend::find(g.xs, "vif", 0).await.unwrap();
        assert_eq!(dev.backend(), "/local/domain/0/backend/vif/1/0");
        assert_eq!(dev.backend_id(), 0);
        assert!(dev.backend_feature("feature-rx-copy").await.unwrap());
        assert!(!dev.backend_feature("feature-sg").await.unwrap());
        let gref = table
            .grant_page(dev.backend_id(), ring.as_non_null(), false)
            .unwrap();
        let port = g.ev.alloc_unbound(dev.backend_id()).unwrap();
        dev.connect(|tx, node| async move {
            tx.write(&format!("{node}/ring-ref"), gref.to_string())
                .await?;
            tx.write(&format!("{node}/event-channel"), port.to_string())
                .await
        })
        .await
        .unwrap();
        assert_eq!(dev.state().await.unwrap(), XenbusState::Connected);
        assert_eq!(dev.backend_state().await.unwrap(), XenbusState::Connected);
        // The backend's notification arrived on our port.
        g.ev.wait(port).await;
    });
    // SAFETY: the ring page is ours and live.
    let seen = unsafe { ring.as_ptr().read() };
    assert_eq!(seen, 0xab, "the backend wrote through the grant");
}

#[test]
fn xenbus_reports_a_backend_that_closes_and_bad_nodes() {
    let g = guest();
    let (fe, be) = toolstack_adds_vif(&g.sim);
    g.sim.add_backend(Box::new(SimBackend {
        fe: fe.clone(),
        be,
        xsd: g.sim.xenstored(),
        connected: false,
        close_instead: true,
    }));
    block_on(g.ev, async {
        let dev = Frontend::find(g.xs, "vif", 0).await.unwrap();
        let r = dev
            .connect(|tx, node| async move { tx.write(&format!("{node}/ring-ref"), "8").await })
            .await;
        assert_eq!(r, Err(XenbusError::BackendClosed(XenbusState::Closed)));
    });
    g.sim
        .xenstored()
        .borrow_mut()
        .write(&format!("{fe}/backend-id"), "banana")
        .unwrap();
    block_on(g.ev, async {
        assert!(matches!(
            Frontend::find(g.xs, "vif", 0).await,
            Err(XenbusError::BadValue(_, _))
        ));
        assert!(matches!(
            Frontend::find(g.xs, "vif", 1).await,
            Err(XenbusError::Missing(_))
        ));
    });
    g.sim
        .xenstored()
        .borrow_mut()
        .write(&format!("{fe}/backend"), "relative/path")
        .unwrap();
    block_on(g.ev, async {
        assert!(matches!(
            Frontend::find(g.xs, "vif", 0).await,
            Err(XenbusError::BadValue(_, _))
        ));
    });
}
