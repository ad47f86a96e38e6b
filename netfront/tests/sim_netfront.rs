//! Netfront against the simulated netback: handshake, frames both ways, hostile responses,
//! a backend that stops answering, grant reuse, several vifs.

mod common;

use common::{block_on, frame, guest, NetGuest, PEER_MAC};
use xenia_netfront::{
    NetStats, Netfront, NetfrontConfig, NetfrontError, Violation, DEFAULT_MTU, MAX_RX_SLOTS,
};
use xenia_sim::netback::{Fault, Netback, VifConfig};
use xenia_xen::xenbus::XenbusError;

const MAC0: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x01];

#[test]
fn handshake_reaches_connected_with_the_right_keys() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let nf = g.connect(0).unwrap();
    assert!(nb.is_connected());
    assert_eq!(nf.mac(), MAC0);
    assert_eq!(nf.mtu(), DEFAULT_MTU);
    assert!(nf.scatter_gather());
    assert_eq!(nf.backend_id(), 0);
    assert_eq!(nf.rx_posted(), NetfrontConfig::default().rx_buffers);
    let fe = "/local/domain/1/device/vif/0";
    assert_eq!(g.xs_read(&format!("{fe}/state")).as_deref(), Some("4"));
    assert_eq!(
        g.xs_read("/local/domain/0/backend/vif/1/0/state")
            .as_deref(),
        Some("4")
    );
    let keys = nb.frontend_keys();
    let get = |k: &str| {
        keys.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("frontend did not write {k}: {keys:?}"))
    };
    assert_eq!(get("event-channel"), nf.port().to_string());
    assert_eq!(get("request-rx-copy"), "1");
    assert_eq!(get("feature-rx-notify"), "1");
    assert_eq!(get("feature-sg"), "1");
    // Large receive: GSO frames and partial checksums taken (no feature-no-csum-offload,
    // which would turn GSO off in netback).
    assert_eq!(get("feature-gso-tcpv4"), "1");
    assert!(keys.iter().all(|(k, _)| k != "feature-no-csum-offload"));
    assert!(nf.tso());
    let tx_ref: u32 = get("tx-ring-ref").parse().unwrap();
    let rx_ref: u32 = get("rx-ring-ref").parse().unwrap();
    assert_ne!(tx_ref, rx_ref);
}

#[test]
fn frames_both_ways_byte_for_byte() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    for (i, len) in [14usize, 60, 61, 1000, 1514].into_iter().enumerate() {
        let out = frame(PEER_MAC, MAC0, len, i as u8);
        nf.send(&out).unwrap();
        g.run();
        assert_eq!(nb.pop_sent().as_deref(), Some(&out[..]), "tx {len}");
        let inb = frame(MAC0, PEER_MAC, len, 100 + i as u8);
        nb.inject(&inb);
        g.run();
        assert_eq!(nf.recv().as_deref(), Some(&inb[..]), "rx {len}");
    }
    assert_eq!(nf.recv(), None);
    assert_eq!(nb.pop_sent(), None);
    // Many frames in a burst keep their order.
    let burst: Vec<Vec<u8>> = (0..40)
        .map(|i| frame(MAC0, PEER_MAC, 100 + i, i as u8))
        .collect();
    for f in &burst {
        nb.inject(f);
    }
    g.run();
    for f in &burst {
        assert_eq!(nf.recv().as_ref(), Some(f));
    }
    let s = nf.stats();
    assert_eq!(s.rx_packets, 45);
    assert_eq!(s.tx_packets, 5);
    assert_eq!(s.tx_bytes, 14 + 60 + 61 + 1000 + 1514);
    assert_eq!(
        (s.rx_bad_id, s.rx_bad_size, s.rx_bad_status, s.ring_errors),
        (0, 0, 0, 0)
    );
    // Every tx page came back.
    g.run();
    nf.poll();
    assert_eq!(nf.tx_in_flight(), 0);
}

