//! `xenia::net` over a netback that breaks the netif protocol: the netfront declares the
//! device broken, the stack reports it like a broken ring (`Stats::ring_broken`), callers get
//! timeouts rather than hangs, and the stack does not spin. One test: the runtime boots once a
//! process.

use std::time::Duration;

use xenia::net::{self, IpConfig, Ipv4Addr};
use xenia_sim::netback::{Fault, Netback, VifConfig};

#[test]
fn a_lying_netback_breaks_the_device_and_the_stack_says_so() {
    let sim = xenia_sim::runtime::boot();
    let nb = Netback::new(&sim, VifConfig::new(0));
    let sim2 = sim.clone();
    let polls =
        move || sim2.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);
    xenia::block_on(async move {
        let s0 = net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        assert!(!s0.stats().ring_broken);
        // The first tx response carries an id we never used.
        nb.fault(Fault::TxIdOutOfRange);
        let u = net::UdpSocket::bind(0).unwrap();
        u.send_to(b"hello", Ipv4Addr::new(10, 0, 0, 1), 7)
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        // Every wait is bounded: a regression fails here instead of hanging.
        let r = xenia::timeout(Duration::from_secs(2), u.recv_from(&mut buf)).await;
        assert!(r.is_err(), "nothing arrives over a broken device");
        let st = s0.stats();
        assert!(st.ring_broken, "{st:?}");
        assert_eq!(st.device.broken, 1, "{st:?}");
        assert_eq!(st.device.tx_bad_id, 1, "{st:?}");
        assert_eq!(
            nb.stats().tx_frames,
            1,
            "one frame (the ARP request) went out before the lie"
        );
        // A broken device leaves the stack idle, not spinning.
        let before = polls();
        xenia::sleep(Duration::from_secs(10)).await;
        let spent = polls() - before;
        assert!(
            spent < 50,
            "{spent} sched_op calls in 10 s with a broken device"
        );
        // Later sends are accepted by the socket but nothing reaches the backend.
        u.send_to(b"again", Ipv4Addr::new(10, 0, 0, 1), 7)
            .await
            .unwrap();
        xenia::sleep(Duration::from_millis(500)).await;
        assert_eq!(nb.stats().tx_frames, 1);
    });
}
