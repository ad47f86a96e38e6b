//! Nested-Xen test of the GDB stub (runtime/src/gdb): gdb in dom0 debugs the http example over
//! the guest's second PV console, as the README's "Debugging a guest" says.
//!
//! `http-gdb`: the http example's variant with the stub (`scripts/build http+gdb`: its feature
//! `gdb`, off in the default image) with `debug=gdb` and xl `channel`s (console 1, served by QEMU in
//! dom0 with a pty). The guest stops at boot; dom0's gdb (Debian's gdb-minimal) loads the
//! unstripped ELF scripts/build kept for this session's image (`nested-debug/`, same build id),
//! attaches to the pty named in xenstore, sets a breakpoint on `xenia::net::tcp::on_accept` (run
//! once per accepted connection) and continues. A request from dom0 hits it; gdb prints the
//! listener's port (the first argument, `$rdi`) and the call stack, then detaches, which lets
//! the guest run on: the request must be answered.
//!
//! `panic-gdb`: the panic example with `debug=gdb`: gdb continues from the boot stop, the panic
//! stops the guest again, gdb shows the stack down to the panic site and detaches; the domain
//! then crashes as it does without gdb.

use xenia_tests::serial::Outcome;
use xenia_tests::session::{target_dir, Scenario};
use xenia_tests::xl::XlValue;

/// The channels `cargo xenia build` writes for `gdb = true` (cargo-xenia/src/xl.rs says why there is
/// a placeholder: xl 4.17 gives the first channel devid 0).
const GDB_CHANNELS: [&str; 2] = [
    "name=org.xenia.placeholder,connection=pty",
    "name=org.xenia.gdb,connection=pty",
];

pub fn scenarios() -> Vec<Scenario> {
    let channels = || XlValue::List(GDB_CHANNELS.iter().map(|c| c.to_string()).collect());
    vec![
        Scenario::new("http-gdb", "http+gdb")
            .cmdline("ip=10.0.0.2/24 gw=10.0.0.1 debug=gdb")
            .set("channel", channels())
            .file(target_dir().join("xen/nested-debug/http+gdb.debug"))
            .timeout(420)
            .dom0(HTTP_GDB_DOM0_STEPS),
        Scenario::new("panic-gdb", "panic")
            .cmdline("debug=gdb")
            .set("channel", channels())
            .file(target_dir().join("xen/nested-debug/panic.debug"))
            .timeout(300)
            .dom0(PANIC_GDB_DOM0_STEPS),
    ]
}

/// dom0's side of `panic-gdb`: gdb continues from the stop at boot, the panic stops the guest
/// again, gdb shows the stack, detaches, and the domain crashes as it would without gdb.
const PANIC_GDB_DOM0_STEPS: &str = r#"
D=$(xl domid "$d")
LOG="$XENIA_CONSOLE_DIR/guest-$d.log"
for i in $(seq 1 960); do grep -q "debug=gdb: stopped" "$LOG" 2>/dev/null && break; sleep 0.25; done
TTY=$(xenstore-read "/local/domain/$D/device/console/1/tty")
xenia_run "$d" timeout 300 gdb -nx -batch -ex 'set pagination off' -ex 'set confirm off'     -ex 'file /job/panic.debug' -ex "target remote $TTY" -ex 'continue' -ex 'bt 12' -ex 'detach'
"#;

/// dom0's side: the README's commands. The request waits in the background until the app
/// listens (which it does once gdb lets it run), then gdb attaches and waits for the hit.
const HTTP_GDB_DOM0_STEPS: &str = r#"
D=$(xl domid "$d")
LOG="$XENIA_CONSOLE_DIR/guest-$d.log"
for i in $(seq 1 960); do grep -q "debug=gdb: stopped" "$LOG" 2>/dev/null && break; sleep 0.25; done
TTY=
for i in $(seq 1 240); do
    TTY=$(xenstore-read "/local/domain/$D/device/console/1/tty" 2>/dev/null) && [ -n "$TTY" ] && break
    sleep 0.25
done
xenia_run "$d" echo "gdb-tty: $TTY"
xenia_run "$d" xenstore-ls -f "/local/domain/$D/device/console"
(
    for i in $(seq 1 960); do grep -q "http: listening on" "$LOG" 2>/dev/null && break; sleep 0.25; done
    sleep 2
    bash -c 'exec 3<>/dev/tcp/10.0.0.2/80 && printf "GET /health HTTP/1.0\r\nHost: xenia\r\n\r\n" >&3 && timeout 120 cat <&3' >/tmp/gdb-response 2>&1
) &
REQ=$!
xenia_run "$d" timeout 300 gdb -nx -batch -ex 'set pagination off' -ex 'set confirm off' \
    -ex 'file /job/http+gdb.debug' -ex "target remote $TTY" -ex 'break xenia::net::tcp::on_accept' \
    -ex 'continue' -ex 'printf "gdb-port: %d\n", $rdi' -ex 'bt 6' \
    -ex 'printf "gdb-pc-before: %lx\n", $pc' -ex 'stepi' -ex 'printf "gdb-pc-after: %lx\n", $pc' \
    -ex 'x/2xg $sp' -ex 'x/1xg 0' -ex 'detach'