#[test]
fn data_at_an_offset_in_the_rx_pages_arrives_intact() {
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.mtu = Some("9000".into());
    cfg.rx_offset = 2;
    let nb = g.add_vif(cfg);
    let mut nf = g.connect(0).unwrap();
    // 4094 bytes fit one slot at offset 2, 4095 take two.
    for len in [60usize, 1514, 4094, 4095, 9014] {
        let f = frame(MAC0, PEER_MAC, len, len as u8);
        nb.inject(&f);
        g.run();
        assert_eq!(nf.recv(), Some(f), "rx {len}");
    }
    assert_eq!(nf.stats().rx_bad_size, 0);
}

#[test]
fn notifications_are_sent_only_when_the_backend_asks() {
    use xenia_xen::hypercall::EVENT_CHANNEL_OP;
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    g.run();
    let sends = || {
        g.sim
            .with_host(|h| h.hypercall_counts[EVENT_CHANNEL_OP as usize])
    };
    // The backend armed req_event for the next request and then stopped looking.
    nb.set_stopped(true);
    let before = sends();
    for i in 0..20 {
        nf.send(&frame(PEER_MAC, MAC0, 100, i)).unwrap();
    }
    assert_eq!(sends() - before, 1, "one notification for a burst");
    nb.set_stopped(false);
    g.run();
    assert_eq!(nb.take_sent().len(), 20);
    // Now the backend re-armed: the next frame notifies again.
    let before = sends();
    nf.send(&frame(PEER_MAC, MAC0, 100, 99)).unwrap();
    assert_eq!(sends() - before, 1);
    g.run();
    assert_eq!(nb.take_sent().len(), 1);
}

#[test]
fn jumbo_frames_use_scatter_gather() {
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.mtu = Some("9000".into());
    let nb = g.add_vif(cfg);
    let mut nf = g.connect(0).unwrap();
    assert_eq!(nf.mtu(), 9000);
    assert_eq!(nf.max_frame_len(), 9014);
    for len in [4095usize, 4096, 4097, 8192, 9014] {
        let out = frame(PEER_MAC, MAC0, len, len as u8);
        nf.send(&out).unwrap();
        g.run();
        assert_eq!(nb.pop_sent().as_deref(), Some(&out[..]), "tx {len}");
        let inb = frame(MAC0, PEER_MAC, len, (len as u8).wrapping_add(7));
        nb.inject(&inb);
        g.run();
        assert_eq!(nf.recv().as_deref(), Some(&inb[..]), "rx {len}");
    }
    assert_eq!(
        nf.send(&frame(PEER_MAC, MAC0, 9015, 0)),
        Err(NetfrontError::FrameTooLarge(9015))
    );
    assert_eq!(nf.stats().tx_too_big, 1);
    assert_eq!(nb.stats().tx_errors, 0);
}

#[test]
fn without_scatter_gather_frames_stay_within_a_page() {
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.mtu = Some("9000".into());
    cfg.feature_sg = false;
    let nb = g.add_vif(cfg);
    let mut nf = g.connect(0).unwrap();
    assert!(!nf.scatter_gather());
    assert_eq!(nf.max_frame_len(), 4096);
    assert_eq!(
        nf.send(&frame(PEER_MAC, MAC0, 5000, 0)),
        Err(NetfrontError::FrameTooLarge(5000))
    );
    assert_eq!(nf.stats().tx_too_big, 1);
    let f = frame(PEER_MAC, MAC0, 4096, 3);
    nf.send(&f).unwrap();
    g.run();
    assert_eq!(nb.pop_sent(), Some(f));
    // The backend does not send a multi-page frame to a frontend without feature-sg.
    nb.inject(&frame(MAC0, PEER_MAC, 5000, 0));
    g.run();
    assert_eq!(nf.recv(), None);
    assert_eq!(nb.stats().rx_dropped, 1);
    let keys = nb.frontend_keys();
    assert!(
        keys.contains(&("feature-sg".into(), "0".into())),
        "{keys:?}"
    );
}

