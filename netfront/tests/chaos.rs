//! Property tests: the test plays a hostile backend directly on the shared rings (arbitrary
//! ids, offsets, flags, statuses and producer indices). The driver never panics, never hands
//! out an impossible frame, reposts every receive buffer until the device is declared broken,
//! is declared broken exactly when a tx response lies, and accounts for tx pages exactly.

mod common;

use common::{frame, guest, NetGuest, PEER_MAC};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::atomic::{fence, Ordering};
use xenia_netfront::{NetfrontConfig, NetfrontError, Violation, MAX_FRAME_LEN};
use xenia_sim::netback::VifConfig;
use xenia_sim::DOM0;

const HEADER: usize = 64;
const RSP_PROD: usize = 8;
const REQ_PROD: usize = 0;

fn rd_u32(page: *mut u8, off: usize) -> u32 {
    // SAFETY: off is a 4-aligned offset inside the mapped ring page.
    unsafe { (page.add(off) as *const u32).read_volatile() }
}

fn wr_u32(page: *mut u8, off: usize, v: u32) {
    // SAFETY: as in rd_u32.
    unsafe { (page.add(off) as *mut u32).write_volatile(v) }
}

fn rd_u16(page: *mut u8, off: usize) -> u16 {
    // SAFETY: off is a 2-aligned offset inside the mapped ring page.
    unsafe { (page.add(off) as *const u16).read_volatile() }
}

fn wr_u16(page: *mut u8, off: usize, v: u16) {
    // SAFETY: as in rd_u16.
    unsafe { (page.add(off) as *mut u16).write_volatile(v) }
}

/// One rx response: `id` None means the id of the slot (what an honest backend sends).
#[derive(Debug, Clone)]
struct RxSpec {
    id: Option<u16>,
    offset: u16,
    flags: u16,
    status: i16,
}

fn rx_spec() -> impl Strategy<Value = RxSpec> {
    (
        prop_oneof![3 => Just(None), 1 => any::<u16>().prop_map(Some)],
        prop_oneof![3 => 0u16..64, 1 => any::<u16>()],
        prop_oneof![4 => 0u16..16, 1 => any::<u16>()],
        prop_oneof![4 => -2i16..1600, 1 => any::<i16>()],
    )
        .prop_map(|(id, offset, flags, status)| RxSpec {
            id,
            offset,
            flags,
            status,
        })
}

/// A batch of responses, then optionally a producer index that runs `1 + k` past the
/// requests instead of the honest one.
fn rx_batch() -> impl Strategy<Value = (Vec<RxSpec>, Option<u32>)> {
    (
        prop::collection::vec(rx_spec(), 0..40),
        prop_oneof![8 => Just(None), 1 => (0u32..0x7fff_0000).prop_map(Some)],
    )
}

/// Responses for outstanding tx requests: `Ok(i)` answers the i-th outstanding id (modulo
/// their number), `Err(id)` sends an arbitrary id; with an arbitrary status.
fn tx_batch() -> impl Strategy<Value = Vec<(Result<usize, u16>, i16)>> {
    prop::collection::vec(
        (
            prop_oneof![3 => any::<usize>().prop_map(Ok), 1 => any::<u16>().prop_map(Err)],
            prop_oneof![3 => Just(0i16), 1 => any::<i16>()],
        ),
        0..20,
    )
}

