//! Tests of the simulated daemon.

use xenia_xen::xenstore::wire::{
    self, encode_message, MsgType, Packet, Request, WatchEvent, XsErrno,
};

use super::*;

fn call(x: &mut Xenstored, c: ConnId, tx: u32, req: Request<'_>) -> (MsgType, Vec<u8>) {
    let mut b = Vec::new();
    req.encode(7, tx, &mut b).unwrap();
    x.feed(c, &b).unwrap();
    let out = x.take_output(c);
    let p = Packet::new_checked(&out[..]).unwrap();
    assert_eq!(p.req_id(), 7);
    assert_eq!(p.tx_id(), tx);
    (p.msg_type().unwrap(), p.payload().to_vec())
}

#[test]
fn basic_tree() {
    let mut x = Xenstored::new();
    x.write("/a/b/c", "v").unwrap();
    assert_eq!(x.read("/a/b/c").unwrap(), b"v");
    assert_eq!(x.read("/a/b").unwrap(), b"");
    assert_eq!(x.directory("/a").unwrap(), vec!["b"]);
    x.write("/a/b2", "").unwrap();
    x.write("/a/b-x", "").unwrap();
    assert_eq!(x.directory("/a").unwrap(), vec!["b", "b-x", "b2"]);
    x.rm("/a/b").unwrap();
    assert!(!x.exists("/a/b/c"));
    assert_eq!(x.directory("/a").unwrap(), vec!["b-x", "b2"]);
    assert_eq!(x.rm("/a/b"), Ok(()), "removing a missing node is fine");
    assert_eq!(
        x.rm("/zz/b"),
        Err(XsErrno::ENOENT),
        "but not under a missing parent"
    );
    assert_eq!(x.rm("/"), Err(XsErrno::EINVAL));
    assert_eq!(x.read("/nope"), Err(XsErrno::ENOENT));
    assert_eq!(x.write("a//b", ""), Err(XsErrno::EINVAL));
}

#[test]
fn wire_requests_and_relative_paths() {
    let mut x = Xenstored::new();
    x.add_domain(3);
    let c = x.connect(3);
    assert_eq!(
        call(&mut x, c, 0, Request::Write("data/x", b"1")),
        (MsgType::Write, b"OK\0".to_vec())
    );
    assert_eq!(x.read("/local/domain/3/data/x").unwrap(), b"1");
    assert_eq!(
        call(&mut x, c, 0, Request::Read("/local/domain/3/data/x")),
        (MsgType::Read, b"1".to_vec())
    );
    assert_eq!(
        call(&mut x, c, 0, Request::Read("/local/domain")),
        (MsgType::Error, b"EACCES\0".to_vec())
    );
    assert_eq!(
        call(&mut x, c, 0, Request::GetPerms("data/x")),
        (MsgType::GetPerms, b"n3\0".to_vec())
    );
    assert_eq!(
        call(&mut x, c, 0, Request::GetDomainPath(3)),
        (MsgType::GetDomainPath, b"/local/domain/3\0".to_vec())
    );
    // Unknown type and malformed payload.
    let mut b = Vec::new();
    encode_message(MsgType::Read, 1, 0, b"x", &mut b).unwrap();
    b[0] = 99;
    x.feed(c, &b).unwrap();
    let out = x.take_output(c);
    assert_eq!(
        Packet::new_checked(&out[..]).unwrap().payload(),
        b"EINVAL\0"
    );
    let mut b = Vec::new();
    encode_message(MsgType::Read, 1, 0, b"no-nul", &mut b).unwrap();
    x.feed(c, &b).unwrap();
    let out = x.take_output(c);
    assert_eq!(
        Packet::new_checked(&out[..]).unwrap().payload(),
        b"EINVAL\0"
    );
    // Oversize length kills the connection.
    let mut b = Vec::new();
    encode_message(MsgType::Read, 1, 0, b"", &mut b).unwrap();
    b[12..16].copy_from_slice(&5000u32.to_le_bytes());
    assert!(matches!(x.feed(c, &b), Err(XenstoredError::Protocol(_))));
    assert!(!x.is_connected(c));
}

