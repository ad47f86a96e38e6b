//! Nested-Xen tests of crash reports (they run in the same boot as the others; see `scenarios()`
//! in nested.rs): the guest prints its call stack (`backtrace:` lines and its build id) and
//! `scripts/symbolize` names the frames with the unstripped ELF scripts/build kept.
//!
//! - `panic` (declared in nested.rs): `panic!` in `main`; the named stack must lead from core's
//!   panic machinery through `main` at the panic's own file:line to `_start`.
//! - `panic-fault`: the panic example with `crash=page-fault`, a spawned task reading an
//!   unmapped address: the exception report (cr2 = that address) and the task's stack.
//! - `panic-oom`: `crash=oom`, an allocation larger than the domain: the allocator's failure
//!   path reports the request, the heap and the stack.
//! - `http-dump`: the http example serving on 10.0.0.2:80; dom0 holds a keep-alive connection
//!   open (bash's /dev/tcp), writes the guest's `data/xenia/dump` as the README says, and the
//!   console must show the introspection dump listing the listener and that connection.
//! - `panic-core`: the panic example with `crash=state` panics in `panic_with_state`, whose local
//!   `checksum` comes from `seed=`; dom0 runs the README's core-dump commands on the crashed
//!   (preserved) domain: `xl dump-core`, `xenia-coredump` (Xen's format to an ELF core), then
//!   `gdb -batch` with the debug ELF: `bt` must lead from the panic site through `main`, and
//!   `print/x checksum` in the panic site's frame must give the value the panic message printed.
//! - `panic-coredump`: the same crash with `on_crash = "coredump-destroy"`: xl writes the core
//!   itself; converted, gdb's `bt` names the panic site and `main`.

use std::path::Path;
use std::process::Command;
use xenia_tests::backtrace::{named_backtraces, Frame};
use xenia_tests::serial::Outcome;
use xenia_tests::session::{repo_root, target_dir, Scenario};
use xenia_tests::xl::XlValue;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("panic-fault", "panic").cmdline("crash=page-fault"),
        Scenario::new("panic-oom", "panic").cmdline("crash=oom"),
        Scenario::new("http-dump", "http")
            .timeout(120)
            .dom0(HTTP_DUMP_DOM0_STEPS),
        Scenario::new("panic-core", "panic")
            .cmdline(&format!("crash=state seed={CORE_SEED}"))
            // Half the example's memory: the dump and gdb's reading take half as long in TCG.
            .set("memory", XlValue::Int(CORE_MEMORY_MIB))
            .timeout(300)
            .file(coredump_tool())
            // scripts/build writes it there for the session (see `Session::debug_dir`).
            .file(target_dir().join("xen/nested-debug/panic.debug"))
            .dom0(PANIC_CORE_DOM0_STEPS),
        Scenario::new("panic-coredump", "panic")
            .cmdline(&format!("crash=state seed={CORE_SEED}"))
            // Half the example's memory: the dump and gdb's reading take half as long in TCG.
            .set("memory", XlValue::Int(CORE_MEMORY_MIB))
            .set("on_crash", XlValue::Str("coredump-destroy".into()))
            .timeout(300)
            .file(coredump_tool())
            .file(target_dir().join("xen/nested-debug/panic.debug"))
            .dom0(PANIC_COREDUMP_DOM0_STEPS),
    ]
}

/// dom0's side of `panic-coredump`: xl writes the core itself (`on_crash =
/// "coredump-destroy"`, into /var/lib/xen/dump/<name>) and destroys the domain; then the
/// README's conversion and `gdb -batch -ex bt`.
const PANIC_COREDUMP_DOM0_STEPS: &str = r#"
for i in $(seq 1 480); do
    [ -s "/var/lib/xen/dump/$d" ] && ! xl list "$d" >/dev/null 2>&1 && break
    sleep 0.25
