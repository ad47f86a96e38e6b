//! The store engine on an in-memory disk: crash injection at every record boundary and at
//! random byte offsets of the write stream (torn writes keeping old bytes or leaving garbage),
//! device failures, corruption, stale records, limits.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use xenia_kv::format::{LOG_START, MAX_KEY, MAX_VALUE};
use xenia_kv::mem::{replay, stream_len, Faults, MemDisk, Op};
use xenia_kv::{KvError, Options, Recovery, Stop, Store};

/// MemDisk futures never wait: poll once.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemDisk future waited"),
    }
}

fn open(disk: MemDisk) -> (Store<MemDisk>, Recovery) {
    run(Store::open(disk, Options::default())).expect("open")
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn value(rng: &mut Rng, len: usize) -> Vec<u8> {
    let seed = rng.next();
    (0..len)
        .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
        .collect()
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Checks that the store holds exactly `model`, every value read back through its checksums.
fn check(store: &Store<MemDisk>, model: &Model, what: &str) {
    let mut keys = store.keys();
    keys.sort();
    let want: Vec<_> = model.keys().cloned().collect();
    assert_eq!(keys, want, "{what}: keys");
    for (k, v) in model {
        let got = run(store.get(k)).unwrap_or_else(|e| panic!("{what}: get: {e}"));
        assert_eq!(got.as_ref(), Some(v), "{what}: value of {k:?}");
    }
}

/// Runs a random workload; returns the base image (formatted, before the workload), the
/// journal of the workload, and after each acknowledged operation the write-stream position
/// and the model.
fn workload(ss: u32, sectors: u64, ops: usize, seed: u64) -> (Vec<u8>, Vec<Op>, Vec<(u64, Model)>) {
    let (store, rec) = open(MemDisk::new(sectors, ss));
    assert!(rec.formatted);
    let base = store.device().image();
    let j0 = store.device().journal().len();
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let mut acks = vec![(0, model.clone())];
    for i in 0..ops {
        let key = format!("key-{}", rng.below(24)).into_bytes();
        if rng.below(5) == 0 {
            let had = run(store.delete(&key)).unwrap();
            assert_eq!(had, model.remove(&key).is_some());
            if !had {
                continue;
            }
        } else {
            let len = match i % 50 {
                17 => 64 * 1024 + 3,
                _ => rng.below(2500) as usize,
            };
            let v = value(&mut rng, len);
            run(store.put(&key, &v)).unwrap();
            model.insert(key, v);
        }
        let j = &store.device().journal()[j0..];
        // Acknowledged: written and flushed.
        assert_eq!(j.last(), Some(&Op::Flush));
        acks.push((stream_len(j), model.clone()));
    }
    check(&store, &model, "after workload");
    let journal = store.device().journal()[j0..].to_vec();
    (base, journal, acks)
}

/// Crashes at `cut`, recovers, and checks that the store holds exactly the state after the
/// last record wholly written before the cut; then writes on and recovers again.
fn crash_and_recover(
    ss: u32,
    base: &[u8],
    journal: &[Op],
    acks: &[(u64, Model)],
    cut: u64,
    garbage: Option<u8>,
) {
    let img = replay(base, journal, cut, garbage);
    let (store, rec) = open(MemDisk::from_image(img, ss));
    let mut done = acks.iter().rposition(|(pos, _)| *pos <= cut).unwrap();
    // The record the cut falls in is whole (and may be recovered, though never acknowledged)
    // when only its zero padding is missing.
    let writes: Vec<&Vec<u8>> = journal
        .iter()
        .filter_map(|op| match op {
            Op::Write(_, d) => Some(d),
            Op::Flush => None,
        })
        .collect();
    if let Some(w) = writes.get(done) {
        let len = |at: usize| u32::from_le_bytes(w[at..at + 4].try_into().unwrap()) as u64;
        if cut - acks[done].0 >= 36 + len(16) + len(20) {
            done += 1;
        }
    }
    let what = format!("cut {cut} garbage {garbage:?}");
    assert!(!rec.formatted, "{what}");
    assert_eq!(rec.records, done as u64, "{what}: records replayed");
    let mut model = acks[done].1.clone();
    check(&store, &model, &what);

    // Writing on after the crash overwrites the torn tail; a second recovery sees it all.
    run(store.put(b"after-crash", b"one")).unwrap();
    run(store.put(b"key-1", b"overwritten after the crash")).unwrap();
    model.insert(b"after-crash".to_vec(), b"one".to_vec());
    model.insert(b"key-1".to_vec(), b"overwritten after the crash".to_vec());
    check(&store, &model, &what);
    let (store2, rec2) = open(MemDisk::from_image(store.device().image(), ss));
    assert_eq!(rec2.records, done as u64 + 2, "{what}: second recovery");
    check(&store2, &model, &format!("{what}, second recovery"));
}

fn crash_matrix(ss: u32, sectors: u64, ops: usize, seed: u64, random_cuts: usize) {
    let (base, journal, acks) = workload(ss, sectors, ops, seed);
    let total = stream_len(&journal);
    assert_eq!(total, acks.last().unwrap().0);
    // Every record boundary, and one sector and one byte either side of it.
    let mut cuts = Vec::new();
    for (pos, _) in &acks {
        for d in [-(ss as i64) - 1, -1, 0, 1, ss as i64] {
            let c = *pos as i64 + d;
            if (0..=total as i64).contains(&c) {
                cuts.push(c as u64);
            }
        }
    }
    let mut rng = Rng(seed ^ 0xabcdef);
    for _ in 0..random_cuts {
        cuts.push(rng.below(total + 1));
    }
    for (i, cut) in cuts.iter().enumerate() {
        let garbage = (i % 2 == 1).then_some(i as u8);
        crash_and_recover(ss, &base, &journal, &acks, *cut, garbage);
    }
}

#[test]
fn crash_at_every_boundary_and_random_offsets_512() {
    crash_matrix(512, 8192, 160, 0x1234_5678, 300);
}

#[test]
fn crash_at_every_boundary_and_random_offsets_4096() {
    crash_matrix(4096, 1024, 80, 0x9876_5432, 150);
}

#[test]
fn failed_write_or_flush_is_an_error_and_never_served() {
    let (store, _) = open(MemDisk::new(2048, 512));
    run(store.put(b"a", b"alpha")).unwrap();
    run(store.put(b"b", b"beta")).unwrap();

    // A torn write: part of the record reaches the disk, the put fails.
    store.device().set_faults(Faults {
        fail_write: Some(Some(300)),
        ..Faults::default()
    });
    assert!(matches!(
        run(store.put(b"c", &[7u8; 2000])),
        Err(KvError::Device(_))
    ));
    assert_eq!(run(store.get(b"c")).unwrap(), None);
    // Recovery from that state ignores the torn record.
    let (s2, r2) = open(MemDisk::from_image(store.device().image(), 512));
    assert_eq!((r2.records, r2.stop), (2, Stop::Invalid));
    assert_eq!(run(s2.get(b"c")).unwrap(), None);

    // A failed flush: the put fails and the key is not served.
    store.device().set_faults(Faults {
        fail_flush: true,
        ..Faults::default()
    });
    assert!(matches!(
        run(store.put(b"d", b"delta")),
        Err(KvError::Device(_))
    ));
    assert!(!store.contains(b"d"));

    // The next put goes over the failed records; everything acknowledged survives a reopen.
    run(store.put(b"e", b"epsilon")).unwrap();
    let (s3, r3) = open(MemDisk::from_image(store.device().image(), 512));
    assert_eq!(r3.records, 3);
    let mut model = Model::new();
    model.insert(b"a".to_vec(), b"alpha".to_vec());
    model.insert(b"b".to_vec(), b"beta".to_vec());
    model.insert(b"e".to_vec(), b"epsilon".to_vec());
    check(&s3, &model, "after failures");

    // A read error is an error.
    s3.device().set_faults(Faults {
        fail_reads: true,
        ..Faults::default()
    });
    assert!(matches!(run(s3.get(b"a")), Err(KvError::Device(_))));
}

#[test]
fn corruption_is_reported_not_served() {
    let (store, _) = open(MemDisk::new(2048, 512));
    for i in 0..5u8 {
        run(store.put(&[b'k', i], &[i; 100])).unwrap();
    }
    // Record 2 (the third) starts at LOG_START + 2 sectors; flip a byte of its value.
    let off = LOG_START as usize + 2 * 512 + 36 + 2 + 10;
    store.device().poke(off, &[0xff]);
    assert_eq!(
        run(store.get(b"k\x02")),
        Err(KvError::Corrupt {
            offset: LOG_START + 1024
        })
    );
    assert_eq!(run(store.get(b"k\x01")).unwrap(), Some(vec![1; 100]));
    // Recovery stops at the corrupt record: nothing at or after it is served.
    let (s2, r2) = open(MemDisk::from_image(store.device().image(), 512));
    assert_eq!((r2.records, r2.stop), (2, Stop::Invalid));
    let mut keys = s2.keys();
    keys.sort();
    assert_eq!(keys, vec![b"k\x00".to_vec(), b"k\x01".to_vec()]);
}

#[test]
fn stale_records_beyond_the_tail_are_not_resurrected() {
    let (store, _) = open(MemDisk::new(2048, 512));
    for i in 0..5u8 {
        run(store.put(&[b'k', i], &[i; 100])).unwrap();
    }
    // Tear record 2, recover (2 records), then write a record of the same size where it was:
    // records 3 and 4 still lie right behind it, with the right sequence numbers.
    store
        .device()
        .poke(LOG_START as usize + 2 * 512 + 36 + 5, &[0xee]);
    let (s2, r2) = open(MemDisk::from_image(store.device().image(), 512));
    assert_eq!(r2.records, 2);
    run(s2.put(b"k\x09", &[9; 100])).unwrap();
    let (s3, r3) = open(MemDisk::from_image(s2.device().image(), 512));
    assert_eq!((r3.records, r3.stop), (3, Stop::Invalid));
    let mut keys = s3.keys();
    keys.sort();
    assert_eq!(
        keys,
        vec![b"k\x00".to_vec(), b"k\x01".to_vec(), b"k\x09".to_vec()]
    );
}

#[test]
fn limits_tombstones_and_foreign_disks() {
    let (store, rec) = open(MemDisk::new(8192, 512));
    assert_eq!(
        (rec.records, rec.stop, rec.log_end),
        (0, Stop::NoRecord, LOG_START)
    );
    let big: Vec<u8> = (0..MAX_VALUE).map(|i| (i * 7 + i / 4096) as u8).collect();
    run(store.put(b"big", &big)).unwrap();
    assert_eq!(run(store.get(b"big")).unwrap().as_ref(), Some(&big));
    let mut too_big = big.clone();
    too_big.push(0);
    assert_eq!(run(store.put(b"x", &too_big)), Err(KvError::TooLarge));
    assert_eq!(
        run(store.put(&[b'k'; MAX_KEY + 1], b"v")),
        Err(KvError::BadKey)
    );
    assert_eq!(run(store.put(b"", b"v")), Err(KvError::BadKey));
    run(store.put(&[b'k'; MAX_KEY], b"long key")).unwrap();
    run(store.put(b"empty", b"")).unwrap();
    assert_eq!(run(store.get(b"empty")).unwrap(), Some(vec![]));
    assert!(run(store.delete(b"big")).unwrap());
    assert!(!run(store.delete(b"big")).unwrap());
    assert_eq!(run(store.get(b"big")).unwrap(), None);
    // The log fills up: an error, and what is there stays readable.
    let free = store.stats().free_bytes;
    run(store.put(b"fill", &big)).unwrap();
    assert!(store.stats().free_bytes < free);
    loop {
        match run(store.put(b"fill", &[1u8; 300 * 1024])) {
            Ok(()) => {}
            Err(KvError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    run(store.put(b"small", b"fits")).unwrap_or(());
    let (s2, r2) = open(MemDisk::from_image(store.device().image(), 512));
    assert_eq!(r2.keys, store.len());
    assert_eq!(run(s2.get(b"empty")).unwrap(), Some(vec![]));
    assert_eq!(run(s2.get(b"big")).unwrap(), None);
    assert_eq!(
        run(s2.get(&[b'k'; MAX_KEY])).unwrap(),
        Some(b"long key".to_vec())
    );

    // A disk that holds something else is refused and left alone.
    let foreign = MemDisk::new(64, 512);
    foreign.poke(0, b"not a store");
    let before = foreign.image();
    let r = run(Store::open(&foreign, Options::default()));
    assert!(matches!(r, Err(KvError::NotAStore)));
    assert_eq!(foreign.image(), before);
    assert!(foreign.journal().is_empty());
}
