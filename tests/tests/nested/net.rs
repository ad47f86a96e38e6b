//! Nested-Xen scenarios of the net area (they run in the same boot as the others; see
//! `scenarios()` in nested.rs). Tests here use `super::session()` and the helpers there.
//!
//! - `http`: the http example with its vif on xenbr0 (10.0.0.2/24); dom0 runs the test client
//!   (`xenia-http-client`, a host binary of this package passed with `.file()`) against
//!   10.0.0.2:80: every route with its body, keep-alive, 400, 404, a large echo (once, then
//!   32 times), 64 concurrent clients, then `/health` again; then `xl shutdown -w`.
//! - `http-synflood`: the http example booted again; dom0's normal client
//!   (`xenia-http-client --synflood`) takes a `/stats` baseline, starts the attacker
//!   (`xenia-synflood`: spoofed SYNs from 198.18.0.0/15, off-link for the guest, at
//!   [`FLOOD_RATE`]/s for [`FLOOD_SECS`] s) and asks `/health` and `/stats` once a second
//!   during the flood and for 10 s after it; then `xl shutdown -w`.
//! - `http-slowloris`: the http example booted again; the same normal client
//!   (`xenia-http-client --slowloris`) with `xenia-slowloris` as the attacker: [`SLOW_CLIENTS`]
//!   connections sending a head a byte every 3 s and [`HUGE_CLIENTS`] announcing 1 MiB bodies
//!   and sending nothing, each reopened when the guest closes it, for [`SLOW_SECS`] s (more
//!   than the server's 128-connection cap); then `xl shutdown -w`.

use xenia_tests::serial::Outcome;
use xenia_tests::session::Scenario;

/// The client's path on the host (built by cargo for this test target).
const CLIENT: &str = env!("CARGO_BIN_EXE_xenia-http-client");

/// The attacker's path on the host.
const ATTACKER: &str = env!("CARGO_BIN_EXE_xenia-synflood");

/// The slow-client attacker's path on the host.
const SLOWLORIS: &str = env!("CARGO_BIN_EXE_xenia-slowloris");

/// Slow-head clients, huge-body clients, and for how long (together well past the http
/// example's cap of 256 connections).
const SLOW_CLIENTS: u64 = 300;
const HUGE_CLIENTS: u64 = 50;
/// 20 s: twice the longest deadline the attack is there to trip (the http example keeps
/// xenia-http's defaults: a head within 10 s, a body at 1 KiB every 5 s; checked by
/// `attack_durations_outlast_the_deadlines`), so every slow client is evicted and reconnects
/// at least once while the normal client is served each second. (30 s until 2026-12-01.)
const SLOW_SECS: u64 = 20;
/// The http example's listener budgets and server limits (examples/http/src/lib.rs): every
/// socket it may hold (1 listening + 64 half-open + 64 backlog + 256 connections + 64
/// orphans), and what each connection may hold beyond its socket (the largest head buffer).
const HTTP_SOCKETS: u64 = 1 + 64 + 64 + 256 + 64;
const HTTP_MAX_CONNECTIONS: u64 = 256;
const HTTP_MAX_HEAD: u64 = 8 * 1024;
/// Heap the slow clients may add: every socket with its buffers and 2 KiB of state, each
/// connection's largest head buffer and its slot, and 256 KiB for the stack's tables.
const SLOW_HEAP_BOUND: u64 = HTTP_SOCKETS * (SOCKET_BUFFERS + 2048)
    + HTTP_MAX_CONNECTIONS * (HTTP_MAX_HEAD + 512)
    + 256 * 1024;
/// "Back near baseline" after the attack: what the tables keep of their peak (smoltcp's
/// socket table, a `Vec` of 464-byte slots grown by doubling to hold every socket the
/// listener may hold; per connection, 256 bytes of the server's slot table and the executor's
/// task queues, also grown by doubling; the listener's queues). With the cap at 256 it
/// measured +274 KiB (2026-12-01). Leaked connections show in `tcp_sockets` and
/// `open_connections`, checked against their baselines exactly.
const SLOW_AFTER_TOLERANCE: u64 =
    HTTP_SOCKETS.next_power_of_two() * 464 + HTTP_MAX_CONNECTIONS * 256 + 8 * 1024;

