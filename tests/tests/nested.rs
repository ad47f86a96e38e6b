//! Nested-Xen integration tests: every scenario runs in ONE boot of Xen + dom0 inside QEMU.
//!
//! The first test that needs results builds the images, boots the VM with all scenarios and
//! parses the serial log ([`xenia_tests::session`]); each test then checks its scenario.
//!
//! These tests are `#[ignore]`d (a plain `cargo test` must not boot a VM for minutes) and refuse
//! to run unless `XENIA_NESTED=1`, so they can never pass without running. `scripts/test` runs
//! them: `XENIA_NESTED=1 cargo test -p xenia-tests --test nested -- --ignored`.

use std::sync::OnceLock;

use xenia_tests::serial::Outcome;
use xenia_tests::session::{target_dir, Scenario, ScenarioResult, Session};
use xenia_tests::xl::XlValue;

/// A distinctive command line for hello: it must come back exactly.
const HELLO_CMDLINE: &str = "xenia-test-token=abc123 ip=10.0.0.2/24";
/// A second hello with other memory and command line, so neither can be a constant.
const HELLO_BIG_MEMORY: u64 = 48;
const HELLO_BIG_CMDLINE: &str = "xenia-test-token=zz9-plural-z-alpha second=1";

// Scenarios of other areas live in their own modules (one owner each); all run in this boot.
#[path = "nested/block.rs"]
mod block;
#[path = "nested/debug.rs"]
mod debug;
#[path = "nested/gdb.rs"]
mod gdb;
#[path = "nested/libvirt.rs"]
mod libvirt;
#[path = "nested/lifecycle.rs"]
mod lifecycle;
#[path = "nested/net.rs"]
mod net;

/// Every scenario, or with `XENIA_SCENARIOS=a,b` only those named (for running a few tests:
/// the others then fail for want of their scenario).
fn scenarios() -> Vec<Scenario> {
    let mut all = core_scenarios();
    all.extend(net::scenarios());
    all.extend(block::scenarios());
    all.extend(debug::scenarios());
    all.extend(gdb::scenarios());
    all.extend(lifecycle::scenarios());
    all.extend(libvirt::scenarios());
    if let Ok(only) = std::env::var("XENIA_SCENARIOS") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        all.retain(|s| only.contains(&s.name.as_str()));
    }
    all
}

fn core_scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("hello", "hello").cmdline(HELLO_CMDLINE),
        Scenario::new("hello-48m", "hello")
            .set("memory", XlValue::Int(HELLO_BIG_MEMORY))
            .cmdline(HELLO_BIG_CMDLINE),
        Scenario::new("panic", "panic"),
        Scenario::new("xenstore", "xenstore")
            .timeout(90)
            .dom0(XENSTORE_DOM0_STEPS),
    ]
}

/// What dom0 says to the xenstore guest: a token it must read through its watch.
const DOM0_TOKEN: &str = "dom0-token-4711";

/// dom0's side of the xenstore scenario: read the guest's key, write one for it, `xl reboot` it,
/// wait for the new domain to come up, then `xl shutdown -w` it.
const XENSTORE_DOM0_STEPS: &str = r#"
D=$(xl domid "$d")
for i in $(seq 1 120); do xenstore-read "/local/domain/$D/data/xenia-greeting" >/dev/null 2>&1 && break; sleep 0.25; done
xenia_run "$d" xenstore-read "/local/domain/$D/data/xenia-greeting"
xenia_run "$d" xenstore-write "/local/domain/$D/data/from-dom0" "dom0-token-4711"
for i in $(seq 1 120); do grep -q "waiting for the toolstack" "$XENIA_CONSOLE_DIR/guest-$d.log" 2>/dev/null && break; sleep 0.25; done
T1=$(xl list "$d" | awk 'NR == 2 { print $6 }'); sleep 3; T2=$(xl list "$d" | awk 'NR == 2 { print $6 }')
xenia_run "$d" echo "idle cpu seconds: $T1 $T2"
xenia_run "$d" xl reboot "$d"
D2=
for i in $(seq 1 160); do
    D2=$(xl domid "$d" 2>/dev/null)
    [ -n "$D2" ] && [ "$D2" != "$D" ] && xenstore-read "/local/domain/$D2/data/xenia-greeting" >/dev/null 2>&1 && break
    sleep 0.25
