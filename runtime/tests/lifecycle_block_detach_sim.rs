//! `xl block-detach` and `xl block-attach` against the simulated host: the backend goes to
//! Closing while a write is on the ring unanswered; the write fails at once with the backend's
//! closing (no caller hangs), the frontend closes and the toolstack removes the device, later
//! operations fail the same way, and once the vbd is attached again the next write connects it
//! and lands. One test: the runtime boots once a process.

use std::time::Duration;

use xenia::block::{self, BlkfrontError, BlockError};
use xenia_sim::blkback::{Blkback, VbdConfig};
use xenia_xen::xenbus::XenbusError;

fn backend_closed(e: &BlockError) -> bool {
    matches!(
        e,
        BlockError::Io(BlkfrontError::Xenbus(XenbusError::BackendClosed(_)))
    )
}

#[test]
fn detach_fails_requests_and_attach_connects_again() {
    let sim = xenia_sim::runtime::boot();
    xenia::console::init_log(Some("info"));
    let vbd = Blkback::add(&sim, VbdConfig::default());
    let sim2 = sim.clone();
    xenia::block_on(xenia::__run_app(async move {
        let sim = sim2;
        let disk = block::open("xvda").await.unwrap();
        disk.write(8, &[0x11; 4096]).await.unwrap();

        // A write the backend will never answer, then the detach.
        vbd.state().faults.stopped = true;
        let mut writer = xenia::spawn(async move {
            let r = disk.write(64, &[0x5a; 4096]).await;
            (r, disk)
        });
        assert!(xenia::timeout(Duration::from_millis(5), &mut writer)
            .await
            .is_err());
        let t0 = xenia::time::Instant::now();
        vbd.toolstack_detach();
        let (r, disk) = xenia::timeout(Duration::from_secs(1), writer)
            .await
            .expect("the write in flight hung after the detach");
        let e = r.unwrap_err();
        assert!(backend_closed(&e), "{e:?}");
        while vbd.state().detach != 2 {
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "the frontend did not close within 1 s"
            );
            xenia::sleep(Duration::from_millis(5)).await;
        }
        let fe = format!("/local/domain/{}/device/vbd/51712", xenia_sim::GUEST_DOMID);
        assert!(!sim.xenstored().borrow().exists(&fe));
        // Without a device, operations fail at once.
        let mut buf = vec![0u8; 512];
        let e = disk.read(8, &mut buf).await.unwrap_err();
        assert!(backend_closed(&e), "{e:?}");

        // Attached again: the next operation connects the new backend.
        let vbd2 = Blkback::add(&sim, VbdConfig::default());
        disk.write(16, &[0x77; 4096]).await.unwrap();
        let mut back = vec![0u8; 4096];
        disk.read(16, &mut back).await.unwrap();
        assert!(back.iter().all(|&b| b == 0x77));
        assert!(vbd2.state().connected);
    }));
}
