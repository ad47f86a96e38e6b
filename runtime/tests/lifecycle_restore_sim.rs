//! A save and restore against the simulated host ([`SuspendOutcome::NewDomain`]): the suspend
//! hypercall returns in a "new domain" with every event channel closed but new xenstore and
//! console ports, an empty grant table, a new xenstored connection and the blkback back in
//! `InitWait`. A disk write is on the ring unanswered when the suspend request comes; after
//! the restore it is resubmitted on a reconnected blkfront and completes, xenstore works on
//! the new port, a watch registered before fires again, and the disk serves new I/O. One
//! test: the runtime boots once a process.

use std::time::Duration;

use xenia::block;
use xenia::lifecycle;
use xenia_sim::blkback::{Blkback, VbdConfig};
use xenia_sim::SuspendOutcome;

#[test]
fn a_restore_with_a_write_in_flight_reconnects_and_resubmits() {
    let sim = xenia_sim::runtime::boot();
    let si_mfn = xenia_xen::memory::virt_to_mfn(sim.guest_boot().start_info as usize).unwrap();
    let store_port_before = sim.guest_boot().store_port;
    let vbd = Blkback::add(&sim, VbdConfig::default());
    let sim2 = sim.clone();
    xenia::block_on(xenia::__run_app(async move {
        let sim = sim2;
        let xs = xenia::xenstore();
        let disk = block::open("xvda").await.unwrap();
        disk.write(8, &[0x11; 4096]).await.unwrap();
        // A watch of the app's, registered before the restore.
        let mut watch = xs.watch("data/poke", "app-poke").await.unwrap();
        // The initial event of the registration.
        watch.next_event().await.unwrap().unwrap();
        // Wait for the shutdown watcher to be up (it advertises suspend support).
        for _ in 0..100 {
            if xs
                .read_string("control/feature-suspend")
                .await
                .ok()
                .as_deref()
                == Some("1")
            {
                break;
            }
            xenia::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(lifecycle::generation(), 0);

        // A write the backend does not answer before the save.
        vbd.state().faults.stopped = true;
        let mut writer = xenia::spawn(async move {
            let r = disk.write(64, &[0x5a; 8192]).await;
            (r, disk)
        });
        assert!(xenia::timeout(Duration::from_millis(5), &mut writer)
            .await
            .is_err());

        sim.set_suspend_outcome(SuspendOutcome::NewDomain);
        let shutdown = format!("/local/domain/{}/control/shutdown", xenia_sim::GUEST_DOMID);
        sim.xenstored()
            .borrow_mut()
            .write(&shutdown, "suspend")
            .unwrap();
        let g = xenia::timeout(Duration::from_secs(5), lifecycle::resumed(0))
            .await
            .expect("the guest did not resume");
        assert_eq!(g, 1);
        assert_eq!(
            sim.suspends(),
            vec![si_mfn],
            "the suspend record is start_info"
        );
        assert_eq!(lifecycle::counts(), (1, 0, 1));
        // Xen numbers the new domain's ports from 1 again: the old numbers name new channels
        // now (the old devices must not close them).
        assert_eq!(sim.guest_boot().store_port, store_port_before);

        // The backend answers again; the write that was lost with the old ring is resubmitted
        // on a new connection and completes.
        vbd.state().faults.stopped = false;
        let (r, disk) = xenia::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the write in flight never completed");
        r.expect("the resubmitted write failed");
        let mut back = vec![0u8; 8192];
        disk.read(64, &mut back).await.unwrap();
        assert!(back.iter().all(|&b| b == 0x5a));
        let mut first = vec![0u8; 4096];
        disk.read(8, &mut first).await.unwrap();
        assert!(
            first.iter().all(|&b| b == 0x11),
            "an acknowledged write was lost"
        );

        // xenstore works on the new port, and the watch was registered again.
        xs.write("data/after", "1").await.unwrap();
        assert_eq!(xs.read_string("data/after").await.unwrap(), "1");
        let poke = format!("/local/domain/{}/data/poke", xenia_sim::GUEST_DOMID);
        sim.xenstored().borrow_mut().write(&poke, "x").unwrap();
        let mut saw_poke = false;
        for _ in 0..3 {
            match xenia::timeout(Duration::from_secs(2), watch.next_event()).await {
                Ok(Some(Ok(ev))) if ev.path.ends_with("data/poke") => saw_poke = true,
                _ => break,
            }
        }
        assert!(saw_poke, "the watch did not fire after the restore");
        assert_eq!(xenia::grant_table().unwrap().leaked_pages(), 0);
    }));
}
