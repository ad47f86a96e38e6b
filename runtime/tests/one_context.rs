//! The runtime's single-vCPU state refuses a second thread with a clear panic (on the guest
//! there is one vCPU; on the host a second thread would otherwise race on the task queue).

#[test]
fn a_second_thread_using_the_executor_panics_clearly() {
    let _sim = xenia_sim::runtime::boot();
    assert_eq!(xenia::block_on(async { 1 + 1 }), 2);
    let err = std::thread::spawn(|| {
        xenia::spawn(async {});
    })
    .join()
    .expect_err("a second thread must be refused");
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(msg.contains("second context"), "unexpected panic: {msg:?}");
    // The owning thread goes on as before.
    assert_eq!(xenia::block_on(async { 3 }), 3);
}
