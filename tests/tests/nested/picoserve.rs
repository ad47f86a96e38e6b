//! Nested-Xen scenarios of the picoserve comparison (issue 12): the `http-picoserve` example
//! (the http example's service on picoserve) under the same attackers, clients and dom0 steps
//! as `http-synflood` and `http-slowloris` (see net.rs, whose helpers and bounds this uses).
//!
//! - `picoserve-synflood`: asserts what `http-synflood` asserts. Its first run (19:25 UTC)
//!   failed on 1 /health of 40: reset 103 ms after connecting, and never accepted by the
//!   server (the next `/stats` counted one connection more, its own): the listener displaced
//!   the client's half-open entry under 300 SYN/s before the client's ACK arrived (an entry
//!   lives about 64/300 s), which would fail `http-synflood` the same way.
//! - `picoserve-slowloris`: asserts the attack ran and that memory, sockets and connections
//!   stay bounded and come back to the baseline after it, as `http-slowloris` does. It does
//!   NOT assert that the normal client is answered within 1 s: picoserve has no eviction, so
//!   the slow clients hold all 128 connections and the normal client waits in the listener's
//!   backlog until one times out (`read_request`, 10 s); in the host simulator it got 10
//!   answers in 40 s, up to 10 s late (examples/http-picoserve/tests/sim_hostile.rs). How many
//!   it got here goes to the notes (19:50 UTC: 16 of 38 answered, max 5122 ms; 19:25 UTC,
//!   an earlier adapter: 44 of 48; the attacker's connections are also refused, so the slots
//!   are not held all the time as in the simulator). picoserve answers no 408 (it resets the
//!   connection), so `answers_408` is not asserted either.

use super::{json_u64, kv, sample, Sample};
use super::{
    AFTER_HEAP_TOLERANCE, ATTACKER, CLIENT, FLOOD_HEAP_BOUND, FLOOD_RATE, FLOOD_SECS,
    HTTP_MAX_CONNECTIONS, HTTP_SOCKETS, HUGE_CLIENTS, MAX_HALF_OPEN, MIN_FLOOD_RATE, SLOWLORIS,
    SLOWLORIS_DOM0_STEPS, SLOW_AFTER_TOLERANCE, SLOW_CLIENTS, SLOW_HEAP_BOUND, SLOW_SECS,
    SYNFLOOD_DOM0_STEPS,
};
use xenia_tests::session::Scenario;

/// Each connection's picoserve request buffer and its task (examples/http-picoserve): what a
/// connection may hold beyond its socket, in place of xenia-http's head buffer and slot.
const PICOSERVE_PER_CONNECTION: u64 = 8 * 1024 + 4096;

/// This comparison's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("picoserve-synflood", "http-picoserve")
            .timeout(240)
            .file(CLIENT)
            .file(ATTACKER)
            .dom0(SYNFLOOD_DOM0_STEPS),
        Scenario::new("picoserve-slowloris", "http-picoserve")
            .timeout(240)
            .file(CLIENT)
            .file(SLOWLORIS)
            .dom0(SLOWLORIS_DOM0_STEPS),
    ]
}

/// dom0's lines, everything said (for failure messages), and a finder for `prefix` lines.
struct Run {
    dom0: Vec<String>,
    all: String,
}

impl Run {
    fn new(name: &str) -> Run {
        let (r, console) = super::super::scenario(name);
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
        Run { dom0, all }
    }

    fn line(&self, prefix: &str) -> String {
        self.dom0
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no dom0 line {prefix:?}\n{}", self.all))
            .to_string()
    }

    fn num(&self, json: &str, key: &str) -> u64 {
        json_u64(json, key).unwrap_or_else(|| panic!("no {key} in {json:?}\n{}", self.all))
    }

    /// The `flood health` and `flood stats` samples of `phase`.
    fn samples(&self, phase: &str) -> (Vec<Sample>, Vec<String>) {
        let mut health = Vec::new();
        let mut stats = Vec::new();
        for l in &self.dom0 {
            let is_health = l.starts_with("flood health ");
            if !is_health && !l.starts_with("flood stats ") {
                continue;
            }
            let s = sample(l).unwrap_or_else(|| panic!("bad line {l:?}\n{}", self.all));
            if s.phase != phase {
                continue;
            }
            if is_health {
                health.push(s);
            } else if let Some(j) = s.json {
                stats.push(j);
            }
        }
        (health, stats)
    }

