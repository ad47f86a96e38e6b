//! Byte rings: random chunked streams against a queue model, index wrap-around, hostile
//! indices, the xenstore and console page views, and a stream between two threads.

mod common;

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Area;
use proptest::prelude::*;
use xenia_ring::console::{self, ConsoleBack, ConsoleFront};
use xenia_ring::xenstore::{self, XenstoreBack, XenstoreFront};
use xenia_ring::{ByteRingConsumer, ByteRingProducer, RingError};

/// Where the generic tests keep the indices (after the largest data buffer).
const CONS: usize = 3072;
const PROD: usize = 3076;

fn at<T>(area: &Area, off: usize) -> NonNull<T> {
    assert!(off < area.len());
    // SAFETY: in bounds of the area.
    unsafe { area.ptr().add(off).cast() }
}

/// Both ends of a byte ring of `size` bytes at the start of `area`, indices at `start`.
fn ends(area: &Area, size: u32, start: u32) -> (ByteRingProducer, ByteRingConsumer) {
    area.write_u32(CONS, start);
    area.write_u32(PROD, start);
    // SAFETY: buffer and indices are inside the area, which outlives the ends; the test only
    // touches the memory through the ends and raw accessors.
    unsafe {
        (
            ByteRingProducer::new(area.ptr(), size, at(area, CONS), at(area, PROD)).unwrap(),
            ByteRingConsumer::new(area.ptr(), size, at(area, CONS), at(area, PROD)).unwrap(),
        )
    }
}

fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

fn interesting_index() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), (u32::MAX - 5000)..=u32::MAX, any::<u32>(),]
}

#[test]
fn constructor_checks() {
    let area = Area::pages(0);
    for bad in [0u32, 3, 1000, 1025] {
        // SAFETY: the constructor fails before touching memory.
        let r = unsafe { ByteRingProducer::new(area.ptr(), bad, at(&area, CONS), at(&area, PROD)) };
        assert_eq!(r.unwrap_err(), RingError::BadSize { len: bad as usize });
        // SAFETY: as above.
        let r = unsafe { ByteRingConsumer::new(area.ptr(), bad, at(&area, CONS), at(&area, PROD)) };
        assert_eq!(r.unwrap_err(), RingError::BadSize { len: bad as usize });
    }
    let odd = at::<u32>(&area, CONS + 1);
    // SAFETY: as above.
    let r = unsafe { ByteRingConsumer::new(area.ptr(), 8, odd, at(&area, PROD)) };
    assert_eq!(
        r.unwrap_err(),
        RingError::Misaligned {
            addr: odd.as_ptr() as usize,
            align: 4
        }
    );
    // Views need a 4-aligned page.
    let odd = at::<u8>(&area, 2);
    // SAFETY: the constructor fails before touching memory.
    let r = unsafe { XenstoreFront::new(odd) };
    assert!(matches!(r, Err(RingError::Misaligned { align: 4, .. })));
    // SAFETY: as above.
    let r = unsafe { ConsoleBack::new(odd) };
    assert!(matches!(r, Err(RingError::Misaligned { align: 4, .. })));
}