/// dom0's side of the http-slowloris scenario.
fn slowloris_dom0_steps() -> String {
    format!(
        r#"
cp /job/xenia-http-client /tmp/xenia-http-client && chmod +x /tmp/xenia-http-client
cp /job/xenia-slowloris /tmp/xenia-slowloris && chmod +x /tmp/xenia-slowloris
xenia_run "$d" timeout 180 /tmp/xenia-http-client 10.0.0.2 80 --slowloris /tmp/xenia-slowloris {SLOW_CLIENTS} {HUGE_CLIENTS} {SLOW_SECS}
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#
    )
}

/// Spoofed SYNs a second, and for how many seconds (the issue's numbers: before the fix they
/// left a normal client 0 answers out of 25 and the guest with 65 open connections after).
/// 15 s (30 s until 2026-12-01): five times the guest's 3 s half-open timeout, so half-open
/// sockets are reaped and replaced many times over while the normal client is served each
/// second; the half-open cap fills in the first quarter second.
const FLOOD_RATE: u32 = 300;
const FLOOD_SECS: u32 = 15;

/// The http example's `ListenConfig` (examples/http/src/lib.rs), from which the bounds are
/// derived: at most `max_half_open` handshakes at once, each a socket with `rx_buffer +
/// tx_buffer` bytes of buffers.
const MAX_HALF_OPEN: u64 = 64;
const SOCKET_BUFFERS: u64 = 8 * 1024 + 8 * 1024;
/// Heap the flood may add: `max_half_open` half-open sockets plus 4 more (the listening one
/// and the normal client's), each its buffers, plus 256 KiB for smoltcp's socket structures
/// and the stack's tables.
const FLOOD_HEAP_BOUND: u64 = (MAX_HALF_OPEN + 4) * SOCKET_BUFFERS + 256 * 1024;
/// "Back near baseline" 10 s after the flood: the buffers are freed, but smoltcp's socket
/// table (a `Vec` of 464-byte `SocketStorage` slots, measured for smoltcp 0.12 on x86_64)
/// keeps the capacity it grew to for the peak of 1 + 64 + the client's sockets (128 slots,
/// 59392 bytes), plus 16 KiB for the listener's, the executor's and the timers' queues (the
/// whole measured 58.4 to 66.3 KiB in runs of 2026-12-01: 8 KiB was at the edge). One leaked
/// connection (16 KiB of buffers and its state) would exceed it.
const AFTER_HEAP_TOLERANCE: u64 = 128 * 464 + 16 * 1024;
/// The slowest flood that still counts as one: under QEMU/TCG dom0 (one vCPU, which also runs
/// netback and the normal client) does not always keep up with [`FLOOD_RATE`]; the attacker's
/// measured rate is in the notes.
const MIN_FLOOD_RATE: f64 = 200.0;

/// dom0's side of the http-synflood scenario (the client bounds the attacker's run itself).
fn synflood_dom0_steps() -> String {
    format!(
        r#"
cp /job/xenia-http-client /tmp/xenia-http-client && chmod +x /tmp/xenia-http-client
cp /job/xenia-synflood /tmp/xenia-synflood && chmod +x /tmp/xenia-synflood
xenia_run "$d" timeout 180 /tmp/xenia-http-client 10.0.0.2 80 --synflood /tmp/xenia-synflood {FLOOD_RATE} {FLOOD_SECS}
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#
    )
}

/// dom0's side of the http scenario.
const HTTP_DOM0_STEPS: &str = r#"
cp /job/xenia-http-client /tmp/xenia-http-client && chmod +x /tmp/xenia-http-client
xenia_run "$d" timeout 240 /tmp/xenia-http-client 10.0.0.2 80
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

/// This area's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("http", "http")
            .timeout(300)
            .file(CLIENT)
            .dom0(HTTP_DOM0_STEPS),
        Scenario::new("http-synflood", "http")
            .timeout(240)
            .file(CLIENT)
            .file(ATTACKER)
            .dom0(&synflood_dom0_steps()),
        Scenario::new("http-slowloris", "http")
            .timeout(240)
            .file(CLIENT)
            .file(SLOWLORIS)
            .dom0(&slowloris_dom0_steps()),
        http_4m(),
    ]
}