/// After the device broke with `want`: sending fails at once with the error, nothing more is
/// received, no work is reported (so nothing spins), the violation was counted once, and the
/// pools account for every page (lent ones stay lent: the backend may still use them).
fn assert_broken(g: &common::Guest, nb: &Netback, nf: &mut Netfront, want: Violation) {
    assert_eq!(nf.broken(), Some(want));
    assert_eq!(nf.error(), Some(NetfrontError::Broken(want)));
    let f = frame(PEER_MAC, MAC0, 100, 9);
    assert_eq!(nf.send(&f), Err(NetfrontError::Broken(want)));
    assert!(!nf.can_send(100));
    nb.inject(&frame(MAC0, PEER_MAC, 100, 9));
    g.run();
    assert!(!nf.poll());
    assert_eq!(nf.recv(), None);
    assert!(!nf.has_work());
    assert_eq!(nf.stats().broken, 1, "{:?}", nf.stats());
    assert_eq!(nb.pop_sent(), None, "nothing was sent after the violation");
}

/// Injects a frame with `fault`: the device breaks with a violation matching `want`, and the
/// violation is counted by `counter`.
fn hostile_rx(fault: Fault, want: fn(Violation) -> bool, counter: fn(&NetStats) -> u64) {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    // One good frame first, so "duplicate id" has a previous id to copy.
    let first = frame(MAC0, PEER_MAC, 200, 1);
    nb.inject(&first);
    g.run();
    assert_eq!(nf.recv(), Some(first));
    nb.fault(fault);
    nb.inject(&frame(MAC0, PEER_MAC, 300, 2));
    g.run();
    assert_eq!(nf.recv(), None, "{fault:?}: the bad frame was dropped");
    let v = nf
        .broken()
        .unwrap_or_else(|| panic!("{fault:?}: not broken"));
    assert!(want(v), "{fault:?}: {v:?}");
    assert_eq!(counter(&nf.stats()), 1, "{fault:?}: {:?}", nf.stats());
    assert_broken(&g, &nb, &mut nf, v);
    assert_eq!(nf.stats().rx_packets, 1);
    assert_eq!(nf.stats().ring_errors, 0);
}

#[test]
fn hostile_rx_responses_break_the_device() {
    hostile_rx(
        Fault::RxIdOutOfRange,
        |v| matches!(v, Violation::RxBadId { got: 0xfff0, .. }),
        |s| s.rx_bad_id,
    );
    hostile_rx(
        Fault::RxDuplicateId,
        |v| matches!(v, Violation::RxBadId { .. }),
        |s| s.rx_bad_id,
    );
    hostile_rx(
        Fault::RxSizeOverPage,
        |v| matches!(v, Violation::RxBadSize { .. }),
        |s| s.rx_bad_size,
    );
    hostile_rx(
        Fault::RxOffsetPastPage,
        |v| matches!(v, Violation::RxBadSize { .. }),
        |s| s.rx_bad_size,
    );
    hostile_rx(
        Fault::RxBogusFlags,
        |v| matches!(v, Violation::RxBadFlags(_)),
        |s| s.rx_bad_flags,
    );
    hostile_rx(
        Fault::RxLongChain(MAX_RX_SLOTS as u32 + 1),
        |v| v == Violation::RxTooManySlots,
        |s| s.rx_too_long,
    );
}

#[test]
fn an_rx_error_status_drops_the_frame_only() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let posted = nf.rx_posted();
    nb.fault(Fault::RxErrorStatus);
    nb.inject(&frame(MAC0, PEER_MAC, 300, 2));
    g.run();
    assert_eq!(nf.recv(), None);
    assert_eq!(nf.stats().rx_bad_status, 1);
    assert_eq!(nf.rx_posted(), posted, "buffers reposted");
    assert_eq!(nf.broken(), None);
    for i in 0..3 {
        let good = frame(MAC0, PEER_MAC, 100 + i, 10 + i as u8);
        nb.inject(&good);
        g.run();
        assert_eq!(nf.recv(), Some(good), "works afterwards");
    }
}

#[test]
fn an_rx_frame_over_the_mtu_breaks_the_device() {
    for (mtu, sg) in [(None, true), (Some("9000"), true), (Some("9000"), false)] {
        let g = guest();
        let mut cfg = VifConfig::new(0);
        cfg.mtu = mtu.map(String::from);
        cfg.feature_sg = sg;
        let nb = g.add_vif(cfg);
        let mut nf = g.connect(0).unwrap();
        let max = nf.max_frame_len();
        // The largest frame arrives; one byte more breaks the device.
        let f = frame(MAC0, PEER_MAC, max, 1);
        nb.inject(&f);
        g.run();
        assert_eq!(nf.recv(), Some(f), "{mtu:?} {sg}");
        if !sg {
            // Without scatter-gather the simulated netback itself refuses a second page.
            assert_eq!(max, 4096);
            continue;
        }
        nb.inject(&frame(MAC0, PEER_MAC, max + 1, 2));
        g.run();
        assert_eq!(nf.recv(), None);
        assert_eq!(nf.broken(), Some(Violation::RxOversized(max)), "{mtu:?}");
        assert_eq!(nf.stats().rx_too_long, 1);
        assert_broken(&g, &nb, &mut nf, Violation::RxOversized(max));
    }
}