fn key(keys: &[(String, String)], k: &str) -> u32 {
    keys.iter()
        .find(|(key, _)| key == k)
        .unwrap()
        .1
        .parse()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_rx_responses_never_break_the_driver(batches in prop::collection::vec(rx_batch(), 1..8)) {
        let g = guest();
        let nb = g.add_vif(VifConfig::new(0));
        let cfg = NetfrontConfig { rx_buffers: 64, ..NetfrontConfig::default() };
        let mut nf = g.connect_with(0, cfg).unwrap();
        nb.set_stopped(true);
        let rx_ref = key(&nb.frontend_keys(), "rx-ring-ref");
        let ring = g.sim.with_host(|h| h.grants.map(DOM0, rx_ref, true)).unwrap();
        let mut prod = rd_u32(ring, RSP_PROD);
        let mut answered = 0u64;
        for (specs, bogus) in batches {
            let req_prod = rd_u32(ring, REQ_PROD);
            for s in specs.iter().take(req_prod.wrapping_sub(prod) as usize) {
                let e = HEADER + (prod as usize % 256) * 8;
                // The request's id is in the slot until the response overwrites it.
                let id = s.id.unwrap_or_else(|| rd_u16(ring, e));
                wr_u16(ring, e, id);
                wr_u16(ring, e + 2, s.offset);
                wr_u16(ring, e + 4, s.flags);
                wr_u16(ring, e + 6, s.status as u16);
                prod = prod.wrapping_add(1);
                answered += 1;
            }
            fence(Ordering::Release);
            let published = match bogus {
                Some(k) => rd_u32(ring, REQ_PROD).wrapping_add(1 + k),
                None => prod,
            };
            wr_u32(ring, RSP_PROD, published);
            nf.poll();
            while let Some(f) = nf.recv() {
                prop_assert!(!f.is_empty() && f.len() <= MAX_FRAME_LEN);
            }
            let st = nf.stats();
            let frames = st.rx_packets + st.rx_bad_id + st.rx_bad_status + st.rx_bad_size
                + st.rx_bad_flags + st.rx_too_long;
            prop_assert!(frames <= answered, "{st:?} from {answered} responses");
            if bogus.is_some() {
                // Noticed, unless the device broke before and left the ring alone.
                prop_assert!(nf.rx_error().is_some() || nf.broken().is_some());
            }
            if nf.broken().is_some() {
                // A violation: counted once, the rings are left alone, nothing is sent.
                prop_assert_eq!(st.broken, 1);
                prop_assert!(!nf.has_work());
                prop_assert_eq!(nf.recv(), None);
                prop_assert!(matches!(
                    nf.send(&frame(PEER_MAC, [0, 0x16, 0x3e, 0, 0, 1], 60, 0)),
                    Err(NetfrontError::Broken(_))
                ));
            } else if nf.rx_error().is_none() {
                prop_assert_eq!(nf.rx_posted(), 64, "every buffer reposted");
                prop_assert_eq!(rd_u32(ring, REQ_PROD).wrapping_sub(prod), 64);
            } else {
                prop_assert_eq!(st.ring_errors, 1);
                // The dead ring stays dead: nothing more is read.
                prop_assert_eq!(nf.recv(), None);
            }
        }
        // tx is unaffected by anything rx did, unless the device broke.
        prop_assert_eq!(nf.can_send(60), nf.broken().is_none());
    }

    #[test]
    fn arbitrary_tx_responses_account_for_every_page(batches in prop::collection::vec(tx_batch(), 1..8)) {
        let g = guest();
        let nb = g.add_vif(VifConfig::new(0));
        let cfg = NetfrontConfig { tx_buffers: 32, ..NetfrontConfig::default() };
        let mut nf = g.connect_with(0, cfg).unwrap();
        nb.set_stopped(true);
        let tx_ref = key(&nb.frontend_keys(), "tx-ring-ref");
        let ring = g.sim.with_host(|h| h.grants.map(DOM0, tx_ref, true)).unwrap();
        let mut prod = rd_u32(ring, RSP_PROD);
        let mut read_upto = prod;
        // Ids of requests read and not answered yet, in ring order.
        let mut pending: Vec<u16> = Vec::new();
        // The model: ids whose pages the driver has lent us.
        let mut outstanding: BTreeSet<u16> = BTreeSet::new();
        let mut seed = 0u8;
        for batch in batches {
            // Fill the ring with as many frames as the driver takes.
            loop {
                seed = seed.wrapping_add(1);
                let len = 60 + (seed as usize * 37) % 1455;
                match nf.send(&frame(PEER_MAC, [0, 0x16, 0x3e, 0, 0, 1], len, seed)) {
                    Ok(()) => {}
                    Err(NetfrontError::Busy) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            // Read the new requests.
            let req_prod = rd_u32(ring, REQ_PROD);
            prop_assert!(req_prod.wrapping_sub(prod) <= 256);
            while read_upto != req_prod {
                let id = rd_u16(ring, HEADER + (read_upto as usize % 256) * 12 + 8);
                prop_assert!(outstanding.insert(id), "id {} lent twice", id);
                pending.push(id);
                read_upto = read_upto.wrapping_add(1);
            }
            prop_assert_eq!(nf.tx_in_flight(), outstanding.len());
            // The model stops at the first response that breaks the protocol.
            let mut violation = None;
            for (which, status) in &batch {
                if pending.is_empty() {
                    break;
                }
                // Each response answers one request (the chosen one, or for a made-up id
                // the oldest, whose page then stays lent for good).
                let id = match which {
                    Ok(i) => pending.remove(i % pending.len()),
                    Err(id) => {
                        pending.remove(0);
                        *id
                    }
                };
                let e = HEADER + (prod as usize % 256) * 12;
                wr_u16(ring, e, id);
                wr_u16(ring, e + 2, *status as u16);
                prod = prod.wrapping_add(1);
                if violation.is_none() {
                    if !outstanding.remove(&id) {
                        violation = Some(Violation::TxBadId(id));
                    } else if !(-2..=0).contains(status) {
                        violation = Some(Violation::TxBadStatus(*status));
                    }
                }
            }
            fence(Ordering::Release);
            wr_u32(ring, RSP_PROD, prod);
            nf.poll();
            prop_assert_eq!(nf.broken(), violation);
            prop_assert_eq!(nf.tx_in_flight(), outstanding.len());
            prop_assert!(outstanding.len() <= 32);
            prop_assert!(nf.tx_error().is_none());
            if violation.is_some() {
                // Broken: sending fails at once, the pages not answered stay lent.
                prop_assert!(matches!(
                    nf.send(&frame(PEER_MAC, [0, 0x16, 0x3e, 0, 0, 1], 60, 0)),
                    Err(NetfrontError::Broken(_))
                ));
                prop_assert_eq!(nf.stats().broken, 1);
                break;
            }
        }
    }
}
