//! Tests of the wire format.

use super::*;
use crate::abi::XSD_ERRORS;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

fn msg(t: u32, req: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Header {
        msg_type: t,
        req_id: req,
        tx_id: tx,
        len: payload.len() as u32,
    }
    .to_bytes()
    .to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn header_layout_is_little_endian() {
    let b = msg(2, 0x01020304, 0xa0b0c0d0, b"x\0");
    assert_eq!(&b[0..4], &[2, 0, 0, 0]);
    assert_eq!(&b[4..8], &[4, 3, 2, 1]);
    assert_eq!(&b[8..12], &[0xd0, 0xc0, 0xb0, 0xa0]);
    assert_eq!(&b[12..16], &[2, 0, 0, 0]);
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.msg_type(), Ok(MsgType::Read));
    assert_eq!(p.req_id(), 0x01020304);
    assert_eq!(p.tx_id(), 0xa0b0c0d0);
    assert_eq!(p.payload(), b"x\0");
    assert_eq!(p.total_len(), 18);
}

#[test]
fn type_numbers_match_header() {
    assert_eq!(parse_msg_type(0), Ok(MsgType::Control));
    assert_eq!(parse_msg_type(15), Ok(MsgType::WatchEvent));
    assert_eq!(parse_msg_type(16), Ok(MsgType::Error));
    assert_eq!(parse_msg_type(19), Ok(MsgType::SetTarget));
    assert_eq!(parse_msg_type(20), Err(XenstoreWireError::UnknownType(20)));
    assert_eq!(parse_msg_type(21), Ok(MsgType::ResetWatches));
    assert_eq!(parse_msg_type(22), Ok(MsgType::DirectoryPart));
    assert_eq!(parse_msg_type(23), Err(XenstoreWireError::UnknownType(23)));
    assert_eq!(
        parse_msg_type(0xffff),
        Err(XenstoreWireError::UnknownType(0xffff))
    );
    for t in MsgType::ALL {
        assert_eq!(parse_msg_type(t as u32), Ok(t));
    }
}

#[test]
fn checked_packet_rejects_bad_lengths() {
    assert_eq!(
        Packet::new_checked(&[0u8; 15][..]).unwrap_err(),
        XenstoreWireError::Truncated
    );
    let b = msg(2, 1, 0, b"abc");
    assert_eq!(
        Packet::new_checked(&b[..b.len() - 1]).unwrap_err(),
        XenstoreWireError::Truncated
    );
    let mut big = msg(2, 1, 0, b"");
    big[12..16].copy_from_slice(&4097u32.to_le_bytes());
    assert_eq!(
        Packet::new_checked(&big[..]).unwrap_err(),
        XenstoreWireError::PayloadTooLong(4097)
    );
    let mut huge = msg(2, 1, 0, b"");
    huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Packet::new_checked(&huge[..]).unwrap_err(),
        XenstoreWireError::PayloadTooLong(u32::MAX)
    );
    let exact = msg(2, 1, 0, &[b'a'; 4096]);
    assert!(Packet::new_checked(&exact[..]).is_ok());
    let unknown = msg(99, 1, 0, b"");
    let p = Packet::new_checked(&unknown[..]).unwrap();
    assert_eq!(p.msg_type(), Err(XenstoreWireError::UnknownType(99)));
}

#[test]
fn request_encodings() {
    let enc = |r: Request<'_>| {
        let mut v = Vec::new();
        r.encode_payload(&mut v).unwrap();
        v
    };
    assert_eq!(enc(Request::Read("/a/b")), b"/a/b\0");
    assert_eq!(enc(Request::Write("a", b"v\0x")), b"a\0v\0x");
    assert_eq!(enc(Request::Watch("/a", "tok")), b"/a\0tok\0");
    assert_eq!(enc(Request::TransactionStart), b"\0");
    assert_eq!(enc(Request::TransactionEnd(true)), b"T\0");
    assert_eq!(enc(Request::TransactionEnd(false)), b"F\0");
    assert_eq!(enc(Request::GetDomainPath(7)), b"7\0");
    assert_eq!(enc(Request::Introduce(3, 1234, 5)), b"3\x001234\x005\0");
    assert_eq!(
        enc(Request::SetPerms(
            "/x",
            vec![Perm::new(3, Access::None), Perm::new(0, Access::Both)]
        )),
        b"/x\0n3\0b0\0"
    );
    let mut whole = Vec::new();
    Request::Read("/a").encode(9, 4, &mut whole).unwrap();
    assert_eq!(whole, msg(2, 9, 4, b"/a\0"));
}

