//! Request/response rings: a frontend and a backend on the same memory, a reference model of
//! the protocol (queues and Xen's notification rules, written as plainly as possible), index
//! wrap-around, hostile peers, and two threads talking through a ring.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Area;
use proptest::prelude::*;
use xenia_ring::{
    ring_bytes, ring_size, BackRing, FrontRing, RingError, RingMessage, SharedRing,
    RING_HEADER_SIZE, XEN_PAGE_SIZE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Req {
    id: u32,
    op: u32,
    arg: u64,
}
// SAFETY: repr(C), integers only, no padding (4 + 4 + 8, align 8).
unsafe impl RingMessage for Req {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Rsp {
    id: u32,
    status: i32,
}
// SAFETY: repr(C), integers only, no padding.
unsafe impl RingMessage for Rsp {}

type Shared = SharedRing<Req, Rsp>;
type Front = FrontRing<Req, Rsp>;
type Back = BackRing<Req, Rsp>;

const REQ_PROD: usize = Shared::REQ_PROD_OFFSET;
const REQ_EVENT: usize = Shared::REQ_EVENT_OFFSET;
const RSP_PROD: usize = Shared::RSP_PROD_OFFSET;
const RSP_EVENT: usize = Shared::RSP_EVENT_OFFSET;

fn shared(area: &Area) -> Shared {
    // SAFETY: the area outlives the rings of each test and is only accessed through rings
    // and the raw accessors of `Area`.
    unsafe { Shared::new(area.ptr(), area.len()) }.unwrap()
}

/// A frontend and a backend on `area`, with the shared header initialised at `start`.
fn rings(area: &Area, start: u32) -> (Front, Back) {
    let mut s = shared(area);
    s.init_at(start);
    (Front::attach(s, start), Back::attach(shared(area), start))
}

fn response_for(req: &Req) -> Rsp {
    Rsp {
        id: req.id,
        status: (req.arg as i32) ^ (req.op as i32),
    }
}

/// Xen's notification rule, spelled out: notify iff one of the newly published indices
/// `old + 1 ..= new` is the index the peer asked to be woken for.
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

fn interesting_index() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        (u32::MAX - 600)..=u32::MAX,
        (u32::MAX / 2 - 300)..=(u32::MAX / 2 + 300),
        any::<u32>(),
    ]
}

#[test]
fn layout_matches_the_c_union() {
    assert_eq!(Shared::ENTRY_SIZE, 16);
    assert_eq!(Shared::ENTRY_ALIGN, 8);
    assert_eq!(Shared::ENTRIES_OFFSET, RING_HEADER_SIZE);
    assert_eq!(Shared::size_for(ring_bytes(0)), 128); // 252 entries fit
    assert_eq!(Shared::size_for(ring_bytes(1)), 256); // 508 entries fit
    assert_eq!(
        Shared::size_for(ring_bytes(0)),
        ring_size(XEN_PAGE_SIZE, 16)
    );
    // Requests of 3 bytes and responses of 2 x u16: the union is 4 bytes, 2-aligned.
    assert_eq!(SharedRing::<[u8; 3], [u16; 2]>::ENTRY_SIZE, 4);
    assert_eq!(SharedRing::<[u8; 3], [u16; 2]>::ENTRY_ALIGN, 2);
}

#[test]
fn new_checks_alignment_and_size() {
    let area = Area::pages(0);
    // SAFETY: in bounds of the area; the constructor fails before any access.
    let off4 = unsafe { area.ptr().add(4) };
    // SAFETY: not used (the call fails).
    let r = unsafe { Shared::new(off4, 1000) };
    assert_eq!(
        r.unwrap_err(),
        RingError::Misaligned {
            addr: off4.as_ptr() as usize,
            align: 8
        }
    );
    // SAFETY: not used (the call fails).
    let r = unsafe { Shared::new(area.ptr(), 64 + 15) };
    assert_eq!(r.unwrap_err(), RingError::BadSize { len: 79 });
    // SAFETY: 80 bytes of the area; dropped right away.
    let r = unsafe { Shared::new(area.ptr(), 64 + 16) }.unwrap();
    assert_eq!(r.size(), 1);
    // SAFETY: 96 bytes of the area; dropped right away.
    let r = unsafe { Shared::new(area.ptr(), 64 + 47) }.unwrap();
    assert_eq!(r.size(), 2);
    // A 4-aligned address is enough for entries that need no more than 4.
    // SAFETY: in bounds; dropped right away.
    let r = unsafe { SharedRing::<u32, u16>::new(off4, 1000) }.unwrap();
    assert_eq!(r.size(), 128); // (1000 - 64) / 4 = 234
}

