//! The block frontend against the simulated host and blkback (`xenia_sim::blkback`):
//! handshake, data integrity, concurrency, flush/discard, refusals, error statuses, hostile
//! backends, grant reuse and a backend that stops answering.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use xenia_blkfront::{Blkfront, BlkfrontConfig, BlkfrontError, Violation};
use xenia_ring::RingError;
use xenia_sim::blkback::{Blkback, Hostile, VbdConfig};
use xenia_sim::{block_on, join_all, Guest};
use xenia_xen::abi::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER,
};
use xenia_xen::hypercall::SCHED_OP;
use xenia_xen::xenstore::RingTransport;

type Front = Blkfront<'static, RingTransport>;

fn guest() -> Guest {
    Guest::new()
}

/// Like `block_on`, but gives up (None) when simulated time reaches `deadline_ns`: the guest
/// blocks with that deadline and the simulator advances time when nothing else can happen.
fn poll_until<F: Future + Unpin>(g: &Guest, fut: &mut F, deadline_ns: u64) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = Pin::new(&mut *fut).poll(&mut cx) {
            return Some(v);
        }
        if g.sim.now_ns() >= deadline_ns {
            return None;
        }
        if g.ev.scan() == 0 {
            g.ev.block(deadline_ns).unwrap();
        }
    }
}