#[test]
fn a_chain_within_bounds_is_one_frame_and_extra_info_is_skipped() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    // A chain of MAX_RX_SLOTS slots: the frame, then single bytes.
    let f = frame(MAC0, PEER_MAC, 64, 5);
    nb.fault(Fault::RxLongChain(MAX_RX_SLOTS as u32));
    nb.inject(&f);
    g.run();
    let mut expect = f.clone();
    expect.extend(std::iter::repeat_n(f[0], MAX_RX_SLOTS - 1));
    assert_eq!(nf.recv(), Some(expect));
    // Extra-info slots are skipped.
    let f = frame(MAC0, PEER_MAC, 1514, 6);
    nb.fault(Fault::RxExtraInfo);
    nb.inject(&f);
    g.run();
    assert_eq!(nf.recv(), Some(f));
    assert_eq!(nf.stats().rx_extra_info, 2);
    let f = frame(MAC0, PEER_MAC, 90, 7);
    nb.inject(&f);
    g.run();
    assert_eq!(nf.recv(), Some(f));
    assert_eq!(nf.stats().rx_too_long, 0);
}

#[test]
fn an_endless_chain_breaks_the_device() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    nb.fault(Fault::RxEndlessChain);
    // Short frames: the chain runs past MAX_RX_SLOTS before it exceeds the MTU.
    for i in 0..50 {
        nb.inject(&frame(MAC0, PEER_MAC, 60, i as u8));
        g.run();
        assert_eq!(nf.recv(), None);
    }
    assert_eq!(nf.stats().rx_too_long, 1);
    nb.clear_faults();
    assert_broken(&g, &nb, &mut nf, Violation::RxTooManySlots);
}

#[test]
fn a_producer_overrun_kills_rx_but_not_the_driver() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    nb.fault(Fault::RxProducerOverrun);
    g.run();
    assert_eq!(nf.recv(), None);
    assert!(nf.rx_error().is_some());
    assert_eq!(nf.stats().ring_errors, 1);
    nb.inject(&frame(MAC0, PEER_MAC, 60, 1));
    g.run();
    assert_eq!(nf.recv(), None);
    assert_eq!(nf.stats().ring_errors, 1, "counted once");
    // The tx ring is separate and still works.
    let f = frame(PEER_MAC, MAC0, 60, 2);
    nf.send(&f).unwrap();
    g.run();
    assert_eq!(nb.pop_sent(), Some(f));
    assert!(nf.tx_error().is_none());
    let _ = nf.has_work();
}

#[test]
fn a_tx_producer_overrun_kills_tx_but_not_rx() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    nb.fault(Fault::TxProducerOverrun);
    g.run();
    assert!(!nf.can_send(60));
    assert!(nf.tx_error().is_some());
    assert!(matches!(
        nf.send(&frame(PEER_MAC, MAC0, 60, 0)),
        Err(NetfrontError::Ring(_))
    ));
    assert_eq!(nf.stats().ring_errors, 1);
    let f = frame(MAC0, PEER_MAC, 60, 1);
    nb.inject(&f);
    g.run();
    assert_eq!(nf.recv(), Some(f));
    assert!(nf.rx_error().is_none());
}

