//! The suspend protocol against the simulated host, which checkpoints (the suspend hypercall
//! returns "cancelled", as for `xl save -c`): the toolstack's `control/shutdown = suspend` is
//! acknowledged and carried out while a disk write is on the ring unanswered, the suspend
//! record is the start_info frame argument, and afterwards the grant table, xenstore and the
//! disk work as before and the write that was in flight completes. The time the domain spent
//! suspended does not count in the guest's clock. One test: the runtime boots
//! once a process.

use std::time::Duration;

use xenia::block;
use xenia::lifecycle;
use xenia_sim::blkback::{Blkback, VbdConfig};

#[test]
fn a_checkpoint_with_a_write_in_flight_carries_on() {
    let sim = xenia_sim::runtime::boot();
    let vbd = Blkback::add(&sim, VbdConfig::default());
    let sim2 = sim.clone();
    xenia::block_on(xenia::__run_app(async move {
        let sim = sim2;
        let xs = xenia::xenstore();
        let disk = block::open("xvda").await.unwrap();
        disk.write(8, &[0x11; 4096]).await.unwrap();

        // The watcher advertises suspend support like Linux.
        let mut advertised = false;
        for _ in 0..100 {
            if xs
                .read_string("control/feature-suspend")
                .await
                .ok()
                .as_deref()
                == Some("1")
            {
                advertised = true;
                break;
            }
            xenia::sleep(Duration::from_millis(10)).await;
        }
        assert!(advertised, "control/feature-suspend was not written");

        // A write the backend does not answer yet.
        vbd.state().faults.stopped = true;
        let mut writer = xenia::spawn(async move {
            disk.write(64, &[0x5a; 8192]).await.unwrap();
            disk
        });
        assert!(
            xenia::timeout(Duration::from_millis(5), &mut writer)
                .await
                .is_err(),
            "the backend answered while stopped"
        );

        // The toolstack asks for a suspend.
        let (guest_before, host_before) = (xenia::time::Instant::now(), sim.now_ns());
        let shutdown = format!("/local/domain/{}/control/shutdown", xenia_sim::GUEST_DOMID);
        sim.xenstored()
            .borrow_mut()
            .write(&shutdown, "suspend")
            .unwrap();
        for _ in 0..200 {
            if !sim.suspends().is_empty() {
                break;
            }
            xenia::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sim.suspends().len(), 1, "the guest did not suspend");
        assert_eq!(lifecycle::counts(), (1, 1, 0));
        // Xen's clock moved on while the domain was suspended; the guest's did not count it.
        assert!(sim.now_ns() - host_before >= xenia_sim::SUSPENDED_NS);
        let guest = guest_before.elapsed();
        assert!(
            guest < Duration::from_secs(5),
            "the suspended time counted in the guest's clock: {guest:?}"
        );
        assert!(
            xenia::timeout(Duration::from_millis(5), &mut writer)
                .await
                .is_err(),
            "the write completed although the backend is stopped"
        );
        // Acknowledged: the request was cleared.
        assert_eq!(
            sim.xenstored().borrow_mut().read_string(&shutdown).unwrap(),
            ""
        );

        // After the checkpoint: the write in flight completes once the backend answers, and
        // the disk, grants and xenstore work as before.
        vbd.state().faults.stopped = false;
        let disk = xenia::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the write in flight never completed");
        let mut back = vec![0u8; 8192];
        disk.read(64, &mut back).await.unwrap();
        assert!(back.iter().all(|&b| b == 0x5a));
        let mut first = vec![0u8; 4096];
        disk.read(8, &mut first).await.unwrap();
        assert!(first.iter().all(|&b| b == 0x11));
        xs.write("data/after", "1").await.unwrap();
        assert_eq!(xs.read_string("data/after").await.unwrap(), "1");
    }));
}