done
cp /job/xenia-coredump /tmp/xenia-coredump && chmod +x /tmp/xenia-coredump
xenia_run "$d" ls -l "/var/lib/xen/dump/$d"
xenia_run "$d" /tmp/xenia-coredump "/var/lib/xen/dump/$d" /tmp/panic.elf
xenia_run "$d" timeout 200 gdb -batch -ex bt /job/panic.debug /tmp/panic.elf
rm -f "/var/lib/xen/dump/$d" /tmp/panic.elf
"#;

/// The `seed=` of `panic-core` (the guest's `checksum` derives from it).
const CORE_SEED: u64 = 271_828;
/// The memory of the core-dump scenarios (MiB).
const CORE_MEMORY_MIB: u64 = 16;

/// The converter, built for the host (dom0 runs the same glibc) with the README's `cargo build
/// --release -p xenia-coredump`, in this test run's target directory.
fn coredump_tool() -> std::path::PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "xenia-coredump"])
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("run cargo build --release -p xenia-coredump");
    assert!(
        status.success(),
        "cargo build --release -p xenia-coredump: {status}"
    );
    target_dir().join("release/xenia-coredump")
}

/// dom0's side of `panic-core`: wait until the domain has crashed (on_crash = "preserve" keeps
/// it), then the README's commands: `xl dump-core`, `xenia-coredump`, `gdb -batch`. For the
/// record, also what gdb makes of Xen's own file and of the registers as Xen saved them.
const PANIC_CORE_DOM0_STEPS: &str = r#"
for i in $(seq 1 240); do
    case $(xl list "$d" 2>/dev/null | awk 'NR == 2 { print $5 }') in *c*) break ;; esac
    sleep 0.25
done
cp /job/xenia-coredump /tmp/xenia-coredump && chmod +x /tmp/xenia-coredump
xenia_run "$d" xl dump-core "$d" /tmp/panic.core
xenia_run "$d" /tmp/xenia-coredump /tmp/panic.core /tmp/panic.elf
xenia_run "$d" timeout 200 gdb -batch -ex bt /job/panic.debug /tmp/panic.elf
N=$(sed -n 's/^#\([0-9]*\) .* in panic::panic_with_state .*/\1/p' "$XENIA_RUN/run.out" | head -n 1)
xenia_run "$d" timeout 200 gdb -batch -ex "frame ${N:-none}" -ex 'print/x checksum' /job/panic.debug /tmp/panic.elf
xenia_run "$d" timeout 100 gdb -batch -ex 'info registers rip' -ex bt /job/panic.debug /tmp/panic.core
xenia_run "$d" /tmp/xenia-coredump --raw-registers /tmp/panic.core /tmp/panic-raw.elf
xenia_run "$d" timeout 100 gdb -batch -ex bt /job/panic.debug /tmp/panic-raw.elf
rm -f /tmp/panic.core /tmp/panic.elf /tmp/panic-raw.elf
"#;

/// The output of the dom0 command whose `[exit N] CMD` line starts with `cmd`: its exit status
/// and lines.
fn dom0_command<'a>(dom0: &'a [String], cmd: &str) -> Option<(i32, Vec<&'a str>)> {
    let end = dom0.iter().position(|l| {
        l.strip_prefix("[exit ")
            .and_then(|r| r.split_once("] "))
            .is_some_and(|(_, c)| c.starts_with(cmd))
    })?;
    let rc = dom0[end]
        .strip_prefix("[exit ")?
        .split_once(']')?
        .0
        .parse()
        .ok()?;
    let start = dom0[..end]
        .iter()
        .rposition(|l| l.starts_with("[exit "))
        .map_or(0, |i| i + 1);
    Some((rc, dom0[start..end].iter().map(String::as_str).collect()))
}

