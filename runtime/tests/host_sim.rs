//! The runtime on the host against the simulated Xen host: executor, timers on the simulated
//! clock, and xenstore. One test: the runtime boots once a process.

use std::time::Duration;

#[test]
fn runtime_runs_against_the_simulator() {
    let sim = xenia_sim::runtime::boot();
    let t0 = sim.now_ns();

    let out = xenia::block_on(async {
        let xs = xenia::xenstore();
        xs.write("data/from-runtime", "yes").await.unwrap();

        // Timers run on simulated time: the guest blocks, the simulator jumps its clock.
        let start = xenia::time::Instant::now();
        xenia::sleep(Duration::from_millis(250)).await;
        let slept = start.elapsed();

        // Tasks run concurrently and join.
        let a = xenia::spawn(async {
            xenia::sleep(Duration::from_millis(30)).await;
            1
        });
        let b = xenia::spawn(async {
            xenia::sleep(Duration::from_millis(10)).await;
            2
        });
        let sum = a.await + b.await;

        // timeout() gives up on a future that never completes.
        let never = xenia::timeout(Duration::from_millis(50), core::future::pending::<()>()).await;
        (slept, sum, never)
    });
    assert!(
        out.0 >= Duration::from_millis(250) && out.0 < Duration::from_millis(260),
        "{:?}",
        out.0
    );
    assert_eq!(out.1, 3);
    assert_eq!(out.2, Err(xenia::Elapsed));
    assert!(
        sim.now_ns() - t0 >= 330_000_000,
        "simulated time advanced by the sleeps"
    );
    assert_eq!(
        sim.xenstored()
            .borrow_mut()
            .read_string("/local/domain/1/data/from-runtime")
            .unwrap(),
        "yes"
    );
    // The guest never busy-polled: a handful of blocks, not thousands of yields.
    let polls = sim.with_host(|h| h.hypercall_counts[xenia_xen::hypercall::SCHED_OP as usize]);
    assert!(polls < 200, "{polls} sched_op calls");
}