done
xenia_run "$d" echo "domids: first $D after reboot $D2"
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

fn session() -> &'static Session {
    static SESSION: OnceLock<Result<Session, String>> = OnceLock::new();
    assert_eq!(
        std::env::var("XENIA_NESTED").as_deref(),
        Ok("1"),
        "nested tests need XENIA_NESTED=1 (they boot QEMU); use scripts/test"
    );
    let s = SESSION.get_or_init(|| {
        let dir = target_dir().join("xen/nested");
        let s = Session::run(&dir, &scenarios());
        if let Ok(s) = &s {
            let f = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1} s"));
            s.note(&format!(
                "nested session: dom0 ready {} after QEMU start, job done at {}, boot status {}, \
                 images {:?}, log {}",
                f(s.log.boot_secs()),
                f(s.log.jobdone_host_secs),
                s.boot_status,
                s.image_sizes,
                s.log_path.display()
            ));
        }
        s
    });
    match s {
        Ok(s) => s,
        Err(e) => panic!("nested session failed: {e}"),
    }
}

/// The scenario's result and verified console, or a panic explaining what is missing.
fn scenario(name: &str) -> (ScenarioResult<'static>, &'static [String]) {
    let s = session();
    let r = s.scenario(name).unwrap_or_else(|e| panic!("{e}"));
    let console = r.console().unwrap_or_else(|e| {
        panic!(
            "{name}: console not usable: {e}\nstreamed: {:#?}\nserial log tail:\n{}",
            r.report.streamed,
            s.log_tail(30)
        )
    });
    s.note(&r.timing());
    (r, console)
}

/// Assert the outcome, showing the console and hypervisor log when it is wrong.
fn assert_outcome(r: &ScenarioResult<'_>, console: &[String], want: Outcome) {
    assert_eq!(
        r.report.outcome.as_ref(),
        Some(&want),
        "{}: wrong outcome\nconsole:\n{}\nxl dmesg:\n{}\ndom0:\n{}",
        r.name,
        console.join("\n"),
        r.report.dmesg.join("\n"),
        r.report.dom0.join("\n")
    );
}

/// The value after `prefix` on the first console line starting with it.
fn field<'a>(console: &'a [String], prefix: &str) -> &'a str {
    console
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| {
            panic!(
                "no console line starts with {prefix:?}:\n{}",
                console.join("\n")
            )
        })
}

