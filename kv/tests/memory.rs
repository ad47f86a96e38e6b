//! The index's memory stays within its budget (issue 9: "a kv disk filled with small records
//! then reopened"): a disk filled with the smallest records until the index is at its budget
//! (then `IndexFull`, nothing written), reopened with the same budget (fits), with a smaller
//! one (a clear error, not an allocation failure), and a disk filled to its end with a budget
//! large enough (the replay never needs more than `worst_case_bytes`). Heap use is measured with
//! a counting allocator, so this file holds one test (the allocator is process-wide).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use xenia_kv::index::{entry_bytes, worst_case_bytes};
use xenia_kv::mem::MemDisk;
use xenia_kv::{KvError, Options, Store};

#[global_allocator]
static A: xenia_sim::heap::Counting = xenia_sim::heap::Counting;

use xenia_sim::heap::{mark, peak_since};

/// MemDisk futures never wait: poll once.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemDisk future waited"),
    }
}

const SS: u32 = 512;
/// 8 MiB of disk: 16376 one-sector records.
const SECTORS: u64 = 16384;
/// What an open may allocate besides the index: the scan window and a few small buffers.
const SCAN: usize = 64 * 1024;
const SLACK: usize = SCAN + 16 * 1024;

fn opts(budget: usize) -> Options {
    Options {
        scan_chunk: SCAN,
        index_budget: budget,
        ..Options::default()
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:07}").into_bytes()
}

#[test]
fn index_memory_stays_within_its_budget() {
    // 1. Fill with small records until the index budget says no.
    let budget = 1 << 20;
    let disk = MemDisk::new(SECTORS, SS);
    disk.set_journaling(false);
    let base = mark();
    let (store, _) = run(Store::open(&disk, opts(budget))).unwrap();
    let mut n = 0u64;
    let err = loop {
        match run(store.put(&key(n), b"v")) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, KvError::IndexFull);
    let per = entry_bytes(key(0).len());
    assert_eq!(n as usize, budget / per, "keys admitted");
    let stats = store.stats();
    assert!(stats.index_bytes <= budget);
    let used = peak_since(base);
    println!(
        "filled: {n} keys, index accounts {} B, heap peak {used} B",
        stats.index_bytes
    );
    assert!(
        used <= budget + SLACK,
        "heap peak {used} B over budget {budget} B"
    );
    // IndexFull wrote nothing; overwriting an existing key and deleting still work.
    let tail = stats.log_bytes;
    assert_eq!(run(store.put(&key(n), b"v")), Err(KvError::IndexFull));
    assert_eq!(store.stats().log_bytes, tail);
    run(store.put(&key(0), b"new value")).unwrap();
    assert!(run(store.delete(&key(1))).unwrap());
    run(store.put(&key(n), b"fits again")).unwrap();
    assert_eq!(run(store.put(&key(n + 1), b"v")), Err(KvError::IndexFull));
    drop(store);

    // 2. Reopen with the same budget: every key back, within the budget.
    let base = mark();
    let (store, rec) = run(Store::open(&disk, opts(budget))).unwrap();
    let used = peak_since(base);
    println!(
        "reopened: {} keys in {} records, heap peak {used} B",
        rec.keys, rec.records
    );
    assert_eq!(rec.keys as u64, n);
    assert!(
        used <= budget + SLACK,
        "reopen: heap peak {used} B over budget"
    );
    assert_eq!(
        run(store.get(&key(0))).unwrap().as_deref(),
        Some(&b"new value"[..])
    );
    assert_eq!(run(store.get(&key(1))).unwrap(), None);
    drop(store);

    // 3. Reopen in a smaller domain: a clear error, memory still bounded.
    let base = mark();
    let small = budget / 2;
    let err = run(Store::open(&disk, opts(small)))
        .err()
        .expect("must not open");
    let used = peak_since(base);
    assert!(
        matches!(err, KvError::IndexBudget { budget: b, keys } if b == small && keys > 0),
        "{err:?}"
    );
    println!("smaller budget: {err} (heap peak {used} B)");
    assert!(err.to_string().contains("index budget"));
    assert!(
        used <= small + SLACK,
        "heap peak {used} B over budget {small} B"
    );

    // 4. A disk filled to its end with one-sector records and a budget of the declared worst
    // case: the fill ends with Full (disk), never IndexFull, and the replay fits.
    let disk = MemDisk::new(SECTORS, SS);
    disk.set_journaling(false);
    let worst = worst_case_bytes(SECTORS * u64::from(SS), SS) as usize;
    let (store, _) = run(Store::open(&disk, opts(worst))).unwrap();
    let mut n = 0u64;
    let err = loop {
        match run(store.put(&key(n), b"v")) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, KvError::Full);
    drop(store);
    let base = mark();
    let (_store, rec) = run(Store::open(&disk, opts(worst))).unwrap();
    let used = peak_since(base);
    println!(
        "full disk: {n} keys, worst case {worst} B, index {} B, heap peak {used} B",
        rec.index_bytes
    );
    assert_eq!(rec.keys as u64, n);
    assert!(used <= worst + SLACK);
}