#[test]
fn init_is_shared_ring_init() {
    let area = Area::pages(0);
    area.write_bytes(0, &[0xa5; 128]);
    let mut s = shared(&area);
    s.init();
    assert_eq!(area.read_u32(REQ_PROD), 0);
    assert_eq!(area.read_u32(REQ_EVENT), 1);
    assert_eq!(area.read_u32(RSP_PROD), 0);
    assert_eq!(area.read_u32(RSP_EVENT), 1);
    let mut hdr = [0xffu8; 48];
    area.read_bytes(16, &mut hdr);
    assert_eq!(hdr, [0; 48]);
    // The entries are left alone.
    let mut entries = [0u8; 64];
    area.read_bytes(64, &mut entries);
    assert_eq!(entries, [0xa5; 64]);
    assert_eq!(
        (s.req_prod(), s.req_event(), s.rsp_prod(), s.rsp_event()),
        (0, 1, 0, 1)
    );

    s.init_at(u32::MAX);
    assert_eq!(
        (s.req_prod(), s.req_event(), s.rsp_prod(), s.rsp_event()),
        (u32::MAX, 0, u32::MAX, 0)
    );

    // FrontRing::init does SHARED_RING_INIT too.
    area.write_u32(REQ_PROD, 77);
    area.write_u32(RSP_EVENT, 77);
    let f = Front::init(shared(&area));
    assert_eq!((area.read_u32(REQ_PROD), area.read_u32(RSP_EVENT)), (0, 1));
    assert_eq!((f.req_prod_pvt(), f.rsp_cons(), f.size()), (0, 0, 128));
}

#[test]
fn basic_exchange_fill_and_drain() {
    let area = Area::pages(0);
    let (mut front, mut back) = rings(&area, 0);
    let size = front.size();
    assert_eq!(front.free_requests(), size);
    assert_eq!(back.poll_request(), Ok(None));
    assert_eq!(front.poll_response(), Ok(None));
    assert_eq!(
        back.push_response(Rsp { id: 0, status: 0 }),
        Err(RingError::NoPendingRequest)
    );

    for i in 0..size {
        let req = Req {
            id: i,
            op: 1,
            arg: u64::from(i) << 32,
        };
        assert_eq!(front.push_request(req), Ok(i));
    }
    assert!(front.is_full());
    assert_eq!(
        front.push_request(Req {
            id: 0,
            op: 0,
            arg: 0
        }),
        Err(RingError::Full)
    );
    assert_eq!(front.unpublished_requests(), size);
    // Not published yet: the backend sees nothing.
    assert_eq!(back.unconsumed_requests(), Ok(0));
    assert!(front.push_requests_and_check_notify());
    assert_eq!(back.unconsumed_requests(), Ok(size));

    for i in 0..size {
        let req = back.poll_request().unwrap().unwrap();
        assert_eq!(req.id, i);
        assert_eq!(back.pending_responses(), 1);
        assert_eq!(back.push_response(response_for(&req)), Ok(i));
    }
    assert_eq!(back.poll_request(), Ok(None));
    assert!(back.push_responses_and_check_notify());
    // Still full until the frontend consumes responses.
    assert!(front.is_full());
    assert_eq!(front.unconsumed_responses(), Ok(size));
    for i in 0..size {
        let rsp = front.poll_response().unwrap().unwrap();
        assert_eq!(rsp.id, i);
        assert_eq!(front.free_requests(), i + 1);
    }
    assert_eq!(front.poll_response(), Ok(None));
    assert_eq!(front.final_check_for_responses(), Ok(false));
    assert_eq!(area.read_u32(RSP_EVENT), size + 1);
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(area.read_u32(REQ_EVENT), size + 1);
}

#[test]
fn wraps_around_u32_max() {
    let area = Area::pages(0);
    let start = u32::MAX - 5;
    let (mut front, mut back) = rings(&area, start);
    let mut expected = VecDeque::new();
    let mut next = 0u32;
    // Several laps of the ring across the wrap of the 32-bit indices.
    for round in 0..40u32 {
        for _ in 0..(round % 7 + 1) * 9 {
            if front.is_full() {
                break;
            }
            let req = Req {
                id: next,
                op: round,
                arg: u64::from(next) * 3,
            };
            let idx = front.push_request(req).unwrap();
            assert_eq!(idx, start.wrapping_add(next));
            expected.push_back(req);
            next += 1;
        }
        front.push_requests();
        while let Some(req) = back.poll_request().unwrap() {
            back.push_response(response_for(&req)).unwrap();
        }
        back.push_responses();
        while let Some(rsp) = front.poll_response().unwrap() {
            let req = expected.pop_front().unwrap();
            assert_eq!(rsp, response_for(&req));
        }
    }
    assert!(expected.is_empty());
    assert!(front.rsp_cons() < start, "the indices wrapped");
    assert_eq!(front.rsp_cons(), start.wrapping_add(next));
    assert_eq!(back.req_cons(), front.rsp_cons());
}

