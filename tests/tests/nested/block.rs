//! Nested-Xen scenarios of the block area (they run in the same boot as the others; see
//! `scenarios()` in nested.rs). Tests here use `super::session()` and the helpers there.
//!
//! - `kv-pattern`: the kv example in `kv.mode=pattern` writes a known pattern to its disk;
//!   dom0 compares the backing file (`cmp`, `od`) after the guest powered off.
//! - `kv-restart`: the kv example in `kv.mode=fill` PUTs keys one after the other, printing each
//!   acknowledgement; dom0 `xl destroy`s it in the middle of the stream, then `xl create`s it
//!   again on the same file, and the second boot checks every key it recovers (console and
//!   xenstore free: the store's own checks, reported on the console).

use std::fs;
use std::path::PathBuf;
use xenia_tests::serial::Outcome;
use xenia_tests::session::{target_dir, Scenario};
use xenia_tests::xl::XlValue;

/// Bytes of the raw pattern the guest writes at the start of the disk (examples/kv).
const PATTERN_BYTES: usize = 128 * 512;
/// Size of the pattern scenario's disk.
const PATTERN_DISK: u64 = 8 << 20;
/// Size of the restart scenario's disk.
const RESTART_DISK: u64 = 16 << 20;
/// Acknowledged PUTs dom0 waits for before it destroys the guest.
const ACKS_BEFORE_DESTROY: u32 = 40;

/// The pattern's 512-byte block `b`, as examples/kv writes it (an independent copy: the test
/// states what must be on the disk).
fn pattern_block(b: usize) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    let text = format!("xenia-kv block {b:06}\n");
    s[..text.len()].copy_from_slice(text.as_bytes());
    for (i, x) in s.iter_mut().enumerate().skip(32) {
        *x = ((b * 131 + i) % 251) as u8;
    }
    s
}

/// Host files for the scenarios, outside the session's directory (which is emptied).
fn files_dir() -> PathBuf {
    let d = target_dir().join("xen/nested-files/block");
    fs::create_dir_all(&d).expect("cannot create the block scenario files' directory");
    d
}

/// A zeroed disk image of `size` bytes named `name`.
fn blank_disk(name: &str, size: u64) -> PathBuf {
    let p = files_dir().join(name);
    let f = fs::File::create(&p).expect("cannot create a disk image");
    f.set_len(size).expect("cannot size the disk image");
    p
}

fn disk_spec(file: &str) -> XlValue {
    XlValue::List(vec![format!(
        "format=raw,vdev=xvda,access=rw,target=/job/{file}"
    )])
}

/// dom0's side of kv-pattern: wait for the guest to end, then look at the backing file.
const PATTERN_DOM0_STEPS: &str = r#"
for i in $(seq 1 400); do xl list "$d" >/dev/null 2>&1 || break; sleep 0.25; done
xenia_run "$d" cmp -n 65536 /job/kv-pattern.img /job/kv-pattern.expected
xenia_run "$d" cmp -n 1048576 /job/kv-pattern.img /dev/zero 65536 0
xenia_run "$d" od -A d -c -N 32 /job/kv-pattern.img
xenia_run "$d" od -A d -c -j 8388096 -N 32 /job/kv-pattern.img
"#;

/// dom0's side of kv-restart: wait for some acknowledged PUTs, destroy the guest in the middle
/// of its stream, report what run 1 acknowledged, boot it again (fill nothing, only check).
fn restart_dom0_steps() -> String {
    format!(
        r#"
L="$XENIA_CONSOLE_DIR/guest-$d.log"
for i in $(seq 1 1200); do [ "$(grep -c 'kv: acked' "$L" 2>/dev/null)" -ge {ACKS_BEFORE_DESTROY} ] && break; sleep 0.1; done
xenia_run "$d" xl destroy "$d"
cp "$L" "$XENIA_RUN/$d-run1.log"
xenia_run "$d" sh -c "echo run1 acked \$(grep -c 'kv: acked' $XENIA_RUN/$d-run1.log) done \$(grep -c 'kv: fill done' $XENIA_RUN/$d-run1.log)"
xenia_run "$d" sh -c "echo run1 last \$(grep 'kv: acked' $XENIA_RUN/$d-run1.log | tail -n 1)"
rm -f "$L"
sed 's/kv.n=[0-9]*/kv.n=0/' "/job/$d.xl" >"$XENIA_RUN/$d-2.xl"
xenia_run "$d" xl create "$XENIA_RUN/$d-2.xl"
for i in $(seq 1 600); do grep -q 'kv: fill done' "$L" 2>/dev/null && break; sleep 0.1; done
sleep 3
xenia_run "$d" xl list
"#
    )
}