#[test]
fn indices_are_taken_over_and_published() {
    let area = Area::pages(0);
    let (mut tx, mut rx) = ends(&area, 16, u32::MAX - 3);
    assert_eq!(
        (tx.producer_index(), rx.consumer_index()),
        (u32::MAX - 3, u32::MAX - 3)
    );
    assert_eq!(tx.write(b"0123456789"), Ok(10));
    assert_eq!(area.read_u32(PROD), 6);
    // The bytes sit at the masked positions: 12, 13, 14, 15, 0, 1, ...
    let mut raw = [0u8; 16];
    area.read_bytes(0, &mut raw);
    assert_eq!(&raw[12..], b"0123");
    assert_eq!(&raw[..6], b"456789");
    let mut buf = [0u8; 7];
    assert_eq!(rx.peek(&mut buf), Ok(7));
    assert_eq!(area.read_u32(CONS), u32::MAX - 3, "peek consumes nothing");
    assert_eq!(rx.read(&mut buf), Ok(7));
    assert_eq!(&buf, b"0123456");
    assert_eq!(area.read_u32(CONS), 3);
    assert_eq!(rx.available(), Ok(3));
    assert_eq!(tx.pending(), Ok(3));
    assert_eq!(tx.space(), Ok(13));
    assert_eq!(tx.write(&[]), Ok(0));
    assert_eq!(rx.read(&mut []), Ok(0));

    // A peer scribbling over our own index does not move our stream...
    area.write_u32(PROD, 1000);
    area.write_u32(CONS, 1000);
    assert_eq!(tx.producer_index(), 6);
    assert_eq!(rx.consumer_index(), 3);
    // ...until we explicitly take the shared values over again (reconnection).
    tx.resync();
    rx.resync();
    assert_eq!((tx.producer_index(), rx.consumer_index()), (1000, 1000));
    assert_eq!(tx.write(b"ab"), Ok(2));
    assert_eq!(area.read_u32(PROD), 1002);
}

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Read(usize),
    Peek(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3000).prop_map(Op::Write),
        (0usize..3000).prop_map(Op::Read),
        (0usize..100).prop_map(Op::Peek),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random chunked writes and reads deliver exactly the byte stream that was written, with
    /// `space`/`available` agreeing with a queue model.
    #[test]
    fn chunked_stream_is_preserved(
        size_log in 0u32..=11,
        start in interesting_index(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let size = 1u32 << size_log;
        let area = Area::pages(0);
        let (mut tx, mut rx) = ends(&area, size, start);
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut written = 0u64;
        for op in &ops {
            match *op {
                Op::Write(len) => {
                    let src: Vec<u8> = (written..written + len as u64).map(stream_byte).collect();
                    let expected = len.min(size as usize - model.len());
                    prop_assert_eq!(tx.write(&src), Ok(expected));
                    model.extend(&src[..expected]);
                    written += expected as u64;
                }
                Op::Read(len) | Op::Peek(len) => {
                    let mut dst = vec![0u8; len];
                    let expected = len.min(model.len());
                    let got = if let Op::Read(_) = op { rx.read(&mut dst) } else { rx.peek(&mut dst) };
                    prop_assert_eq!(got, Ok(expected));
                    let want: Vec<u8> = if let Op::Read(_) = op {
                        model.drain(..expected).collect()
                    } else {
                        model.iter().take(expected).copied().collect()
                    };
                    prop_assert_eq!(&dst[..expected], &want[..]);
                }
            }
            prop_assert_eq!(rx.available(), Ok(model.len() as u32));
            prop_assert_eq!(tx.pending(), Ok(model.len() as u32));
            prop_assert_eq!(tx.space(), Ok(size - model.len() as u32));
            prop_assert_eq!(area.read_u32(PROD), start.wrapping_add(written as u32));
            prop_assert_eq!(
                area.read_u32(CONS),
                start.wrapping_add(written as u32).wrapping_sub(model.len() as u32)
            );
        }
    }

    /// A consumer facing arbitrary producer indices and data: reads happen exactly when the
    /// index is plausible, never more than the buffer, from the masked positions.
    #[test]
    fn consumer_survives_hostile_producer(
        size_log in 0u32..=11,
        start in interesting_index(),
        steps in prop::collection::vec(
            (prop_oneof![(0u32..=2100).prop_map(Some), any::<u32>().prop_map(|_| None)],
             any::<u32>(), 0usize..3000, any::<[u8; 32]>()),
            1..60),
    ) {
        let size = 1u32 << size_log;
        let area = Area::pages(0);
        let (_tx, mut rx) = ends(&area, size, start);
        let mut cons = start;
        for (delta, any_prod, len, junk) in &steps {
            // The peer writes junk into its buffer and publishes a producer index.
            for (i, chunk) in (0..size as usize).step_by(32).zip(std::iter::repeat(junk)) {
                let n = 32.min(size as usize - i);
                area.write_bytes(i, &chunk[..n]);
            }
            let prod = match delta { Some(d) => cons.wrapping_add(*d), None => *any_prod };
            area.write_u32(PROD, prod);
            let mut snapshot = vec![0u8; size as usize];
            area.read_bytes(0, &mut snapshot);

            let avail = prod.wrapping_sub(cons);
            let mut dst = vec![0u8; *len];
            let got = rx.read(&mut dst);
            if avail > size {
                let e = RingError::ProducerOverrun { producer: prod, consumer: cons, max_ahead: size };
                prop_assert_eq!(got, Err(e));
                prop_assert_eq!(rx.available(), Err(e));
                prop_assert_eq!(area.read_u32(CONS), cons, "nothing consumed on error");
            } else {
                let n = (avail as usize).min(*len);
                prop_assert_eq!(got, Ok(n));
                for (i, b) in dst[..n].iter().enumerate() {
                    let pos = (cons.wrapping_add(i as u32) & (size - 1)) as usize;
                    prop_assert_eq!(*b, snapshot[pos]);
                }
                cons = cons.wrapping_add(n as u32);
                prop_assert_eq!(area.read_u32(CONS), cons);
            }
            prop_assert_eq!(rx.consumer_index(), cons);
        }
    }

    /// A producer facing arbitrary consumer indices (and a peer scribbling over our own
    /// producer index): writes happen exactly when the index is plausible and never overwrite
    /// unread data.
    #[test]
    fn producer_survives_hostile_consumer(
        size_log in 0u32..=11,
        start in interesting_index(),
        steps in prop::collection::vec(
            (prop_oneof![(0u32..=2100).prop_map(Some), any::<u32>().prop_map(|_| None)],
             any::<u32>(), 0usize..3000, any::<Option<u32>>()),
            1..60),
    ) {
        let size = 1u32 << size_log;
        let area = Area::pages(0);
        let (mut tx, _rx) = ends(&area, size, start);
        let mut prod = start;
        let mut written = 0u64;
        for (behind, any_cons, len, scribble) in &steps {
            let cons = match behind { Some(b) => prod.wrapping_sub(*b), None => *any_cons };
            area.write_u32(CONS, cons);
            if let Some(v) = scribble {
                area.write_u32(PROD, *v); // must not confuse us
            }
            let mut before = vec![0u8; size as usize];
            area.read_bytes(0, &mut before);
            let src: Vec<u8> = (written..written + *len as u64).map(stream_byte).collect();
            let used = prod.wrapping_sub(cons);
            let got = tx.write(&src);
            let mut after = vec![0u8; size as usize];
            area.read_bytes(0, &mut after);
            if used > size {
                let e = RingError::ConsumerOverrun { producer: prod, consumer: cons, size };
                prop_assert_eq!(got, Err(e));
                prop_assert_eq!(tx.space(), Err(e));
                prop_assert_eq!(&before, &after, "nothing written on error");
            } else {
                let n = (size - used).min(*len as u32);
                prop_assert_eq!(got, Ok(n as usize));
                for i in 0..size {
                    let pos = (prod.wrapping_add(i) & (size - 1)) as usize;
                    if i < n {
                        prop_assert_eq!(after[pos], src[i as usize]);
                    } else {
                        prop_assert_eq!(after[pos], before[pos], "unread or unwritten byte changed");
                    }
                }
                prod = prod.wrapping_add(n);
                written += u64::from(n);
                if n > 0 {
                    prop_assert_eq!(area.read_u32(PROD), prod);
                }
            }
            prop_assert_eq!(tx.producer_index(), prod);
        }
    }
}

