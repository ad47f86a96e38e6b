//! A frontend consuming responses and a backend consuming requests, each facing a peer that
//! controls the shared memory completely (indices, event indices, entries, padding). Checks
//! that validation accepts exactly the plausible producer indices, that errors are sticky,
//! and that nothing panics or reads out of bounds.
#![no_main]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenia_ring::{ring_bytes, BackRing, FrontRing, RingError, RingMessage, SharedRing};

#[derive(Arbitrary, Debug)]
enum Action {
    /// The peer publishes an arbitrary producer index.
    PeerProd(u32),
    /// The peer publishes a producer index a little ahead of our consumer.
    PeerProdNear(u8),
    /// The peer sets the event index we read when notifying.
    PeerEvent(u32),
    /// The peer writes arbitrary bytes anywhere in the area (header included).
    PeerScribble { off: u16, bytes: Vec<u8> },
    /// We consume one message.
    Poll,
    /// We do the final check before sleeping.
    Final,
    /// We count unconsumed messages.
    Count,
    /// We produce up to n messages.
    Produce(u8),
    /// We publish.
    Publish,
    /// We publish and check whether to notify.
    PublishNotify,
}

#[derive(Arbitrary, Debug)]
struct Input {
    small_entries: bool,
    two_pages: bool,
    start: u32,
    initial: Vec<u8>,
    front: Vec<Action>,
    back: Vec<Action>,
}

