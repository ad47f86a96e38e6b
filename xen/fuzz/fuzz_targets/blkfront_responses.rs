//! A hostile blkback: the fuzzer writes the responses (ids, operations, statuses and the
//! producer index) on a blkfront's shared ring while reads are in flight. The driver never
//! panics; once it says the device is broken, every call fails at once with that error, no
//! slot stays reserved and every bounce page is back in the pool.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, Ordering};
use std::task::{Context, Poll, Waker};
use xenia_blkfront::{Blkfront, BlkfrontConfig, BlkfrontError};
use xenia_sim::blkback::{Blkback, VbdConfig};
use xenia_sim::{Guest, DOM0};

/// The ring header (producer and event indices, padding) before the slots.
const HEADER: usize = 64;
/// A blkif slot: a request and its response share it.
const SLOT: usize = 112;
const REQ_PROD: usize = 0;
const RSP_PROD: usize = 8;
/// Slots in a one-page ring.
const RING: u32 = 32;

fn rd<const N: usize>(page: *mut u8, off: usize) -> [u8; N] {
    let mut b = [0; N];
    for (i, x) in b.iter_mut().enumerate() {
        // SAFETY: off + N lies inside the mapped ring page.
        *x = unsafe { page.add(off + i).read_volatile() };
    }
    b
}

fn wr(page: *mut u8, off: usize, bytes: &[u8]) {
    for (i, x) in bytes.iter().enumerate() {
        // SAFETY: off + bytes.len() lies inside the mapped ring page.
        unsafe { page.add(off + i).write_volatile(*x) };
    }
}

type Io<'a> = Pin<Box<dyn Future<Output = Result<(), BlkfrontError>> + 'a>>;

fn poll_all(ios: &mut [(Io<'_>, Option<Result<(), BlkfrontError>>)]) {
    let mut cx = Context::from_waker(Waker::noop());
    for (f, out) in ios.iter_mut() {
        if out.is_none() {
            if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
                *out = Some(r);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let g = Guest::new();
    let config = VbdConfig {
        sectors: 1024,
        ..VbdConfig::default()
    };
    let index = config.index;
    let back = Blkback::add(&g.sim, config);
    let front = g
        .block_on(Blkfront::connect_with(
            g.xs,
            g.ev,
            g.grants(),
            index,
            // Fewer pages than the reads want at once: some wait for pages.
            BlkfrontConfig {
                pool_pages: 48,
                ..BlkfrontConfig::default()
            },
        ))
        .expect("connect");
    // The fuzzer answers from now on.
    back.state().faults.stopped = true;
    let gref: u32 = g
        .xs_read(&format!("{}/ring-ref", back.frontend_path()))
        .expect("ring-ref")
        .parse()
        .expect("a grant reference");
    let ring = g
        .sim
        .with_host(|h| h.grants.map(DOM0, gref, true))
        .expect("map the ring");
    let grants_free = g.grants().free_entries();

    // 1..=8 reads of 1..=90 sectors: up to two requests each.
    let n = 1 + (first % 8) as usize;
    let mut bufs: Vec<Vec<u8>> = (0..n)
        .map(|i| vec![0u8; 512 * (1 + (first as usize + i * 37) % 90)])
        .collect();
    let mut ios: Vec<(Io<'_>, Option<Result<(), BlkfrontError>>)> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| (Box::pin(front.read(i as u64 * 100, b)) as Io<'_>, None))
        .collect();
    poll_all(&mut ios);

    let mut prod = u32::from_le_bytes(rd(ring, RSP_PROD));
    // Each response: id (8 bytes), operation, status (2), and a selector: bit 0 honest id,
    // bit 1 honest operation, bit 2 an overrunning producer index.
    for r in data.chunks_exact(12) {
        let sel = r[11];
        let req_prod = u32::from_le_bytes(rd(ring, REQ_PROD));
        if sel & 4 != 0 {
            let bogus = req_prod.wrapping_add(1 + u32::from(r[0]));
            fence(Ordering::Release);
            wr(ring, RSP_PROD, &bogus.to_le_bytes());
        } else if prod != req_prod {
            let e = HEADER + (prod % RING) as usize * SLOT;
            // The request's operation (byte 0) and id (bytes 8..16) until we overwrite them.
            let op = if sel & 2 != 0 {
                rd::<1>(ring, e)[0]
            } else {
                r[8]
            };
            let id: [u8; 8] = if sel & 1 != 0 {
                rd(ring, e + 8)
            } else {
                r[..8].try_into().unwrap()
            };
            wr(ring, e, &id);
            wr(ring, e + 8, &[op, 0]);
            wr(ring, e + 10, &r[9..11]);
            prod = prod.wrapping_add(1);
            fence(Ordering::Release);
            wr(ring, RSP_PROD, &prod.to_le_bytes());
        }
        poll_all(&mut ios);
    }
    poll_all(&mut ios);

    match front.broken() {
        Some(e) => {
            // Every call is over, with the device's error unless it finished before.
            for (_, out) in &ios {
                let out = out.as_ref().expect("a call still waits on a broken device");
                assert!(
                    out.is_ok()
                        || out.as_ref() == Err(&e)
                        || !matches!(out, Err(BlkfrontError::Broken(_) | BlkfrontError::Ring(_)))
                );
            }
            drop(ios);
            assert_eq!(front.in_flight(), 0);
            let (total, free) = front.pool_pages();
            assert_eq!(total, free);
            assert_eq!(g.grants().free_entries(), grants_free);
            let mut b = [0u8; 512];
            let r = g.block_on(front.read(0, &mut b));
            assert_eq!(r, Err(e));
        }
        None => {
            for (_, out) in &ios {
                assert!(!matches!(
                    out,
                    Some(Err(BlkfrontError::Broken(_) | BlkfrontError::Ring(_)))
                ));
            }
            drop(ios);
            assert!(front.in_flight() <= RING);
        }
    }
    // Let go of the ring and close the device, so that no page stays mapped (a page the
    // backend still maps is kept, not freed: every run would leak it).
    g.sim.with_host(|h| h.grants.unmap(gref));
    let _ = g.block_on(front.close());
});
