//! The PV console against the simulated xenconsoled: output, input, and a full ring.

use std::ptr::NonNull;
use xenia_sim::Guest;
use xenia_xen::console::Console;

#[test]
fn console_output_and_input_cross_the_ring() {
    let Guest { sim, boot, ev, .. } = Guest::new();
    ev.adopt(boot.console_port).unwrap();
    // SAFETY: the simulator's console page outlives the test; this is its only Console.
    let mut con =
        unsafe { Console::new(NonNull::new(boot.console_page).unwrap(), boot.console_port) }
            .unwrap();

    assert_eq!(con.write_some(b"hello console\n").unwrap(), 14);
    assert_eq!(sim.console_text(), "hello console\n");
    assert_eq!(con.pending_output().unwrap(), 0, "xenconsoled consumed it");

    // More than the 2048-byte ring: the writer gets a partial count and continues after the
    // backend drains.
    let big = vec![b'x'; 5000];
    let mut sent = 0;
    while sent < big.len() {
        let n = con.write_some(&big[sent..]).unwrap();
        assert!(n <= 2048);
        if n == 0 {
            sim.run();
        }
        sent += n;
    }
    assert_eq!(sim.console_text().len(), 14 + 5000);

    // Typed input arrives in `in` with an event.
    assert_eq!(sim.with_host(|h| h.console_input(b"typed line\n")), 11);
    assert_eq!(ev.scan(), 1);
    let mut buf = [0u8; 64];
    let n = con.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"typed line\n");
    assert_eq!(con.read(&mut buf).unwrap(), 0);
}