/// PUTs dom0's background stream must have acknowledged before it destroys the guest.
const STREAM_ACKS_BEFORE_DESTROY: u32 = 8;

/// dom0's side of kv-http: PUT named keys over HTTP (busybox nc), then a stream of PUTs that
/// `xl destroy` cuts, `xl create` again on the same file, GET everything acknowledged back,
/// then `xl shutdown`.
fn http_dom0_steps() -> String {
    format!(
        r#"
kv_req() {{
    printf '%s %s HTTP/1.1\r\nHost: kv\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$1" "$2" "${{#3}}" "$3" | nc -w 20 10.0.0.2 80
}}
kv_show() {{ kv_req "$@"; echo; }}
kv_wait() {{
    for i in $(seq 1 60); do
        printf 'GET /kv HTTP/1.1\r\nConnection: close\r\n\r\n' | nc -w 3 10.0.0.2 80 2>/dev/null | grep -q '^HTTP/1.1 200' && return 0
        sleep 1
    done
    return 1
}}
L="$XENIA_CONSOLE_DIR/guest-$d.log"
xenia_run "$d" kv_wait
for k in 1 2 3 4 5; do xenia_run "$d" kv_show PUT /kv/key$k "named-value-$k-$d"; done
xenia_run "$d" kv_show DELETE /kv/key4 ""
xenia_run "$d" kv_show GET /kv ""
A="$XENIA_RUN/$d.acked"
: >"$A"
( i=0; while [ $i -lt 3000 ]; do
    if kv_req PUT /kv/s$i "stream-value-$i" 2>/dev/null | grep -q '^HTTP/1.1 201'; then echo $i >>"$A"; fi
    i=$((i + 1))
  done ) &
P=$!
for i in $(seq 1 1200); do [ "$(wc -l <"$A")" -ge {STREAM_ACKS_BEFORE_DESTROY} ] && break; sleep 0.1; done
xenia_run "$d" xl destroy "$d"
kill $P 2>/dev/null; wait $P 2>/dev/null
xenia_run "$d" echo "stream acked $(wc -l <"$A") last $(tail -n 1 "$A")"
rm -f "$L"
xenia_run "$d" xl create "/job/$d.xl"
xenia_run "$d" echo "phase 2"
xenia_run "$d" kv_wait
for k in 1 2 3 4 5; do xenia_run "$d" kv_show GET /kv/key$k ""; done
ok=0; bad=0
for i in $(cat "$A"); do
    v=$(kv_req GET /kv/s$i "" | tail -n 1)
    if [ "$v" = "stream-value-$i" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); xenia_run "$d" echo "bad s$i: $v"; fi
done
xenia_run "$d" echo "stream verify ok $ok bad $bad present $(kv_req GET /kv "" | grep -c '^s[0-9]')"
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#
    )
}

/// This area's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    let expected = files_dir().join("kv-pattern.expected");
    let bytes: Vec<u8> = (0..PATTERN_BYTES / 512).flat_map(pattern_block).collect();
    fs::write(&expected, bytes).expect("cannot write the expected pattern");
    let mut all = vec![Scenario::new("kv-pattern", "kv")
        .cmdline("kv.mode=pattern")
        .set("vif", XlValue::List(Vec::new()))
        .set("disk", disk_spec("kv-pattern.img"))
        .file(blank_disk("kv-pattern.img", PATTERN_DISK))
        .file(expected)
        .timeout(90)
        .dom0(PATTERN_DOM0_STEPS)];
    all.extend([
        Scenario::new("kv-restart", "kv")
            .cmdline("kv.mode=fill kv.n=5000")
            .set("vif", XlValue::List(Vec::new()))
            .set("disk", disk_spec("kv-restart.img"))
            .file(blank_disk("kv-restart.img", RESTART_DISK))
            .timeout(180)
            .dom0(&restart_dom0_steps()),
        Scenario::new("kv-http", "kv")
            .set("disk", disk_spec("kv-http.img"))
            .file(blank_disk("kv-http.img", RESTART_DISK))
            .timeout(300)
            .dom0(&http_dom0_steps()),
    ]);
    all
}