#[test]
fn request_limits_are_enforced_before_sending() {
    let mut out = vec![1, 2, 3];
    let long = "a".repeat(XENSTORE_PAYLOAD_MAX);
    let e = Request::Write("/x", long.as_bytes()).encode(1, 0, &mut out);
    assert_eq!(e, Err(XenstoreWireError::RequestTooLong(4096 + 3)));
    assert_eq!(out, vec![1, 2, 3], "nothing appended on error");
    let path = alloc::format!("/{}", "a".repeat(XENSTORE_ABS_PATH_MAX));
    assert_eq!(
        Request::Read(&path).encode(1, 0, &mut out),
        Err(XenstoreWireError::BadPath)
    );
    let rel = "a".repeat(XENSTORE_REL_PATH_MAX + 1);
    assert_eq!(
        Request::Read(&rel).encode(1, 0, &mut out),
        Err(XenstoreWireError::BadPath)
    );
    let ok_rel = "a".repeat(XENSTORE_REL_PATH_MAX);
    assert!(Request::Read(&ok_rel).encode(1, 0, &mut Vec::new()).is_ok());
    for bad in ["", "a//b", "/a/", "a b", "/a\0b", "/é"] {
        assert_eq!(
            validate_path(bad),
            Err(XenstoreWireError::BadPath),
            "{bad:?}"
        );
    }
    assert_eq!(
        Request::Watch("/a", "t\0k").encode(1, 0, &mut out),
        Err(XenstoreWireError::EmbeddedNul)
    );
    assert!(validate_path("/").is_ok());
    assert!(validate_watch_path("@releaseDomain").is_ok());
    assert!(validate_watch_path("@").is_err());
    assert!(validate_path("@x").is_ok());
    assert!(Request::SetPerms("/x", vec![]).validate().is_err());
}

#[test]
fn request_parse_roundtrip() {
    let reqs = [
        Request::Read("/a"),
        Request::Write("x/y", b"\0\x01v"),
        Request::Mkdir("/m"),
        Request::Rm("/r"),
        Request::Directory("/"),
        Request::GetPerms("/p"),
        Request::SetPerms("/p", vec![Perm::new(1, Access::Read)]),
        Request::Watch("@introduceDomain", "t"),
        Request::Unwatch("/w", ""),
        Request::TransactionStart,
        Request::TransactionEnd(false),
        Request::GetDomainPath(65535),
        Request::Introduce(1, u64::MAX, 9),
        Request::Release(2),
        Request::IsDomainIntroduced(3),
        Request::Resume(4),
        Request::SetTarget(5, 6),
        Request::ResetWatches,
    ];
    for r in reqs {
        let mut v = Vec::new();
        r.encode_payload(&mut v).unwrap();
        assert_eq!(Request::parse(r.msg_type(), &v), Ok(r.clone()));
    }
}

#[test]
fn request_parse_rejects_malformed() {
    assert_eq!(
        Request::parse(MsgType::Read, b"/a"),
        Err(XenstoreWireError::MissingNul)
    );
    assert_eq!(
        Request::parse(MsgType::Read, b"/a\0b\0"),
        Err(XenstoreWireError::TrailingData)
    );
    assert_eq!(
        Request::parse(MsgType::Read, b"\xff\0"),
        Err(XenstoreWireError::NotUtf8)
    );
    assert_eq!(
        Request::parse(MsgType::Watch, b"/a\0tok"),
        Err(XenstoreWireError::MissingNul)
    );
    assert_eq!(
        Request::parse(MsgType::TransactionEnd, b"X\0"),
        Err(XenstoreWireError::Malformed)
    );
    assert_eq!(
        Request::parse(MsgType::GetDomainPath, b"65536\0"),
        Err(XenstoreWireError::BadNumber)
    );
    assert_eq!(
        Request::parse(MsgType::GetDomainPath, b"-1\0"),
        Err(XenstoreWireError::BadNumber)
    );
    assert_eq!(
        Request::parse(MsgType::SetPerms, b"/a\0x1\0"),
        Err(XenstoreWireError::BadPermission)
    );
    assert_eq!(
        Request::parse(MsgType::SetPerms, b"/a\0"),
        Err(XenstoreWireError::Empty)
    );
    assert!(Request::parse(MsgType::WatchEvent, b"").is_err());
}

