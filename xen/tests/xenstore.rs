//! The async xenstore client against the simulated xenstored, through an in-memory transport
//! with chunking, reordering and fault injection.

mod xenstore_support;

use std::cell::RefCell;
use std::rc::Rc;

use std::future::Future;

use futures_util::StreamExt;
use xenia_sim::xenstored::{DirectTransport, Xenstored};
use xenia_xen::xenstore::wire::{XenstoreWireError, XENSTORE_PAYLOAD_MAX};
use xenia_xen::xenstore::{
    Access, MsgType, Perm, Xenstore, XenstoreError, XenstoreProtocolError, XenstoreTransportError,
    XsErrno,
};
use xenstore_support::{block_on, Executor, Fault, TestTransport};

fn setup(domid: u16) -> (Rc<RefCell<Xenstored>>, Xenstore<TestTransport>) {
    let xsd = Rc::new(RefCell::new(Xenstored::new()));
    if domid != 0 {
        xsd.borrow_mut().add_domain(domid);
    }
    let t = TestTransport::new(&xsd, domid);
    (xsd, Xenstore::new(t))
}

#[test]
fn read_write_directory_rm() {
    let (xsd, xs) = setup(5);
    block_on(async {
        xs.write("data/a", "hello").await.unwrap();
        xs.write("/local/domain/5/data/b", b"\x00\x01binary")
            .await
            .unwrap();
        xs.write("data/n", "42").await.unwrap();
        assert_eq!(xs.read("data/a").await.unwrap(), b"hello");
        assert_eq!(
            xs.read_string("/local/domain/5/data/a").await.unwrap(),
            "hello"
        );
        assert_eq!(xs.read("data/b").await.unwrap(), b"\x00\x01binary");
        assert_eq!(xs.read_u32("data/n").await.unwrap(), 42);
        assert_eq!(xs.read_u64("data/n").await.unwrap(), 42);
        assert_eq!(xs.read_u32("data/a").await, Err(XenstoreError::BadValue));
        assert_eq!(xs.read_string("data/b").await.unwrap(), "\0\x01binary");
        let mut names = xs.directory("data").await.unwrap();
        names.sort();
        assert_eq!(names, ["a", "b", "n"]);
        assert_eq!(
            xs.read("data/zz").await,
            Err(XenstoreError::Xs(XsErrno::ENOENT))
        );
        assert_eq!(xs.read_optional("data/zz").await, Ok(None));
        assert_eq!(
            xs.read_optional("data/a").await,
            Ok(Some(b"hello".to_vec()))
        );
        xs.mkdir("empty/dir").await.unwrap();
        assert_eq!(
            xs.directory("empty/dir").await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(xs.read("empty").await.unwrap(), b"");
        xs.rm("data").await.unwrap();
        assert!(xs.read("data/a").await.unwrap_err().is_not_found());
        xs.rm("data").await.unwrap();
        assert_eq!(
            xs.get_domain_path(5).await.unwrap(),
            "/local/domain/5".to_string()
        );
        assert!(xs.is_domain_introduced(5).await.unwrap());
        assert!(!xs.is_domain_introduced(6).await.unwrap());
    });
    assert_eq!(xsd.borrow_mut().read("/local/domain/5/empty").unwrap(), b"");
    assert_eq!(xs.stats().protocol_errors, 0);
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let (_xsd, xs) = setup(5);
    let counters = xs.with_transport(|t| t.counters.clone());
    block_on(async {
        for bad in ["", "a//b", "/a/", "has space", "dot.ted"] {
            assert_eq!(
                xs.read(bad).await,
                Err(XenstoreError::InvalidRequest(XenstoreWireError::BadPath)),
                "{bad:?}"
            );
        }
        let long_rel = "a".repeat(2049);
        assert!(matches!(
            xs.read(&long_rel).await,
            Err(XenstoreError::InvalidRequest(_))
        ));
        let big = vec![b'x'; XENSTORE_PAYLOAD_MAX];
        assert_eq!(
            xs.write("/x", &big).await,
            Err(XenstoreError::InvalidRequest(
                XenstoreWireError::RequestTooLong(XENSTORE_PAYLOAD_MAX + 3)
            ))
        );
        assert!(matches!(
            xs.watch("/x", "to\0ken").await.err(),
            Some(XenstoreError::InvalidRequest(
                XenstoreWireError::EmbeddedNul
            ))
        ));
    });
    assert_eq!(counters.borrow().bytes_written, 0, "nothing was sent");
    // The largest value that fits is accepted.
    block_on(async {
        // Relative path "x": 1 byte, its NUL, then the value.
        let v = vec![b'y'; XENSTORE_PAYLOAD_MAX - 2];
        xs.write("x", &v).await.unwrap();
        assert_eq!(xs.read("x").await.unwrap(), v);
        let v = vec![b'y'; XENSTORE_PAYLOAD_MAX - 1];
        assert!(matches!(
            xs.write("x", &v).await,
            Err(XenstoreError::InvalidRequest(_))
        ));
        // Dom 5 may not write under dom0's root.
        assert_eq!(
            xs.write("/x", "1").await,
            Err(XenstoreError::Xs(XsErrno::EACCES))
        );
    });
}

#[test]
fn permissions_between_domains() {
    let xsd = Rc::new(RefCell::new(Xenstored::new()));
    xsd.borrow_mut().add_domain(1);
    xsd.borrow_mut().add_domain(2);
    let xs1 = Xenstore::new(TestTransport::new(&xsd, 1));
    let xs2 = Xenstore::new(TestTransport::new(&xsd, 2));
    let dom0 = Xenstore::new(DirectTransport::connect(&xsd, 0));
    block_on(async {
        xs1.write("private", "secret").await.unwrap();
        assert_eq!(
            xs2.read("/local/domain/1/private").await,
            Err(XenstoreError::Xs(XsErrno::EACCES))
        );
        assert_eq!(
            xs2.directory("/local/domain/1").await,
            Err(XenstoreError::Xs(XsErrno::EACCES))
        );
        assert_eq!(
            xs1.get_perms("private").await.unwrap(),
            vec![Perm::new(1, Access::None)]
        );
        xs1.set_perms(
            "private",
            &[Perm::new(1, Access::None), Perm::new(2, Access::Read)],
        )
        .await
        .unwrap();
        assert_eq!(
            xs2.read_string("/local/domain/1/private").await.unwrap(),
            "secret"
        );
        assert_eq!(
            xs2.write("/local/domain/1/private", "x").await,
            Err(XenstoreError::Xs(XsErrno::EACCES))
        );
        // Dom0 bypasses permissions.
        assert_eq!(
            dom0.read("/local/domain/1/private").await.unwrap(),
            b"secret"
        );
        dom0.write("/local/domain/1/private", "by dom0")
            .await
            .unwrap();
        assert_eq!(xs1.read("private").await.unwrap(), b"by dom0");
        assert_eq!(
            xs2.set_perms("/local/domain/1/private", &[Perm::new(2, Access::Both)])
                .await,
            Err(XenstoreError::Xs(XsErrno::EACCES))
        );
    });
}

#[test]
fn watches_initial_event_changes_and_unwatch() {
    let (xsd, xs) = setup(3);
    let xs = &xs;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut ex = Executor::new();
    {
        let seen = seen.clone();
        ex.spawn(async move {
            let mut w = xs.watch("device", "dev-token").await.unwrap();
            while let Some(ev) = w.next().await {
                let ev = ev.unwrap();
                assert_eq!(ev.token, "dev-token");
                let done = ev.path == "device/stop";
                seen.borrow_mut().push(ev.path);
                if done {
                    break;
                }
            }
            xs.unwatch(w).await.unwrap();
        });
    }
    assert!(!ex.run_until_stalled());
    assert_eq!(*seen.borrow(), ["device"], "the initial event");
    let polls = ex.polls;
    // Nothing happens: the waiting task is not polled again (no busy-polling).
    assert!(!ex.run_until_stalled());
    assert_eq!(ex.polls, polls);

    // Changes made by dom0 directly in the daemon wake the task.
    xsd.borrow_mut()
        .write("/local/domain/3/device/vif/0/state", "1")
        .unwrap();
    xsd.borrow_mut()
        .write("/local/domain/3/other", "x")
        .unwrap();
    assert!(!ex.run_until_stalled());
    assert_eq!(*seen.borrow(), ["device", "device/vif/0/state"]);
    xsd.borrow_mut().rm("/local/domain/3/device/vif").unwrap();
    xsd.borrow_mut()
        .write("/local/domain/3/device/stop", "")
        .unwrap();
    assert!(ex.run_until_stalled(), "the task unwatched and finished");
    assert_eq!(
        *seen.borrow(),
        ["device", "device/vif/0/state", "device/vif", "device/stop"]
    );
    let conn = xs.with_transport(|t| t.conn);
    assert_eq!(xsd.borrow().watch_count(conn), 0);
}

#[test]
fn waiters_re_register_when_the_registered_task_stops_waiting() {
    // The transport keeps one waker. When the task that registered last gets its event and
    // goes on to wait for something else, the other must register itself, or its event would
    // never wake anybody. Which task registered last depends on polling order, so try both.
    for (first, second) in [("a", "b"), ("b", "a")] {
        let (xsd, xs) = setup(0);
        let xs = &xs;
        let done = Rc::new(RefCell::new(Vec::new()));
        let mut ex = Executor::new();
        for name in ["a", "b"] {
            let done = done.clone();
            ex.spawn(async move {
                let mut w = xs.watch(&format!("/{name}"), name).await.unwrap();
                w.next_event().await.unwrap().unwrap(); // initial
                let ev = w.next_event().await.unwrap().unwrap();
                assert_eq!(ev.path, format!("/{name}"));
                done.borrow_mut().push(name);
                // Keep the stream (no drop-time wake-ups) and wait for something else.
                std::future::pending::<()>().await;
                drop(w);
            });
        }
        assert!(!ex.run_until_stalled());
        xsd.borrow_mut().write(&format!("/{first}"), "1").unwrap();
        ex.run_until_stalled();
        assert_eq!(*done.borrow(), [first]);
        xsd.borrow_mut().write(&format!("/{second}"), "1").unwrap();
        ex.run_until_stalled();
        assert_eq!(*done.borrow(), [first, second], "task {second} was woken");
    }
}

#[test]
fn waiters_re_register_when_a_request_completes() {
    // A watcher waits; a request is answered asynchronously (held by the transport), so the
    // requesting task is the one registered when the reply comes. It completes; the watcher
    // must then register itself.
    let (xsd, xs) = setup(0);
    let xs = &xs;
    let got = Rc::new(RefCell::new(false));
    let mut ex = Executor::new();
    {
        let got = got.clone();
        ex.spawn(async move {
            let mut w = xs.watch("/c", "c").await.unwrap();
            w.next_event().await.unwrap().unwrap();
            w.next_event().await.unwrap().unwrap();
            *got.borrow_mut() = true;
        });
    }
    assert!(!ex.run_until_stalled());
    xs.with_transport(|t| t.hold_silently());
    ex.spawn(async move {
        xs.read("/").await.unwrap();
    });
    assert!(!ex.run_until_stalled());
    assert_eq!(ex.unfinished(), 2, "the read waits for its held reply");
    xs.with_transport(|t| t.release());
    assert!(!ex.run_until_stalled());
    assert_eq!(ex.unfinished(), 1, "the read finished");
    xsd.borrow_mut().write("/c", "1").unwrap();
    assert!(ex.run_until_stalled(), "the watcher was woken");
    assert!(*got.borrow());
}

#[test]
fn dropping_a_watch_stream_unwatches() {
    let (xsd, xs) = setup(3);
    let conn = xs.with_transport(|t| t.conn);
    block_on(async {
        let mut w = xs.watch("/local/domain/3/x", "t").await.unwrap();
        let ev = w.next_event().await.unwrap().unwrap();
        assert_eq!(ev.path, "/local/domain/3/x");
        // Token in use while registered.
        assert_eq!(
            xs.watch("/y", "t").await.err(),
            Some(XenstoreError::WatchTokenInUse)
        );
        drop(w);
        // The UNWATCH goes out with the next I/O.
        xs.write("/local/domain/3/x", "1").await.unwrap();
    });
    assert_eq!(xsd.borrow().watch_count(conn), 0);
    // Events that were already in flight after the drop are not errors.
    assert_eq!(xs.stats().protocol_errors, 0);
    block_on(async {
        let mut w = xs.watch("/local/domain/3/x", "t").await.unwrap();
        assert!(w.next_event().await.is_some());
    });
}

#[test]
fn watch_on_forbidden_path_and_special_watches() {
    let (xsd, xs) = setup(3);
    block_on(async {
        // Registering is allowed, but changes of unreadable nodes are not reported.
        let mut w = xs.watch("/secret", "s").await.unwrap();
        assert_eq!(w.next_event().await.unwrap().unwrap().path, "/secret");
        xsd.borrow_mut().write("/secret/x", "1").unwrap();
        xsd.borrow_mut()
            .set_perms("/secret", &[Perm::new(0, Access::Read)])
            .unwrap();
        assert_eq!(w.next_event().await.unwrap().unwrap().path, "/secret");
        assert!(w.try_next().is_none());
    });
    let dom0 = Xenstore::new(DirectTransport::connect(&xsd, 0).with_max_chunk(3));
    block_on(async {
        let mut intro = dom0.watch("@introduceDomain", "i").await.unwrap();
        assert_eq!(
            intro.next_event().await.unwrap().unwrap().path,
            "@introduceDomain"
        );
        xsd.borrow_mut().add_domain(7);
        assert_eq!(intro.next_event().await.unwrap().unwrap().token, "i");
    });
}

#[test]
fn transactions_commit_and_abort() {
    let (xsd, xs) = setup(0);
    block_on(async {
        let tx = xs.transaction_start().await.unwrap();
        assert_ne!(tx.id(), 0);
        tx.write("/t/a", "1").await.unwrap();
        tx.mkdir("/t/dir").await.unwrap();
        assert_eq!(tx.read("/t/a").await.unwrap(), b"1");
        assert!(
            xs.read("/t/a").await.unwrap_err().is_not_found(),
            "isolated"
        );
        tx.commit().await.unwrap();
        assert_eq!(xs.read("/t/a").await.unwrap(), b"1");

        let tx = xs.transaction_start().await.unwrap();
        tx.rm("/t").await.unwrap();
        tx.abort().await.unwrap();
        assert_eq!(xs.read("/t/a").await.unwrap(), b"1");
        // The handle is dead after its end.
        assert_eq!(
            tx.read("/t/a").await,
            Err(XenstoreError::Xs(XsErrno::ENOENT))
        );
    });
    assert_eq!(xsd.borrow().commits(), 1);
}

#[test]
fn transaction_retry_helper_survives_forced_conflicts() {
    let (xsd, xs) = setup(0);
    xsd.borrow_mut().write("/counter", "10").unwrap();
    xsd.borrow_mut().force_commit_conflicts(3);
    let attempts = RefCell::new(0);
    let v = block_on(xs.transaction(|tx| {
        *attempts.borrow_mut() += 1;
        async move {
            let n = tx.read_u32("/counter").await?;
            tx.write("/counter", (n + 1).to_string()).await?;
            Ok(n + 1)
        }
    }))
    .unwrap();
    assert_eq!(v, 11);
    assert_eq!(*attempts.borrow(), 4);
    assert_eq!(xsd.borrow_mut().read("/counter").unwrap(), b"11");
    assert_eq!(xsd.borrow().conflicts(), 3);
    assert_eq!(xsd.borrow().commits(), 1);
}

#[test]
fn transaction_retries_are_bounded() {
    let (xsd, xs) = setup(0);
    xsd.borrow_mut().force_commit_conflicts(100);
    let attempts = RefCell::new(0);
    let r: Result<(), XenstoreError> = block_on(xs.transaction_with_attempts(3, |tx| {
        *attempts.borrow_mut() += 1;
        async move { tx.write("/x", "1").await }
    }));
    assert_eq!(r, Err(XenstoreError::Xs(XsErrno::EAGAIN)));
    assert_eq!(*attempts.borrow(), 3);
    assert!(!xsd.borrow().exists("/x"));
    let conn = xs.with_transport(|t| t.conn);
    assert_eq!(xsd.borrow().open_transactions(conn), 0);
}

#[test]
fn transaction_body_error_aborts() {
    let (xsd, xs) = setup(0);
    let r: Result<(), XenstoreError> = block_on(xs.transaction(|tx| async move {
        tx.write("/half", "done").await?;
        tx.read("/missing").await?;
        Ok(())
    }));
    assert_eq!(r, Err(XenstoreError::Xs(XsErrno::ENOENT)));
    assert!(!xsd.borrow().exists("/half"));
    let conn = xs.with_transport(|t| t.conn);
    assert_eq!(xsd.borrow().open_transactions(conn), 0);
}

#[test]
fn concurrent_transactions_conflict_for_real_and_retry() {
    // Several tasks increment one counter with read-modify-write transactions; they
    // interleave on the executor, so commits really conflict. No increment may be lost.
    let (xsd, xs) = setup(0);
    xsd.borrow_mut().write("/counter", "0").unwrap();
    let xs = &xs;
    let mut ex = Executor::new();
    const TASKS: u32 = 4;
    const EACH: u32 = 5;
    for _ in 0..TASKS {
        ex.spawn(async move {
            for _ in 0..EACH {
                xs.transaction_with_attempts(100, |tx| async move {
                    let n = tx.read_u32("/counter").await?;
                    // Let the other tasks run between the read and the write.
                    yield_now().await;
                    tx.write("/counter", (n + 1).to_string()).await
                })
                .await
                .unwrap();
            }
        });
    }
    ex.run();
    assert_eq!(
        xsd.borrow_mut().read_string("/counter").unwrap(),
        (TASKS * EACH).to_string()
    );
    assert_eq!(xsd.borrow().commits(), u64::from(TASKS * EACH));
    assert!(
        xsd.borrow().conflicts() > 0,
        "interleaving caused conflicts"
    );
}

/// Yields once to the executor.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

#[test]
fn concurrent_requests_with_replies_out_of_order() {
    let (xsd, xs) = setup(0);
    for i in 0..8 {
        xsd.borrow_mut()
            .write(&format!("/k/{i}"), format!("v{i}"))
            .unwrap();
    }
    // Replies are held until all 8 are in, then delivered in reverse order, in 5-byte pieces;
    // requests go out 7 bytes at a time.
    xs.with_transport(|t| {
        t.reverse_batch = 8;
        t.max_read = 5;
        t.max_write = 7;
    });
    let counters = xs.with_transport(|t| t.counters.clone());
    let results = Rc::new(RefCell::new(Vec::new()));
    let xs = &xs;
    let mut ex = Executor::new();
    for i in 0..8 {
        let results = results.clone();
        ex.spawn(async move {
            let v = xs.read_string(&format!("/k/{i}")).await.unwrap();
            results.borrow_mut().push((i, v));
        });
    }
    ex.run();
    let mut r = results.borrow().clone();
    assert_eq!(r.len(), 8);
    r.sort();
    for (i, v) in r {
        assert_eq!(v, format!("v{i}"));
    }
    let delivered = counters.borrow().delivered.clone();
    let mut sorted = delivered.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(delivered, sorted, "replies came newest first");
    assert_eq!(xs.stats().protocol_errors, 0);
}

#[test]
fn byte_at_a_time_transport() {
    let (_xsd, xs) = setup(2);
    xs.with_transport(|t| {
        t.max_read = 1;
        t.max_write = 1;
    });
    block_on(async {
        xs.write("a", "x".repeat(100)).await.unwrap();
        assert_eq!(xs.read("a").await.unwrap().len(), 100);
        let mut w = xs.watch("a", "t").await.unwrap();
        assert_eq!(w.next_event().await.unwrap().unwrap().path, "a");
    });
}

#[test]
fn dropped_request_future_is_cancel_safe() {
    let (_xsd, xs) = setup(0);
    // Hold replies so the first read stays outstanding when we drop it.
    xs.with_transport(|t| t.reverse_batch = 2);
    let xs = &xs;
    let mut ex = Executor::new();
    ex.spawn(async move {
        let mut f = std::pin::pin!(xs.read("/"));
        let r = std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await;
        assert!(r.is_pending());
        // dropped here while outstanding
    });
    ex.spawn(async move {
        assert_eq!(xs.read("/").await.unwrap(), b"");
    });
    ex.run();
    assert_eq!(
        xs.stats().protocol_errors,
        0,
        "the abandoned reply is dropped silently"
    );
    xs.with_transport(|t| t.reverse_batch = 0);
    block_on(async { xs.write("/after", "1").await.unwrap() });
}

// ------------------------------------------------------------------------------------------
// Hostile replies.

fn with_fault(fault: Fault) -> (Rc<RefCell<Xenstored>>, Xenstore<TestTransport>) {
    let (xsd, xs) = setup(0);
    xsd.borrow_mut().write("/d/a", "1").unwrap();
    xs.with_transport(|t| t.faults.push_back(fault));
    (xsd, xs)
}

#[test]
fn reply_with_wrong_type_is_a_protocol_error() {
    let (_x, xs) = with_fault(Fault::Type(MsgType::Directory as u32));
    let r = block_on(xs.read("/d/a"));
    assert_eq!(
        r,
        Err(XenstoreError::Protocol(
            XenstoreProtocolError::UnexpectedReplyType {
                req_id: 0,
                expected: MsgType::Read,
                got: MsgType::Directory
            }
        ))
    );
    // The connection still works.
    assert_eq!(block_on(xs.read("/d/a")).unwrap(), b"1");
    assert_eq!(xs.stats().protocol_errors, 1);
}

#[test]
fn reply_with_unknown_type() {
    let (_x, xs) = with_fault(Fault::Type(0xffff));
    assert!(matches!(
        block_on(xs.read("/d/a")),
        Err(XenstoreError::Protocol(
            XenstoreProtocolError::UnknownType { raw: 0xffff, .. }
        ))
    ));
    assert_eq!(block_on(xs.read("/d/a")).unwrap(), b"1");
}

#[test]
fn reply_with_wrong_tx_id() {
    let (_x, xs) = with_fault(Fault::TxId(9));
    assert!(matches!(
        block_on(xs.read("/d/a")),
        Err(XenstoreError::Protocol(
            XenstoreProtocolError::TxIdMismatch { got: 9, .. }
        ))
    ));
}

#[test]
fn reply_with_unknown_req_id_is_reported_and_request_keeps_waiting() {
    let (_x, xs) = with_fault(Fault::ReqId(777));
    let xs = &xs;
    let mut ex = Executor::new();
    ex.spawn(async move {
        let _ = xs.read("/d/a").await;
        panic!("no reply can come for this request");
    });
    assert!(!ex.run_until_stalled());
    assert_eq!(
        xs.last_protocol_error(),
        Some(XenstoreProtocolError::UnexpectedReqId {
            req_id: 777,
            msg_type: MsgType::Read
        })
    );
    assert_eq!(xs.fatal_error(), None);
}

#[test]
fn duplicate_reply_is_reported() {
    let (_x, xs) = with_fault(Fault::Duplicate);
    assert_eq!(block_on(xs.read("/d/a")).unwrap(), b"1");
    // The duplicate is read with the next I/O.
    assert_eq!(block_on(xs.read("/d/a")).unwrap(), b"1");
    assert!(matches!(
        xs.last_protocol_error(),
        Some(XenstoreProtocolError::UnexpectedReqId { .. })
    ));
}

#[test]
fn oversize_len_kills_the_connection() {
    let (_x, xs) = with_fault(Fault::Len(100_000));
    let e = XenstoreError::Protocol(XenstoreProtocolError::Framing(
        XenstoreWireError::PayloadTooLong(100_000),
    ));
    assert_eq!(block_on(xs.read("/d/a")), Err(e.clone()));
    assert_eq!(block_on(xs.read("/d/a")), Err(e.clone()));
    assert_eq!(xs.fatal_error(), Some(e));
}

#[test]
fn malformed_payloads() {
    let cases: Vec<(Vec<u8>, XenstoreProtocolError)> = vec![
        (
            b"a\0b".to_vec(),
            XenstoreProtocolError::BadPayload {
                msg_type: MsgType::Directory,
                error: XenstoreWireError::MissingNul,
            },
        ),
        (
            b"ok\0\xff\xfe\0".to_vec(),
            XenstoreProtocolError::BadPayload {
                msg_type: MsgType::Directory,
                error: XenstoreWireError::NotUtf8,
            },
        ),
    ];
    for (payload, err) in cases {
        let (_x, xs) = with_fault(Fault::Payload(payload));
        assert_eq!(
            block_on(xs.directory("/d")),
            Err(XenstoreError::Protocol(err))
        );
        assert_eq!(block_on(xs.directory("/d")).unwrap(), ["a"]);
    }
    // An acknowledgement that is not "OK\0".
    let (_x, xs) = with_fault(Fault::Payload(b"OK".to_vec()));
    assert!(matches!(
        block_on(xs.write("/d/b", "2")),
        Err(XenstoreError::Protocol(XenstoreProtocolError::BadPayload {
            msg_type: MsgType::Write,
            error: XenstoreWireError::NotOk
        }))
    ));
    // Transaction ids must be decimal.
    let (_x, xs) = with_fault(Fault::Payload(b"12x\0".to_vec()));
    assert!(matches!(
        block_on(xs.transaction_start()).err(),
        Some(XenstoreError::Protocol(XenstoreProtocolError::BadPayload {
            error: XenstoreWireError::BadNumber,
            ..
        }))
    ));
    // Permissions must parse.
    let (_x, xs) = with_fault(Fault::Payload(b"z0\0".to_vec()));
    assert!(matches!(
        block_on(xs.get_perms("/d")),
        Err(XenstoreError::Protocol(XenstoreProtocolError::BadPayload {
            error: XenstoreWireError::BadPermission,
            ..
        }))
    ));
}

#[test]
fn error_replies() {
    // Reading a missing node gets an ERROR reply; replace its payload.
    let mk = |payload: &[u8]| {
        let (_x, xs) = setup(0);
        xs.with_transport(|t| t.faults.push_back(Fault::Payload(payload.to_vec())));
        let r = block_on(xs.read("/missing"));
        (r, xs.stats().protocol_errors)
    };
    assert_eq!(mk(b"EBUSY\0"), (Err(XenstoreError::Xs(XsErrno::EBUSY)), 0));
    assert_eq!(
        mk(b"EWHATEVER\0"),
        (
            Err(XenstoreError::Xs(XsErrno::Unknown("EWHATEVER".into()))),
            0
        )
    );
    let (r, n) = mk(b"ENOENT");
    assert_eq!(
        r,
        Err(XenstoreError::Protocol(XenstoreProtocolError::BadPayload {
            msg_type: MsgType::Error,
            error: XenstoreWireError::MissingNul
        }))
    );
    assert_eq!(n, 1);
    let (r, _) = mk(b"E\xffE\0");
    assert!(matches!(
        r,
        Err(XenstoreError::Protocol(XenstoreProtocolError::BadPayload {
            error: XenstoreWireError::NotUtf8,
            ..
        }))
    ));
}

#[test]
fn malformed_watch_event_is_reported_and_stream_goes_on() {
    let (xsd, xs) = setup(0);
    block_on(async {
        let mut w = xs.watch("/w", "t").await.unwrap();
        assert_eq!(w.next_event().await.unwrap().unwrap().path, "/w");
        xs.with_transport(|t| t.faults.push_back(Fault::Payload(b"/w/x\0t".to_vec())));
        xsd.borrow_mut().write("/w/x", "1").unwrap();
        xsd.borrow_mut().write("/w/y", "1").unwrap();
        assert_eq!(w.next_event().await.unwrap().unwrap().path, "/w/y");
    });
    assert!(matches!(
        xs.last_protocol_error(),
        Some(XenstoreProtocolError::BadPayload {
            msg_type: MsgType::WatchEvent,
            error: XenstoreWireError::MissingNul
        })
    ));
}

#[test]
fn truncated_message_then_closed_transport() {
    let (_x, xs) = with_fault(Fault::TruncateAndClose(10));
    let e = XenstoreError::Transport(XenstoreTransportError::Closed);
    assert_eq!(block_on(xs.read("/d/a")), Err(e.clone()));
    assert_eq!(block_on(xs.read("/d/a")), Err(e));
}

#[test]
fn garbage_before_a_reply() {
    // 16 bytes of garbage look like a header with an absurd length: fatal, no panic.
    let (_x, xs) = with_fault(Fault::Prefix(vec![0xAB; 40]));
    let r = block_on(xs.read("/d/a"));
    assert!(matches!(
        r,
        Err(XenstoreError::Protocol(XenstoreProtocolError::Framing(
            XenstoreWireError::PayloadTooLong(_)
        )))
    ));
    // Garbage that frames as an unknown message is skipped.
    let mut g = vec![0u8; 16];
    g[0..4].copy_from_slice(&1234u32.to_le_bytes());
    g[4..8].copy_from_slice(&555u32.to_le_bytes());
    g[12..16].copy_from_slice(&3u32.to_le_bytes());
    g.extend_from_slice(b"zzz");
    let (_x, xs) = with_fault(Fault::Prefix(g));
    assert_eq!(block_on(xs.read("/d/a")).unwrap(), b"1");
    assert!(matches!(
        xs.last_protocol_error(),
        Some(XenstoreProtocolError::UnknownType { raw: 1234, .. })
    ));
}

#[test]
fn watch_stream_ends_when_connection_dies() {
    let (xsd, xs) = setup(0);
    block_on(async {
        let mut w = xs.watch("/w", "t").await.unwrap();
        assert!(w.next_event().await.unwrap().is_ok());
        xs.with_transport(|t| t.faults.push_back(Fault::Len(5000)));
        xsd.borrow_mut().write("/w/x", "1").unwrap();
        assert!(matches!(
            w.next_event().await,
            Some(Err(XenstoreError::Protocol(
                XenstoreProtocolError::Framing(_)
            )))
        ));
        assert!(w.next_event().await.is_none());
    });
}