/// The dom0 output line of `cmd` (its `[exit N] cmd` line), or a panic listing dom0's output.
fn exit_line<'a>(dom0: &'a [String], cmd: &str) -> &'a str {
    dom0.iter()
        .find_map(|l| l.strip_suffix(cmd).and_then(|l| l.strip_prefix("[exit ")))
        .unwrap_or_else(|| panic!("dom0 did not run {cmd:?}:\n{}", dom0.join("\n")))
}

#[test]
#[ignore = "boots nested Xen (XENIA_NESTED=1, scripts/test)"]
fn kv_pattern_reaches_the_backing_file() {
    let (r, console) = super::scenario("kv-pattern");
    super::assert_outcome(&r, console, Outcome::Poweroff);
    let dom0 = &r.report.dom0;
    assert!(
        console.iter().any(|l| l.starts_with(
            "kv: pattern written and read back: 65536 bytes at 0, marker at sector 16383"
        )),
        "{}",
        console.join("\n")
    );
    assert_eq!(
        exit_line(
            dom0,
            "cmp -n 65536 /job/kv-pattern.img /job/kv-pattern.expected"
        ),
        "0] ",
        "the file holds the pattern:\n{}",
        dom0.join("\n")
    );
    assert_eq!(
        exit_line(dom0, "cmp -n 1048576 /job/kv-pattern.img /dev/zero 65536 0"),
        "0] ",
        "nothing written after the pattern:\n{}",
        dom0.join("\n")
    );
    let text = dom0.join("\n");
    assert!(
        text.contains("0000000   x   e   n   i   a   -   k   v       b   l   o   c   k       0"),
        "{text}"
    );
    assert!(
        text.contains("8388096   x   e   n   i   a   -   k   v       l   a   s   t       s   e"),
        "the last sector's marker:\n{text}"
    );
}

