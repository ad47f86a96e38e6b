//! Byte rings (generic ends and the xenstore/console page views) facing a peer that controls
//! the indices and the data: reads and writes happen exactly when the indices are plausible,
//! never beyond the buffer, and never panic.
#![no_main]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenia_ring::console::{self, ConsoleBack, ConsoleFront};
use xenia_ring::xenstore::{self, XenstoreBack, XenstoreFront};
use xenia_ring::{ByteRingConsumer, ByteRingProducer, RingError};

#[derive(Arbitrary, Debug)]
enum Action {
    /// The peer publishes an arbitrary index.
    PeerIndex(u32),
    /// The peer publishes an index close to ours.
    PeerIndexNear(i16),
    /// The peer overwrites our own index.
    ScribbleOurs(u32),
    /// The peer writes data bytes.
    PeerData { off: u16, bytes: Vec<u8> },
    /// We read (consumer) or write (producer) up to n bytes.
    Transfer(u16),
    /// We peek up to n bytes (consumer) / ask for the space (producer).
    Look(u16),
    /// We re-read our own index.
    Resync,
}

#[derive(Arbitrary, Debug)]
enum PageAction {
    /// Write a 32-bit word of the page (indices, features, ...).
    Word { index: u16, value: u32 },
    /// Front reads / writes.
    Front(u16, bool),
    /// Back reads / writes.
    Back(u16, bool),
}

#[derive(Arbitrary, Debug)]
struct Input {
    size_log: u8,
    start_ours: u32,
    start_peer: u32,
    consumer: Vec<Action>,
    producer: Vec<Action>,
    page_fill: Vec<u8>,
    page: Vec<PageAction>,
}

const CONS: usize = 3072;
const PROD: usize = 3076;