    fn client_exited_0(&self, flag: &str) -> bool {
        self.dom0
            .iter()
            .any(|l| l.contains("[exit 0]") && l.contains(flag))
    }
}

/// Answered within 1 s, the maximum and the mean latency (ms) of `health`.
fn latency(health: &[Sample]) -> (usize, f64, f64) {
    let answered = health
        .iter()
        .filter(|s| s.status == 200 && s.ms < 1000.0)
        .count();
    let max = health.iter().map(|s| s.ms).fold(0.0, f64::max);
    let mean = health.iter().map(|s| s.ms).sum::<f64>() / health.len().max(1) as f64;
    (answered, max, mean)
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn picoserve_answers_within_a_second_under_a_syn_flood_and_recovers() {
    let run = Run::new("picoserve-synflood");
    let all = &run.all;
    let flood = run.line("synflood ");
    let sent: u64 = kv(&flood, "sent").and_then(|v| v.parse().ok()).unwrap_or(0);
    let want = u64::from(FLOOD_RATE * FLOOD_SECS);
    assert!(
        sent >= want * 9 / 10,
        "attacker: {flood} (want {want})\n{all}"
    );
    let rate: f64 = kv(&flood, "rate")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(rate >= MIN_FLOOD_RATE, "attacker too slow: {flood}\n{all}");

    let base = run.line("flood baseline ");
    let after = run.line("flood after ");
    let (health, stats) = run.samples("during");
    let (answered, max_ms, mean_ms) = latency(&health);
    let peak = |key: &str| stats.iter().map(|j| run.num(j, key)).max().unwrap_or(0);
    let (peak_heap, peak_half_open, peak_open) = (
        peak("heap_in_use"),
        peak("tcp_half_open"),
        peak("open_connections"),
    );
    let base_heap = run.num(&base, "heap_in_use");
    let syn_dropped = run
        .num(&after, "tcp_syn_dropped")
        .saturating_sub(run.num(&base, "tcp_syn_dropped"));
    super::super::session().note(&format!(
        "picoserve-synflood: attacker {flood}; normal client during the flood: {answered}/{} \
         /health answered 200 within 1 s, latency max {max_ms:.1} ms mean {mean_ms:.1} ms; \
         /stats answered {}; peak heap_in_use {peak_heap} (baseline {base_heap}, +{} B, bound \
         +{FLOOD_HEAP_BOUND}), peak tcp_half_open {peak_half_open}, peak open_connections \
         {peak_open}; tcp_syn_dropped +{syn_dropped}; 10 s after: heap_in_use {}",
        health.len(),
        stats.len(),
        peak_heap.saturating_sub(base_heap),
        run.num(&after, "heap_in_use"),
    ));

    let min_samples = (FLOOD_SECS - 3) as usize;
    assert!(
        health.len() >= min_samples,
        "only {} /health\n{all}",
        health.len()
    );
    assert_eq!(
        answered,
        health.len(),
        "not every /health was a 200 within 1 s\n{all}"
    );
    assert!(
        stats.len() >= min_samples,
        "only {} /stats\n{all}",
        stats.len()
    );
    assert!(peak_half_open > 0, "no half-open connection seen\n{all}");
    assert!(
        syn_dropped >= sent * 9 / 10,
        "{syn_dropped} of {sent} dropped\n{all}"
    );
    assert!(
        peak_half_open <= MAX_HALF_OPEN,
        "{peak_half_open} half-open\n{all}"
    );
    assert!(peak_open <= 2, "{peak_open} connections open\n{all}");
    assert!(
        peak_heap <= base_heap + FLOOD_HEAP_BOUND,
        "heap {peak_heap}\n{all}"
    );
    assert_eq!(run.num(&after, "tcp_half_open"), 0, "{all}");
    assert_eq!(
        run.num(&after, "open_connections"),
        run.num(&base, "open_connections"),
        "{all}"
    );
    assert!(
        run.num(&after, "heap_in_use") <= base_heap + AFTER_HEAP_TOLERANCE,
        "heap not back near baseline\n{all}"
    );
    assert!(
        run.client_exited_0("--synflood"),
        "the client did not exit 0\n{all}"
    );
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn picoserve_stays_bounded_under_slowloris_and_huge_bodies_and_recovers() {
    let run = Run::new("picoserve-slowloris");
    let all = &run.all;
    let attack = run.line("slowloris ");
    let field = |k: &str| -> u64 { kv(&attack, k).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let (connects, closed) = (field("connects"), field("closed"));

    let base = run.line("flood baseline ");
    let after = run.line("flood after ");
    let (health, stats) = run.samples("during");
    let (answered, max_ms, mean_ms) = latency(&health);
    let ok = health.iter().filter(|s| s.status == 200).count();
    let peak = |key: &str| stats.iter().map(|j| run.num(j, key)).max().unwrap_or(0);
    let (peak_heap, peak_open, peak_sockets, peak_body) = (
        peak("heap_in_use"),
        peak("open_connections"),
        peak("tcp_sockets"),
        peak("body_bytes"),
    );
    let base_heap = run.num(&base, "heap_in_use");
    // picoserve's request buffer and task per connection in place of xenia-http's head
    // buffer and slot.
    let heap_bound = SLOW_HEAP_BOUND
        + HTTP_MAX_CONNECTIONS * PICOSERVE_PER_CONNECTION.saturating_sub(8 * 1024 + 512);
    super::super::session().note(&format!(
        "picoserve-slowloris: attacker {attack}; normal client during the attack: {answered}/{} \
         /health answered 200 within 1 s ({ok} answered 200 at all), latency max {max_ms:.1} ms \
         mean {mean_ms:.1} ms; /stats answered {}; peak heap_in_use {peak_heap} (baseline \
         {base_heap}, +{} B, bound +{heap_bound}), peak open_connections {peak_open}, peak \
         tcp_sockets {peak_sockets}, peak body_bytes {peak_body}, timeouts {}; 10 s after: \
         heap_in_use {}, open_connections {}, tcp_sockets {} (baseline {})",
        health.len(),
        stats.len(),
        peak_heap.saturating_sub(base_heap),
        run.num(&after, "timeouts"),
        run.num(&after, "heap_in_use"),
        run.num(&after, "open_connections"),
        run.num(&after, "tcp_sockets"),
        run.num(&base, "tcp_sockets"),
    ));

    // The attack was on: more connections than the cap, closed (by picoserve's timeouts) and
    // reopened.
    assert!(
        connects > SLOW_CLIENTS + HUGE_CLIENTS && closed > 0,
        "attacker: {attack}\n{all}"
    );
    assert!(
        peak_open >= HTTP_MAX_CONNECTIONS / 2,
        "peak open {peak_open}\n{all}"
    );
    // The normal client ran through the attack (how many it got is in the notes).
    assert!(
        health.len() >= (SLOW_SECS / 10) as usize,
        "only {} /health during the attack\n{all}",
        health.len()
    );
    // Bounded during the attack: the cap, the sockets, the heap, the body budget.
    assert!(peak_open <= HTTP_MAX_CONNECTIONS, "{peak_open} open\n{all}");
    assert!(
        peak_sockets <= HTTP_SOCKETS + 2,
        "{peak_sockets} sockets\n{all}"
    );
    assert!(
        peak_heap <= base_heap + heap_bound,
        "heap {peak_heap} during the attack, baseline {base_heap}\n{all}"
    );
    assert!(peak_body <= 2 << 20, "body_bytes {peak_body}\n{all}");
    // Back to baseline after it.
    assert_eq!(
        run.num(&after, "open_connections"),
        run.num(&base, "open_connections"),
        "{all}"
    );
    assert!(
        run.num(&after, "tcp_sockets") <= run.num(&base, "tcp_sockets") + 2,
        "sockets not back to baseline\n{all}"
    );
    assert!(
        run.num(&after, "heap_in_use") <= base_heap + SLOW_AFTER_TOLERANCE,
        "heap not back near baseline\n{all}"
    );
    assert!(
        run.client_exited_0("--slowloris"),
        "the client did not exit 0\n{all}"
    );
}