/// dom0's side of `http-dump`: wait for the listener, hold a keep-alive connection open (one
/// request answered, then idle), ask for a dump with the README's command, wait for its last
/// line on the console, then read the key back (the guest empties it) and shut down.
const HTTP_DUMP_DOM0_STEPS: &str = r#"
D=$(xl domid "$d")
LOG="$XENIA_CONSOLE_DIR/guest-$d.log"
for i in $(seq 1 240); do grep -q "http: listening on" "$LOG" 2>/dev/null && break; sleep 0.25; done
bash -c 'exec 3<>/dev/tcp/10.0.0.2/80 && printf "GET /health HTTP/1.1\r\nHost: xenia\r\n\r\n" >&3 && sleep 20' &
HOLD=$!
sleep 3
xenia_run "$d" xenstore-write "/local/domain/$D/data/xenia/dump" 1
for i in $(seq 1 120); do grep -q "xenia-dump: end" "$LOG" 2>/dev/null && break; sleep 0.25; done
xenia_run "$d" xenstore-read "/local/domain/$D/data/xenia/dump"
kill $HOLD 2>/dev/null
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

/// The console, symbolized, and its one named backtrace.
fn named(name: &str, console: &[String]) -> (Vec<String>, Vec<Frame>) {
    let s = super::session();
    let out = s
        .symbolize(console)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut all = named_backtraces(&out);
    assert_eq!(
        all.len(),
        1,
        "{name}: want one named backtrace in\n{}",
        out.join("\n")
    );
    s.note(&format!("{name}: symbolized console:\n{}", out.join("\n")));
    (out.clone(), all.remove(0))
}

/// The position of the first frame (from `from` on) whose function contains `function` (and
/// whose location is `location`, if given).
fn find(
    frames: &[Frame],
    from: usize,
    function: &str,
    location: Option<&str>,
    out: &[String],
) -> usize {
    frames
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, f)| {
            f.function.contains(function)
                && location.is_none_or(|l| f.location.as_deref() == Some(l))
        })
        .map(|(i, _)| i)
        .unwrap_or_else(|| {
            panic!(
                "no frame {function:?} at {location:?} after frame {from} in\n{}",
                out.join("\n")
            )
        })
}

/// `file:line` of the first line of examples/panic/src/main.rs containing `needle`.
fn panic_example_line(needle: &str) -> String {
    let file = "examples/panic/src/main.rs";
    let text = std::fs::read_to_string(repo_root().join(file)).expect("read the panic example");
    let n = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {file}"));
    format!("{file}:{}", n + 1)
}

/// The build id in the `backtrace: build-id` line.
fn console_build_id(console: &[String]) -> &str {
    let ids: Vec<&str> = console
        .iter()
        .filter_map(|l| l.strip_prefix("backtrace: build-id "))
        .collect();
    assert_eq!(ids.len(), 1, "one build id line in\n{}", console.join("\n"));
    ids[0]
}