struct Area {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Area {
    fn new() -> Area {
        let layout = Layout::from_size_align(4096, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        Area { ptr, layout }
    }
    fn at<T>(&self, off: usize) -> NonNull<T> {
        assert!(off < 4096);
        // SAFETY: in bounds.
        unsafe { self.ptr.add(off).cast() }
    }
    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off + 4 <= 4096 && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned; lives as long as the area.
        unsafe { AtomicU32::from_ptr(self.at::<u32>(off).as_ptr()) }
    }
    fn write_u8(&self, off: usize, v: u8) {
        // SAFETY: in bounds (checked by `at`).
        unsafe { self.at::<u8>(off).as_ptr().write_volatile(v) };
    }
    fn read_u8(&self, off: usize) -> u8 {
        // SAFETY: in bounds (checked by `at`).
        unsafe { self.at::<u8>(off).as_ptr().read_volatile() }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

fn consumer(input: &Input, size: u32) {
    let area = Area::new();
    area.word(CONS).store(input.start_ours, Ordering::SeqCst);
    area.word(PROD).store(input.start_peer, Ordering::SeqCst);
    // SAFETY: buffer and indices inside the area, which outlives the ring.
    let mut rx =
        unsafe { ByteRingConsumer::new(area.ptr, size, area.at(CONS), area.at(PROD)) }.unwrap();
    let mut cons = input.start_ours;
    for a in input.consumer.iter().take(300) {
        match a {
            Action::PeerIndex(v) => area.word(PROD).store(*v, Ordering::SeqCst),
            Action::PeerIndexNear(d) => area
                .word(PROD)
                .store(cons.wrapping_add(*d as i32 as u32), Ordering::SeqCst),
            Action::ScribbleOurs(v) => area.word(CONS).store(*v, Ordering::SeqCst),
            Action::PeerData { off, bytes } => {
                for (i, &b) in bytes.iter().enumerate() {
                    area.write_u8((*off as usize + i) % size as usize, b);
                }
            }
            Action::Transfer(n) | Action::Look(n) => {
                let prod = area.word(PROD).load(Ordering::SeqCst);
                let avail = prod.wrapping_sub(cons);
                let snapshot: Vec<u8> = (0..size as usize).map(|i| area.read_u8(i)).collect();
                let mut dst = vec![0u8; *n as usize];
                let got = if let Action::Transfer(_) = a {
                    rx.read(&mut dst)
                } else {
                    rx.peek(&mut dst)
                };
                if avail > size {
                    assert_eq!(
                        got,
                        Err(RingError::ProducerOverrun {
                            producer: prod,
                            consumer: cons,
                            max_ahead: size
                        })
                    );
                } else {
                    let k = (avail as usize).min(*n as usize);
                    assert_eq!(got, Ok(k));
                    for (i, b) in dst[..k].iter().enumerate() {
                        assert_eq!(
                            *b,
                            snapshot[(cons.wrapping_add(i as u32) & (size - 1)) as usize]
                        );
                    }
                    if let Action::Transfer(_) = a {
                        cons = cons.wrapping_add(k as u32);
                        if k > 0 {
                            assert_eq!(area.word(CONS).load(Ordering::SeqCst), cons);
                        }
                    }
                }
            }
            Action::Resync => {
                rx.resync();
                cons = area.word(CONS).load(Ordering::SeqCst);
            }
        }
        assert_eq!(rx.consumer_index(), cons);
    }
}

fn producer(input: &Input, size: u32) {
    let area = Area::new();
    area.word(PROD).store(input.start_ours, Ordering::SeqCst);
    area.word(CONS).store(input.start_peer, Ordering::SeqCst);
    // SAFETY: buffer and indices inside the area, which outlives the ring.
    let mut tx =
        unsafe { ByteRingProducer::new(area.ptr, size, area.at(CONS), area.at(PROD)) }.unwrap();
    let mut prod = input.start_ours;
    let mut counter = 0u8;
    for a in input.producer.iter().take(300) {
        match a {
            Action::PeerIndex(v) => area.word(CONS).store(*v, Ordering::SeqCst),
            Action::PeerIndexNear(d) => area
                .word(CONS)
                .store(prod.wrapping_add(*d as i32 as u32), Ordering::SeqCst),
            Action::ScribbleOurs(v) => area.word(PROD).store(*v, Ordering::SeqCst),
            Action::PeerData { off, bytes } => {
                for (i, &b) in bytes.iter().enumerate() {
                    area.write_u8((*off as usize + i) % size as usize, b);
                }
            }
            Action::Transfer(n) | Action::Look(n) => {
                let cons = area.word(CONS).load(Ordering::SeqCst);
                let used = prod.wrapping_sub(cons);
                let before: Vec<u8> = (0..4096).map(|i| area.read_u8(i)).collect();
                let src: Vec<u8> = (0..*n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let got = if let Action::Transfer(_) = a {
                    tx.write(&src)
                } else {
                    tx.space().map(|s| s as usize)
                };
                let after: Vec<u8> = (0..4096).map(|i| area.read_u8(i)).collect();
                if used > size {
                    let e = RingError::ConsumerOverrun {
                        producer: prod,
                        consumer: cons,
                        size,
                    };
                    assert_eq!(got, Err(e));
                    assert_eq!(before, after);
                } else if let Action::Transfer(_) = a {
                    let k = (size - used).min(u32::from(*n));
                    assert_eq!(got, Ok(k as usize));
                    for i in 0..size {
                        let pos = (prod.wrapping_add(i) & (size - 1)) as usize;
                        if i < k {
                            assert_eq!(after[pos], src[i as usize]);
                        } else {
                            assert_eq!(after[pos], before[pos]);
                        }
                    }
                    // Nothing outside the buffer changes except our producer index.
                    for pos in size as usize..4096 {
                        if pos / 4 != PROD / 4 {
                            assert_eq!(after[pos], before[pos]);
                        }
                    }
                    prod = prod.wrapping_add(k);
                } else {
                    assert_eq!(got, Ok((size - used) as usize));
                }
            }
            Action::Resync => {
                tx.resync();
                prod = area.word(PROD).load(Ordering::SeqCst);
            }
        }
        assert_eq!(tx.producer_index(), prod);
    }
}

/// The page views on a page whose every byte the fuzzer controls: no panic, sane counts.
fn pages(input: &Input) {
    for console_page in [false, true] {
        let area = Area::new();
        if !input.page_fill.is_empty() {
            for i in 0..4096 {
                area.write_u8(i, input.page_fill[i % input.page_fill.len()]);
            }
        }
        let mut buf = vec![0u8; 4096];
        if console_page {
            // SAFETY: the page outlives the views.
            let (mut f, mut b) = unsafe {
                (
                    ConsoleFront::new(area.ptr).unwrap(),
                    ConsoleBack::new(area.ptr).unwrap(),
                )
            };
            for a in input.page.iter().take(200) {
                match a {
                    PageAction::Word { index, value } => {
                        let off = (*index as usize * 4) % console::INTERFACE_SIZE;
                        area.word(off).store(*value, Ordering::SeqCst);
                    }
                    PageAction::Front(n, read) => {
                        let n = *n as usize % 4096;
                        if *read {
                            if let Ok(k) = f.read(&mut buf[..n]) {
                                assert!(k <= n.min(console::IN_SIZE))
                            }
                        } else if let Ok(k) = f.write(&buf[..n]) {
                            assert!(k <= n.min(console::OUT_SIZE))
                        }
                    }
                    PageAction::Back(n, read) => {
                        let n = *n as usize % 4096;
                        if *read {
                            if let Ok(k) = b.read_output(&mut buf[..n]) {
                                assert!(k <= n.min(console::OUT_SIZE))
                            }
                        } else if let Ok(k) = b.write_input(&buf[..n]) {
                            assert!(k <= n.min(console::IN_SIZE))
                        }
                    }
                }
            }
        } else {
            // SAFETY: the page outlives the views.
            let (mut f, mut b) = unsafe {
                (
                    XenstoreFront::new(area.ptr).unwrap(),
                    XenstoreBack::new(area.ptr).unwrap(),
                )
            };
            for a in input.page.iter().take(200) {
                match a {
                    PageAction::Word { index, value } => {
                        let off = (*index as usize * 4) % xenstore::INTERFACE_SIZE;
                        area.word(off).store(*value, Ordering::SeqCst);
                        if *value & 1 == 0 {
                            f.resync();
                        }
                    }
                    PageAction::Front(n, read) => {
                        let n = *n as usize % 4096;
                        if *read {
                            if let Ok(k) = f.read_response(&mut buf[..n]) {
                                assert!(k <= n.min(xenstore::RING_SIZE))
                            }
                        } else if let Ok(k) = f.write_request(&buf[..n]) {
                            assert!(k <= n.min(xenstore::RING_SIZE))
                        }
                        let _ = (f.server_features(), f.connection(), f.error());
                    }
                    PageAction::Back(n, read) => {
                        let n = *n as usize % 4096;
                        if *read {
                            if let Ok(k) = b.read_request(&mut buf[..n]) {
                                assert!(k <= n.min(xenstore::RING_SIZE))
                            }
                        } else if let Ok(k) = b.write_response(&buf[..n]) {
                            assert!(k <= n.min(xenstore::RING_SIZE))
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    // Buffer sizes 1 ..= 2048 (the largest that leaves room for the indices at 3072).
    let size = 1u32 << (input.size_log % 12);
    consumer(&input, size);
    producer(&input, size);
    pages(&input);
});
