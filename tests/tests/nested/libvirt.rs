//! Nested-Xen scenario of issue 12 ("Beyond one host"): the http example booted by libvirt
//! itself (it runs in the same boot as the others, see `scenarios()` in nested.rs).
//!
//! - `libvirt-http`: dom0 starts libvirtd with its libxl driver (`xenia_libvirtd` in
//!   scripts/nested-xen/dom0/xenia.sh, only for this scenario), then `virsh create` of the
//!   domain XML that `cargo xenia build` wrote beside the image (`/job/http.xml`, its `<kernel>`
//!   the image's path in dom0; only its `<name>` is set to the scenario's). dom0 waits for the
//!   service's `/health` answer over xenbr0, lists the domain with `virsh list`, asks
//!   `virsh shutdown`, and checks `virsh list --all` no longer shows it. The guest's poweroff
//!   reaches the harness as libvirt's lifecycle event ("Stopped Shutdown"), not from xl.

use xenia_tests::serial::Outcome;
use xenia_tests::session::Scenario;
use xenia_tests::xl::XlValue;

/// The scenario's name (the libvirt domain's name too).
const NAME: &str = "libvirt-http";

/// dom0's side: the health check, virsh list, virsh shutdown, the domain gone from the list.
const LIBVIRT_DOM0_STEPS: &str = r#"
lv_health() { printf 'GET /health HTTP/1.1\r\nHost: xenia\r\nConnection: close\r\n\r\n' | nc -w 10 10.0.0.2 80; }
for i in $(seq 1 120); do lv_health 2>/dev/null | grep -q '^HTTP/1.1 200' && break; sleep 0.5; done
xenia_run "$d" lv_health
xenia_run "$d" $XENIA_VIRSH list --all
xenia_run "$d" $XENIA_VIRSH domstate "$d"
xenia_run "$d" $XENIA_VIRSH shutdown "$d"
for i in $(seq 1 240); do $XENIA_VIRSH list --all --name | grep -qx "$d" || break; sleep 0.25; done
xenia_run "$d" echo "after virsh shutdown: [$($XENIA_VIRSH list --all --name | tr '\n' ' ')]"
xenia_run "$d" cat "$XENIA_RUN/$d.events"
"#;

/// This area's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new(NAME, "http")
        .set("xenia_libvirt", XlValue::Str("/job/http.xml".into()))
        .timeout(300)
        .dom0(LIBVIRT_DOM0_STEPS)]
}

/// The exit status of the `xenia_run` of `cmd` (its `[exit N] <cmd>` line) and the dom0 lines
/// since the previous `xenia_run` ended (its output, after any earlier dom0 output).
fn ran<'a>(lines: &'a [String], cmd: &str) -> (i32, Vec<&'a str>) {
    let end = lines
        .iter()
        .position(|l| l.starts_with("[exit ") && l.ends_with(&format!("] {cmd}")))
        .unwrap_or_else(|| panic!("dom0 did not run `{cmd}`:\n{}", lines.join("\n")));
    let rc = lines[end]
        .strip_prefix("[exit ")
        .and_then(|r| r.split(']').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("bad exit line {:?}", lines[end]));
    let start = lines[..end]
        .iter()
        .rposition(|l| l.starts_with("[exit "))
        .map_or(0, |p| p + 1);
    (rc, lines[start..end].iter().map(String::as_str).collect())
}

#[test]
#[ignore = "boots nested Xen in QEMU (minutes): XENIA_NESTED=1, see scripts/test"]
fn http_booted_by_libvirt_answers_and_virsh_shutdown_powers_it_off() {
    let (r, console) = super::scenario(NAME);
    let dom0 = &r.report.dom0;
    let all = format!(
        "dom0:\n{}\nconsole:\n{}\ndom0 messages:\n{}",
        dom0.join("\n"),
        console.join("\n"),
        super::session().log.messages.join("\n")
    );
    // Created by libvirt, from the generated XML.
    assert_eq!(r.report.create_rc, Some(0), "virsh create failed\n{all}");
    assert!(
        dom0.iter()
            .any(|l| l.starts_with(&format!("Domain '{NAME}' created from"))),
        "no `virsh create` confirmation\n{all}"
    );
    let ready = super::session()
        .log
        .messages
        .iter()
        .find(|m| m.starts_with("libvirtd ready after"))
        .unwrap_or_else(|| panic!("libvirtd never answered\n{all}"));
    super::session().note(&format!("{NAME}: {ready} (TCG)"));

    // The service answered over the bridge.
    let (rc, answer) = ran(dom0, "lv_health");
    assert_eq!(rc, 0, "{all}");
    assert!(
        answer.iter().any(|l| l.starts_with("HTTP/1.1 200")),
        "{all}"
    );
    assert!(
        answer.iter().any(|l| l.contains("\"status\":\"ok\"")),
        "{all}"
    );

    // libvirt listed it running, then shut it down.
    let (rc, list) = ran(dom0, "virsh -c xen:/// list --all");
    assert_eq!(rc, 0, "{all}");
    assert!(
        list.iter()
            .any(|l| l.split_whitespace().nth(1) == Some(NAME) && l.contains("running")),
        "virsh list does not show {NAME} running\n{all}"
    );
    let (rc, _) = ran(dom0, &format!("virsh -c xen:/// shutdown {NAME}"));
    assert_eq!(rc, 0, "{all}");
    assert!(
        console
            .iter()
            .any(|l| l == "xenia: poweroff requested by the toolstack"),
        "the guest did not see the poweroff request\n{all}"
    );
    super::assert_outcome(&r, console, Outcome::Poweroff);
    // The outcome came from libvirt's own lifecycle event (xl's monitor is not involved).
    let (_, events) = ran(dom0, &format!("cat /run/xenia/{NAME}.events"));
    assert!(
        events
            .iter()
            .any(|l| *l == format!("event 'lifecycle' for domain '{NAME}': Stopped Shutdown")),
        "no libvirt shutdown event
{all}"
    );
    let after = dom0
        .iter()
        .find_map(|l| l.strip_prefix("after virsh shutdown: ["))
        .unwrap_or_else(|| panic!("no list after the shutdown\n{all}"));
    assert!(
        !after
            .split_whitespace()
            .any(|n| n.trim_end_matches(']') == NAME),
        "virsh still lists {NAME} after its poweroff: {after}\n{all}"
    );
}
