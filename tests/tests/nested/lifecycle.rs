//! Nested-Xen scenarios of the lifecycle area (issue 10; they run in the same boot as the
//! others, see `scenarios()` in nested.rs).
//!
//! - `http-checkpoint`: the http example; dom0's `xenia-lifecycle-client` holds a keep-alive
//!   connection and probes `/health` every 50 ms on new connections while `xl save -c` saves
//!   the running guest (a checkpoint: the suspend is cancelled and the guest carries on); the
//!   kept connection and new ones are answered after. Then `xl shutdown -w`.
//! - `http-restore`: the same client around `xl save` (the domain is gone) + `xl restore` (a
//!   new domain resumes the guest), twice in a row (the second save needs the P2M the
//!   restored guest republished): the kept connection gets its next answer from the restored
//!   guest; save and restore are timed separately, the image size is reported.
//! - `http-migrate`: the same client around two localhost live migrations in a row
//!   (`xl migrate -s '' D 'xl migrate-receive'`). dom0 first reports `xl info`'s `virt_caps`:
//!   live migration of a PV guest needs log-dirty mode, which needs Xen's shadow paging; on a
//!   Xen built without it the toolstack fails before it asks the guest anything ("Failed to
//!   enable logdirty: 95": EOPNOTSUPP), for any PV guest. The test then checks exactly that
//!   failure and that the guest kept serving, and says so in the notes.

use xenia_tests::serial::Outcome;
use xenia_tests::session::Scenario;

/// The client's path on the host (built by cargo for this test target).
const CLIENT: &str = env!("CARGO_BIN_EXE_xenia-lifecycle-client");

/// dom0's side of the http-checkpoint scenario.
const CHECKPOINT_DOM0_STEPS: &str = r#"
cp /job/xenia-lifecycle-client /tmp/xenia-lifecycle-client && chmod +x /tmp/xenia-lifecycle-client
xenia_run "$d" timeout 200 /tmp/xenia-lifecycle-client 10.0.0.2 80 checkpoint -- xl save -c "$d" /tmp/checkpoint.save
xenia_run "$d" stat -c "image-bytes %s" /tmp/checkpoint.save
rm -f /tmp/checkpoint.save
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

/// dom0's side of the http-restore scenario.
const RESTORE_DOM0_STEPS: &str = r#"
cp /job/xenia-lifecycle-client /tmp/xenia-lifecycle-client && chmod +x /tmp/xenia-lifecycle-client
for n in 1 2; do
echo "/tmp/xenia-lifecycle-client --time save$n -- xl save $d /tmp/restore.save || exit 1" > /tmp/save-restore.sh
echo "stat -c 'image-bytes %s' /tmp/restore.save" >> /tmp/save-restore.sh
echo "/tmp/xenia-lifecycle-client --time restore$n -- xl restore /tmp/restore.save" >> /tmp/save-restore.sh
xenia_run "$d" timeout 300 /tmp/xenia-lifecycle-client 10.0.0.2 80 restore$n -- sh /tmp/save-restore.sh
rm -f /tmp/restore.save
done
xenia_run "$d" xl list
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

/// dom0's side of the http-migrate scenario.
const MIGRATE_DOM0_STEPS: &str = r#"
cp /job/xenia-lifecycle-client /tmp/xenia-lifecycle-client && chmod +x /tmp/xenia-lifecycle-client
xenia_run "$d" sh -c "xl info | grep virt_caps"
xenia_run "$d" timeout 300 /tmp/xenia-lifecycle-client 10.0.0.2 80 migrate1 -- xl migrate -s '' "$d" 'xl migrate-receive'
xenia_run "$d" timeout 300 /tmp/xenia-lifecycle-client 10.0.0.2 80 migrate2 -- xl migrate -s '' "$d" 'xl migrate-receive'
xenia_run "$d" xl list
xenia_run "$d" timeout 30 xl shutdown -w "$d"
"#;

/// This area's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("http-checkpoint", "http")
            .timeout(300)
            .file(CLIENT)
            .dom0(CHECKPOINT_DOM0_STEPS),
        Scenario::new("http-restore", "http")
            .timeout(420)
            .file(CLIENT)
            .dom0(RESTORE_DOM0_STEPS),
        Scenario::new("http-migrate", "http")
            .timeout(700)
            .file(CLIENT)
            .dom0(MIGRATE_DOM0_STEPS),
    ]
}