fn setup(config: VbdConfig) -> (Guest, Blkback, Front) {
    let g = guest();
    let index = config.index;
    let back = Blkback::add(&g.sim, config);
    let front = block_on(g.ev, Blkfront::connect(g.xs, g.ev, g.grants(), index)).unwrap();
    (g, back, front)
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn handshake_publishes_the_ring_and_reads_the_disk_info() {
    let (g, back, front) = setup(VbdConfig::default());
    assert_eq!(front.sectors(), 4096);
    assert_eq!(front.sector_size(), 512);
    assert!(!front.read_only());
    let f = front.features();
    assert!(f.flush_cache && f.discard && !f.barrier);
    assert_eq!(f.discard_granularity, 512);
    assert_eq!(front.ring_size(), 32);
    assert!(back.state().connected);
    let xsd = g.sim.xenstored();
    let mut x = xsd.borrow_mut();
    let fe = back.frontend_path();
    assert_eq!(
        x.read_string(&format!("{fe}/protocol")).unwrap(),
        "x86_64-abi"
    );
    assert_eq!(
        x.read_string(&format!("{fe}/event-channel")).unwrap(),
        front.port().to_string()
    );
    assert!(x.read_string(&format!("{fe}/ring-ref")).is_ok());
    assert_eq!(
        x.read_string(&format!("{fe}/feature-persistent")).unwrap(),
        "1"
    );
    assert_eq!(x.read_string(&format!("{fe}/state")).unwrap(), "4");
    assert_eq!(
        x.read_string(&format!("{}/state", back.backend_path()))
            .unwrap(),
        "4"
    );
}

#[test]
fn disks_are_found_by_name() {
    let g = guest();
    Blkback::add(&g.sim, VbdConfig::default());
    Blkback::add(
        &g.sim,
        VbdConfig {
            index: 51728,
            name: "xvdb".into(),
            ..Default::default()
        },
    );
    // A device whose index is not its number, found through its backend's `dev`.
    Blkback::add(
        &g.sim,
        VbdConfig {
            index: 7,
            name: "sdc".into(),
            ..Default::default()
        },
    );
    block_on(g.ev, async {
        assert_eq!(Front::find(g.xs, "xvda").await.unwrap(), 51712);
        assert_eq!(Front::find(g.xs, "xvdb").await.unwrap(), 51728);
        assert_eq!(Front::find(g.xs, "sdc").await.unwrap(), 7);
        assert_eq!(
            Front::find(g.xs, "xvdz").await,
            Err(BlkfrontError::NoSuchDevice("xvdz".into()))
        );
        let b = Blkfront::connect(g.xs, g.ev, g.grants(), 51728)
            .await
            .unwrap();
        b.write(0, &[7; 512]).await.unwrap();
        let mut r = [0; 512];
        b.read(0, &mut r).await.unwrap();
        assert_eq!(r, [7; 512]);
    });
}

#[test]
fn invalid_disk_info_is_refused() {
    for ss in [1000, 256, 8192, 0] {
        let g = guest();
        Blkback::add(
            &g.sim,
            VbdConfig {
                sectors: 16,
                sector_size: ss,
                ..Default::default()
            },
        );
        let r = block_on(g.ev, Blkfront::connect(g.xs, g.ev, g.grants(), 51712));
        assert!(
            matches!(r, Err(BlkfrontError::BadInfo("sector-size", _))),
            "{ss}: {:?}",
            r.err()
        );
    }
    // A device that is not there.
    let g = guest();
    let r = block_on(g.ev, Blkfront::connect(g.xs, g.ev, g.grants(), 51712));
    assert!(matches!(r, Err(BlkfrontError::Xenbus(_))), "{:?}", r.err());
}

#[test]
fn large_sectors_work() {
    let (g, back, front) = setup(VbdConfig {
        sectors: 256,
        sector_size: 4096,
        ..Default::default()
    });
    assert_eq!(front.sector_size(), 4096);
    let data = pattern(1, 4096 * 13);
    block_on(g.ev, async {
        front.write(3, &data).await.unwrap();
        assert_eq!(
            front.write(0, &[0; 512]).await,
            Err(BlkfrontError::BadLength(512))
        );
        let mut r = vec![0; data.len()];
        front.read(3, &mut r).await.unwrap();
        assert_eq!(r, data);
    });
    // Wire sectors are 512 bytes: device sector 3 is wire sector 24.
    assert_eq!(&back.state().disk[3 * 4096..16 * 4096], &data[..]);
    assert!(back
        .state()
        .stats
        .ops
        .iter()
        .any(|&(op, s, _, _)| op == BLKIF_OP_WRITE && s == 24));
}

#[test]
fn writes_read_back_at_many_offsets_and_sizes() {
    let (g, back, front) = setup(VbdConfig::default());
    let sizes = [
        1usize, 2, 7, 8, 9, 15, 16, 17, 87, 88, 89, 100, 176, 177, 300,
    ];
    let offsets = [0u64, 1, 7, 8, 9, 333, 1000];
    block_on(g.ev, async {
        for (i, &n) in sizes.iter().enumerate() {
            for &off in &offsets {
                let seed = (i as u64) << 16 | off;
                let data = pattern(seed, n * 512);
                // An odd start address: the driver copies through its own pages.
                let mut store = vec![0u8; data.len() + 1];
                store[1..].copy_from_slice(&data);
                front.write(off, &store[1..]).await.unwrap();
                let mut r = vec![0u8; data.len() + 3];
                front.read(off, &mut r[3..]).await.unwrap();
                assert!(r[3..] == data[..], "size {n} at {off}");
            }
        }
    });
    // The disk holds the last pattern written at each place; spot-check the last one.
    let last = pattern(((sizes.len() - 1) as u64) << 16 | 1000, 300 * 512);
    assert_eq!(&back.state().disk[1000 * 512..1300 * 512], &last[..]);
    // Requests were split at 11 pages (88 sectors) and never had more segments.
    let st = back.state();
    assert!(st
        .stats
        .ops
        .iter()
        .all(|&(_, _, n, segs)| segs as usize <= 11 && n <= 88));
    assert!(st
        .stats
        .ops
        .iter()
        .any(|&(op, _, n, segs)| op == BLKIF_OP_WRITE && n == 88 && segs == 11));
    // 300 sectors = 88 + 88 + 88 + 36.
    let writes_at_1000: Vec<u64> = st
        .stats
        .ops
        .iter()
        .filter(|&&(op, s, _, _)| op == BLKIF_OP_WRITE && (1000..1300).contains(&s))
        .map(|&(_, _, n, _)| n)
        .collect();
    assert_eq!(
        &writes_at_1000[writes_at_1000.len() - 4..],
        &[88, 88, 88, 36]
    );
}

#[test]
fn many_requests_in_flight_with_reordered_responses() {
    let (g, back, front) = setup(VbdConfig::default());
    back.state().faults.reverse = true;
    let n = 100u64;
    block_on(g.ev, async {
        let writes: Vec<_> = (0..n)
            .map(|i| {
                let data = pattern(i, 512 * (1 + (i as usize % 20)));
                let front = &front;
                async move { front.write(i * 40, &data).await }
            })
            .collect();
        for r in join_all(writes).await {
            r.unwrap();
        }
        let reads: Vec<_> = (0..n)
            .map(|i| {
                let front = &front;
                async move {
                    let mut buf = vec![0; 512 * (1 + (i as usize % 20))];
                    front.read(i * 40, &mut buf).await.map(|_| buf)
                }
            })
            .collect();
        for (i, r) in join_all(reads).await.into_iter().enumerate() {
            assert_eq!(r.unwrap(), pattern(i as u64, 512 * (1 + (i % 20))), "{i}");
        }
        // One call larger than the ring can carry at once (32 requests of 88 sectors).
        let big = pattern(99, 4000 * 512);
        front.write(0, &big).await.unwrap();
        let mut r = vec![0; big.len()];
        front.read(0, &mut r).await.unwrap();
        assert!(r == big);
    });
    let st = back.state();
    assert!(st.stats.max_batch >= 16, "batch {}", st.stats.max_batch);
    assert_eq!(front.stats().max_in_flight, 32);
    // Requests are published in batches: far fewer notifications than requests.
    let fs = front.stats();
    assert!(fs.notifications * 4 < fs.requests, "{fs:?}");
    assert_eq!(front.stats().bad_responses, 0);
    assert_eq!(front.in_flight(), 0);
}

#[test]
fn flush_and_discard() {
    let (g, back, front) = setup(VbdConfig::default());
    block_on(g.ev, async {
        front.write(10, &[0xaa; 512 * 30]).await.unwrap();
        front.flush().await.unwrap();
        front.discard(15, 10).await.unwrap();
        let mut r = vec![0; 512 * 30];
        front.read(10, &mut r).await.unwrap();
        assert!(r[..5 * 512].iter().all(|&b| b == 0xaa));
        assert!(r[5 * 512..15 * 512].iter().all(|&b| b == 0));
        assert!(r[15 * 512..].iter().all(|&b| b == 0xaa));
        assert!(matches!(
            front.discard(4090, 10).await,
            Err(BlkfrontError::OutOfRange { .. })
        ));
        front.discard(0, 0).await.unwrap();
    });
    let ops = back.state().stats.ops.clone();
    assert!(ops.contains(&(BLKIF_OP_FLUSH_DISKCACHE, 0, 0, 0)));
    assert!(ops.contains(&(BLKIF_OP_DISCARD, 15, 10, 0)));
    assert_eq!(ops.len(), 4, "{ops:?}");

    // Barrier only: flush uses a write barrier. Neither: flush sends nothing.
    let (g, back, front) = setup(VbdConfig {
        flush: false,
        barrier: true,
        discard: false,
        ..Default::default()
    });
    block_on(g.ev, async {
        front.flush().await.unwrap();
        assert_eq!(front.discard(0, 1).await, Err(BlkfrontError::Unsupported));
    });
    assert_eq!(
        back.state().stats.ops,
        vec![(BLKIF_OP_WRITE_BARRIER, 0, 0, 0)]
    );
    let (g, back, front) = setup(VbdConfig {
        flush: false,
        ..Default::default()
    });
    block_on(g.ev, front.flush()).unwrap();
    assert!(back.state().stats.ops.is_empty());
}

#[test]
fn read_only_disks_and_bad_ranges_are_refused_before_sending() {
    let (g, back, front) = setup(VbdConfig {
        read_only: true,
        ..Default::default()
    });
    back.state().disk[..512].fill(0x5a);
    assert!(front.read_only());
    block_on(g.ev, async {
        assert_eq!(
            front.write(0, &[1; 512]).await,
            Err(BlkfrontError::ReadOnly)
        );
        assert_eq!(front.discard(0, 1).await, Err(BlkfrontError::ReadOnly));
        assert_eq!(back.state().stats.requests, 0);
        let mut r = [0; 512];
        front.read(0, &mut r).await.unwrap();
        assert_eq!(r, [0x5a; 512]);
    });
    let (g, back, front) = setup(VbdConfig::default());
    block_on(g.ev, async {
        let mut r = vec![0; 1024];
        assert_eq!(
            front.read(4095, &mut r).await,
            Err(BlkfrontError::OutOfRange {
                sector: 4095,
                count: 2,
                sectors: 4096
            })
        );
        assert!(matches!(
            front.write(u64::MAX, &[0; 512]).await,
            Err(BlkfrontError::OutOfRange { .. })
        ));
        assert_eq!(
            front.read(0, &mut r[..100]).await,
            Err(BlkfrontError::BadLength(100))
        );
        front.read(4094, &mut r).await.unwrap();
    });
    assert_eq!(back.state().stats.requests, 1);
}

#[test]
fn an_error_status_fails_only_its_request() {
    let (g, back, front) = setup(VbdConfig::default());
    back.state().faults.error_sectors = vec![100];
    block_on(g.ev, async {
        let futs: Vec<_> = (0..8u64)
            .map(|i| {
                let front = &front;
                async move { front.write(i * 32, &[i as u8; 512 * 8]).await }
            })
            .collect();
        let results = join_all(futs).await;
        for (i, r) in results.iter().enumerate() {
            // Sectors 96..104 hold sector 100.
            if i == 3 {
                assert_eq!(*r, Err(BlkfrontError::Io(-1)));
            } else {
                assert_eq!(*r, Ok(()), "{i}");
            }
        }
        // A multi-request read touching the bad sector fails; the others still work.
        let mut buf = vec![0; 512 * 200];
        assert_eq!(front.read(0, &mut buf).await, Err(BlkfrontError::Io(-1)));
        front.read(0, &mut buf[..512 * 96]).await.unwrap();
        assert_eq!(buf[64 * 512], 2);
    });
    assert_eq!(front.in_flight(), 0);
    let (total, free) = front.pool_pages();
    assert_eq!(total, free, "every page back in the pool");
}

/// Runs `fut` to completion within one second of simulated time: a hang fails the test.
fn within_a_second<F: Future + Unpin>(g: &Guest, mut fut: F) -> F::Output {
    let deadline = g.sim.now_ns() + 1_000_000_000;
    poll_until(g, &mut fut, deadline).expect("the call hangs instead of failing")
}

/// After the device broke with `want`: later calls fail at once with the same error, no slot
/// is held, every bounce page is back in the pool and no grant was lost.
fn assert_broken(g: &Guest, front: &Front, want: &BlkfrontError, grants_free: usize) {
    assert_eq!(front.broken().as_ref(), Some(want));
    let mut r = [0; 512];
    assert_eq!(
        within_a_second(g, Box::pin(front.read(0, &mut r))).as_ref(),
        Err(want)
    );
    assert_eq!(
        within_a_second(g, Box::pin(front.write(0, &[1; 512]))).as_ref(),
        Err(want)
    );
    assert_eq!(front.in_flight(), 0, "no slot leaks");
    let (total, free) = front.pool_pages();
    assert_eq!(total, free, "every page back in the pool");
    assert_eq!(g.grants().free_entries(), grants_free, "no grant leaks");
    assert_eq!(front.stats().broken, 1);
}

#[test]
fn a_response_with_the_wrong_operation_breaks_the_device() {
    let (g, back, front) = setup(VbdConfig::default());
    let grants_free = g.grants().free_entries();
    back.state()
        .faults
        .hostile
        .push_back(Hostile::WrongOperation);
    let mut r = [0; 512];
    let e = within_a_second(&g, Box::pin(front.read(0, &mut r))).unwrap_err();
    assert!(
        matches!(
            e,
            BlkfrontError::Broken(Violation::WrongOperation {
                op: 1,
                expected: 0,
                ..
            })
        ),
        "{e:?}"
    );
    assert_eq!(front.stats().wrong_operation, 1);
    assert_broken(&g, &front, &e, grants_free);
}

#[test]
fn an_unknown_id_breaks_the_device_and_fails_every_request() {
    let (g, back, front) = setup(VbdConfig::default());
    let grants_free = g.grants().free_entries();
    // Warm up, then one request answered with an id never used while others are in flight
    // or waiting for a slot (a 40-request read: more than the 32 slots).
    within_a_second(&g, Box::pin(front.write(0, &[7; 512]))).unwrap();
    back.state().faults.hostile.push_back(Hostile::UnknownId);
    let mut a = [0u8; 512];
    let mut b = vec![0u8; 40 * 11 * 4096];
    let results = within_a_second(
        &g,
        Box::pin(join_all(vec![
            Box::pin(front.read(0, &mut a)) as Pin<Box<dyn Future<Output = _>>>,
            Box::pin(front.read(8, &mut b)),
        ])),
    );
    let want = BlkfrontError::Broken(Violation::UnknownId(u64::MAX));
    assert_eq!(results, vec![Err(want.clone()), Err(want.clone())]);
    assert_eq!(front.stats().bad_responses, 1);
    assert_broken(&g, &front, &want, grants_free);
}

#[test]
fn a_duplicate_id_breaks_the_device() {
    let (g, back, front) = setup(VbdConfig::default());
    let grants_free = g.grants().free_entries();
    // Two requests answered in one batch, the second with the first's id.
    {
        let mut st = back.state();
        st.faults.hostile.push_back(Hostile::Honest);
        st.faults.hostile.push_back(Hostile::DuplicateId);
    }
    let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
    let results = within_a_second(
        &g,
        Box::pin(join_all(vec![
            Box::pin(front.read(8, &mut a)) as Pin<Box<dyn Future<Output = _>>>,
            Box::pin(front.read(16, &mut b)),
        ])),
    );
    // The honest answer completed one read; the other read fails.
    assert!(results.contains(&Ok(())), "{results:?}");
    let e = results
        .into_iter()
        .find_map(Result::err)
        .expect("a failure");
    assert!(
        matches!(e, BlkfrontError::Broken(Violation::DuplicateId(_))),
        "{e:?}"
    );
    assert_eq!(front.stats().bad_responses, 1);
    assert_broken(&g, &front, &e, grants_free);
}

#[test]
fn an_impossible_status_breaks_the_device() {
    for status in [1i16, -3, i16::MIN, i16::MAX] {
        let (g, back, front) = setup(VbdConfig::default());
        let grants_free = g.grants().free_entries();
        back.state()
            .faults
            .hostile
            .push_back(Hostile::Status(status));
        let e = within_a_second(&g, Box::pin(front.write(0, &[1; 512]))).unwrap_err();
        assert!(
            matches!(e, BlkfrontError::Broken(Violation::BadStatus { status: s, .. }) if s == status),
            "{e:?}"
        );
        assert_eq!(front.stats().bad_status, 1);
        assert_broken(&g, &front, &e, grants_free);
    }
}

#[test]
fn an_abandoned_request_is_freed_when_the_device_breaks() {
    let (g, back, front) = setup(VbdConfig::default());
    let grants_free = g.grants().free_entries();
    back.state().faults.stopped = true;
    let mut lost = Box::pin(async {
        let mut r = [0; 512];
        front.read(0, &mut r).await
    });
    let deadline = g.sim.now_ns() + 1_000_000_000;
    assert!(poll_until(&g, &mut lost, deadline).is_none());
    drop(lost);
    assert_eq!(front.in_flight(), 1);
    {
        let mut st = back.state();
        st.faults.stopped = false;
        st.faults.hostile.push_back(Hostile::UnknownId);
    }
    let e = within_a_second(&g, Box::pin(front.write(0, &[1; 512]))).unwrap_err();
    assert!(matches!(e, BlkfrontError::Broken(_)), "{e:?}");
    assert_broken(&g, &front, &e, grants_free);
}

#[test]
fn feature_values_other_than_1_are_off_and_counted() {
    let (g, _back, front) = setup(VbdConfig {
        extra_nodes: vec![
            ("feature-flush-cache".into(), "garbage".into()),
            ("feature-barrier".into(), "2".into()),
            ("feature-discard".into(), "0".into()),
            ("feature-persistent".into(), "1".into()),
        ],
        ..VbdConfig::default()
    });
    let f = front.features();
    assert!(
        !f.flush_cache && !f.barrier && !f.discard && f.persistent,
        "{f:?}"
    );
    assert_eq!(front.stats().bad_features, 2);
    // Flush has no feature to use: nothing is sent.
    within_a_second(&g, Box::pin(front.flush())).unwrap();
    assert_eq!(front.stats().requests, 0);
}

#[test]
fn a_producer_overrun_breaks_the_ring_without_panicking() {
    let (g, back, front) = setup(VbdConfig::default());
    back.state()
        .faults
        .hostile
        .push_back(Hostile::ProducerOverrun);
    block_on(g.ev, async {
        let mut r = [0; 512];
        let e = front.read(0, &mut r).await.unwrap_err();
        assert!(
            matches!(e, BlkfrontError::Ring(RingError::ProducerOverrun { .. })),
            "{e:?}"
        );
        assert!(matches!(
            front.write(0, &[0; 512]).await,
            Err(BlkfrontError::Ring(_))
        ));
    });
}

#[test]
fn grants_are_made_once_and_reused() {
    let (g, back, front) = setup(VbdConfig::default());
    let free_before = g.grants().free_entries();
    let (total, _) = front.pool_pages();
    assert_eq!(total, 32 * 11);
    block_on(g.ev, async {
        for i in 0..200u64 {
            let data = pattern(i, 512 * (1 + (i as usize * 7) % 100));
            front.write(i * 3, &data).await.unwrap();
            let mut r = vec![0; data.len()];
            front.read(i * 3, &mut r).await.unwrap();
            assert!(r == data);
            assert_eq!(g.grants().free_entries(), free_before);
        }
    });
    assert_eq!(front.pool_pages(), (total, total));
    // Only the ring stays mapped by the backend.
    assert_eq!(g.sim.with_host(|h| h.grants.mapped()), 1);
    assert!(back.state().stats.requests >= 400);
    // Closing ends every grant.
    block_on(g.ev, front.close()).unwrap();
    assert!(back.state().closed);
    assert_eq!(g.sim.with_host(|h| h.grants.mapped()), 0);
    assert_eq!(g.grants().free_entries(), free_before + total + 1);
}

#[test]
fn a_silent_backend_leaves_the_request_pending_without_busy_polling() {
    let (g, back, front) = setup(VbdConfig::default());
    back.state().faults.stopped = true;
    let mut buf = [0u8; 4096];
    let mut read = Box::pin(front.read(0, &mut buf));
    let start = g.sim.now_ns();
    let polls_before = g.sim.with_host(|h| h.hypercall_counts[SCHED_OP as usize]);
    let deadline = start + 5_000_000_000;
    assert!(poll_until(&g, &mut read, deadline).is_none(), "timed out");
    assert!(g.sim.now_ns() >= deadline);
    let polls = g.sim.with_host(|h| h.hypercall_counts[SCHED_OP as usize]) - polls_before;
    assert!(
        polls <= 3,
        "the guest blocked instead of spinning ({polls} sched_ops)"
    );
    // The backend wakes up: the same future completes.
    back.state().faults.stopped = false;
    back.state().disk[..4096].fill(9);
    let r = poll_until(&g, &mut read, g.sim.now_ns() + 5_000_000_000).unwrap();
    assert_eq!(r, Ok(()));
    drop(read);
    assert_eq!(buf, [9; 4096]);
}

#[test]
fn a_dropped_request_returns_its_pages_when_answered() {
    let (g, _back, front) = setup(VbdConfig::default());
    {
        let mut buf = vec![0u8; 512 * 88 * 3];
        let mut read = Box::pin(front.read(0, &mut buf));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert_eq!(front.in_flight(), 3);
    }
    // Nobody waits, but the next I/O collects the abandoned responses.
    block_on(g.ev, front.write(0, &[1; 512])).unwrap();
    assert_eq!(front.in_flight(), 0);
    let (total, free) = front.pool_pages();
    assert_eq!(total, free);
    let _ = BlkfrontConfig::default();
}

#[test]
fn indirect_requests_carry_more_segments() {
    let g = guest();
    let back = Blkback::add(
        &g.sim,
        VbdConfig {
            max_indirect_segments: 256,
            ..Default::default()
        },
    );
    let front = block_on(g.ev, Blkfront::connect(g.xs, g.ev, g.grants(), 51712)).unwrap();
    assert_eq!(front.features().max_indirect_segments, 256);
    assert_eq!(front.segments_per_request(), 64);
    back.state().faults.reverse = true;
    block_on(g.ev, async {
        // 1000 sectors = 125 pages: one request of 64 segments and one of 61.
        let data = pattern(5, 1000 * 512);
        front.write(17, &data).await.unwrap();
        let mut r = vec![0; data.len() + 1];
        front.read(17, &mut r[1..]).await.unwrap();
        assert!(r[1..] == data[..]);
        // Small requests stay direct; many large ones in flight at once.
        let futs: Vec<_> = (0..12u64)
            .map(|i| {
                let front = &front;
                async move {
                    let d = pattern(i + 100, 512 * (8 + 20 * i as usize));
                    front.write(1024 + i * 256, &d).await
                }
            })
            .collect();
        for r in join_all(futs).await {
            r.unwrap();
        }
    });
    let st = back.state();
    let big: Vec<_> = st
        .stats
        .ops
        .iter()
        .filter(|&&(op, s, _, _)| op == BLKIF_OP_WRITE && (17..1017).contains(&s))
        .map(|&(_, s, n, segs)| (s, n, segs))
        .collect();
    assert_eq!(big, vec![(17, 512, 64), (17 + 512, 488, 61)]);
    assert!(st.stats.ops.iter().any(|&(_, _, _, segs)| segs <= 11));
    assert!(st.stats.max_batch >= 2);
    drop(st);
    assert_eq!(front.pool_pages().0, front.pool_pages().1);

    // A small pool caps the request size and the queue depth, and everything still completes.
    let g = guest();
    let back = Blkback::add(
        &g.sim,
        VbdConfig {
            max_indirect_segments: 256,
            ..Default::default()
        },
    );
    let config = BlkfrontConfig {
        pool_pages: 20,
        max_indirect_segments: 64,
        ..Default::default()
    };
    let front = block_on(
        g.ev,
        Blkfront::connect_with(g.xs, g.ev, g.grants(), 51712, config),
    )
    .unwrap();
    assert_eq!(front.segments_per_request(), 12);
    block_on(g.ev, async {
        let futs: Vec<_> = (0..10u64)
            .map(|i| {
                let front = &front;
                async move {
                    let d = pattern(i, 512 * 96);
                    front.write(i * 96, &d).await?;
                    let mut r = vec![0; d.len()];
                    front.read(i * 96, &mut r).await?;
                    assert!(r == d);
                    Ok::<_, BlkfrontError>(())
                }
            })
            .collect();
        for r in join_all(futs).await {
            r.unwrap();
        }
    });
    assert!(back
        .state()
        .stats
        .ops
        .iter()
        .all(|&(_, _, _, segs)| segs <= 12));
    assert_eq!(front.pool_pages(), (20, 20));

    // Without the feature (or with it turned off on our side) requests stay direct.
    let g = guest();
    Blkback::add(
        &g.sim,
        VbdConfig {
            max_indirect_segments: 256,
            ..Default::default()
        },
    );
    let config = BlkfrontConfig {
        max_indirect_segments: 0,
        ..Default::default()
    };
    let front = block_on(
        g.ev,
        Blkfront::connect_with(g.xs, g.ev, g.grants(), 51712, config),
    )
    .unwrap();
    assert_eq!(front.segments_per_request(), 11);
}

#[test]
fn a_multi_page_ring_holds_more_requests() {
    let g = guest();
    let back = Blkback::add(
        &g.sim,
        VbdConfig {
            max_ring_page_order: 4,
            ..Default::default()
        },
    );
    let free_at_start = g.grants().free_entries();
    let config = BlkfrontConfig {
        max_ring_page_order: 2,
        ..Default::default()
    };
    let front = block_on(
        g.ev,
        Blkfront::connect_with(g.xs, g.ev, g.grants(), 51712, config),
    )
    .unwrap();
    assert_eq!(front.features().max_ring_page_order, 4);
    // (4 * 4096 - 64) / 112 = 145 entries, rounded down to a power of two.
    assert_eq!(front.ring_size(), 128);
    {
        let xsd = g.sim.xenstored();
        let mut x = xsd.borrow_mut();
        let fe = back.frontend_path();
        assert_eq!(
            x.read_string(&format!("{fe}/ring-page-order")).unwrap(),
            "2"
        );
        assert_eq!(x.read_string(&format!("{fe}/num-ring-pages")).unwrap(), "4");
        for i in 0..4 {
            assert!(x.read_string(&format!("{fe}/ring-ref{i}")).is_ok());
        }
        assert!(x.read_string(&format!("{fe}/ring-ref")).is_err());
    }
    assert_eq!(g.sim.with_host(|h| h.grants.mapped()), 4);
    block_on(g.ev, async {
        let futs: Vec<_> = (0..300u64)
            .map(|i| {
                let front = &front;
                async move {
                    front
                        .write(i * 3, &pattern(i, 512 * (1 + i as usize % 3)))
                        .await
                }
            })
            .collect();
        for r in join_all(futs).await {
            r.unwrap();
        }
        let mut r = vec![0; 512 * 900];
        front.read(0, &mut r).await.unwrap();
        for i in 0..300usize {
            let n = 1 + i % 3;
            assert!(r[i * 3 * 512..(i * 3 + n) * 512] == pattern(i as u64, 512 * n)[..]);
        }
    });
    assert_eq!(front.stats().max_in_flight, 128);
    assert!(back.state().stats.max_batch > 32);
    block_on(g.ev, front.close()).unwrap();
    assert_eq!(g.sim.with_host(|h| h.grants.mapped()), 0);
    assert_eq!(g.grants().free_entries(), free_at_start);

    // A backend without multi-page rings gets one page whatever we would like.
    let g = guest();
    Blkback::add(&g.sim, VbdConfig::default());
    let front = block_on(
        g.ev,
        Blkfront::connect_with(g.xs, g.ev, g.grants(), 51712, config),
    )
    .unwrap();
    assert_eq!(front.ring_size(), 32);
}

#[test]
fn bad_backend_values_are_reported() {
    let cases: [(&str, &str, &str); 6] = [
        ("sectors", "banana", "sectors"),
        ("sectors", "-1", "sectors"),
        ("sector-size", "0", "sector-size"),
        ("physical-sector-size", "1000", "physical-sector-size"),
        ("info", "x", "info"),
        ("discard-granularity", "lots", "discard-granularity"),
    ];
    for (key, value, reported) in cases {
        let g = guest();
        Blkback::add(
            &g.sim,
            VbdConfig {
                extra_nodes: vec![(key.into(), value.into())],
                ..Default::default()
            },
        );
        let r = block_on(g.ev, Blkfront::connect(g.xs, g.ev, g.grants(), 51712));
        match r {
            Err(BlkfrontError::BadInfo(k, v)) => {
                assert_eq!((k, v.as_str()), (reported, value));
            }
            other => panic!("{key}={value}: {:?}", other.err()),
        }
    }
    // `mode` = r makes the disk read-only even without VDISK_READONLY.
    let g = guest();
    Blkback::add(
        &g.sim,
        VbdConfig {
            extra_nodes: vec![("mode".into(), "r".into())],
            ..Default::default()
        },
    );
    let front = block_on(g.ev, Blkfront::connect(g.xs, g.ev, g.grants(), 51712)).unwrap();
    assert!(front.read_only());
    assert_eq!(
        block_on(g.ev, front.write(0, &[0; 512])),
        Err(BlkfrontError::ReadOnly)
    );
}

#[test]
fn an_operation_the_backend_refuses_is_reported_as_unsupported() {
    // The backend claims flush support but answers BLKIF_RSP_EOPNOTSUPP.
    let (g, back, front) = setup(VbdConfig {
        flush: false,
        extra_nodes: vec![("feature-flush-cache".into(), "1".into())],
        ..Default::default()
    });
    assert!(front.features().flush_cache);
    block_on(g.ev, async {
        assert_eq!(front.flush().await, Err(BlkfrontError::Unsupported));
        front.write(0, &[1; 512]).await.unwrap();
    });
    assert_eq!(back.state().stats.ops[0].0, BLKIF_OP_FLUSH_DISKCACHE);
}
