//! Nested-Xen scenarios of the net area (they run in the same boot as the others; see
//! `scenarios()` in nested.rs). Tests here use `super::session()` and the helpers there.
//!
//! - `http`: the http example with its vif on xenbr0 (10.0.0.2/24); dom0 runs the test client
//!   (`xenia-http-client`, a host binary of this package passed with `.file()`) against
//!   10.0.0.2:80: every route with its body, keep-alive, 400, 404, a large echo (once, then
//!   32 times), 64 concurrent clients, then `/health` again; then `xl shutdown -w`.

use xenia_tests::serial::Outcome;
use xenia_tests::session::Scenario;

/// The client's path on the host (built by cargo for this test target).
const CLIENT: &str = env!("CARGO_BIN_EXE_xenia-http-client");

/// dom0's side of the http scenario.
const HTTP_DOM0_STEPS: &str = r#"
cp /job/xenia-http-client /tmp/xenia-http-client && chmod +x /tmp/xenia-http-client
xenia_run "$d" timeout 240 /tmp/xenia-http-client 10.0.0.2 80
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

/// This area's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new("http", "http")
        .timeout(300)
        .file(CLIENT)
        .dom0(HTTP_DOM0_STEPS)]
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