#[test]
fn permissions() {
    let mut x = Xenstored::new();
    x.add_domain(1);
    x.add_domain(2);
    let c1 = x.connect_local(1);
    let c2 = x.connect_local(2);
    x.request(c1, 0, &Request::Write("secret", b"s")).unwrap();
    assert_eq!(
        x.request(c2, 0, &Request::Read("/local/domain/1/secret")),
        Err(XsErrno::EACCES)
    );
    assert_eq!(
        x.request(c2, 0, &Request::Write("/local/domain/1/secret", b"x")),
        Err(XsErrno::EACCES)
    );
    assert_eq!(
        x.request(c2, 0, &Request::Write("/local/domain/1/new", b"x")),
        Err(XsErrno::EACCES)
    );
    // Grant read to 2.
    x.request(
        c1,
        0,
        &Request::SetPerms(
            "secret",
            vec![Perm::new(1, Access::None), Perm::new(2, Access::Read)],
        ),
    )
    .unwrap();
    assert_eq!(
        x.request(c2, 0, &Request::Read("/local/domain/1/secret")),
        Ok(b"s".to_vec())
    );
    assert_eq!(
        x.request(c2, 0, &Request::Write("/local/domain/1/secret", b"x")),
        Err(XsErrno::EACCES)
    );
    // Only the owner sets perms; it cannot give the node away.
    assert_eq!(
        x.request(
            c2,
            0,
            &Request::SetPerms("/local/domain/1/secret", vec![Perm::new(2, Access::Both)])
        ),
        Err(XsErrno::EACCES)
    );
    assert_eq!(
        x.request(
            c1,
            0,
            &Request::SetPerms("secret", vec![Perm::new(2, Access::Both)])
        ),
        Err(XsErrno::EPERM)
    );
    // A node dom0 creates in 1's home inherits 1's ownership; one 2 creates in a
    // writable shared dir is owned by 2.
    x.write("/local/domain/1/backend-made", "").unwrap();
    assert_eq!(
        x.get_perms("/local/domain/1/backend-made").unwrap(),
        vec![Perm::new(1, Access::None)]
    );
    x.write("/shared", "").unwrap();
    x.set_perms("/shared", &[Perm::new(0, Access::Both)])
        .unwrap();
    x.request(c2, 0, &Request::Write("/shared/mine", b""))
        .unwrap();
    assert_eq!(
        x.get_perms("/shared/mine").unwrap(),
        vec![Perm::new(2, Access::Both)]
    );
}

#[test]
fn watches_fire_on_registration_change_and_parent_removal() {
    let mut x = Xenstored::new();
    x.add_domain(4);
    let c = x.connect_local(4);
    x.watch(c, "device", "tok").unwrap();
    assert_eq!(
        x.take_events(c),
        vec![WatchEvent {
            path: "device".into(),
            token: "tok".into()
        }]
    );
    x.write("/local/domain/4/device/vif/0", "x").unwrap();
    x.write("/local/domain/4/other", "x").unwrap();
    assert_eq!(x.take_events(c)[0].path, "device/vif/0");
    assert!(x.take_events(c).is_empty());
    x.rm("/local/domain/4").unwrap();
    assert_eq!(x.take_events(c)[0].path, "device");
    assert_eq!(x.watch(c, "device", "tok"), Err(XsErrno::EEXIST));
    // The same watch given as an absolute path is the same watch.
    assert_eq!(
        x.watch(c, "/local/domain/4/device", "tok"),
        Err(XsErrno::EEXIST)
    );
    assert_eq!(x.watch(c, "/local/domain/4/device", "tok2"), Ok(()));
    assert_eq!(x.take_events(c)[0].path, "/local/domain/4/device");
    x.unwatch(c, "/local/domain/4/device", "tok2").unwrap();
    x.unwatch(c, "device", "tok").unwrap();
    assert_eq!(x.unwatch(c, "device", "tok"), Err(XsErrno::ENOENT));
    x.take_events(c);
    x.write("/local/domain/4/device/x", "").unwrap();
    assert!(x.take_events(c).is_empty());
}

#[test]
fn watch_events_respect_read_permission() {
    let mut x = Xenstored::new();
    x.add_domain(1);
    x.add_domain(2);
    let c2 = x.connect_local(2);
    x.watch(c2, "/local/domain/1", "t").unwrap();
    x.take_events(c2);
    x.write("/local/domain/1/private", "x").unwrap();
    assert!(x.take_events(c2).is_empty());
    x.write("/local/domain/1/public", "x").unwrap();
    x.set_perms("/local/domain/1/public", &[Perm::new(1, Access::Read)])
        .unwrap();
    assert_eq!(x.take_events(c2).len(), 1);
}