#[test]
fn notify_rule_examples() {
    let area = Area::pages(0);
    let (mut front, mut back) = rings(&area, 0);
    // The backend asked for an event at index 1 (SHARED_RING_INIT): the first push notifies.
    front
        .push_request(Req {
            id: 0,
            op: 0,
            arg: 0,
        })
        .unwrap();
    assert!(front.push_requests_and_check_notify());
    // The backend has not re-armed req_event: no more notifications.
    front
        .push_request(Req {
            id: 1,
            op: 0,
            arg: 0,
        })
        .unwrap();
    assert!(!front.push_requests_and_check_notify());
    // Nothing new: never notify.
    assert!(!front.push_requests_and_check_notify());
    // The backend works, then re-arms at req_cons + 1 = 3.
    assert_eq!(back.final_check_for_requests(), Ok(true));
    while back.poll_request().unwrap().is_some() {}
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(area.read_u32(REQ_EVENT), 3);
    front
        .push_request(Req {
            id: 2,
            op: 0,
            arg: 0,
        })
        .unwrap();
    front
        .push_request(Req {
            id: 3,
            op: 0,
            arg: 0,
        })
        .unwrap();
    assert!(front.push_requests_and_check_notify());
}

#[test]
fn final_check_sees_work_that_raced_in() {
    let area = Area::pages(0);
    let (mut front, mut back) = rings(&area, 10);
    front
        .push_request(Req {
            id: 0,
            op: 0,
            arg: 0,
        })
        .unwrap();
    front.push_requests();
    assert_eq!(back.final_check_for_requests(), Ok(true));
    // Nothing consumed: req_event untouched (still 11 from init_at).
    assert_eq!(area.read_u32(REQ_EVENT), 11);
    back.poll_request().unwrap().unwrap();
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(area.read_u32(REQ_EVENT), 12);
}

#[derive(Debug, Clone)]
enum Op {
    FrontPush(u8),
    FrontPublish,
    FrontPublishNotify,
    FrontPoll(u8),
    FrontFinal,
    BackPoll(u8),
    BackRespond(u8),
    BackPublish,
    BackPublishNotify,
    BackFinal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..40).prop_map(Op::FrontPush),
        1 => Just(Op::FrontPublish),
        2 => Just(Op::FrontPublishNotify),
        3 => (0u8..40).prop_map(Op::FrontPoll),
        1 => Just(Op::FrontFinal),
        3 => (0u8..40).prop_map(Op::BackPoll),
        3 => (0u8..40).prop_map(Op::BackRespond),
        1 => Just(Op::BackPublish),
        2 => Just(Op::BackPublishNotify),
        1 => Just(Op::BackFinal),
    ]
}

/// The protocol as queues, plus the shared indices and Xen's event rules.
struct Model {
    size: u32,
    next_id: u32,
    unpublished_reqs: VecDeque<Req>,
    published_reqs: VecDeque<Req>,
    back_pending: VecDeque<Req>,
    unpublished_rsps: VecDeque<Rsp>,
    published_rsps: VecDeque<Rsp>,
    req_prod: u32,
    rsp_prod: u32,
    req_event: u32,
    rsp_event: u32,
    req_cons: u32,
    rsp_cons: u32,
    /// The backend went to sleep (final check said "no work") and was not woken since.
    back_asleep: bool,
    /// The frontend went to sleep and was not woken since.
    front_asleep: bool,
}

impl Model {
    fn new(size: u32, start: u32) -> Model {
        Model {
            size,
            next_id: 0,
            unpublished_reqs: VecDeque::new(),
            published_reqs: VecDeque::new(),
            back_pending: VecDeque::new(),
            unpublished_rsps: VecDeque::new(),
            published_rsps: VecDeque::new(),
            req_prod: start,
            rsp_prod: start,
            req_event: start.wrapping_add(1),
            rsp_event: start.wrapping_add(1),
            req_cons: start,
            rsp_cons: start,
            back_asleep: false,
            front_asleep: false,
        }
    }