#[test]
fn a_full_rx_queue_leaves_responses_on_the_ring() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let cfg = NetfrontConfig {
        rx_queue: 3,
        rx_buffers: 8,
        ..NetfrontConfig::default()
    };
    let mut nf = g.connect_with(0, cfg).unwrap();
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| frame(MAC0, PEER_MAC, 60 + i, i as u8))
        .collect();
    for f in &frames {
        nb.inject(f);
    }
    g.run();
    // Only as many as the guest posted buffers for were delivered so far.
    assert_eq!(nb.pending_to_guest(), 12);
    // The queue takes three; their pages are reposted, the other five responses wait.
    nf.poll();
    g.run();
    assert_eq!(nb.pending_to_guest(), 9);
    let mut got = Vec::new();
    for _ in 0..100 {
        g.run();
        while let Some(f) = nf.recv() {
            got.push(f);
        }
        if got.len() == frames.len() {
            break;
        }
    }
    assert_eq!(got, frames);
    assert_eq!(nf.rx_posted(), 8);
}

#[test]
fn a_disconnected_device_refuses_to_send() {
    let g = guest();
    g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    assert!(nf.is_connected());
    block_on(g.ev, nf.disconnect(g.xs)).unwrap();
    assert!(!nf.is_connected());
    assert!(!nf.can_send(60));
    assert_eq!(
        nf.send(&frame(PEER_MAC, MAC0, 60, 0)),
        Err(NetfrontError::NotConnected)
    );
}

/// Sends one `len`-byte frame, lets the backend take it (it must arrive intact) and reclaims.
fn send_one(g: &common::Guest, nb: &Netback, nf: &mut Netfront, len: usize, seed: u8) {
    let f = frame(PEER_MAC, MAC0, len, seed);
    nf.send(&f).unwrap();
    g.run();
    assert_eq!(nb.pop_sent(), Some(f));
    nf.poll();
}

#[test]
fn a_tx_error_status_is_counted_and_tx_keeps_working() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let send = |nf: &mut Netfront, seed: u8| send_one(&g, &nb, nf, 100, seed);
    send(&mut nf, 0);
    nb.fault(Fault::TxErrorStatus);
    send(&mut nf, 1);
    assert_eq!(nf.stats().tx_errors, 1);
    assert_eq!(nf.tx_in_flight(), 0);
    for i in 0..200u8 {
        send(&mut nf, i);
    }
    assert_eq!(nf.tx_in_flight(), 0);
    assert_eq!(nf.broken(), None);
}

/// Sends frames until `fault` hits one: the device breaks with `want` and no tx page is lost
/// (the `lent` ones not answered before the violation stay lent, since the backend may still
/// read them; the rest are back in the pool).
fn hostile_tx(fault: Fault, want: Violation, lent: usize) {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    send_one(&g, &nb, &mut nf, 100, 0);
    nb.fault(fault);
    // Two frames in one batch (ids 0 and 1), so a duplicate has a previous response to copy.
    nf.set_tx_batching(true);
    for seed in [1, 2] {
        nf.send(&frame(PEER_MAC, MAC0, 100, seed)).unwrap();
    }
    nf.flush_tx();
    g.run();
    assert_eq!(nb.take_sent().len(), 2);
    nf.poll();
    assert_eq!(nf.broken(), Some(want), "{fault:?}: {:?}", nf.stats());
    assert_eq!(nf.stats().tx_bad_id, 1, "{fault:?}");
    assert_eq!(nf.tx_in_flight(), lent, "{fault:?}");
    assert_broken(&g, &nb, &mut nf, want);
}

#[test]
fn hostile_tx_ids_break_the_device() {
    // The first response lies: nothing after it is read.
    hostile_tx(Fault::TxIdOutOfRange, Violation::TxBadId(0xfff0), 2);
    // The second response repeats the first's id: that request was answered already.
    hostile_tx(Fault::TxDuplicateId, Violation::TxBadId(0), 1);
}

#[test]
fn transmit_is_not_lost_page_by_page_to_bad_ids() {
    // Before: each bad id lost a tx page silently, until transmit was dead (Busy forever).
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let cfg = NetfrontConfig {
        tx_buffers: 4,
        ..NetfrontConfig::default()
    };
    let mut nf = g.connect_with(0, cfg).unwrap();
    let mut errors = Vec::new();
    for i in 0..8u8 {
        nb.fault(Fault::TxIdOutOfRange);
        match nf.send(&frame(PEER_MAC, MAC0, 100, i)) {
            Ok(()) => {}
            Err(e) => errors.push(e),
        }
        g.run();
        nf.poll();
    }
    let want = NetfrontError::Broken(Violation::TxBadId(0xfff0));
    assert!(
        !errors.is_empty() && errors.iter().all(|e| *e == want),
        "{errors:?}"
    );
    assert!(!errors.contains(&NetfrontError::Busy));
    assert_eq!(nf.stats().broken, 1);
    assert_eq!(
        nf.stats().tx_bad_id,
        1,
        "nothing is read after the violation"
    );
}