/// dom0's report of `scenario`, everything it and the guest said (for failures), and its
/// lines starting with `ok `, `FAIL `, `measure ` or `image-bytes `.
fn lines(scenario: &str) -> (Vec<String>, String) {
    let (r, console) = super::scenario(scenario);
    let all = format!(
        "dom0:\n{}\nconsole:\n{}\nxl dmesg:\n{}",
        r.report.dom0.join("\n"),
        console.join("\n"),
        r.report.dmesg.join("\n")
    );
    let lines = r
        .report
        .dom0
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| {
            ["ok ", "FAIL ", "measure ", "image-bytes ", "virt_caps"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_powered_off(&r.report.outcome, &r.report.dom0, console, &all);
    (lines, all)
}

/// The guest powered off when dom0 asked at the end. The harness reads the outcome from the
/// log of `xl create`'s monitoring process, which exits when the domain suspends (its last
/// word is then "suspend", even though the domain carried on): so a suspend outcome counts if
/// `xl shutdown -w` saw reason code 0 and the guest said it powered off.
fn assert_powered_off(outcome: &Option<Outcome>, dom0: &[String], console: &[String], all: &str) {
    let by_monitor = outcome.as_ref() == Some(&Outcome::Poweroff);
    let by_shutdown = dom0
        .iter()
        .any(|l| l.contains("has been shut down, reason code 0"))
        && console
            .iter()
            .any(|l| l.contains("poweroff requested by the toolstack"));
    assert!(
        by_monitor || by_shutdown,
        "the guest did not power off cleanly (outcome {outcome:?})\n{all}"
    );
}

/// The detail of check `name` in `lines`, or a panic with everything said.
fn check(lines: &(Vec<String>, String), name: &str) -> String {
    let prefix = format!("ok {name} ");
    lines
        .0
        .iter()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("check {name} did not pass\n{}", lines.1))
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_keeps_serving_across_a_checkpoint() {
    let l = lines("http-checkpoint");
    assert!(check(&l, "checkpoint-before").contains("ok"));
    let cmd = check(&l, "checkpoint-cmd");
    assert!(check(&l, "checkpoint-same-connection").contains("ok"));
    check(&l, "checkpoint-served-after");
    let measure =
        l.0.iter()
            .find(|x| x.starts_with("measure checkpoint "))
            .unwrap_or_else(|| panic!("no measurement\n{}", l.1));
    let size =
        l.0.iter()
            .find_map(|x| x.strip_prefix("image-bytes "))
            .unwrap_or_else(|| panic!("no image size\n{}", l.1));
    let bytes: u64 = size.trim().parse().expect("image size");
    assert!(
        bytes > 1 << 20,
        "a saved image of {bytes} bytes is implausible"
    );
    super::session().note(&format!(
        "http-checkpoint: xl save -c {cmd}, image {bytes} bytes, {measure}"
    ));
}

/// The line of `lines` starting with `prefix`, or a panic with everything said.
fn line_with<'a>(l: &'a (Vec<String>, String), prefix: &str) -> &'a str {
    l.0.iter()
        .find_map(|x| x.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}\n{}", l.1))
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_connection_survives_save_and_restore_twice() {
    let l = lines("http-restore");
    for n in ["1", "2"] {
        let r = format!("restore{n}");
        assert!(check(&l, &format!("{r}-before")).contains("ok"));
        check(&l, &format!("{r}-cmd"));
        assert!(check(&l, &format!("{r}-same-connection")).contains("ok"));
        check(&l, &format!("{r}-served-after"));
        let save = line_with(&l, &format!("measure save{n} "));
        let restore = line_with(&l, &format!("measure restore{n} ms="));
        let gap = line_with(&l, &format!("measure restore{n} gap_ms="));
        super::session().note(&format!(
            "http-restore #{n}: xl save {save}, xl restore ms={restore}, longest gap {gap}"
        ));
    }
    let bytes = line_with(&l, "image-bytes ");
    super::session().note(&format!("http-restore: saved image {bytes} bytes"));
}

#[test]
#[ignore = "boots nested Xen in QEMU: run scripts/test (XENIA_NESTED=1 ... -- --ignored)"]
fn http_serves_across_two_live_migrations() {
    let l = lines("http-migrate");
    let caps = line_with(&l, "virt_caps");
    if !caps.split_whitespace().any(|c| c == "shadow") {
        // No shadow paging in this Xen: no log-dirty mode for PV guests, so no live
        // migration of any PV guest. It must fail for exactly that reason, before the guest
        // is involved, and the guest must keep serving.
        for m in ["migrate1", "migrate2"] {
            assert!(
                l.1.contains("Failed to enable logdirty: 95"),
                "live migration failed for another reason than the missing shadow paging\n{}",
                l.1
            );
            assert!(check(&l, &format!("{m}-same-connection")).contains("ok"));
            check(&l, &format!("{m}-served-after"));
        }
        super::session().note(&format!(
            "http-migrate: NOT VERIFIED: this Xen has no shadow paging (virt_caps{caps}), so \
             PV live migration is impossible here (log-dirty: EOPNOTSUPP); the guest kept \
             serving through both attempts"
        ));
        return;
    }
    for m in ["migrate1", "migrate2"] {
        assert!(check(&l, &format!("{m}-before")).contains("ok"));
        let cmd = check(&l, &format!("{m}-cmd"));
        assert!(check(&l, &format!("{m}-same-connection")).contains("ok"));
        check(&l, &format!("{m}-served-after"));
        let gap = line_with(&l, &format!("measure {m} gap_ms="));
        super::session().note(&format!("http-{m}: xl migrate {cmd}, longest gap {gap}"));
    }
}