struct Area {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Area {
    fn new(len: usize, fill: &[u8]) -> Area {
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        let a = Area { ptr, layout };
        if !fill.is_empty() {
            for i in 0..len {
                a.write_u8(i, fill[i % fill.len()]);
            }
        }
        a
    }
    fn len(&self) -> usize {
        self.layout.size()
    }
    fn write_u8(&self, off: usize, v: u8) {
        assert!(off < self.len());
        // SAFETY: in bounds.
        unsafe { self.ptr.as_ptr().add(off).write_volatile(v) };
    }
    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off + 4 <= self.len() && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned; lives as long as the area.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }
    fn scribble(&self, off: u16, bytes: &[u8]) {
        let off = off as usize % self.len();
        for (i, &b) in bytes.iter().take(self.len() - off).enumerate() {
            self.write_u8(off + i, b);
        }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// Xen's rule, spelled out.
fn model_notify(old: u32, new: u32, event: u32) -> bool {
    let mut k = old;
    while k != new {
        k = k.wrapping_add(1);
        if k == event {
            return true;
        }
    }
    false
}

fn front<Req: RingMessage, Rsp: RingMessage>(input: &Input, mk: fn(u32) -> Req) {
    let area = Area::new(ring_bytes(u32::from(input.two_pages)), &input.initial);
    type S<A, B> = SharedRing<A, B>;
    // SAFETY: the area outlives the ring and is only accessed through it and `Area`.
    let mut shared = unsafe { S::<Req, Rsp>::new(area.ptr, area.len()) }.unwrap();
    shared.init_at(input.start);
    let size = shared.size();
    let mut ring = FrontRing::attach(shared, input.start);
    let (mut cons, mut pvt, mut published) = (input.start, input.start, input.start);
    let mut error: Option<RingError> = None;
    for a in input.front.iter().take(500) {
        match a {
            Action::PeerProd(v) => area
                .word(S::<Req, Rsp>::RSP_PROD_OFFSET)
                .store(*v, Ordering::SeqCst),
            Action::PeerProdNear(d) => area
                .word(S::<Req, Rsp>::RSP_PROD_OFFSET)
                .store(cons.wrapping_add(u32::from(*d)), Ordering::SeqCst),
            Action::PeerEvent(v) => area
                .word(S::<Req, Rsp>::REQ_EVENT_OFFSET)
                .store(*v, Ordering::SeqCst),
            Action::PeerScribble { off, bytes } => area.scribble(*off, bytes),
            Action::Poll | Action::Final | Action::Count => {
                let prod = area
                    .word(S::<Req, Rsp>::RSP_PROD_OFFSET)
                    .load(Ordering::SeqCst);
                let max_ahead = published.wrapping_sub(cons);
                let valid = prod.wrapping_sub(cons) <= max_ahead;
                let got = match a {
                    Action::Poll => ring.poll_response().map(|r| u32::from(r.is_some())),
                    Action::Final => ring.final_check_for_responses().map(u32::from),
                    _ => ring.unconsumed_responses(),
                };
                if let Some(e) = error {
                    assert_eq!(got, Err(e));
                } else if valid {
                    let avail = prod.wrapping_sub(cons);
                    let expect = match a {
                        Action::Count => avail,
                        _ => u32::from(avail > 0),
                    };
                    assert_eq!(got, Ok(expect));
                    if let Action::Poll = a {
                        cons = cons.wrapping_add(expect);
                    }
                } else {
                    let e = RingError::ProducerOverrun {
                        producer: prod,
                        consumer: cons,
                        max_ahead,
                    };
                    assert_eq!(got, Err(e));
                    error = Some(e);
                }
            }
            Action::Produce(n) => {
                for i in 0..*n {
                    let r = ring.push_request(mk(u32::from(i)));
                    if pvt.wrapping_sub(cons) == size {
                        assert_eq!(r, Err(RingError::Full));
                    } else {
                        assert_eq!(r, Ok(pvt));
                        pvt = pvt.wrapping_add(1);
                    }
                }
            }
            Action::Publish => {
                ring.push_requests();
                published = pvt;
            }
            Action::PublishNotify => {
                let event = area
                    .word(S::<Req, Rsp>::REQ_EVENT_OFFSET)
                    .load(Ordering::SeqCst);
                assert_eq!(
                    ring.push_requests_and_check_notify(),
                    model_notify(published, pvt, event)
                );
                published = pvt;
            }
        }
        assert_eq!(ring.rsp_cons(), cons);
        assert!(ring.outstanding_requests() <= size);
        assert!(published.wrapping_sub(cons) <= size);
        assert_eq!(ring.error(), error);
    }
}

fn back<Req: RingMessage, Rsp: RingMessage>(input: &Input, mk: fn(u32) -> Rsp) {
    let area = Area::new(ring_bytes(u32::from(input.two_pages)), &input.initial);
    type S<A, B> = SharedRing<A, B>;
    // SAFETY: as in `front`.
    let shared = unsafe { S::<Req, Rsp>::new(area.ptr, area.len()) }.unwrap();
    let size = shared.size();
    // The peer initialised the ring (or not): attach to whatever is there.
    let mut ring = BackRing::attach(shared, input.start);
    let (mut cons, mut pvt, mut published) = (input.start, input.start, input.start);
    let mut error: Option<RingError> = None;
    for a in input.back.iter().take(500) {
        match a {
            Action::PeerProd(v) => area
                .word(S::<Req, Rsp>::REQ_PROD_OFFSET)
                .store(*v, Ordering::SeqCst),
            Action::PeerProdNear(d) => area
                .word(S::<Req, Rsp>::REQ_PROD_OFFSET)
                .store(cons.wrapping_add(u32::from(*d)), Ordering::SeqCst),
            Action::PeerEvent(v) => area
                .word(S::<Req, Rsp>::RSP_EVENT_OFFSET)
                .store(*v, Ordering::SeqCst),
            Action::PeerScribble { off, bytes } => area.scribble(*off, bytes),
            Action::Poll | Action::Final | Action::Count => {
                let prod = area
                    .word(S::<Req, Rsp>::REQ_PROD_OFFSET)
                    .load(Ordering::SeqCst);
                let max_ahead = size - cons.wrapping_sub(pvt);
                let valid = prod.wrapping_sub(cons) <= max_ahead;
                let got = match a {
                    Action::Poll => ring.poll_request().map(|r| u32::from(r.is_some())),
                    Action::Final => ring.final_check_for_requests().map(u32::from),
                    _ => ring.unconsumed_requests(),
                };
                if let Some(e) = error {
                    assert_eq!(got, Err(e));
                } else if valid {
                    let avail = prod.wrapping_sub(cons);
                    let expect = match a {
                        Action::Count => avail,
                        _ => u32::from(avail > 0),
                    };
                    assert_eq!(got, Ok(expect));
                    if let Action::Poll = a {
                        cons = cons.wrapping_add(expect);
                    }
                } else {
                    let e = RingError::ProducerOverrun {
                        producer: prod,
                        consumer: cons,
                        max_ahead,
                    };
                    assert_eq!(got, Err(e));
                    error = Some(e);
                }
            }
            Action::Produce(n) => {
                for i in 0..*n {
                    let r = ring.push_response(mk(u32::from(i)));
                    if pvt == cons {
                        assert_eq!(r, Err(RingError::NoPendingRequest));
                    } else {
                        assert_eq!(r, Ok(pvt));
                        pvt = pvt.wrapping_add(1);
                    }
                }
            }
            Action::Publish => {
                ring.push_responses();
                published = pvt;
            }
            Action::PublishNotify => {
                let event = area
                    .word(S::<Req, Rsp>::RSP_EVENT_OFFSET)
                    .load(Ordering::SeqCst);
                assert_eq!(
                    ring.push_responses_and_check_notify(),
                    model_notify(published, pvt, event)
                );
                published = pvt;
            }
        }
        assert_eq!(ring.req_cons(), cons);
        assert_eq!(ring.rsp_prod_pvt(), pvt);
        assert!(ring.pending_responses() <= size);
        assert_eq!(ring.error(), error);
    }
}

fuzz_target!(|input: Input| {
    if input.small_entries {
        // 2-byte entries: 2048 (or 4096) slots.
        front::<u16, u8>(&input, |i| i as u16);
        back::<u16, u8>(&input, |i| i as u8);
    } else {
        // blkif-sized requests: 32 (or 64) slots.
        front::<[u64; 14], [u64; 2]>(&input, |i| [u64::from(i); 14]);
        back::<[u64; 14], [u64; 2]>(&input, |i| [u64::from(i); 2]);
    }
});