#[test]
fn reply_parsers() {
    assert_eq!(parse_ok(b"OK\0"), Ok(()));
    assert_eq!(parse_ok(b"OK"), Err(XenstoreWireError::NotOk));
    assert_eq!(parse_ok(b"NO\0"), Err(XenstoreWireError::NotOk));
    assert_eq!(
        parse_directory(b"a\0bb\0c\0").unwrap(),
        vec!["a", "bb", "c"]
    );
    assert_eq!(parse_directory(b"").unwrap(), Vec::<String>::new());
    assert_eq!(parse_directory(b"a\0b"), Err(XenstoreWireError::MissingNul));
    assert_eq!(parse_directory(b"a\0\0"), Err(XenstoreWireError::Malformed));
    assert_eq!(parse_directory(b"a/b\0"), Err(XenstoreWireError::Malformed));
    assert_eq!(
        parse_directory(b"\xc3\x28\0"),
        Err(XenstoreWireError::NotUtf8)
    );
    assert_eq!(parse_transaction_id(b"42\0"), Ok(42));
    assert_eq!(
        parse_transaction_id(b"0\0"),
        Err(XenstoreWireError::BadNumber)
    );
    assert_eq!(
        parse_transaction_id(b"42"),
        Err(XenstoreWireError::MissingNul)
    );
    assert_eq!(
        parse_transaction_id(b"4x\0"),
        Err(XenstoreWireError::BadNumber)
    );
    assert_eq!(
        parse_transaction_id(b"99999999999\0"),
        Err(XenstoreWireError::BadNumber)
    );
    assert_eq!(
        parse_transaction_id(b"+1\0"),
        Err(XenstoreWireError::BadNumber)
    );
    assert_eq!(
        parse_perms(b"n3\0r0\0b65535\0w12\0").unwrap(),
        vec![
            Perm::new(3, Access::None),
            Perm::new(0, Access::Read),
            Perm::new(65535, Access::Both),
            Perm::new(12, Access::Write)
        ]
    );
    assert_eq!(parse_perms(b""), Err(XenstoreWireError::Empty));
    assert_eq!(parse_perms(b"n3"), Err(XenstoreWireError::MissingNul));
    assert_eq!(parse_perms(b"q3\0"), Err(XenstoreWireError::BadPermission));
    assert_eq!(parse_perms(b"r\0"), Err(XenstoreWireError::BadPermission));
    assert_eq!(
        parse_perms(b"r65536\0"),
        Err(XenstoreWireError::BadPermission)
    );
    assert_eq!(parse_bool(b"T\0"), Ok(true));
    assert_eq!(parse_bool(b"F\0"), Ok(false));
    assert!(parse_bool(b"T").is_err());
    assert_eq!(
        parse_watch_event(b"/a/b\0tok\0").unwrap(),
        WatchEvent {
            path: "/a/b".into(),
            token: "tok".into()
        }
    );
    assert_eq!(
        parse_watch_event(b"/a/b\0tok"),
        Err(XenstoreWireError::MissingNul)
    );
    assert_eq!(
        parse_watch_event(b"/a/b"),
        Err(XenstoreWireError::MissingNul)
    );
    assert_eq!(parse_watch_event(b"\0tok\0"), Err(XenstoreWireError::Empty));
    assert_eq!(
        parse_watch_event(b"/a\0t\0x\0"),
        Err(XenstoreWireError::TrailingData)
    );
    assert_eq!(
        parse_watch_event(b"/\xff\0t\0"),
        Err(XenstoreWireError::NotUtf8)
    );
}