fn check_hello(name: &str, want_cmdline: &str) {
    let (r, console) = scenario(name);
    assert_outcome(&r, console, Outcome::Poweroff);
    let memory = r.config.int("memory").expect("config has memory");

    // The four lines, in this order.
    let pos = |prefix: &str| {
        console
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name}: no line {prefix:?} in\n{}", console.join("\n")))
    };
    let hello = console
        .iter()
        .position(|l| l == "hello from xenia")
        .unwrap_or_else(|| panic!("{name}: no 'hello from xenia' in\n{}", console.join("\n")));
    let order = [
        hello,
        pos("memory: "),
        pos("cmdline: "),
        pos("entry to main: "),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{name}: lines out of order: {console:#?}"
    );

    assert_eq!(
        field(console, "memory: "),
        format!("{memory} MiB"),
        "{name}: memory"
    );
    assert_eq!(field(console, "cmdline: "), want_cmdline, "{name}: cmdline");
    let ns = field(console, "entry to main: ");
    let ns: u64 = ns
        .strip_suffix(" ns")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name}: bad 'entry to main' value {ns:?}"));
    assert!(
        ns > 0 && ns < 10_000_000_000,
        "{name}: entry to main {ns} ns is not plausible"
    );
    session().note(&format!(
        "{name}: entry to main {:.3} ms (guest clock), memory {memory} MiB",
        ns as f64 / 1e6
    ));
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn hello_prints_memory_cmdline_and_boot_time_then_powers_off() {
    check_hello("hello", HELLO_CMDLINE);
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn hello_reports_its_own_memory_and_cmdline() {
    assert_ne!(HELLO_BIG_MEMORY, 32);
    check_hello("hello-48m", HELLO_BIG_CMDLINE);
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn panic_prints_message_and_location_then_crashes() {
    let (r, console) = scenario("panic");
    assert_outcome(&r, console, Outcome::Crash);
    let line = console
        .iter()
        .find(|l| l.contains("panicked at") && l.contains("deliberate panic"))
        .unwrap_or_else(|| panic!("panic: no panic message in\n{}", console.join("\n")));
    assert!(
        has_file_line(line),
        "panic: no file:line in the panic message {line:?}"
    );
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn xenstore_watch_reboot_and_shutdown() {
    let s = session();
    let r = s.scenario("xenstore").unwrap_or_else(|e| panic!("{e}"));
    // After a reboot the console log holds both boots; use it as dom0 dumped it.
    let console = &r.report.log;
    s.note(&r.timing());
    let show = || {
        format!(
            "console:\n{}\ndom0:\n{}\nxl dmesg:\n{}",
            console.join("\n"),
            r.report.dom0.join("\n"),
            r.report.dmesg.join("\n")
        )
    };
    assert_outcome(&r, console, Outcome::Poweroff);

    // Who it is, from xenstore, on both boots, with a new domid after the reboot.
    let ids: Vec<&str> = console
        .iter()
        .filter_map(|l| l.strip_prefix("xenstore: domid="))
        .collect();
    assert_eq!(ids.len(), 2, "two boots expected\n{}", show());
    for id in &ids {
        let (domid, rest) = id.split_once(' ').unwrap_or((id, ""));
        assert!(
            domid.parse::<u32>().is_ok_and(|d| d > 0),
            "domid {domid:?}\n{}",
            show()
        );
        assert!(
            rest.starts_with("name=xenstore vm=/vm/"),
            "{rest:?}\n{}",
            show()
        );
    }
    assert_ne!(
        ids[0].split(' ').next(),
        ids[1].split(' ').next(),
        "the rebooted domain has a new domid\n{}",
        show()
    );

    // dom0 read what the guest wrote; the guest read what dom0 wrote (through its watch).
    assert!(
        r.report.dom0.iter().any(|l| l.trim() == "hello-from-xenia"),
        "dom0 did not read the guest's key\n{}",
        show()
    );
    assert!(
        console
            .iter()
            .any(|l| l == &format!("xenstore: dom0 says {DOM0_TOKEN}")),
        "the guest did not get dom0's key\n{}",
        show()
    );

    // The timer: 100 ms asked, measured by the guest clock.
    let ms: u64 = field(console, "timer: slept 100 ms, measured ")
        .strip_suffix(" ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad timer line\n{}", show()));
    assert!(
        (100..2000).contains(&ms),
        "slept {ms} ms for 100\n{}",
        show()
    );

    // Waiting in a watch, the guest uses no CPU: its CPU time stays flat over 3 s.
    let idle = r
        .report
        .dom0
        .iter()
        .find_map(|l| l.strip_prefix("idle cpu seconds: "))
        .unwrap_or_else(|| panic!("no idle cpu line\n{}", show()));
    let t: Vec<f64> = idle
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    assert_eq!(t.len(), 2, "bad idle cpu line {idle:?}");
    assert!(
        t[1] - t[0] < 0.15,
        "idle guest used {:.1} s of CPU in 3 s",
        t[1] - t[0]
    );

    // Both toolstack requests were seen and honoured, in order.
    let pos = |needle: &str| {
        console
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} on the console\n{}", show()))
    };
    assert!(pos("xenia: reboot requested") < pos("xenia: poweroff requested"));
    assert!(
        r.report
            .dom0
            .iter()
            .any(|l| l.contains("[exit 0] timeout 30 xl shutdown -w")),
        "xl shutdown -w did not finish cleanly\n{}",
        show()
    );
}

/// Whether the text after "panicked at " starts with `<path>.rs:<line>`.
fn has_file_line(line: &str) -> bool {
    let Some(rest) = line.split("panicked at ").nth(1) else {
        return false;
    };
    let Some((path, after)) = rest.split_once(".rs:") else {
        return false;
    };
    !path.is_empty()
        && !path.contains(' ')
        && after.chars().next().is_some_and(|c| c.is_ascii_digit())
}

#[test]
fn file_line_detection() {
    assert!(has_file_line(
        "panicked at examples/panic/src/main.rs:9:9: deliberate panic"
    ));
    assert!(!has_file_line("panicked at somewhere: deliberate panic"));
    assert!(!has_file_line("panicked at x.rs:: deliberate panic"));
    assert!(!has_file_line("deliberate panic"));
}