#[test]
fn xenstore_views_use_the_c_layout() {
    let area = Area::pages(0);
    // A ring that was in use before (indices not zero) is taken over.
    area.write_u32(xenstore::REQ_CONS_OFFSET, 1020);
    area.write_u32(xenstore::REQ_PROD_OFFSET, 1020);
    area.write_u32(xenstore::RSP_CONS_OFFSET, 7);
    area.write_u32(xenstore::RSP_PROD_OFFSET, 7);
    // SAFETY: the area outlives the views and is only used through them and raw accessors.
    let (mut front, mut back) = unsafe {
        (
            XenstoreFront::new(area.ptr()).unwrap(),
            XenstoreBack::new(area.ptr()).unwrap(),
        )
    };
    assert_eq!(front.write_request(b"abcdefgh"), Ok(8));
    assert_eq!(area.read_u32(xenstore::REQ_PROD_OFFSET), 1028);
    let mut raw = [0u8; 4];
    area.read_bytes(xenstore::REQ_OFFSET + 1020, &mut raw);
    assert_eq!(&raw, b"abcd");
    area.read_bytes(xenstore::REQ_OFFSET, &mut raw);
    assert_eq!(&raw, b"efgh");
    let mut buf = [0u8; 32];
    assert_eq!(back.read_request(&mut buf), Ok(8));
    assert_eq!(&buf[..8], b"abcdefgh");
    assert_eq!(area.read_u32(xenstore::REQ_CONS_OFFSET), 1028);

    assert_eq!(back.write_response(&[0x55; 2000]), Ok(1024));
    assert_eq!(area.read_u32(xenstore::RSP_PROD_OFFSET), 7 + 1024);
    area.read_bytes(xenstore::RSP_OFFSET, &mut raw);
    assert_eq!(raw, [0x55; 4]);
    assert_eq!(front.responses().available(), Ok(1024));
    assert_eq!(front.read_response(&mut buf), Ok(32));
    assert_eq!(area.read_u32(xenstore::RSP_CONS_OFFSET), 7 + 32);
    assert_eq!(back.responses().space(), Ok(32));
    assert_eq!(front.requests().space(), Ok(1024));

    // The extra words.
    back.set_server_features(
        xenstore::SERVER_FEATURE_RECONNECTION | xenstore::SERVER_FEATURE_ERROR,
    );
    assert_eq!(area.read_u32(xenstore::SERVER_FEATURES_OFFSET), 3);
    assert_eq!(front.server_features(), 3);
    back.set_error(xenstore::ERROR_RINGIDX);
    assert_eq!(area.read_u32(xenstore::ERROR_OFFSET), 2);
    assert_eq!(front.error(), xenstore::ERROR_RINGIDX);
    front.set_connection(xenstore::RECONNECT);
    assert_eq!(area.read_u32(xenstore::CONNECTION_OFFSET), 1);
    assert_eq!(back.connection(), xenstore::RECONNECT);

    // Reconnection: the server resets the indices; the guest re-reads its own.
    back.reset_indices();
    back.set_connection(xenstore::CONNECTED);
    for off in [
        xenstore::REQ_CONS_OFFSET,
        xenstore::REQ_PROD_OFFSET,
        xenstore::RSP_CONS_OFFSET,
        xenstore::RSP_PROD_OFFSET,
    ] {
        assert_eq!(area.read_u32(off), 0);
    }
    // Before resync the guest's private index no longer matches: an error, not a mess.
    assert!(matches!(
        front.write_request(b"x"),
        Err(RingError::ConsumerOverrun {
            producer: 1028,
            consumer: 0,
            size: 1024
        })
    ));
    front.resync();
    assert_eq!(front.write_request(b"hello"), Ok(5));
    assert_eq!(back.read_request(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn xenstore_hostile_server_indices() {
    let area = Area::pages(0);
    // SAFETY: as above.
    let mut front = unsafe { XenstoreFront::new(area.ptr()) }.unwrap();
    area.write_u32(xenstore::REQ_CONS_OFFSET, 5); // consumed bytes never written
    assert_eq!(
        front.write_request(b"abc"),
        Err(RingError::ConsumerOverrun {
            producer: 0,
            consumer: 5,
            size: 1024
        })
    );
    area.write_u32(xenstore::RSP_PROD_OFFSET, 1025);
    let mut buf = [0u8; 8];
    assert_eq!(
        front.read_response(&mut buf),
        Err(RingError::ProducerOverrun {
            producer: 1025,
            consumer: 0,
            max_ahead: 1024
        })
    );
    // A full buffer is legal.
    area.write_u32(xenstore::RSP_PROD_OFFSET, 1024);
    assert_eq!(front.read_response(&mut buf), Ok(8));
}

#[test]
fn console_views_use_the_c_layout() {
    let area = Area::pages(0);
    // SAFETY: the area outlives the views and is only used through them and raw accessors.
    let (mut front, mut back) = unsafe {
        (
            ConsoleFront::new(area.ptr()).unwrap(),
            ConsoleBack::new(area.ptr()).unwrap(),
        )
    };
    assert_eq!(front.output().space(), Ok(2048));
    assert_eq!(back.input().space(), Ok(1024));
    assert_eq!(front.write(&[b'o'; 3000]), Ok(2048));
    assert_eq!(area.read_u32(console::OUT_PROD_OFFSET), 2048);
    let mut raw = [0u8; 2];
    area.read_bytes(console::OUT_OFFSET + 2046, &mut raw);
    assert_eq!(&raw, b"oo");
    area.read_bytes(console::IN_OFFSET, &mut raw);
    assert_eq!(raw, [0, 0], "output does not spill into the input ring");
    let mut buf = vec![0u8; 4096];
    assert_eq!(back.read_output(&mut buf), Ok(2048));
    assert_eq!(area.read_u32(console::OUT_CONS_OFFSET), 2048);
    assert_eq!(back.output().available(), Ok(0));

    assert_eq!(back.write_input(&[b'i'; 1500]), Ok(1024));
    assert_eq!(area.read_u32(console::IN_PROD_OFFSET), 1024);
    assert_eq!(front.input().available(), Ok(1024));
    assert_eq!(front.read(&mut buf), Ok(1024));
    assert_eq!(area.read_u32(console::IN_CONS_OFFSET), 1024);
    assert!(buf[..1024].iter().all(|&b| b == b'i'));

    // Hostile backend.
    area.write_u32(console::OUT_CONS_OFFSET, 4097);
    assert!(matches!(
        front.write(b"x"),
        Err(RingError::ConsumerOverrun { .. })
    ));
    area.write_u32(console::IN_PROD_OFFSET, 0);
    assert_eq!(
        front.read(&mut buf),
        Err(RingError::ProducerOverrun {
            producer: 0,
            consumer: 1024,
            max_ahead: 1024
        })
    );
}

#[test]
fn console_stream_between_threads() {
    const TOTAL: u64 = 1 << 20;
    let area = Arc::new(Area::pages(0));
    area.write_u32(console::OUT_CONS_OFFSET, u32::MAX - 100_000);
    area.write_u32(console::OUT_PROD_OFFSET, u32::MAX - 100_000);
    // SAFETY: the area is kept alive by the Arc in both threads until the views are dropped.
    let (mut front, mut back) = unsafe {
        (
            ConsoleFront::new(area.ptr()).unwrap(),
            ConsoleBack::new(area.ptr()).unwrap(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let writer = {
        let area = area.clone();
        std::thread::spawn(move || {
            let _keep = &area;
            let mut sent = 0u64;
            let mut chunk = Vec::new();
            while sent < TOTAL {
                let len = (sent % 777 + 1).min(TOTAL - sent);
                chunk.clear();
                chunk.extend((sent..sent + len).map(stream_byte));
                let n = front.write(&chunk).unwrap();
                sent += n as u64;
                if n == 0 {
                    assert!(Instant::now() < deadline, "reader stalled");
                    std::thread::yield_now();
                }
            }
        })
    };
    let mut got = 0u64;
    let mut buf = [0u8; 500];
    while got < TOTAL {
        let n = back
            .read_output(&mut buf[..(got % 499 + 1) as usize])
            .unwrap();
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, stream_byte(got + i as u64), "byte {}", got + i as u64);
        }
        got += n as u64;
        if n == 0 {
            assert!(Instant::now() < deadline, "writer stalled");
            std::thread::yield_now();
        }
    }
    writer.join().unwrap();
    assert_eq!(back.output().available(), Ok(0));
}