/// The client's result lines (`ok NAME ...`, `FAIL NAME ...`, `summary ...`) as dom0 reported
/// them; the test fails with everything dom0 and the guest said if there are none.
fn client_lines() -> (Vec<String>, String) {
    let (r, console) = super::scenario("http");
    let all = format!(
        "dom0:\n{}\nconsole:\n{}\nxl dmesg:\n{}",
        r.report.dom0.join("\n"),
        console.join("\n"),
        r.report.dmesg.join("\n")
    );
    let lines: Vec<String> = r
        .report
        .dom0
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL ") || l.starts_with("summary "))
        .collect();
    assert!(!lines.is_empty(), "the client reported nothing\n{all}");
    (lines, all)
}

/// The detail of check `name`, or a panic with the client's and the guest's output.
fn check(name: &str) -> String {
    let (lines, all) = client_lines();
    let prefix = format!("ok {name} ");
    for l in &lines {
        if let Some(d) = l.strip_prefix(&prefix) {
            super::session().note(&format!("http {name}: {d}"));
            return d.to_string();
        }
    }
    panic!("check {name} did not pass\n{all}");
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_routes_answer_with_their_bodies() {
    assert!(check("route-index").ends_with("bytes of html"));
    assert_eq!(check("route-health"), "{\"status\":\"ok\"}");
    let stats = check("route-stats");
    assert!(stats.starts_with("{\"uptime_ms\":"), "{stats}");
    assert!(check("echo-small").starts_with("13 bytes back identical"));
    assert!(check("echo-large").starts_with("262144 bytes back identical"));
    assert!(check("echo-repeat").starts_with("32 echoes of 262144 bytes identical"));
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_keep_alive_and_errors() {
    assert_eq!(check("keep-alive"), "10 requests on one connection");
    assert_eq!(check("bad-request"), "status 400");
    assert_eq!(check("not-found"), "status 404");
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_serves_64_concurrent_clients_and_stays_up() {
    assert!(check("concurrent").starts_with("64/64 answered"));
    assert_eq!(check("health-after"), "{\"status\":\"ok\"}");
    // The heap after the load (64 connections closed) is reported in the notes.
    assert!(check("stats-after").starts_with("{\"uptime_ms\":"));
    let (lines, all) = client_lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("summary pass=12 fail=0"),
        "{all}"
    );
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_guest_shuts_down_cleanly_on_request() {
    let (r, console) = super::scenario("http");
    super::assert_outcome(&r, console, Outcome::Poweroff);
    assert!(
        console
            .iter()
            .any(|l| l == "http: listening on 10.0.0.2/24 port 80"),
        "{}",
        console.join("\n")
    );
    assert!(
        r.report
            .dom0
            .iter()
            .any(|l| l.contains("[exit 0]") && l.contains("xl shutdown -w")),
        "{}",
        r.report.dom0.join("\n")
    );
}

/// The number after `"key":` in a JSON object of numbers (the http example's `/stats`).
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let rest = json.split(&format!("\"{key}\":")).nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The value of `key=` in a `flood ...` or `synflood ...` line.
fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// One `flood health|stats` line: phase, status, milliseconds, and the JSON body of a stats one.
struct Sample {
    phase: String,
    status: u16,
    ms: f64,
    json: Option<String>,
}

fn sample(line: &str) -> Option<Sample> {
    Some(Sample {
        phase: kv(line, "phase")?.to_string(),
        status: kv(line, "status")?.parse().ok()?,
        ms: kv(line, "ms")?.parse().ok()?,
        json: line
            .find('{')
            .map(|i| line[i..].to_string())
            .filter(|j| j.ends_with('}')),
    })
}

#[test]
fn flood_line_parsing() {
    let s = sample("flood stats phase=during t=3.0 status=200 ms=12.5 {\"heap_in_use\":123,\"tcp_half_open\":64}").unwrap();
    assert_eq!((s.phase.as_str(), s.status), ("during", 200));
    assert_eq!(s.ms, 12.5);
    let j = s.json.unwrap();
    assert_eq!(json_u64(&j, "heap_in_use"), Some(123));
    assert_eq!(json_u64(&j, "tcp_half_open"), Some(64));
    assert_eq!(json_u64(&j, "tcp_orphans"), None);
    let h = sample("flood health phase=after t=40.1 status=0 ms=5000.2 err=connect: timed out")
        .unwrap();
    assert_eq!((h.status, h.json), (0, None));
    let sent = (FLOOD_RATE * FLOOD_SECS).to_string();
    assert_eq!(
        kv(
            &format!("synflood sent={sent} failed=0 secs={FLOOD_SECS}.0"),
            "sent"
        ),
        Some(sent.as_str())
    );
}

#[test]
fn attack_dom0_steps_use_the_constants() {
    assert!(synflood_dom0_steps().contains(&format!(
        "--synflood /tmp/xenia-synflood {FLOOD_RATE} {FLOOD_SECS}\n"
    )));
    assert!(slowloris_dom0_steps().contains(&format!(
        "--slowloris /tmp/xenia-slowloris {SLOW_CLIENTS} {HUGE_CLIENTS} {SLOW_SECS}\n"
    )));
}

/// The slowloris attack lasts at least twice the deadlines it must trip (xenia-http's defaults,
/// which examples/http's `limits()` keeps), so that its clients are evicted by them at least
/// once while it runs; the flood lasts well past the guest's 3 s half-open timeout.
#[test]
fn attack_durations_outlast_the_deadlines() {
    let limits = xenia_http::Limits::default();
    let attack = std::time::Duration::from_secs(SLOW_SECS);
    assert!(
        attack >= 2 * limits.head_timeout,
        "{attack:?} vs {limits:?}"
    );
    assert!(
        attack >= 2 * limits.body_rate.per,
        "{attack:?} vs {limits:?}"
    );
}

// The flood outlasts the guest's 3 s half-open timeout several times over.
const _: () = assert!(FLOOD_SECS >= 4 * 3);

/// The normal client's report of an attack scenario (`http-synflood`, `http-slowloris`): its
/// `flood ...` lines parsed, with everything dom0 and the guest said for failure messages.
struct AttackReport {
    /// dom0's lines, trimmed.
    dom0: Vec<String>,
    /// dom0's lines, the console and `xl dmesg`: the text a failed assertion shows.
    all: String,
    /// `/stats` before the attack (after the readiness probes settled).
    base: String,
    /// `/stats` 10 s after the attacker ended.
    after: String,
    /// The `/health` requests made while the attacker ran.
    health: Vec<Sample>,
    /// The `/stats` requests made while the attacker ran (answered or not).
    stats: Vec<Sample>,
}

impl AttackReport {
    /// Scenario `name`'s report; panics when the client failed or said nothing usable.
    fn of(name: &str) -> Self {
        let (r, console) = super::scenario(name);
        let dom0: Vec<String> = r.report.dom0.iter().map(|l| l.trim().to_string()).collect();
        let all = format!(
            "dom0:\n{}\nconsole:\n{}\nxl dmesg:\n{}",
            dom0.join("\n"),
            console.join("\n"),
            r.report.dmesg.join("\n")
        );
        assert!(
            !dom0.iter().any(|l| l.starts_with("FAIL ")),
            "the client failed\n{all}"
        );
        let (mut health, mut stats) = (Vec::new(), Vec::new());
        for l in &dom0 {
            let is_health = l.starts_with("flood health ");
            if !is_health && !l.starts_with("flood stats ") {
                continue;
            }
            let s = sample(l).unwrap_or_else(|| panic!("bad line {l:?}\n{all}"));
            if s.phase == "during" {
                if is_health {
                    health.push(s);
                } else {
                    stats.push(s);
                }
            }
        }
        let mut a = AttackReport {
            dom0,
            all,
            base: String::new(),
            after: String::new(),
            health,
            stats,
        };
        a.base = a.line("flood baseline ").to_string();
        a.after = a.line("flood after ").to_string();
        a
    }

    /// The rest of the first dom0 line starting with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.dom0
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no dom0 line {prefix:?}\n{}", self.all))
    }

    /// The number `key` of a `/stats` JSON body.
    fn num(&self, json: &str, key: &str) -> u64 {
        json_u64(json, key).unwrap_or_else(|| panic!("no {key} in {json:?}\n{}", self.all))
    }

    /// The `/stats` bodies answered while the attacker ran.
    fn stats_json(&self) -> Vec<&str> {
        self.stats
            .iter()
            .filter_map(|s| s.json.as_deref())
            .collect()
    }

    /// The largest `key` in the `/stats` answers while the attacker ran.
    fn peak(&self, key: &str) -> u64 {
        self.stats_json()
            .iter()
            .map(|j| self.num(j, key))
            .max()
            .unwrap_or(0)
    }

    /// `/health` requests answered 200 within 1 s while the attacker ran.
    fn answered(&self) -> usize {
        self.health
            .iter()
            .filter(|s| s.status == 200 && s.ms < 1000.0)
            .count()
    }

    /// The normal client's `/health` latency while the attacker ran: (max, mean) in ms.
    fn latency_ms(&self) -> (f64, f64) {
        let max = self.health.iter().map(|s| s.ms).fold(0.0, f64::max);
        let mean = self.health.iter().map(|s| s.ms).sum::<f64>() / self.health.len().max(1) as f64;
        (max, mean)
    }

    /// A request a second through the whole attack of `secs` seconds, each a 200 within 1 s
    /// (the client's first and last ticks may fall outside the attacker's run: 3 s of slack).
    fn assert_served_each_second(&self, secs: u64) {
        let min_samples = secs.saturating_sub(3) as usize;
        assert!(
            self.health.len() >= min_samples,
            "only {} /health during the attack\n{}",
            self.health.len(),
            self.all
        );
        assert_eq!(
            self.answered(),
            self.health.len(),
            "not every /health was a 200 within 1 s during the attack\n{}",
            self.all
        );
    }

    /// The client (whose command line has `flag`) exited 0.
    fn assert_client_exit_0(&self, flag: &str) {
        assert!(
            self.dom0
                .iter()
                .any(|l| l.contains("[exit 0]") && l.contains(flag)),
            "the client did not exit 0\n{}",
            self.all
        );
    }
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_answers_within_a_second_under_a_syn_flood_and_recovers() {
    let a = AttackReport::of("http-synflood");
    let all = &a.all;

    // The attacker sent what it was asked to, at the rate asked.
    let flood = a.line("synflood ");
    let sent: u64 = kv(flood, "sent").and_then(|v| v.parse().ok()).unwrap_or(0);
    let want = u64::from(FLOOD_RATE * FLOOD_SECS);
    assert!(
        sent >= want * 9 / 10,
        "attacker: {flood} (want {want})\n{all}"
    );
    let flood_rate: f64 = kv(flood, "rate")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        flood_rate >= MIN_FLOOD_RATE,
        "attacker too slow: {flood}\n{all}"
    );

    let (base, after) = (a.base.as_str(), a.after.as_str());
    let answered = a.answered();
    let (max_ms, mean_ms) = a.latency_ms();
    let stats_json = a.stats_json();
    let (peak_heap, peak_half_open, peak_open, peak_orphans) = (
        a.peak("heap_in_use"),
        a.peak("tcp_half_open"),
        a.peak("open_connections"),
        a.peak("tcp_orphans"),
    );
    let num = |json: &str, key: &str| a.num(json, key);
    let base_heap = num(base, "heap_in_use");
    let syn_dropped = num(after, "tcp_syn_dropped").saturating_sub(num(base, "tcp_syn_dropped"));
    let s = super::session();
    s.note(&format!(
        "http-synflood: attacker {flood}; normal client during the flood: {answered}/{} \
         /health answered 200 within 1 s, latency max {max_ms:.1} ms mean {mean_ms:.1} ms; \
         /stats answered {}/{}",
        a.health.len(),
        stats_json.len(),
        a.stats.len()
    ));
    s.note(&format!(
        "http-synflood: during: peak heap_in_use {peak_heap} (baseline {base_heap}, +{} B, \
         bound +{FLOOD_HEAP_BOUND}), peak tcp_half_open {peak_half_open} (bound {MAX_HALF_OPEN}), \
         peak open_connections {peak_open}, peak tcp_orphans {peak_orphans}; \
         tcp_syn_dropped +{syn_dropped}",
        peak_heap.saturating_sub(base_heap)
    ));
    s.note(&format!(
        "http-synflood: 10 s after: heap_in_use {} (baseline {base_heap}, tolerance \
         +{AFTER_HEAP_TOLERANCE}), tcp_half_open {}, open_connections {} (baseline {}), \
         tcp_orphans {}, tcp_reaped {}",
        num(after, "heap_in_use"),
        num(after, "tcp_half_open"),
        num(after, "open_connections"),
        num(base, "open_connections"),
        num(after, "tcp_orphans"),
        num(after, "tcp_reaped"),
    ));

    // The normal client: a request a second through the whole flood, each a 200 within 1 s.
    a.assert_served_each_second(u64::from(FLOOD_SECS));
    let min_samples = (FLOOD_SECS - 3) as usize;
    assert!(
        stats_json.len() >= min_samples,
        "only {} /stats answered during the flood\n{all}",
        stats_json.len()
    );
    // The flood reached the guest: handshakes were open and dropped.
    assert!(peak_half_open > 0, "no half-open connection seen\n{all}");
    assert!(
        syn_dropped >= sent * 9 / 10,
        "only {syn_dropped} of {sent} spoofed SYNs counted as dropped\n{all}"
    );
    // Bounded during the flood.
    assert!(
        peak_half_open <= MAX_HALF_OPEN,
        "{peak_half_open} half-open\n{all}"
    );
    assert!(peak_open <= 2, "{peak_open} connections open\n{all}");
    assert!(
        peak_heap <= base_heap + FLOOD_HEAP_BOUND,
        "heap {peak_heap} during the flood, baseline {base_heap}\n{all}"
    );
    // Back to baseline after it.
    assert_eq!(num(after, "tcp_half_open"), 0, "{all}");
    assert_eq!(
        num(after, "open_connections"),
        num(base, "open_connections"),
        "{all}"
    );
    assert!(
        num(after, "heap_in_use") <= base_heap + AFTER_HEAP_TOLERANCE,
        "heap not back near baseline\n{all}"
    );
    a.assert_client_exit_0("--synflood");
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_answers_within_a_second_under_slowloris_and_huge_bodies_and_recovers() {
    let a = AttackReport::of("http-slowloris");
    let all = &a.all;

    // The attacker held its connections and reopened the ones the guest closed.
    let attack = a.line("slowloris ");
    let field = |k: &str| -> u64 { kv(attack, k).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let (connects, closed, answers_408) =
        (field("connects"), field("closed"), field("answers_408"));

    let (base, after) = (a.base.as_str(), a.after.as_str());
    let answered = a.answered();
    let (max_ms, mean_ms) = a.latency_ms();
    let (peak_heap, peak_open, peak_sockets, peak_body) = (
        a.peak("heap_in_use"),
        a.peak("open_connections"),
        a.peak("tcp_sockets"),
        a.peak("body_bytes"),
    );
    let num = |json: &str, key: &str| a.num(json, key);
    let base_heap = num(base, "heap_in_use");
    let s = super::session();
    s.note(&format!(
        "http-slowloris: attacker {attack}; normal client during the attack: {answered}/{} \
         /health answered 200 within 1 s, latency max {max_ms:.1} ms mean {mean_ms:.1} ms; \
         /stats answered {}",
        a.health.len(),
        a.stats_json().len()
    ));
    s.note(&format!(
        "http-slowloris: during: peak heap_in_use {peak_heap} (baseline {base_heap}, +{} B, \
         bound +{SLOW_HEAP_BOUND}), peak open_connections {peak_open}, peak tcp_sockets \
         {peak_sockets} (bound {}), peak body_bytes {peak_body}; evictions {}, timeouts {}",
        peak_heap.saturating_sub(base_heap),
        HTTP_SOCKETS + 2,
        num(after, "evictions"),
        num(after, "timeouts"),
    ));
    s.note(&format!(
        "http-slowloris: 10 s after: heap_in_use {} (baseline {base_heap}, tolerance \
         +{SLOW_AFTER_TOLERANCE}), open_connections {} (baseline {}), tcp_sockets {} \
         (baseline {}), tcp_orphans {}; open by phase: waiting {}, reading_head {}, \
         reading_body {}, busy {}",
        num(after, "heap_in_use"),
        num(after, "open_connections"),
        num(base, "open_connections"),
        num(after, "tcp_sockets"),
        num(base, "tcp_sockets"),
        num(after, "tcp_orphans"),
        num(after, "waiting"),
        num(after, "reading_head"),
        num(after, "reading_body"),
        num(after, "busy"),
    ));

    // The attack was on: more connections than the cap, closed and reopened.
    assert!(
        connects > SLOW_CLIENTS + HUGE_CLIENTS && closed > 0 && answers_408 > 0,
        "attacker: {attack}\n{all}"
    );
    assert!(
        peak_open >= HTTP_MAX_CONNECTIONS / 2,
        "peak open {peak_open}\n{all}"
    );
    // The normal client: a request a second through the whole attack, each a 200 within 1 s.
    a.assert_served_each_second(SLOW_SECS);
    // Bounded during the attack: the cap, the sockets, the heap; no body memory.
    assert!(peak_open <= HTTP_MAX_CONNECTIONS, "{peak_open} open\n{all}");
    assert!(
        peak_sockets <= HTTP_SOCKETS + 2,
        "{peak_sockets} sockets\n{all}"
    );
    assert!(
        peak_heap <= base_heap + SLOW_HEAP_BOUND,
        "heap {peak_heap} during the attack, baseline {base_heap}\n{all}"
    );
    assert!(peak_body <= 2 << 20, "body_bytes {peak_body}\n{all}");
    // Back to baseline after it.
    assert_eq!(
        num(after, "open_connections"),
        num(base, "open_connections"),
        "{all}"
    );
    assert!(
        num(after, "tcp_sockets") <= num(base, "tcp_sockets") + 2,
        "sockets not back to baseline\n{all}"
    );
    assert!(
        num(after, "heap_in_use") <= base_heap + SLOW_AFTER_TOLERANCE,
        "heap not back near baseline\n{all}"
    );
    a.assert_client_exit_0("--slowloris");
}

/// `http-4m`: the http example at `memory=4` (the domain builder's floor, issue 11): dom0 asks
/// `/` until it answers (60 s), then `/stats` once; both must be 200 and `/stats` must be the
/// JSON the runtime fills. The runtime sizes its network pools from the domain's memory
/// (runtime/src/net/budget.rs), so this is the same image as `http`; the console must show
/// that the vif's buffers and the listener were shrunk to the heap. Then a body flood:
/// [`BODY_FLOOD_CLIENTS`] clients at once each POST a [`BODY_FLOOD_BYTES`]-byte echo, far more
/// body bytes than the small heap holds beside its sockets; every answer must be 200 or a
/// clear 503/413 (or the connection closed by the guest), the guest must stay up and answer
/// `/health` after, and shut down cleanly.
fn http_4m() -> Scenario {
    Scenario::new("http-4m", "http")
        .set("memory", xenia_tests::xl::XlValue::Int(4))
        .timeout(240)
        .dom0(
            &HTTP_4M_DOM0_STEPS
                .replace("@CLIENTS@", &BODY_FLOOD_CLIENTS.to_string())
                .replace("@BYTES@", &BODY_FLOOD_BYTES.to_string()),
        )
}

/// Clients of `http-4m`'s body flood, and each one's body.
const BODY_FLOOD_CLIENTS: usize = 32;
const BODY_FLOOD_BYTES: usize = 96 * 1024;

/// dom0's side of `http-4m`: `get PATH` prints the response (head and body) with a marker line;
/// `post N` sends an N-byte echo and prints the status line.
const HTTP_4M_DOM0_STEPS: &str = r#"
get() { printf 'GET %s HTTP/1.1\r\nConnection: close\r\n\r\n' "$1" | nc -w 5 10.0.0.2 80 2>/dev/null; }
post() { { printf 'POST /echo HTTP/1.1\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$1"; head -c "$1" /dev/zero; } | nc -w 20 10.0.0.2 80 2>/dev/null | head -n 1 | tr -d '\r'; }
for i in $(seq 1 240); do get / | grep -q '^HTTP/1.1 200' && break; sleep 0.25; done
xenia_run "$d" sh -c "printf 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n' | nc -w 5 10.0.0.2 80 | head -n 1 | sed 's/^/http-4m root: /'"
xenia_run "$d" sh -c "printf 'GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n' | nc -w 5 10.0.0.2 80 | sed 's/^/http-4m stats: /'"
pids=
for i in $(seq 1 @CLIENTS@); do post @BYTES@ > /tmp/flood.$i & pids="$pids $!"; done
# Only the clients: a bare `wait` would also wait for the harness's own background jobs.
wait $pids
for i in $(seq 1 @CLIENTS@); do echo "http-4m flood: [$(cat /tmp/flood.$i)]"; done | xenia_prefix out "$d" "$(xenia_since "$d")"
for i in $(seq 1 40); do get /health | grep -q '^HTTP/1.1 200' && break; sleep 0.25; done
xenia_run "$d" sh -c "printf 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n' | nc -w 5 10.0.0.2 80 | head -n 1 | sed 's/^/http-4m after flood: /'"
xenia_run "$d" sh -c "printf 'GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n' | nc -w 5 10.0.0.2 80 | sed 's/^/http-4m stats after: /'"
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_4m_serves() {
    let (r, console) = super::scenario("http-4m");
    let all = format!(
        "dom0:\n{}\nconsole:\n{}\nxl dmesg:\n{}",
        r.report.dom0.join("\n"),
        console.join("\n"),
        r.report.dmesg.join("\n")
    );
    let dom0 = &r.report.dom0;
    assert!(
        dom0.iter()
            .any(|l| l.contains("http-4m root: HTTP/1.1 200")),
        "/ did not answer 200 at memory=4\n{all}"
    );
    assert!(
        dom0.iter()
            .any(|l| l.contains("http-4m stats: HTTP/1.1 200")),
        "/stats did not answer 200 at memory=4\n{all}"
    );
    assert!(
        dom0.iter()
            .any(|l| l.contains("http-4m stats: ") && l.contains("\"heap_in_use\"")),
        "/stats has no heap_in_use\n{all}"
    );
    for what in ["vif buffers", "listener connections"] {
        assert!(
            console
                .iter()
                .any(|l| l.contains("net: memory budget") && l.contains(what)),
            "the runtime did not size its {what} from the heap\n{all}"
        );
    }
    // The body flood: answers are 200, 503 (bodies at their granted total) or 413, or none
    // (the guest closed a connection whose body it refused before the client read the
    // answer); never a crash.
    let flood: Vec<&str> = dom0
        .iter()
        .filter_map(|l| l.split("http-4m flood: [").nth(1))
        .map(|l| l.trim_end_matches(']'))
        .collect();
    assert_eq!(
        flood.len(),
        BODY_FLOOD_CLIENTS,
        "flood answers missing\n{all}"
    );
    let count = |p: &str| flood.iter().filter(|l| l.starts_with(p)).count();
    let (ok, busy, large) = (
        count("HTTP/1.1 200"),
        count("HTTP/1.1 503"),
        count("HTTP/1.1 413"),
    );
    let other: Vec<&&str> = flood
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with("HTTP/1.1 200"))
        .filter(|l| !l.starts_with("HTTP/1.1 503") && !l.starts_with("HTTP/1.1 413"))
        .collect();
    eprintln!(
        "http-4m flood: {BODY_FLOOD_CLIENTS} clients x {BODY_FLOOD_BYTES} B: {ok} x 200, \
         {busy} x 503, {large} x 413, {} unanswered",
        BODY_FLOOD_CLIENTS - ok - busy - large - other.len()
    );
    assert!(
        other.is_empty(),
        "unexpected flood answers {other:?}\n{all}"
    );
    assert!(ok >= 1, "no flood client was served\n{all}");
    assert!(
        dom0.iter()
            .any(|l| l.contains("http-4m after flood: HTTP/1.1 200")),
        "/health did not answer 200 after the body flood\n{all}"
    );
    assert!(
        !console
            .iter()
            .any(|l| l.contains("panicked") || l.contains("out of memory")),
        "the guest failed under the body flood\n{all}"
    );
    super::assert_outcome(&r, console, Outcome::Poweroff);
}