/// The GNU build id of an ELF file, as `readelf -n` reports it (the README's command).
fn readelf_build_id(path: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(path)
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf -n {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .unwrap_or_else(|| panic!("{}: no build id", path.display()))
}

/// The raw backtrace ends at the bottom of the stack (not cut off by a bad frame).
fn assert_complete_walk(name: &str, console: &[String]) {
    let end = console
        .iter()
        .find(|l| l.starts_with("backtrace: end ("))
        .unwrap_or_else(|| panic!("{name}: no end of backtrace in\n{}", console.join("\n")));
    assert!(
        end.ends_with(", stack ends)"),
        "{name}: the walk stopped early: {end}"
    );
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn panic_backtrace_names_main_at_the_panic_site() {
    let (r, console) = super::scenario("panic");
    super::assert_outcome(&r, console, Outcome::Crash);
    assert_complete_walk("panic", console);

    // The image that ran, the debug ELF and the console carry one build id.
    let s = super::session();
    let id = console_build_id(console);
    let job = s.log_path.parent().expect("session dir");
    assert_eq!(readelf_build_id(&job.join("panic.xen")), id, "image");
    assert_eq!(
        readelf_build_id(&s.debug_dir.join("panic.debug")),
        id,
        "debug ELF"
    );

    // The panic message's file:line is where the named stack says main called the panic.
    let msg = console
        .iter()
        .find_map(|l| l.strip_prefix("panicked at "))
        .unwrap_or_else(|| panic!("no panic message in\n{}", console.join("\n")));
    let mut parts = msg.splitn(3, ':');
    let site = format!(
        "{}:{}",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    assert_eq!(site, panic_example_line("panic!(\"deliberate panic"));

    let (out, frames) = named("panic", console);
    let machinery = find(&frames, 0, "core::panicking::panic_fmt", None, &out);
    let main = find(
        &frames,
        machinery + 1,
        "__xenia_user_main",
        Some(&site),
        &out,
    );
    let start = find(&frames, main + 1, "xenia_start", None, &out);
    assert_eq!(
        frames.last().map(|f| f.function.as_str()),
        Some("_start"),
        "outermost frame\n{}",
        out.join("\n")
    );
    assert!(start < frames.len());
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn page_fault_in_a_spawned_task_prints_its_backtrace() {
    let (r, console) = super::scenario("panic-fault");
    super::assert_outcome(&r, console, Outcome::Crash);
    let addr = super::field(console, "about to read ");
    let addr = addr.split(' ').next().unwrap_or("");
    let fault = console
        .iter()
        .find(|l| l.starts_with("xenia: fatal page fault (vector 14)"))
        .unwrap_or_else(|| panic!("no page fault report in\n{}", console.join("\n")));
    assert!(
        fault.ends_with(&format!(" cr2 {addr}")),
        "fault address: want {addr} in {fault:?}"
    );
    assert!(
        console.iter().any(|l| l.starts_with("backtrace: #0 pc 0x")),
        "frame 0 is the faulting instruction\n{}",
        console.join("\n")
    );
    assert_complete_walk("panic-fault", console);

    let (out, frames) = named("panic-fault", console);
    let read = panic_example_line("read_volatile(addr");
    let at = find(&frames, 0, "panic::read_word", Some(&read), &out);
    let task = find(
        &frames,
        at + 1,
        "panic::faulting_task::{{closure}}",
        None,
        &out,
    );
    // Polled by the executor as a spawned task, not inline in main.
    let exec = find(&frames, task + 1, "xenia::exec::", None, &out);
    find(&frames, exec + 1, "xenia_start", None, &out);
    // Run by the executor on its own, not inside main's poll.
    assert!(
        !frames
            .iter()
            .any(|f| f.function.contains("__xenia_user_main")),
        "main is on the task's stack
{}",
        out.join("\n")
    );
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn allocation_failure_prints_the_heap_and_a_backtrace() {
    let (r, console) = super::scenario("panic-oom");
    super::assert_outcome(&r, console, Outcome::Crash);
    let bytes: u64 = super::field(console, "about to allocate ")
        .trim_end_matches(" bytes")
        .parse()
        .expect("bytes requested");
    let want = format!("xenia: out of memory: allocating {bytes} bytes (align 1) failed");
    assert!(
        console.contains(&want),
        "no {want:?} in\n{}",
        console.join("\n")
    );
    // The heap's counters: the request exceeds what the heap ever had.
    let heap = super::field(console, "xenia: heap: ");
    let number_before = |word: &str| -> u64 {
        let words: Vec<&str> = heap.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let i = words
            .iter()
            .position(|w| *w == word)
            .unwrap_or_else(|| panic!("no {word:?} in {heap:?}"));
        words[i - 2].parse().expect("a number")
    };
    let claimed = number_before("claimed");
    assert!(
        claimed > 0 && claimed < bytes,
        "claimed {claimed} vs {bytes}"
    );
    assert_complete_walk("panic-oom", console);

    let (out, frames) = named("panic-oom", console);
    let handler = find(&frames, 0, "ReportOom", None, &out);
    let alloc = find(&frames, handler + 1, "panic::allocate", None, &out);
    find(&frames, alloc + 1, "__xenia_user_main", None, &out);
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_dump_lists_its_listener_and_connection() {
    let (r, console) = super::scenario("http-dump");
    let all = || {
        format!(
            "console:\n{}\ndom0:\n{}",
            console.join("\n"),
            r.report.dom0.join("\n")
        )
    };
    let dump: Vec<&str> = console
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("xenia-dump: begin "))
        .take_while(|l| !l.starts_with("xenia-dump: end"))
        .collect();
    assert!(!dump.is_empty(), "no dump on the console\n{}", all());
    assert!(
        console.iter().any(|l| l == "xenia-dump: end"),
        "the dump did not end\n{}",
        all()
    );
    super::session().note(&format!("http-dump: the dump:\n{}", dump.join("\n")));
    let has = |prefix: &str| dump.iter().any(|l| l.starts_with(prefix));
    assert!(has("xenia-dump: listener port=80 "), "{}", all());
    assert!(
        has("xenia-dump: tcp state=ESTABLISHED local=10.0.0.2:80 remote=10.0.0.1:"),
        "dom0's connection is listed\n{}",
        all()
    );
    assert!(has("xenia-dump: vif index=0 "), "{}", all());
    assert!(
        dump.iter()
            .any(|l| l.starts_with("xenia-dump: task id=") && l.contains("spawned=examples/http/")),
        "the app's tasks carry their spawn location\n{}",
        all()
    );
    assert!(has("xenia-dump: grants entries="), "{}", all());
    assert!(has("xenia-dump: heap in_use="), "{}", all());
    assert!(!dump.iter().any(|l| l.contains("busy")), "{}", all());
    // The guest wrote the key back empty; the domain then shut down on request.
    let read = r
        .report
        .dom0
        .iter()
        .position(|l| l.contains("[exit 0] xenstore-read"))
        .unwrap_or_else(|| panic!("xenstore-read of the key failed\n{}", all()));
    assert!(
        r.report.dom0[..read]
            .iter()
            .rev()
            .take_while(|l| !l.contains("[exit"))
            .all(|l| l.trim().is_empty()),
        "the key is empty after the dump\n{}",
        all()
    );
    super::assert_outcome(&r, console, Outcome::Poweroff);
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn core_dump_of_a_crash_loads_in_gdb_with_its_stack_and_a_variable() {
    let (r, console) = super::scenario("panic-core");
    let dom0 = &r.report.dom0;
    let all = || {
        format!(
            "console:\n{}\ndom0:\n{}",
            console.join("\n"),
            dom0.join("\n")
        )
    };
    super::assert_outcome(&r, console, Outcome::Crash);
    super::session().note(&format!("panic-core: dom0:\n{}", dom0.join("\n")));

    // The value the guest computed, as its panic message printed it (and as computed here).
    let want = CORE_SEED.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    let msg = format!("panic with state from the panic example: checksum {want:#x}");
    assert!(
        console.iter().any(|l| l.ends_with(&msg)),
        "no {msg:?}\n{}",
        all()
    );

    for cmd in ["xl dump-core", "/tmp/xenia-coredump /tmp/panic.core"] {
        let (rc, _) = dom0_command(dom0, cmd).unwrap_or_else(|| panic!("no {cmd}\n{}", all()));
        assert_eq!(rc, 0, "{cmd} failed\n{}", all());
    }
    let (rc, gdb) = dom0_command(dom0, "timeout 200 gdb -batch -ex bt /job/panic.debug")
        .unwrap_or_else(|| panic!("gdb did not run\n{}", all()));
    assert_eq!(rc, 0, "gdb bt failed\n{}", all());
    // bt: from the panic site's function through main, innermost first.
    assert_bt_through_main(&gdb, &all);

    // `frame N` (N from bt) selects the panic site's frame; its local has the guest's value.
    let (rc, gdb) = dom0_command(dom0, "timeout 200 gdb -batch -ex frame")
        .unwrap_or_else(|| panic!("gdb did not run\n{}", all()));
    assert_eq!(rc, 0, "gdb frame/print failed\n{}", all());
    assert!(
        gdb.iter()
            .any(|l| l.starts_with('#') && l.contains(" in panic::panic_with_state ")),
        "frame N is the panic site\n{}",
        all()
    );
    let printed = gdb
        .iter()
        .find_map(|l| l.strip_prefix("$1 = "))
        .unwrap_or_else(|| panic!("gdb printed no value\n{}", all()));
    assert_eq!(printed, format!("{want:#x}"), "checksum in gdb\n{}", all());

    // What the README says gdb makes of Xen's own file, and of the registers as Xen saved them
    // (inside the hypercall page, where the walk goes nowhere).
    let (_, xen) = dom0_command(dom0, "timeout 100 gdb -batch -ex info registers rip")
        .unwrap_or_else(|| panic!("gdb on Xen's file did not run\n{}", all()));
    assert!(
        xen.iter().any(|l| l.contains("not a core dump")),
        "gdb on Xen's dump-core\n{}",
        all()
    );
    let (_, raw) = dom0_command(dom0, "timeout 100 gdb -batch -ex bt /job/panic.debug")
        .unwrap_or_else(|| panic!("gdb on the raw registers did not run\n{}", all()));
    let first = raw.iter().find(|l| l.starts_with("#0 "));
    assert!(
        first.is_some_and(|l| l.contains("HYPERCALL_PAGE")),
        "with --raw-registers frame #0 is in the hypercall page\n{}",
        all()
    );
}

/// The frames (`#N ...` lines) of gdb's `bt` in `gdb`; asserts that the panic site's function
/// comes before main, and main before `xenia_start`.
fn assert_bt_through_main(gdb: &[&str], all: &dyn Fn() -> String) {
    let frames: Vec<&str> = gdb.iter().copied().filter(|l| l.starts_with('#')).collect();
    let pos = |from: usize, needle: &str| {
        frames
            .iter()
            .skip(from)
            .position(|f| f.contains(needle))
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("no frame {needle:?} after #{from} in gdb's bt\n{}", all()))
    };
    let site = pos(0, "panic::panic_with_state");
    assert!(
        frames[site].contains("examples/panic/src/main.rs:"),
        "the panic site's file:line\n{}",
        all()
    );
    let main = pos(site + 1, "__xenia_user_main");
    pos(main + 1, "xenia_start");
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn coredump_destroy_writes_a_core_that_gdb_reads() {
    let (r, console) = super::scenario("panic-coredump");
    let dom0 = &r.report.dom0;
    let all = || {
        format!(
            "console:\n{}\ndom0:\n{}",
            console.join("\n"),
            dom0.join("\n")
        )
    };
    super::assert_outcome(&r, console, Outcome::Crash);
    super::session().note(&format!("panic-coredump: dom0:\n{}", dom0.join("\n")));
    for cmd in [
        "ls -l /var/lib/xen/dump/",
        "/tmp/xenia-coredump /var/lib/xen/dump/",
    ] {
        let (rc, _) = dom0_command(dom0, cmd).unwrap_or_else(|| panic!("no {cmd}\n{}", all()));
        assert_eq!(rc, 0, "{cmd} failed\n{}", all());
    }
    let (rc, gdb) = dom0_command(dom0, "timeout 200 gdb -batch -ex bt /job/panic.debug")
        .unwrap_or_else(|| panic!("gdb did not run\n{}", all()));
    assert_eq!(rc, 0, "gdb failed\n{}", all());
    assert_bt_through_main(&gdb, &all);
}