#[test]
fn transactions_conflict_and_commit() {
    let mut x = Xenstored::new();
    let c = x.connect(0);
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    call(&mut x, c, tx, Request::Write("/t/a", b"1"));
    assert!(!x.exists("/t/a"), "not visible before commit");
    assert_eq!(
        call(&mut x, c, tx, Request::Read("/t/a")),
        (MsgType::Read, b"1".to_vec())
    );
    assert_eq!(
        call(&mut x, c, tx, Request::TransactionEnd(true)),
        (MsgType::TransactionEnd, b"OK\0".to_vec())
    );
    assert_eq!(x.read("/t/a").unwrap(), b"1");
    // Conflict: read in tx, changed outside.
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    call(&mut x, c, tx, Request::Read("/t/a"));
    call(&mut x, c, tx, Request::Write("/t/b", b"2"));
    x.write("/t/a", "other").unwrap();
    assert_eq!(
        call(&mut x, c, tx, Request::TransactionEnd(true)),
        (MsgType::Error, b"EAGAIN\0".to_vec())
    );
    assert!(!x.exists("/t/b"));
    // Unrelated change: no conflict.
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    call(&mut x, c, tx, Request::Read("/t/a"));
    x.write("/elsewhere", "z").unwrap();
    assert_eq!(
        call(&mut x, c, tx, Request::TransactionEnd(true)).0,
        MsgType::TransactionEnd
    );
    // Node created outside after a failed read inside: conflict.
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    assert_eq!(
        call(&mut x, c, tx, Request::Read("/t/new")).0,
        MsgType::Error
    );
    x.write("/t/new", "z").unwrap();
    assert_eq!(
        call(&mut x, c, tx, Request::TransactionEnd(true)).1,
        b"EAGAIN\0"
    );
    // Removed outside: conflict via tombstone.
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    call(&mut x, c, tx, Request::Read("/t/new"));
    x.rm("/t/new").unwrap();
    assert_eq!(
        call(&mut x, c, tx, Request::TransactionEnd(true)).1,
        b"EAGAIN\0"
    );
    // Forced conflict; unknown tx; abort.
    x.force_commit_conflicts(1);
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    assert_eq!(
        call(&mut x, c, tx, Request::TransactionEnd(true)).1,
        b"EAGAIN\0"
    );
    assert_eq!(call(&mut x, c, 999, Request::Read("/t/a")).1, b"ENOENT\0");
    let (_, p) = call(&mut x, c, 0, Request::TransactionStart);
    let tx = wire::parse_transaction_id(&p).unwrap();
    call(&mut x, c, tx, Request::Rm("/t"));
    call(&mut x, c, tx, Request::TransactionEnd(false));
    assert!(x.exists("/t/a"));
    assert_eq!(x.open_transactions(c), 0);
    assert!(x.tombstones.is_empty());
}

#[test]
fn transaction_commit_fires_watches_and_removes() {
    let mut x = Xenstored::new();
    let w = x.connect_local(0);
    x.write("/t/old/leaf", "1").unwrap();
    x.watch(w, "/t", "t").unwrap();
    x.take_events(w);
    let c = x.connect_local(0);
    let tx =
        wire::parse_transaction_id(&x.request(c, 0, &Request::TransactionStart).unwrap()).unwrap();
    x.request(c, tx, &Request::Rm("/t/old")).unwrap();
    x.request(c, tx, &Request::Write("/t/new", b"n")).unwrap();
    assert!(x.take_events(w).is_empty(), "nothing before commit");
    x.request(c, tx, &Request::TransactionEnd(true)).unwrap();
    let paths: Vec<_> = x.take_events(w).into_iter().map(|e| e.path).collect();
    assert_eq!(paths, vec!["/t/old", "/t/new"]);
    assert!(!x.exists("/t/old/leaf"));
    assert_eq!(x.read("/t/new").unwrap(), b"n");
}

#[test]
fn special_watches() {
    let mut x = Xenstored::new();
    let c = x.connect_local(0);
    x.watch(c, "@introduceDomain", "i").unwrap();
    x.watch(c, "@releaseDomain", "r").unwrap();
    assert_eq!(x.take_events(c).len(), 2);
    x.add_domain(9);
    let ev = x.take_events(c);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].token, "i");
    assert_eq!(
        x.request(c, 0, &Request::IsDomainIntroduced(9)).unwrap(),
        b"T\0"
    );
    x.request(c, 0, &Request::Release(9)).unwrap();
    assert_eq!(x.take_events(c)[0].token, "r");
    let d = x.connect_local(9);
    assert_eq!(
        x.request(d, 0, &Request::Introduce(4, 1, 1)),
        Err(XsErrno::EACCES)
    );
}