#[test]
fn tso_only_with_the_backend_key_scatter_gather_and_room_for_a_super_frame() {
    let cases = [
        // (backend's feature-gso-tcpv4, feature-sg, tx_buffers, gso config, TSO on?)
        ("1", true, 64, true, true),
        ("0", true, 64, true, false),
        ("true", true, 64, true, false),
        ("1", false, 64, true, false),
        ("1", true, 15, true, false),
        ("1", true, 16, true, true),
        ("1", true, 64, false, false),
    ];
    for (key, sg, tx_buffers, gso, on) in cases {
        let g = guest();
        let mut cfg = VifConfig::new(0);
        cfg.feature_sg = sg;
        cfg.extra_nodes = vec![("feature-gso-tcpv4".into(), key.into())];
        let _nb = g.add_vif(cfg);
        let config = NetfrontConfig {
            tx_buffers,
            gso,
            ..NetfrontConfig::default()
        };
        let nf = g.connect_with(0, config).unwrap();
        assert_eq!(
            nf.tso(),
            on,
            "{key} sg={sg} tx_buffers={tx_buffers} gso={gso}"
        );
        assert_eq!(nf.stats().bad_features, u64::from(key == "true"));
    }
}

#[test]
fn feature_values_other_than_1_are_off_and_counted() {
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.extra_nodes = vec![("feature-sg".into(), "garbage".into())];
    let nb = g.add_vif(cfg);
    let nf = g.connect(0).unwrap();
    assert!(!nf.scatter_gather(), "garbage is off");
    assert_eq!(nf.stats().bad_features, 1);
    let keys = nb.frontend_keys();
    assert!(
        keys.contains(&("feature-sg".into(), "0".into())),
        "{keys:?}"
    );
    // feature-rx-copy holding "2" is not rx-copy.
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.extra_nodes = vec![("feature-rx-copy".into(), "2".into())];
    let _nb = g.add_vif(cfg);
    assert_eq!(g.connect(0).unwrap_err(), NetfrontError::NoRxCopy);
}

#[test]
fn a_backend_that_stops_answering_fills_tx_without_harm() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let cfg = NetfrontConfig {
        tx_buffers: 16,
        ..NetfrontConfig::default()
    };
    let mut nf = g.connect_with(0, cfg).unwrap();
    nb.set_stopped(true);
    let mut sent = Vec::new();
    loop {
        let f = frame(PEER_MAC, MAC0, 500, sent.len() as u8);
        g.run();
        match nf.send(&f) {
            Ok(()) => sent.push(f),
            Err(NetfrontError::Busy) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent.len() <= 16);
    }
    assert_eq!(sent.len(), 16);
    assert!(!nf.can_send(60));
    nb.inject(&frame(MAC0, PEER_MAC, 60, 0));
    g.run();
    assert_eq!(nf.recv(), None);
    // The backend comes back: everything queued moves.
    nb.set_stopped(false);
    g.run();
    assert_eq!(nb.take_sent(), sent);
    assert!(nf.can_send(60));
    assert_eq!(nf.recv(), Some(frame(MAC0, PEER_MAC, 60, 0)));
}

#[test]
fn grant_pool_pages_are_reused() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let free = g.grants().free_entries();
    for i in 0..1000usize {
        let f = frame(PEER_MAC, MAC0, 60 + i % 1400, i as u8);
        nf.send(&f).unwrap();
        let r = frame(MAC0, PEER_MAC, 60 + (i * 7) % 1400, i as u8);
        nb.inject(&r);
        g.run();
        assert_eq!(nb.pop_sent(), Some(f));
        assert_eq!(nf.recv(), Some(r));
        assert_eq!(g.grants().free_entries(), free, "no grant per packet");
    }
    let s = nb.stats();
    let cfg = nf.config();
    assert!(s.tx_grefs.len() <= cfg.tx_buffers, "{}", s.tx_grefs.len());
    assert!(s.rx_grefs.len() <= cfg.rx_buffers, "{}", s.rx_grefs.len());
    // Nothing but the two rings stays mapped.
    assert_eq!(g.sim.with_host(|h| h.grants.mapped()), 2);
}

