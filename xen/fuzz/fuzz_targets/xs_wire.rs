//! Arbitrary bytes from "xenstored": the checked packet view, the payload parsers, the framing
//! reader, and the client core's reply handling (with requests of every reply shape
//! outstanding, as the async client decodes them). Nothing may panic, and what comes out
//! must respect the protocol's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenia_xen::xenstore::protocol::ClientCore;
use xenia_xen::xenstore::wire::{
    self, FrameReader, MsgType, Packet, Perm, Access, Request, XENSTORE_PAYLOAD_MAX,
};

fn parse_all(b: &[u8]) {
    let _ = wire::parse_directory(b);
    let _ = wire::parse_perms(b);
    let _ = wire::parse_error(b);
    let _ = wire::parse_watch_event(b);
    let _ = wire::parse_transaction_id(b);
    let _ = wire::parse_single_str(b);
    let _ = wire::parse_ok(b);
    let _ = wire::parse_bool(b);
    for t in MsgType::ALL {
        let _ = Request::parse(t, b);
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: chunk size for feeding the stream (1..=256).
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (*c as usize + 1, rest),
        None => return,
    };

    if let Ok(p) = Packet::new_checked(data) {
        let _ = p.msg_type();
        assert!(p.payload().len() <= XENSTORE_PAYLOAD_MAX);
        assert!(p.total_len() <= data.len());
        parse_all(p.payload());
    }
    parse_all(data);

    let mut reader = FrameReader::new();
    for piece in data.chunks(chunk) {
        if reader
            .push_all(piece, |m| {
                assert!(m.payload.len() <= XENSTORE_PAYLOAD_MAX);
                assert_eq!(m.header.len as usize, m.payload.len());
                parse_all(&m.payload);
            })
            .is_err()
        {
            break;
        }
    }

    // The client core with one request of each reply shape outstanding, ids 0.. in order.
    let mut core = ClientCore::new();
    let perms = [Perm::new(1, Access::Read)];
    let reqs = [
        (0, Request::Read("/a")),
        (3, Request::Write("/a", b"v")),
        (0, Request::Directory("/")),
        (0, Request::GetPerms("a")),
        (0, Request::SetPerms("a", perms.to_vec())),
        (0, Request::TransactionStart),
        (7, Request::TransactionEnd(true)),
        (0, Request::GetDomainPath(1)),
        (0, Request::IsDomainIntroduced(1)),
        (0, Request::Rm("/a")),
    ];
    let mut ids = Vec::new();
    for (tx, r) in &reqs {
        let id = core.start_request(*tx, r).expect("valid request");
        ids.push((id, r.msg_type()));
    }
    let watch_id = core.start_watch("/w", "tok").expect("valid watch");
    ids.push((watch_id, MsgType::Watch));
    let before = core.outstanding();
    for piece in data.chunks(chunk) {
        let _ = core.receive(piece);
    }
    assert!(core.outstanding() <= before);
    for (id, t) in ids {
        if let Some(Ok(reply)) = core.poll_reply(id, None) {
            assert_eq!(reply.msg_type, t);
            assert!(reply.payload.len() <= XENSTORE_PAYLOAD_MAX);
            // Decode as the async client does.
            match t {
                MsgType::Directory => drop(wire::parse_directory(&reply.payload)),
                MsgType::GetPerms => drop(wire::parse_perms(&reply.payload)),
                MsgType::TransactionStart => drop(wire::parse_transaction_id(&reply.payload)),
                MsgType::GetDomainPath => drop(wire::parse_single_str(&reply.payload)),
                MsgType::IsDomainIntroduced => drop(wire::parse_bool(&reply.payload)),
                MsgType::Read => {}
                // Acknowledgements were checked by the core already.
                _ => assert_eq!(reply.payload, b"OK\0"),
            }
        }
    }
    while let core::task::Poll::Ready(Some(Ok(ev))) = core.poll_watch_event("tok", None) {
        assert_eq!(ev.token, "tok");
    }
});