wait $REQ
xenia_run "$d" cat /tmp/gdb-response
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn gdb_breaks_on_a_request_over_the_second_console() {
    let (r, console) = super::scenario("http-gdb");
    let dom0 = &r.report.dom0;
    let all = || {
        format!(
            "console:\n{}\ndom0:\n{}\nxl dmesg:\n{}",
            console.join("\n"),
            dom0.join("\n"),
            r.report.dmesg.join("\n")
        )
    };
    super::session().note(&format!("http-gdb: dom0:\n{}", dom0.join("\n")));
    assert!(
        console
            .iter()
            .any(|l| l.contains("debug=gdb: stopped, waiting for gdb")),
        "the guest did not stop for gdb\n{}",
        all()
    );
    assert!(
        dom0.iter().any(|l| l.contains("gdb-tty: /dev/pts/")),
        "no pty for console 1\n{}",
        all()
    );
    let has = |needle: &str| dom0.iter().any(|l| l.contains(needle));
    assert!(
        has("Breakpoint 1 at 0x"),
        "gdb set no breakpoint\n{}",
        all()
    );
    assert!(
        dom0.iter()
            .any(|l| l.contains("Breakpoint 1, ") && l.contains("on_accept")),
        "the request did not hit the breakpoint\n{}",
        all()
    );
    assert!(has("gdb-port: 80"), "gdb read the wrong port\n{}", all());
    assert!(
        dom0.iter()
            .any(|l| l.starts_with("#1") || l.contains(" #1 ") || l.contains("#1  0x")),
        "no caller frame in gdb's backtrace\n{}",
        all()
    );
    // stepi: one instruction (the trap flag), a few bytes on.
    let pc = |prefix: &str| {
        dom0.iter()
            .find_map(|l| l.split(prefix).nth(1))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or_else(|| panic!("no {prefix} line\n{}", all()))
    };
    let (before, after) = (pc("gdb-pc-before: "), pc("gdb-pc-after: "));
    assert!(
        after > before && after - before <= 15,
        "stepi went from {before:#x} to {after:#x}\n{}",
        all()
    );
    // Memory: the stack reads; address 0 (unmapped) is an error reply, and the guest lives on.
    assert!(
        has("Cannot access memory at address 0x0"),
        "reading address 0 was not refused\n{}",
        all()
    );
    assert!(has("[exit 0] timeout 300 gdb"), "gdb failed\n{}", all());
    assert!(
        has(r#"{"status":"ok"}"#),
        "the request was not answered after gdb detached\n{}",
        all()
    );
    super::assert_outcome(&r, console, Outcome::Poweroff);
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn gdb_stops_on_a_panic() {
    let (r, console) = super::scenario("panic-gdb");
    let dom0 = &r.report.dom0;
    let all = || {
        format!(
            "console:\n{}\ndom0:\n{}",
            console.join("\n"),
            dom0.join("\n")
        )
    };
    super::session().note(&format!("panic-gdb: dom0:\n{}", dom0.join("\n")));
    assert!(
        console
            .iter()
            .any(|l| l.contains("debug=gdb: stopped on the panic, waiting for gdb")),
        "the panic did not stop for gdb\n{}",
        all()
    );
    // After `continue`, gdb reports the panic's stop (SIGTRAP in the stub's int3) and its stack
    // reaches the panic handler and the example's main.
    let stop = dom0
        .iter()
        .position(|l| l.contains("SIGTRAP"))
        .unwrap_or_else(|| panic!("gdb saw no stop after continue\n{}", all()));
    let bt = &dom0[stop..];
    assert!(bt.iter().any(|l| l.contains("xenia::gdb::")), "{}", all());
    assert!(
        bt.iter()
            .any(|l| l.contains("xenia::panic::panic") || l.contains("rust_begin_unwind")),
        "{}",
        all()
    );
    assert!(
        bt.iter().any(|l| l.contains("examples/panic/src/main.rs")),
        "the stack reaches the panic site\n{}",
        all()
    );
    assert!(
        dom0.iter().any(|l| l.contains("[exit 0] timeout 300 gdb")),
        "gdb failed\n{}",
        all()
    );
    super::assert_outcome(&r, console, Outcome::Crash);
}