#[test]
fn error_replies() {
    for e in KnownXsErrno::ALL {
        let mut b = Vec::from(e.name().as_bytes());
        b.push(0);
        assert_eq!(parse_error(&b), Ok(XsErrno::Known(e)));
        assert_eq!(XsErrno::from(e).errnum(), Some(e.errnum()));
    }
    assert_eq!(KnownXsErrno::ALL.len(), XSD_ERRORS.len());
    for (e, entry) in KnownXsErrno::ALL.iter().zip(XSD_ERRORS) {
        assert_eq!(e.entry(), entry);
        assert_eq!(KnownXsErrno::from_errnum(entry.errnum), Some(*e));
        assert_eq!(KnownXsErrno::from_name(entry.errstring), Some(*e));
    }
    // The named constants are the table's entries of those names and numbers.
    assert_eq!(XsErrno::ENOENT.name(), "ENOENT");
    assert_eq!(XsErrno::ENOENT.errnum(), Some(2));
    assert_eq!(XsErrno::EAGAIN.errnum(), Some(11));
    assert_eq!(XsErrno::EPERM.errnum(), Some(1));
    assert_eq!(XsErrno::Unknown("EWEIRD".into()).errnum(), None);
    assert_eq!(KnownXsErrno::from_name("ENOENT\0"), None);
    assert_eq!(KnownXsErrno::from_name(""), None);
    assert_eq!(KnownXsErrno::from_errnum(0), None);
    assert_eq!(alloc::format!("{:?}", XsErrno::EBUSY), "Known(EBUSY)");
    assert_eq!(
        parse_error(b"EWEIRD\0"),
        Ok(XsErrno::Unknown("EWEIRD".into()))
    );
    assert_eq!(parse_error(b"ENOENT"), Err(XenstoreWireError::MissingNul));
    assert_eq!(parse_error(b"\0"), Err(XenstoreWireError::Empty));
    assert_eq!(parse_error(b"E\xff\0"), Err(XenstoreWireError::NotUtf8));
    assert_eq!(
        parse_error(b"ENOENT\0x"),
        Err(XenstoreWireError::TrailingData)
    );
}

#[test]
fn frame_reader_byte_by_byte() {
    let mut stream = msg(2, 1, 0, b"hello");
    stream.extend(msg(15, 0, 0, b"/a\0t\0"));
    stream.extend(msg(11, 7, 3, b""));
    let mut r = FrameReader::new();
    let mut got = Vec::new();
    for b in &stream {
        let (used, m) = r.push(core::slice::from_ref(b)).unwrap();
        assert_eq!(used, 1);
        got.extend(m);
    }
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].payload, b"hello");
    assert_eq!(got[1].header.msg_type, 15);
    assert_eq!(got[2].header.tx_id, 3);
    assert!(got[2].payload.is_empty());
    assert!(!r.is_mid_message());
}

#[test]
fn frame_reader_stops_at_message_end() {
    let mut stream = msg(2, 1, 0, b"ab");
    stream.extend(msg(2, 2, 0, b"cd"));
    let mut r = FrameReader::new();
    let (used, m) = r.push(&stream).unwrap();
    assert_eq!(used, 18);
    assert_eq!(m.unwrap().header.req_id, 1);
    let (used, m) = r.push(&stream[18..]).unwrap();
    assert_eq!(used, 18);
    assert_eq!(m.unwrap().header.req_id, 2);
}

#[test]
fn frame_reader_poisons_on_oversize_len() {
    let mut h = msg(2, 1, 0, b"");
    h[12..16].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let mut r = FrameReader::new();
    assert_eq!(r.push(&h[..10]), Ok((10, None)));
    assert_eq!(
        r.push(&h[10..]),
        Err(XenstoreWireError::PayloadTooLong(0x8000_0000))
    );
    assert!(r.push(&msg(2, 1, 0, b"")).is_err());
    assert!(r.poisoned().is_some());
}
