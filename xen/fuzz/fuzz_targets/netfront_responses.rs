//! A hostile netback: the fuzzer writes rx and tx responses (ids, offsets, flags, statuses and
//! producer indices) on a netfront's shared rings while frames are sent. The driver never
//! panics, never hands out a frame over the MTU, never lends more pages than it has, and once
//! it says the device is broken, sending fails at once and nothing more is received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{fence, Ordering};
use xenia_netfront::{Netfront, NetfrontConfig, NetfrontError};
use xenia_sim::netback::{Netback, VifConfig};
use xenia_sim::{Guest, DOM0};

const HEADER: usize = 64;
const REQ_PROD: usize = 0;
const RSP_PROD: usize = 8;
const RING: u32 = 256;
const RX_SLOT: usize = 8;
const TX_SLOT: usize = 12;
const RX_BUFFERS: usize = 32;
const TX_BUFFERS: usize = 16;

fn rd_u16(page: *mut u8, off: usize) -> u16 {
    // SAFETY: off is a 2-aligned offset inside the mapped ring page.
    unsafe { (page.add(off) as *const u16).read_volatile() }
}

fn rd_u32(page: *mut u8, off: usize) -> u32 {
    // SAFETY: off is a 4-aligned offset inside the mapped ring page.
    unsafe { (page.add(off) as *const u32).read_volatile() }
}

fn wr_u16(page: *mut u8, off: usize, v: u16) {
    // SAFETY: as in rd_u16.
    unsafe { (page.add(off) as *mut u16).write_volatile(v) }
}

fn wr_u32(page: *mut u8, off: usize, v: u32) {
    // SAFETY: as in rd_u32.
    unsafe { (page.add(off) as *mut u32).write_volatile(v) }
}

fn key(nb: &Netback, k: &str) -> u32 {
    nb.frontend_keys()
        .iter()
        .find(|(key, _)| key == k)
        .expect("frontend key")
        .1
        .parse()
        .expect("a grant reference")
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let g = Guest::new();
    let mut cfg = VifConfig::new(0);
    cfg.mtu = Some(["1500", "9000", "68"][first as usize % 3].into());
    cfg.feature_sg = first & 4 == 0;
    let nb = Netback::new(&g.sim, cfg);
    let config = NetfrontConfig {
        rx_buffers: RX_BUFFERS,
        tx_buffers: TX_BUFFERS,
        ..NetfrontConfig::default()
    };
    let mut nf = g
        .block_on(Netfront::connect_with(g.xs, g.ev, g.grants(), 0, config))
        .expect("connect");
    nb.set_stopped(true);
    let map = |r| {
        g.sim
            .with_host(|h| h.grants.map(DOM0, r, true))
            .expect("map")
    };
    let (rx_ref, tx_ref) = (key(&nb, "rx-ring-ref"), key(&nb, "tx-ring-ref"));
    let (rx, tx) = (map(rx_ref), map(tx_ref));
    let mut rx_prod = rd_u32(rx, RSP_PROD);
    let mut tx_prod = rd_u32(tx, RSP_PROD);
    let max = nf.max_frame_len();

    // Operations of 8 bytes: kind, then its arguments.
    for op in data.chunks_exact(8) {
        let a = u16::from_le_bytes([op[1], op[2]]);
        let b = u16::from_le_bytes([op[3], op[4]]);
        let c = i16::from_le_bytes([op[5], op[6]]);
        match op[0] % 5 {
            // Send a frame of 14 ..= max + 1 bytes.
            0 => {
                let len = 14 + a as usize % (max - 13);
                match nf.send(&vec![op[7]; len]) {
                    Ok(()) | Err(NetfrontError::Busy) => {}
                    Err(NetfrontError::Broken(v)) => assert_eq!(nf.broken(), Some(v)),
                    Err(NetfrontError::Ring(_)) => assert!(nf.tx_error().is_some()),
                    Err(NetfrontError::FrameTooLarge(n)) => assert!(n > max),
                    Err(e) => panic!("{e}"),
                }
            }
            // An rx response: honest id (bit 0 of op[7]) or `a`; offset `b`; flags; status.
            1 | 2 => {
                if rd_u32(rx, REQ_PROD) != rx_prod {
                    let e = HEADER + (rx_prod % RING) as usize * RX_SLOT;
                    let id = if op[7] & 1 != 0 { rd_u16(rx, e) } else { a };
                    let flags = u16::from(op[7] >> 1) & 0x1f;
                    wr_u16(rx, e, id);
                    wr_u16(rx, e + 2, b % 4097);
                    wr_u16(rx, e + 4, flags);
                    wr_u16(rx, e + 6, c as u16);
                    rx_prod = rx_prod.wrapping_add(1);
                    fence(Ordering::Release);
                    wr_u32(rx, RSP_PROD, rx_prod);
                }
            }
            // A tx response: honest id (bit 0 of op[7]) or `a`; status.
            3 => {
                if rd_u32(tx, REQ_PROD) != tx_prod {
                    let e = HEADER + (tx_prod % RING) as usize * TX_SLOT;
                    let id = if op[7] & 1 != 0 { rd_u16(tx, e + 8) } else { a };
                    let status = if op[7] & 2 != 0 { c } else { 0 };
                    wr_u16(tx, e, id);
                    wr_u16(tx, e + 2, status as u16);
                    tx_prod = tx_prod.wrapping_add(1);
                    fence(Ordering::Release);
                    wr_u32(tx, RSP_PROD, tx_prod);
                }
            }
            // A producer index past the requests, on either ring (rarely).
            _ => {
                if op[7] == 0xff {
                    let (ring, prod) = if a & 1 == 0 {
                        (rx, rx_prod)
                    } else {
                        (tx, tx_prod)
                    };
                    wr_u32(ring, RSP_PROD, prod.wrapping_add(RING + 1 + u32::from(b)));
                }
            }
        }
        nf.poll();
        while let Some(f) = nf.recv() {
            assert!(!f.is_empty() && f.len() <= max, "a {}-byte frame", f.len());
        }
        assert!(nf.tx_in_flight() <= TX_BUFFERS);
        assert!(nf.rx_posted() <= RX_BUFFERS);
        if let Some(v) = nf.broken() {
            assert_eq!(nf.stats().broken, 1);
            assert_eq!(nf.send(&[0; 60]), Err(NetfrontError::Broken(v)));
            assert!(!nf.can_send(60));
            assert!(!nf.has_work());
            assert_eq!(nf.error(), Some(NetfrontError::Broken(v)));
        }
    }
    // Let go of the rings and close the device, so that no page stays mapped (a page the
    // backend still maps is kept, not freed: every run would leak it).
    g.sim.with_host(|h| {
        h.grants.unmap(rx_ref);
        h.grants.unmap(tx_ref);
    });
    nb.set_stopped(false);
    let _ = g.block_on(nf.disconnect(g.xs));
});