#[test]
fn several_vifs_are_independent() {
    let g = guest();
    let nb0 = g.add_vif(VifConfig::new(0));
    let nb1 = g.add_vif(VifConfig::new(1));
    let mut nf0 = g.connect(0).unwrap();
    let mut nf1 = g.connect(1).unwrap();
    let mac1 = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x02];
    assert_eq!(nf0.mac(), MAC0);
    assert_eq!(nf1.mac(), mac1);
    assert_ne!(nf0.port(), nf1.port());
    let a = frame(PEER_MAC, MAC0, 80, 1);
    let b = frame(PEER_MAC, mac1, 90, 2);
    nf0.send(&a).unwrap();
    nf1.send(&b).unwrap();
    nb1.inject(&frame(mac1, PEER_MAC, 70, 3));
    g.run();
    assert_eq!(nb0.take_sent(), vec![a]);
    assert_eq!(nb1.take_sent(), vec![b]);
    assert_eq!(nf0.recv(), None);
    assert_eq!(nf1.recv(), Some(frame(mac1, PEER_MAC, 70, 3)));
}

#[test]
fn wait_sleeps_until_a_frame_comes() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let f = frame(MAC0, PEER_MAC, 128, 9);
    block_on(g.ev, async {
        // Nothing to do: wait must block, so the frame is injected from "dom0" once the
        // guest sleeps. The simulator runs backends while the guest blocks; inject before
        // waiting but after arming through has_work.
        assert!(!nf.has_work());
        nb.inject(&f);
        nf.wait().await;
    });
    assert_eq!(nf.recv(), Some(f));
}

#[test]
fn tx_completions_are_work_once() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    assert!(!nf.has_work());
    nf.send(&frame(PEER_MAC, MAC0, 60, 1)).unwrap();
    g.run();
    assert_eq!(nb.take_sent().len(), 1);
    assert!(nf.has_work(), "the page came back");
    assert_eq!(nf.tx_in_flight(), 0);
    assert!(!nf.has_work(), "and that was all");
    // wait() returns for a tx completion too (a sender waiting for room retries).
    nf.send(&frame(PEER_MAC, MAC0, 60, 2)).unwrap();
    block_on(g.ev, nf.wait());
    assert_eq!(nf.tx_in_flight(), 0);
    assert_eq!(nb.take_sent().len(), 1);
}

#[test]
fn poll_event_registers_and_wakes() {
    use std::task::{Context, Poll, Waker};
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(nf.poll_event(&mut cx), Poll::Pending);
    nb.inject(&frame(MAC0, PEER_MAC, 60, 1));
    g.run();
    assert_eq!(nf.poll_event(&mut cx), Poll::Ready(()));
    assert!(nf.recv().is_some());
    assert_eq!(nf.poll_event(&mut cx), Poll::Pending);
}

#[test]
fn bad_configurations_are_refused() {
    // No feature-rx-copy.
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.feature_rx_copy = false;
    g.add_vif(cfg);
    assert!(matches!(g.connect(0), Err(NetfrontError::NoRxCopy)));
    // A bad MAC.
    for mac in ["00:16:3e:00:00", "01:00:5e:00:00:01", "zz:16:3e:00:00:01"] {
        let g = guest();
        let mut cfg = VifConfig::new(0);
        cfg.mac = mac.into();
        g.add_vif(cfg);
        assert_eq!(g.connect(0).err(), Some(NetfrontError::BadMac(mac.into())));
    }
    // A bad MTU.
    for mtu in ["0", "banana", "70000", "-1"] {
        let g = guest();
        let mut cfg = VifConfig::new(0);
        cfg.mtu = Some(mtu.into());
        g.add_vif(cfg);
        assert_eq!(g.connect(0).err(), Some(NetfrontError::BadMtu(mtu.into())));
    }
    // No such device.
    let g = guest();
    assert!(matches!(
        g.connect(3),
        Err(NetfrontError::Xenbus(XenbusError::Missing(_)))
    ));
    // Bad buffer sizes.
    let g = guest();
    g.add_vif(VifConfig::new(0));
    let cfg = NetfrontConfig {
        rx_buffers: 0,
        ..NetfrontConfig::default()
    };
    assert_eq!(
        g.connect_with(0, cfg).err(),
        Some(NetfrontError::BadConfig("rx_buffers"))
    );
    // A connect the backend refuses (after rings and pools were granted) gives its grants
    // and its event channel back.
    let free = g.grants().free_entries();
    let ports = g.ev.ports();
    let nb = g.add_vif(VifConfig::new(1));
    nb.fault(Fault::RefuseConnect);
    assert!(matches!(
        g.connect(1),
        Err(NetfrontError::Xenbus(XenbusError::BackendClosed(_)))
    ));
    assert_eq!(g.grants().free_entries(), free);
    assert_eq!(g.ev.ports(), ports);
}