    fn outstanding(&self) -> usize {
        self.unpublished_reqs.len()
            + self.published_reqs.len()
            + self.back_pending.len()
            + self.unpublished_rsps.len()
            + self.published_rsps.len()
    }
}

fn run_exchange(order: u32, start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let area = Area::pages(order);
    let (mut front, mut back) = rings(&area, start);
    let mut m = Model::new(front.size(), start);
    prop_assert_eq!(m.size, Shared::size_for(ring_bytes(order)));

    for op in ops {
        match *op {
            Op::FrontPush(n) => {
                for _ in 0..n {
                    let req = Req {
                        id: m.next_id,
                        op: m.next_id % 5,
                        arg: u64::from(m.next_id).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    };
                    if m.outstanding() == m.size as usize {
                        prop_assert!(front.is_full());
                        prop_assert_eq!(front.push_request(req), Err(RingError::Full));
                    } else {
                        let idx = m.req_prod.wrapping_add(m.unpublished_reqs.len() as u32);
                        prop_assert_eq!(front.push_request(req), Ok(idx));
                        m.unpublished_reqs.push_back(req);
                        m.next_id += 1;
                    }
                }
            }
            Op::FrontPublish | Op::FrontPublishNotify => {
                let old = m.req_prod;
                let n = m.unpublished_reqs.len() as u32;
                let new = old.wrapping_add(n);
                if let Op::FrontPublishNotify = op {
                    let expected = model_notify(old, new, m.req_event);
                    let notify = front.push_requests_and_check_notify();
                    prop_assert_eq!(notify, expected);
                    if m.back_asleep && n > 0 {
                        prop_assert!(notify, "lost wake-up of the backend");
                    }
                    if notify {
                        m.back_asleep = false;
                    }
                } else {
                    front.push_requests();
                    if n > 0 {
                        // Publishing without checking is the caller's business; assume it woke
                        // the backend some other way.
                        m.back_asleep = false;
                    }
                }
                m.published_reqs.extend(m.unpublished_reqs.drain(..));
                m.req_prod = new;
                prop_assert_eq!(area.read_u32(REQ_PROD), new);
            }
            Op::BackPoll(n) => {
                for _ in 0..n {
                    match m.published_reqs.pop_front() {
                        None => prop_assert_eq!(back.poll_request(), Ok(None)),
                        Some(req) => {
                            prop_assert_eq!(back.poll_request(), Ok(Some(req)));
                            m.back_pending.push_back(req);
                            m.req_cons = m.req_cons.wrapping_add(1);
                        }
                    }
                }
            }
            Op::BackRespond(n) => {
                for _ in 0..n {
                    match m.back_pending.pop_front() {
                        None => prop_assert_eq!(
                            back.push_response(Rsp { id: 0, status: 0 }),
                            Err(RingError::NoPendingRequest)
                        ),
                        Some(req) => {
                            let idx = m.rsp_prod.wrapping_add(m.unpublished_rsps.len() as u32);
                            let rsp = response_for(&req);
                            prop_assert_eq!(back.push_response(rsp), Ok(idx));
                            m.unpublished_rsps.push_back(rsp);
                        }
                    }
                }
            }
            Op::BackPublish | Op::BackPublishNotify => {
                let old = m.rsp_prod;
                let n = m.unpublished_rsps.len() as u32;
                let new = old.wrapping_add(n);
                if let Op::BackPublishNotify = op {
                    let expected = model_notify(old, new, m.rsp_event);
                    let notify = back.push_responses_and_check_notify();
                    prop_assert_eq!(notify, expected);
                    if m.front_asleep && n > 0 {
                        prop_assert!(notify, "lost wake-up of the frontend");
                    }
                    if notify {
                        m.front_asleep = false;
                    }
                } else {
                    back.push_responses();
                    if n > 0 {
                        m.front_asleep = false;
                    }
                }
                m.published_rsps.extend(m.unpublished_rsps.drain(..));
                m.rsp_prod = new;
                prop_assert_eq!(area.read_u32(RSP_PROD), new);
            }
            Op::FrontPoll(n) => {
                for _ in 0..n {
                    match m.published_rsps.pop_front() {
                        None => prop_assert_eq!(front.poll_response(), Ok(None)),
                        Some(rsp) => {
                            prop_assert_eq!(front.poll_response(), Ok(Some(rsp)));
                            m.rsp_cons = m.rsp_cons.wrapping_add(1);
                        }
                    }
                }
            }
            Op::FrontFinal => {
                let work = !m.published_rsps.is_empty();
                if !work {
                    m.rsp_event = m.rsp_cons.wrapping_add(1);
                    m.front_asleep = true;
                }
                prop_assert_eq!(front.final_check_for_responses(), Ok(work));
                prop_assert_eq!(area.read_u32(RSP_EVENT), m.rsp_event);
            }
            Op::BackFinal => {
                let work = !m.published_reqs.is_empty();
                if !work {
                    m.req_event = m.req_cons.wrapping_add(1);
                    m.back_asleep = true;
                }
                prop_assert_eq!(back.final_check_for_requests(), Ok(work));
                prop_assert_eq!(area.read_u32(REQ_EVENT), m.req_event);
            }
        }
        // Counters agree with the model after every step.
        prop_assert_eq!(front.outstanding_requests() as usize, m.outstanding());
        prop_assert_eq!(
            front.free_requests() as usize,
            m.size as usize - m.outstanding()
        );
        prop_assert_eq!(
            front.unpublished_requests() as usize,
            m.unpublished_reqs.len()
        );
        prop_assert_eq!(
            back.unconsumed_requests(),
            Ok(m.published_reqs.len() as u32)
        );
        prop_assert_eq!(back.pending_responses() as usize, m.back_pending.len());
        prop_assert_eq!(
            back.unpublished_responses() as usize,
            m.unpublished_rsps.len()
        );
        prop_assert_eq!(
            front.unconsumed_responses(),
            Ok(m.published_rsps.len() as u32)
        );
        prop_assert_eq!(front.rsp_cons(), m.rsp_cons);
        prop_assert_eq!(back.req_cons(), m.req_cons);
        prop_assert_eq!(front.error(), None);
        prop_assert_eq!(back.error(), None);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn exchange_matches_model(
        order in 0u32..=1,
        start in interesting_index(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run_exchange(order, start, &ops)?;
    }

    /// RING_PUSH_REQUESTS_AND_CHECK_NOTIFY for every old/new/event combination, including
    /// the wrap of the indices.
    #[test]
    fn request_notify_is_xens_rule(
        old in interesting_index(),
        n in 0u32..=128,
        event_delta in prop_oneof![0u32..=140, any::<u32>()],
    ) {
        let area = Area::pages(0);
        let (mut front, _back) = rings(&area, old);
        for i in 0..n {
            front.push_request(Req { id: i, op: 0, arg: 0 }).unwrap();
        }
        let event = old.wrapping_add(event_delta);
        area.write_u32(REQ_EVENT, event);
        let new = old.wrapping_add(n);
        prop_assert_eq!(front.push_requests_and_check_notify(), model_notify(old, new, event));
        prop_assert_eq!(area.read_u32(REQ_PROD), new);
    }

    /// RING_PUSH_RESPONSES_AND_CHECK_NOTIFY likewise.
    #[test]
    fn response_notify_is_xens_rule(
        old in interesting_index(),
        n in 0u32..=128,
        event_delta in prop_oneof![0u32..=140, any::<u32>()],
    ) {
        let area = Area::pages(0);
        let (mut front, mut back) = rings(&area, old);
        for i in 0..n {
            front.push_request(Req { id: i, op: 0, arg: 0 }).unwrap();
        }
        front.push_requests();
        while let Some(req) = back.poll_request().unwrap() {
            back.push_response(response_for(&req)).unwrap();
        }
        let event = old.wrapping_add(event_delta);
        area.write_u32(RSP_EVENT, event);
        let new = old.wrapping_add(n);
        prop_assert_eq!(back.push_responses_and_check_notify(), model_notify(old, new, event));
        prop_assert_eq!(area.read_u32(RSP_PROD), new);
    }
}

// ---------------------------------------------------------------------------------------
// Hostile peers.

#[derive(Debug, Clone)]
enum Hostile {
    /// The peer publishes a producer index `start + delta`.
    ProdNear(u32),
    /// The peer publishes an arbitrary producer index.
    ProdAny(u32),
    /// The peer overwrites an entry (or part of the ring) with arbitrary bytes.
    Scribble(usize, Vec<u8>),
    /// The peer overwrites our producer index and its event index.
    ScribbleOurs(u32, u32),
    /// Our side consumes.
    Poll,
    /// Our side does its final check.
    Final,
    /// Our side produces (requests for a frontend, responses for a backend).
    Produce(u8),
    /// Our side publishes.
    Publish,
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        3 => (0u32..=200).prop_map(Hostile::ProdNear),
        1 => any::<u32>().prop_map(Hostile::ProdAny),
        2 => (0usize..4096, prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(o, b)| Hostile::Scribble(o, b)),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Hostile::ScribbleOurs(a, b)),
        4 => Just(Hostile::Poll),
        1 => Just(Hostile::Final),
        2 => (0u8..60).prop_map(Hostile::Produce),
        2 => Just(Hostile::Publish),
    ]
}

