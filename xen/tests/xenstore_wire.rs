//! Property tests of the xenstore wire format, the client core and the simulated daemon:
//! framing survives any split of the byte stream, and arbitrary bytes never cause a panic.

use proptest::prelude::*;
use xenia_sim::xenstored::Xenstored;
use xenia_xen::xenstore::protocol::ClientCore;
use xenia_xen::xenstore::wire::{self, FrameReader, Message, MsgType, Packet, Request};

fn arb_message() -> impl Strategy<Value = Message> {
    (
        prop::sample::select(MsgType::ALL.to_vec()),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(t, req, tx, payload)| Message::new(t, req, tx, payload).unwrap())
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z0-9_@-]{1,8}(/[a-zA-Z0-9_-]{1,8}){0,4}",
        "[a-z0-9_-]{1,8}(/[a-zA-Z0-9_-]{1,8}){0,3}",
        Just("/".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn framing_reassembles_any_split(
        msgs in prop::collection::vec(arb_message(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode_into(&mut stream);
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort();
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        for w in points.windows(2) {
            r.push_all(&stream[w[0]..w[1]], |m| got.push(m)).unwrap();
        }
        prop_assert_eq!(got, msgs);
        prop_assert!(!r.is_mid_message());
    }

    #[test]
    fn packet_view_matches_frame_reader(m in arb_message()) {
        let bytes = m.to_bytes();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(p.msg_type().unwrap(), m.msg_type().unwrap());
        prop_assert_eq!(p.req_id(), m.header.req_id);
        prop_assert_eq!(p.tx_id(), m.header.tx_id);
        prop_assert_eq!(p.payload(), &m.payload[..]);
        // Any strict prefix is truncated.
        for cut in [0, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(Packet::new_checked(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(p) = Packet::new_checked(&bytes[..]) {
            let _ = p.msg_type();
            prop_assert!(p.payload().len() <= wire::XENSTORE_PAYLOAD_MAX);
            prop_assert!(p.total_len() <= bytes.len());
        }
        let mut r = FrameReader::new();
        let _ = r.push_all(&bytes, |m| {
            assert!(m.payload.len() <= wire::XENSTORE_PAYLOAD_MAX);
        });
        let _ = wire::parse_directory(&bytes);
        let _ = wire::parse_perms(&bytes);
        let _ = wire::parse_error(&bytes);
        let _ = wire::parse_watch_event(&bytes);
        let _ = wire::parse_transaction_id(&bytes);
        let _ = wire::parse_ok(&bytes);
        let _ = wire::parse_bool(&bytes);
        for t in MsgType::ALL {
            let _ = Request::parse(t, &bytes);
        }
    }

    #[test]
    fn arbitrary_replies_never_panic_the_client_core(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..10),
        valid in prop::collection::vec(arb_message(), 0..4),
    ) {
        let mut c = ClientCore::new();
        for i in 0..4u32 {
            let _ = c.start_request(i, &Request::Read("/a"));
        }
        let _ = c.start_watch("/w", "tok");
        let _ = c.start_request(0, &Request::TransactionStart);
        for m in &valid {
            let _ = c.receive(&m.to_bytes());
        }
        for ch in &chunks {
            let _ = c.receive(ch);
        }
        for id in 0..8u32 {
            let _ = c.poll_reply(id, None);
        }
        let _ = c.poll_watch_event("tok", None);
        prop_assert!(c.outstanding() <= 6);
    }

    #[test]
    fn request_encoding_round_trips(
        path in arb_path(),
        value in prop::collection::vec(any::<u8>(), 0..200),
        token in "[ -~]{0,20}",
        req_id in any::<u32>(),
        tx_id in any::<u32>(),
    ) {
        let reqs = [
            Request::Read(&path),
            Request::Write(&path, &value),
            Request::Directory(&path),
            Request::Watch(&path, &token),
        ];
        for r in reqs {
            let mut out = Vec::new();
            r.encode(req_id, tx_id, &mut out).unwrap();
            let p = Packet::new_checked(&out[..]).unwrap();
            prop_assert_eq!(p.total_len(), out.len());
            prop_assert_eq!(p.req_id(), req_id);
            prop_assert_eq!(p.tx_id(), tx_id);
            let parsed = Request::parse(p.msg_type().unwrap(), p.payload()).unwrap();
            prop_assert_eq!(parsed, r);
        }
    }

    #[test]
    fn the_daemon_survives_arbitrary_bytes(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..10),
        valid in prop::collection::vec(arb_message(), 0..6),
    ) {
        let mut x = Xenstored::new();
        x.add_domain(1);
        let c = x.connect(1);
        for m in &valid {
            if x.feed(c, &m.to_bytes()).is_err() {
                break;
            }
        }
        for ch in &chunks {
            if x.feed(c, ch).is_err() {
                break;
            }
        }
        // Whatever came out is well framed.
        let out = x.take_output(c);
        let mut r = FrameReader::new();
        let framed = r.push_all(&out, |_| {});
        prop_assert!(framed.is_ok());
        prop_assert!(!r.is_mid_message());
    }
}