#[test]
#[ignore = "boots nested Xen (XENIA_NESTED=1, scripts/test)"]
fn kv_keeps_every_acknowledged_put_across_xl_destroy() {
    let (r, console) = super::scenario("kv-restart");
    let s = super::session();
    let dom0 = &r.report.dom0;
    let all = format!(
        "dom0:\n{}\nconsole (second boot):\n{}",
        dom0.join("\n"),
        console.join("\n")
    );
    // Run 1 was destroyed in the middle of its stream of PUTs.
    let counts = dom0
        .iter()
        .find_map(|l| l.strip_prefix("run1 acked "))
        .unwrap_or_else(|| panic!("no run-1 summary\n{all}"));
    let (acked, done) = counts
        .split_once(" done ")
        .unwrap_or_else(|| panic!("bad run-1 summary {counts:?}\n{all}"));
    let acked: u64 = acked.trim().parse().unwrap();
    assert!(acked >= u64::from(ACKS_BEFORE_DESTROY), "{all}");
    assert_eq!(
        done.trim(),
        "0",
        "run 1 must be destroyed mid-stream\n{all}"
    );
    let last: u64 = dom0
        .iter()
        .find_map(|l| l.strip_prefix("run1 last kv: acked fill-"))
        .unwrap_or_else(|| panic!("no last acked key\n{all}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(last + 1, acked, "acks are fill-0, fill-1, ...\n{all}");
    assert_eq!(
        exit_line(dom0, "xl create /run/xenia/kv-restart-2.xl"),
        "0] ",
        "{all}"
    );

    // Run 2 recovered every acknowledged key with its value, and nothing corrupt.
    super::assert_outcome(&r, console, Outcome::Poweroff);
    let recovered = console
        .iter()
        .find_map(|l| l.strip_prefix("kv: recovered records="))
        .unwrap_or_else(|| panic!("no recovery line\n{all}"));
    let intact: u64 = console
        .iter()
        .find_map(|l| l.strip_prefix("kv: fill keys intact: fill-0..fill-"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no intact-keys line\n{all}"))
        .parse()
        .unwrap();
    assert!(
        intact >= last,
        "acknowledged fill-{last} lost: intact up to fill-{intact}\n{all}"
    );
    assert!(
        !console
            .iter()
            .any(|l| l.contains("CORRUPT") || l.contains("WRONG") || l.contains("GAP")),
        "{all}"
    );
    s.note(&format!(
        "kv-restart: run 1 acknowledged {acked} PUTs before xl destroy; run 2 recovered records={recovered}, fill-0..fill-{intact} intact"
    ));
}

/// The status line and the last non-empty body line of the response dom0 printed for `cmd`
/// (before its `[exit 0] cmd` line), looking from line `after` on.
fn response<'a>(dom0: &'a [String], cmd: &str, after: usize) -> (&'a str, &'a str) {
    let exit = format!("[exit 0] {cmd}");
    let at = dom0[after..]
        .iter()
        .position(|l| *l == exit)
        .map(|i| i + after)
        .unwrap_or_else(|| {
            panic!(
                "dom0 did not run {cmd:?} successfully:\n{}",
                dom0.join("\n")
            )
        });
    let status = dom0[after..at]
        .iter()
        .rev()
        .find(|l| l.starts_with("HTTP/1.1 "))
        .map_or("", |s| s.as_str());
    let body = dom0[after..at]
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .map_or("", |s| s.as_str());
    (status, body)
}

#[test]
#[ignore = "boots nested Xen (XENIA_NESTED=1, scripts/test)"]
fn kv_over_http_keeps_acknowledged_puts_across_xl_destroy() {
    let (r, console) = super::scenario("kv-http");
    let s = super::session();
    let dom0 = &r.report.dom0;
    let all = format!(
        "dom0:\n{}\nconsole (second boot):\n{}",
        dom0.join("\n"),
        console.join("\n")
    );
    // Before the crash: PUTs acknowledged with 201, a DELETE with 204, the listing.
    for k in 1..=5 {
        let (st, _) = response(
            dom0,
            &format!("kv_show PUT /kv/key{k} named-value-{k}-kv-http"),
            0,
        );
        assert_eq!(st, "HTTP/1.1 201 Created", "PUT key{k}\n{all}");
    }
    let (st, _) = response(dom0, "kv_show DELETE /kv/key4 ", 0);
    assert_eq!(st, "HTTP/1.1 204 No Content", "{all}");
    let (st, body) = response(dom0, "kv_show GET /kv ", 0);
    assert_eq!(st, "HTTP/1.1 200 OK", "{all}");
    assert_eq!(body, "key5", "the listing's last line\n{all}");

    // The stream was cut by xl destroy.
    let stream = dom0
        .iter()
        .find_map(|l| l.strip_prefix("stream acked "))
        .unwrap_or_else(|| panic!("no stream summary\n{all}"));
    let words: Vec<&str> = stream.split_whitespace().collect();
    let acked: u64 = words[0].parse().unwrap();
    // The highest stream index acknowledged: PUTs s0..=last were sent, s(last+1) was in flight.
    let last: u64 = words
        .get(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("bad stream summary {stream:?}\n{all}"));
    assert!(acked >= u64::from(STREAM_ACKS_BEFORE_DESTROY), "{all}");
    assert!(acked < 3000, "the stream must be cut mid-way\n{all}");

    // After xl create on the same file: every acknowledged key is back with its value.
    let phase2 = dom0
        .iter()
        .position(|l| l == "phase 2")
        .unwrap_or_else(|| panic!("no second boot\n{all}"));
    for k in [1, 2, 3, 5] {
        let (st, body) = response(dom0, &format!("kv_show GET /kv/key{k} "), phase2);
        assert_eq!(st, "HTTP/1.1 200 OK", "key{k}\n{all}");
        assert_eq!(body, format!("named-value-{k}-kv-http"), "{all}");
    }
    let (st, _) = response(dom0, "kv_show GET /kv/key4 ", phase2);
    assert_eq!(st, "HTTP/1.1 404 Not Found", "deleted stays deleted\n{all}");
    let verify = dom0
        .iter()
        .find_map(|l| l.strip_prefix("stream verify "))
        .unwrap_or_else(|| panic!("no verification\n{all}"));
    let w: Vec<&str> = verify.split_whitespace().collect();
    assert_eq!(w.len(), 6, "{verify}");
    let (ok, bad, present): (u64, u64, u64) = (
        w[1].parse().unwrap(),
        w[3].parse().unwrap(),
        w[5].parse().unwrap(),
    );
    assert_eq!(
        (ok, bad),
        (acked, 0),
        "every acknowledged PUT intact\n{all}"
    );
    // Present: every acknowledged key, plus at most those whose response the client did not
    // see (busybox nc may lose a response) and the one in flight at the destroy.
    assert!(
        present >= acked && present <= last + 2,
        "stream keys present {present}: acknowledged {acked}, sent s0..s{}\n{all}",
        last + 1
    );
    super::assert_outcome(&r, console, Outcome::Poweroff);
    assert!(
        console
            .iter()
            .any(|l| l.starts_with("kv: recovered records=")),
        "{all}"
    );
    s.note(&format!(
        "kv-http: {acked} PUTs acknowledged over HTTP before xl destroy; after xl create all {ok} read back intact, {present} stream keys present"
    ));
}