/// Scribble over the entries only (the header indices are handled separately).
fn scribble(area: &Area, off: usize, bytes: &[u8]) {
    let off = RING_HEADER_SIZE + off % (area.len() - RING_HEADER_SIZE);
    let n = bytes.len().min(area.len() - off);
    area.write_bytes(off, &bytes[..n]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A frontend facing a backend that publishes arbitrary `rsp_prod` values and scribbles
    /// over the ring: it never accepts more responses than it published requests, reports
    /// exactly the invalid indices, and stays in the error state.
    #[test]
    fn front_survives_hostile_backend(
        start in interesting_index(),
        actions in prop::collection::vec(hostile(), 1..200),
    ) {
        let area = Area::pages(0);
        let (mut front, _back) = rings(&area, start);
        let size = front.size();
        let mut published = start; // what we published as req_prod
        let mut pvt = start;
        let mut cons = start;
        let mut error: Option<RingError> = None;

        for a in &actions {
            match a {
                Hostile::ProdNear(d) => area.write_u32(RSP_PROD, start.wrapping_add(*d)),
                Hostile::ProdAny(v) => area.write_u32(RSP_PROD, *v),
                Hostile::Scribble(off, bytes) => scribble(&area, *off, bytes),
                Hostile::ScribbleOurs(a, b) => {
                    area.write_u32(REQ_PROD, *a);
                    area.write_u32(REQ_EVENT, *b);
                }
                Hostile::Poll | Hostile::Final => {
                    let prod = area.read_u32(RSP_PROD);
                    let valid = prod.wrapping_sub(cons) <= published.wrapping_sub(cons);
                    let got = if let Hostile::Poll = a {
                        front.poll_response().map(|r| r.is_some())
                    } else {
                        front.final_check_for_responses()
                    };
                    if let Some(e) = error {
                        prop_assert_eq!(got, Err(e));
                    } else if valid {
                        prop_assert_eq!(got, Ok(prod != cons));
                        if let Hostile::Poll = a {
                            if prod != cons {
                                cons = cons.wrapping_add(1);
                            }
                        } else if prod == cons {
                            prop_assert_eq!(area.read_u32(RSP_EVENT), cons.wrapping_add(1));
                        }
                    } else {
                        let e = RingError::ProducerOverrun {
                            producer: prod,
                            consumer: cons,
                            max_ahead: published.wrapping_sub(cons),
                        };
                        prop_assert_eq!(got, Err(e));
                        error = Some(e);
                    }
                }
                Hostile::Produce(n) => {
                    for i in 0..*n {
                        let r = front.push_request(Req { id: u32::from(i), op: 0, arg: 0 });
                        if pvt.wrapping_sub(cons) == size {
                            prop_assert_eq!(r, Err(RingError::Full));
                        } else {
                            prop_assert_eq!(r, Ok(pvt));
                            pvt = pvt.wrapping_add(1);
                        }
                    }
                }
                Hostile::Publish => {
                    // Our record of the old req_prod is used, whatever the peer wrote there.
                    let event = area.read_u32(REQ_EVENT);
                    let notify = front.push_requests_and_check_notify();
                    prop_assert_eq!(notify, model_notify(published, pvt, event));
                    published = pvt;
                    prop_assert_eq!(area.read_u32(REQ_PROD), pvt);
                }
            }
            // Consumption never passes what was published.
            prop_assert!(published.wrapping_sub(front.rsp_cons()) <= size);
            prop_assert!(front.outstanding_requests() <= size);
            prop_assert_eq!(front.rsp_cons(), cons);
            prop_assert_eq!(front.error(), error);
        }
        if let Some(e) = error {
            prop_assert_eq!(front.unconsumed_responses(), Err(e));
        }
    }

    /// A backend facing a frontend that publishes arbitrary `req_prod` values.
    #[test]
    fn back_survives_hostile_frontend(
        start in interesting_index(),
        actions in prop::collection::vec(hostile(), 1..200),
    ) {
        let area = Area::pages(0);
        let (_front, mut back) = rings(&area, start);
        let size = back.size();
        let mut rsp_pvt = start;
        let mut rsp_published = start;
        let mut cons = start;
        let mut error: Option<RingError> = None;

        for a in &actions {
            match a {
                Hostile::ProdNear(d) => area.write_u32(REQ_PROD, start.wrapping_add(*d)),
                Hostile::ProdAny(v) => area.write_u32(REQ_PROD, *v),
                Hostile::Scribble(off, bytes) => scribble(&area, *off, bytes),
                Hostile::ScribbleOurs(a, b) => {
                    area.write_u32(RSP_PROD, *a);
                    area.write_u32(RSP_EVENT, *b);
                }
                Hostile::Poll | Hostile::Final => {
                    let prod = area.read_u32(REQ_PROD);
                    let max_ahead = size - cons.wrapping_sub(rsp_pvt);
                    let valid = prod.wrapping_sub(cons) <= max_ahead;
                    let got = if let Hostile::Poll = a {
                        back.poll_request().map(|r| r.is_some())
                    } else {
                        back.final_check_for_requests()
                    };
                    if let Some(e) = error {
                        prop_assert_eq!(got, Err(e));
                    } else if valid {
                        prop_assert_eq!(got, Ok(prod != cons));
                        if let Hostile::Poll = a {
                            if prod != cons {
                                cons = cons.wrapping_add(1);
                            }
                        } else if prod == cons {
                            prop_assert_eq!(area.read_u32(REQ_EVENT), cons.wrapping_add(1));
                        }
                    } else {
                        let e = RingError::ProducerOverrun { producer: prod, consumer: cons, max_ahead };
                        prop_assert_eq!(got, Err(e));
                        error = Some(e);
                    }
                }
                Hostile::Produce(n) => {
                    for _ in 0..*n {
                        let r = back.push_response(Rsp { id: 1, status: -1 });
                        if rsp_pvt == cons {
                            prop_assert_eq!(r, Err(RingError::NoPendingRequest));
                        } else {
                            prop_assert_eq!(r, Ok(rsp_pvt));
                            rsp_pvt = rsp_pvt.wrapping_add(1);
                        }
                    }
                }
                Hostile::Publish => {
                    let event = area.read_u32(RSP_EVENT);
                    let notify = back.push_responses_and_check_notify();
                    prop_assert_eq!(notify, model_notify(rsp_published, rsp_pvt, event));
                    rsp_published = rsp_pvt;
                    prop_assert_eq!(area.read_u32(RSP_PROD), rsp_pvt);
                }
            }
            // Never more consumed-but-unanswered requests than slots.
            prop_assert!(back.pending_responses() <= size);
            prop_assert_eq!(back.req_cons(), cons);
            prop_assert_eq!(back.rsp_prod_pvt(), rsp_pvt);
            prop_assert_eq!(back.error(), error);
        }
    }

    /// Entries are copied out whatever their contents: arbitrary bytes come back verbatim.
    #[test]
    fn arbitrary_entry_bytes_are_copied_verbatim(
        start in interesting_index(),
        raw in prop::collection::vec(any::<[u8; 16]>(), 1..=128),
    ) {
        let area = Area::pages(0);
        let (_front, mut back) = rings(&area, start);
        for (i, bytes) in raw.iter().enumerate() {
            let slot = (start.wrapping_add(i as u32) & (back.size() - 1)) as usize;
            area.write_bytes(RING_HEADER_SIZE + slot * 16, bytes);
        }
        area.write_u32(REQ_PROD, start.wrapping_add(raw.len() as u32));
        for bytes in &raw {
            let req = back.poll_request().unwrap().unwrap();
            let expect = Req {
                id: u32::from_ne_bytes(bytes[0..4].try_into().unwrap()),
                op: u32::from_ne_bytes(bytes[4..8].try_into().unwrap()),
                arg: u64::from_ne_bytes(bytes[8..16].try_into().unwrap()),
            };
            prop_assert_eq!(req, expect);
            back.push_response(Rsp { id: 0, status: 0 }).unwrap();
        }
        prop_assert_eq!(back.poll_request(), Ok(None));
    }
}

#[test]
fn response_before_request_is_rejected() {
    let area = Area::pages(0);
    let (mut front, _back) = rings(&area, 0);
    area.write_u32(RSP_PROD, 1);
    let e = RingError::ProducerOverrun {
        producer: 1,
        consumer: 0,
        max_ahead: 0,
    };
    assert_eq!(front.poll_response(), Err(e));
    // Sticky, even once the peer "fixes" its index.
    area.write_u32(RSP_PROD, 0);
    assert_eq!(front.poll_response(), Err(e));
    assert_eq!(front.final_check_for_responses(), Err(e));
    assert_eq!(front.error(), Some(e));
    // Producing keeps working (it only depends on our own state).
    assert_eq!(
        front.push_request(Req {
            id: 0,
            op: 0,
            arg: 0
        }),
        Ok(0)
    );
}

#[test]
fn backwards_request_producer_is_rejected() {
    let area = Area::pages(0);
    let (mut front, mut back) = rings(&area, 5);
    for i in 0..3 {
        front
            .push_request(Req {
                id: i,
                op: 0,
                arg: 0,
            })
            .unwrap();
    }
    front.push_requests();
    assert!(back.poll_request().unwrap().is_some());
    assert!(back.poll_request().unwrap().is_some());
    // The frontend moves req_prod behind our consumer: Xen's RING_REQUEST_PROD_OVERFLOW would
    // not notice (6 - 5 <= size), but it is still impossible.
    area.write_u32(REQ_PROD, 6);
    assert_eq!(
        back.poll_request(),
        Err(RingError::ProducerOverrun {
            producer: 6,
            consumer: 7,
            max_ahead: 128 - 2,
        })
    );
}

#[test]
fn request_producer_may_not_reuse_unanswered_slots() {
    let area = Area::pages(0);
    let (_front, mut back) = rings(&area, 0);
    let size = back.size();
    // A full ring of requests is fine.
    area.write_u32(REQ_PROD, size);
    for _ in 0..size {
        assert!(back.poll_request().unwrap().is_some());
    }
    // One answered: exactly one more request may come.
    back.push_response(Rsp { id: 0, status: 0 }).unwrap();
    area.write_u32(REQ_PROD, size + 2);
    assert_eq!(
        back.unconsumed_requests(),
        Err(RingError::ProducerOverrun {
            producer: size + 2,
            consumer: size,
            max_ahead: 1,
        })
    );
}

// ---------------------------------------------------------------------------------------
// Two threads, with flags standing in for event channels.

/// Wait until the other side sets `flag`; fail (rather than hang) on a lost wake-up.
fn wait_event(flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.swap(false, Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "lost wake-up: no event for 60 s");
        std::thread::yield_now();
    }
}