#[test]
fn disconnect_closes_both_ends_and_frees_grants() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let free = g.grants().free_entries();
    let mut nf = g.connect(0).unwrap();
    assert!(g.grants().free_entries() < free);
    block_on(g.ev, nf.disconnect(g.xs)).unwrap();
    assert!(nb.is_closed());
    assert_eq!(
        g.xs_read("/local/domain/1/device/vif/0/state").as_deref(),
        Some("6")
    );
    drop(nf);
    assert_eq!(g.grants().free_entries(), free);
    assert_eq!(g.sim.with_host(|h| h.grants.mapped()), 0);
}

#[test]
fn a_tx_page_answered_while_still_mapped_is_not_reused_until_unmapped() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let send = |nf: &mut Netfront, seed: u8| send_one(&g, &nb, nf, 300, seed);
    send(&mut nf, 0);
    // The next frame is answered while the backend keeps its page mapped for 3 more frames.
    nb.fault(Fault::TxRespondWhileMapped(3));
    send(&mut nf, 1);
    assert_eq!(nf.stats().tx_still_mapped, 1);
    // With a last-in-first-out pool the answered page would be the very next one written.
    for i in 2..40u8 {
        send(&mut nf, i);
    }
    assert_eq!(
        nb.stats().tx_reused_while_mapped,
        0,
        "a page was rewritten while the backend still mapped it"
    );
    assert_eq!(nf.stats().tx_still_mapped, 1);
    assert_eq!(nf.stats().tx_errors + nf.stats().tx_bad_id, 0);
    assert_eq!(nf.tx_in_flight(), 0);
}

#[test]
fn a_ring_error_first_seen_by_has_work_is_counted_once() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    nb.fault(Fault::RxProducerOverrun);
    g.run();
    // The executor asks has_work() before anyone receives: the error must be counted there.
    let _ = nf.has_work();
    assert!(nf.rx_error().is_some());
    assert_eq!(nf.stats().ring_errors, 1);
    assert_eq!(nf.recv(), None);
    let _ = nf.has_work();
    assert_eq!(nf.stats().ring_errors, 1, "counted once");
}

#[test]
fn batched_tx_frames_reach_the_backend_together_at_flush() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    nf.set_tx_batching(true);
    let frames: Vec<Vec<u8>> = (0..5u8).map(|i| frame(PEER_MAC, MAC0, 200, i)).collect();
    for f in &frames {
        nf.send(f).unwrap();
    }
    g.run();
    assert_eq!(nb.pop_sent(), None, "nothing is published before the flush");
    let before = nb.stats().tx_frames;
    nf.flush_tx();
    g.run();
    assert_eq!(nb.stats().tx_frames - before, 5);
    assert_eq!(nb.take_sent(), frames);
    // has_work() flushes too, so a driver about to sleep never leaves frames behind.
    nf.send(&frames[0]).unwrap();
    let _ = nf.has_work();
    g.run();
    assert_eq!(nb.pop_sent(), Some(frames[0].clone()));
    // Off again: each frame goes at once.
    nf.set_tx_batching(false);
    nf.send(&frames[1]).unwrap();
    g.run();
    assert_eq!(nb.pop_sent(), Some(frames[1].clone()));
}
