//! `xenia::block` against the simulated host and blkback: open by name (and the error naming
//! the disks present), geometry, read/write/flush/discard through the runtime's executor,
//! refusals, a backend error status, and no busy polling. One test: the runtime boots once a
//! process.

use xenia::block::{self, BlkfrontError, BlockError};
use xenia_sim::blkback::{Blkback, VbdConfig};
use xenia_xen::abi::{BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE};

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn block_api_against_the_simulated_blkback() {
    let sim = xenia_sim::runtime::boot();
    let a = Blkback::add(&sim, VbdConfig::default());
    let b = Blkback::add(
        &sim,
        VbdConfig {
            index: 51728,
            name: "xvdb".into(),
            sectors: 64,
            sector_size: 4096,
            read_only: true,
            ..VbdConfig::default()
        },
    );
    let polls0 = sim.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);

    let (a2, b2) = (a.clone(), b.clone());
    xenia::block_on(async move {
        let (a, b) = (a2, b2);
        // An absent disk: the error names it and lists the disks present.
        let err = block::open("xvdz").await.unwrap_err();
        assert_eq!(
            err,
            BlockError::NotFound {
                name: "xvdz".into(),
                present: vec!["xvda".into(), "xvdb".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "no disk \"xvdz\"; disks present: xvda, xvdb"
        );
        assert_eq!(block::list().await.unwrap(), ["xvda", "xvdb"]);

        let disk = block::open("xvda").await.unwrap();
        assert_eq!(disk.name(), "xvda");
        assert_eq!(disk.sectors(), 4096);
        assert_eq!(disk.sector_size(), 512);
        assert_eq!(disk.size(), 4096 * 512);
        assert!(!disk.read_only());

        // Writes land on the backend's disk, reads come back, concurrently from two tasks.
        let data = pattern(7, 64 * 1024);
        disk.write(100, &data).await.unwrap();
        disk.flush().await.unwrap();
        assert_eq!(
            &a.state().disk[100 * 512..100 * 512 + data.len()],
            &data[..]
        );
        let mut back = vec![0u8; data.len()];
        disk.read(100, &mut back).await.unwrap();
        assert_eq!(back, data);
        let d: &'static block::Disk = Box::leak(Box::new(disk));
        let t1 = xenia::spawn(async move {
            let w = pattern(1, 8192);
            d.write(1000, &w).await.unwrap();
            w
        });
        let t2 = xenia::spawn(async move {
            let w = pattern(2, 8192);
            d.write(2000, &w).await.unwrap();
            w
        });
        let (w1, w2) = (t1.await, t2.await);
        let mut r = vec![0u8; 8192];
        d.read(1000, &mut r).await.unwrap();
        assert_eq!(r, w1);
        d.read(2000, &mut r).await.unwrap();
        assert_eq!(r, w2);

        // Discard reads back as zeros on this backend.
        d.discard(1000, 16).await.unwrap();
        d.read(1000, &mut r).await.unwrap();
        assert!(r.iter().all(|&x| x == 0));

        // Refusals: out of range, bad length; nothing reaches the disk.
        let before = a.state().stats.requests;
        assert!(matches!(
            d.write(4095, &[0u8; 1024]).await,
            Err(BlockError::Io(BlkfrontError::OutOfRange { .. }))
        ));
        assert!(matches!(
            d.read(0, &mut [0u8; 100]).await,
            Err(BlockError::Io(BlkfrontError::BadLength(100)))
        ));
        assert_eq!(a.state().stats.requests, before);

        // A backend error status is an error, and the sectors keep their old contents.
        a.state().faults.error_sectors = vec![3000];
        let old = a.state().disk[2999 * 512..3001 * 512].to_vec();
        assert!(matches!(
            d.write(2999, &pattern(9, 1024)).await,
            Err(BlockError::Io(BlkfrontError::Io(_)))
        ));
        assert_eq!(&a.state().disk[2999 * 512..3001 * 512], &old[..]);
        let mut rr = vec![0u8; 1024];
        assert!(matches!(
            d.read(2999, &mut rr).await,
            Err(BlockError::Io(BlkfrontError::Io(_)))
        ));
        a.state().faults.error_sectors.clear();
        d.read(2999, &mut rr).await.unwrap();
        assert_eq!(rr, old);

        // The second disk: 4 KiB sectors, read-only.
        let ro = block::open("xvdb").await.unwrap();
        assert_eq!(ro.sector_size(), 4096);
        assert_eq!(ro.sectors(), 64);
        assert!(ro.read_only());
        assert_eq!(
            ro.write(0, &[0u8; 4096]).await,
            Err(BlockError::Io(BlkfrontError::ReadOnly))
        );
        b.state().disk[4096..8192].copy_from_slice(&pattern(3, 4096));
        let mut s = vec![0u8; 4096];
        ro.read(1, &mut s).await.unwrap();
        assert_eq!(s, pattern(3, 4096));
    });

    // The writes and flushes went to the backend as such.
    let ops = a.state().stats.ops.clone();
    assert!(ops.iter().any(|o| o.0 == BLKIF_OP_WRITE && o.1 == 100));
    assert!(ops.iter().any(|o| o.0 == BLKIF_OP_FLUSH_DISKCACHE));
    // Waiting for the disk blocks the vCPU: a few sched_op calls per I/O, not a spin.
    let polls = sim.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);
    assert!(polls - polls0 < 300, "{} sched_op calls", polls - polls0);
}