fn threaded_exchange(start: u32, order: u32, total: u32) {
    let area = Arc::new(Area::pages(order));
    let (mut front, mut back) = rings(&area, start);
    let to_back = Arc::new(AtomicBool::new(false));
    let to_front = Arc::new(AtomicBool::new(false));

    let backend = {
        let (area, to_back, to_front) = (area.clone(), to_back.clone(), to_front.clone());
        std::thread::spawn(move || {
            let _keep = area;
            let mut handled = 0u32;
            let mut sleeps = 0u32;
            loop {
                while let Some(req) = back.poll_request().unwrap() {
                    assert_eq!(req.id, handled);
                    assert_eq!(req.arg, u64::from(handled) * 7);
                    back.push_response(response_for(&req)).unwrap();
                    handled += 1;
                }
                if back.push_responses_and_check_notify() {
                    to_front.store(true, Ordering::SeqCst);
                }
                if handled == total {
                    return sleeps;
                }
                if !back.final_check_for_requests().unwrap() {
                    sleeps += 1;
                    wait_event(&to_back);
                }
            }
        })
    };

    let mut sent = 0u32;
    let mut received = 0u32;
    while received < total {
        while sent < total && !front.is_full() {
            let req = Req {
                id: sent,
                op: sent % 3,
                arg: u64::from(sent) * 7,
            };
            front.push_request(req).unwrap();
            sent += 1;
        }
        if front.push_requests_and_check_notify() {
            to_back.store(true, Ordering::SeqCst);
        }
        while let Some(rsp) = front.poll_response().unwrap() {
            let req = Req {
                id: received,
                op: received % 3,
                arg: u64::from(received) * 7,
            };
            assert_eq!(rsp, response_for(&req));
            received += 1;
        }
        let can_send = sent < total && !front.is_full();
        if received < total && !can_send && !front.final_check_for_responses().unwrap() {
            wait_event(&to_front);
        }
    }
    let sleeps = backend.join().unwrap();
    assert_eq!(front.outstanding_requests(), 0);
    eprintln!("threaded exchange: {total} requests, backend slept {sleeps} times");
}

#[test]
fn threads_exchange_without_lost_wakeups() {
    threaded_exchange(0, 0, 200_000);
}

#[test]
fn threads_exchange_across_index_wrap() {
    threaded_exchange(u32::MAX - 50_000, 1, 100_000);
}
