//! `cargo xenia test`: an app's own scenarios on real Xen (the nested VM), from
//! `xenia-scenarios.toml` beside its Cargo.toml.
//!
//! ```toml
//! [[scenario]]
//! name = "http"                 # [A-Za-z0-9_-]+
//! timeout = 180                 # seconds from `xl create` to the domain's end (default 120)
//! cmdline = "ip=10.0.0.2/24"    # optional: replaces [package.metadata.xenia] cmdline
//! # dom0's side (busybox sh, run once the domain was created; $d is its name). Each
//! # `xenia_run "$d" CMD...` reports CMD's output and "[exit N] CMD" as output lines;
//! # `xenia_http_get URL [--wait S]` GETs a URL (`cargo xenia http-get`, copied into the VM).
//! dom0 = '''
//! xenia_run "$d" xenia_http_get http://10.0.0.2/ --wait 60
//! xenia_run "$d" xl shutdown -w "$d"
//! '''
//! console = ["listening"]       # the guest's console must have lines containing these, in order
//! output = ["hello", "[exit 0] xl shutdown"]  # dom0's output lines, likewise
//! end = "poweroff"              # poweroff (default) | crash | reboot | timeout
//! ```
//!
//! All scenarios run in one boot of the nested VM, one after another. A scenario passes when
//! the domain ended as `end` says and every expected line was found in order; the report shows
//! what was missing and the domain's console.

use crate::err;
use crate::error::Result;
use crate::host;
use crate::image::{self, BuildOptions};
use crate::nested::{self, JobDir};
use crate::project::Project;
use crate::run::with_cmdline;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The scenario file's name, beside the app's Cargo.toml.
pub const FILE: &str = "xenia-scenarios.toml";

/// How a domain may end.
const ENDS: &[&str] = &["poweroff", "crash", "reboot", "timeout"];

/// One scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// Seconds the domain may run.
    pub timeout: u64,
    /// The guest's command line, if it replaces the metadata's.
    pub cmdline: Option<String>,
    /// dom0's script.
    pub dom0: String,
    /// Expected console lines (substrings, in order).
    pub console: Vec<String>,
    /// Expected dom0 output lines (substrings, in order).
    pub output: Vec<String>,
    /// The expected end.
    pub end: String,
}

fn strings(v: Option<&toml::Value>, what: &str) -> Result<Vec<String>> {
    match v {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(String::from)
                    .ok_or_else(|| err!("{what} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(err!("{what} must be a list of strings")),
    }
}

/// Parses a scenario file's text.
pub fn parse(text: &str) -> Result<Vec<Scenario>> {
    let doc: toml::Table = text.parse().map_err(|e| err!("{FILE}: {e}"))?;
    if let Some(k) = doc.keys().find(|k| *k != "scenario") {
        return Err(err!(
            "{FILE}: unknown top-level key {k:?} (want [[scenario]] tables)"
        ));
    }
    let list = doc
        .get("scenario")
        .and_then(toml::Value::as_array)
        .ok_or_else(|| err!("{FILE}: no [[scenario]] tables"))?;
    let mut out: Vec<Scenario> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let t = s
            .as_table()
            .ok_or_else(|| err!("{FILE}: scenario {i} is not a table"))?;
        const KEYS: &[&str] = &[
            "name", "timeout", "cmdline", "dom0", "console", "output", "end",
        ];
        if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(err!(
                "{FILE}: scenario {i}: unknown key {k:?}; known: {KEYS:?}"
            ));
        }
        let name = t
            .get("name")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| err!("{FILE}: scenario {i} needs a name"))?
            .to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err!("{FILE}: scenario name {name:?}: use [A-Za-z0-9_-]+"));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(err!("{FILE}: two scenarios named {name:?}"));
        }
        let what = |k: &str| format!("{FILE}: scenario {name}: {k}");
        let timeout = match t.get("timeout") {
            None => 120,
            Some(v) => v
                .as_integer()
                .filter(|&n| n > 0)
                .map(|n| n as u64)
                .ok_or_else(|| err!("{} must be a positive integer", what("timeout")))?,
        };
        let opt_str = |k: &str| -> Result<Option<String>> {
            match t.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| err!("{} must be a string", what(k))),
            }
        };
        let end = opt_str("end")?.unwrap_or_else(|| "poweroff".into());
        if !ENDS.contains(&end.as_str()) {
            return Err(err!("{} must be one of {ENDS:?}, got {end:?}", what("end")));
        }
        out.push(Scenario {
            cmdline: opt_str("cmdline")?,
            dom0: opt_str("dom0")?.unwrap_or_default(),
            console: strings(t.get("console"), &what("console"))?,
            output: strings(t.get("output"), &what("output"))?,
            end,
            timeout,
            name,
        });
    }
    Ok(out)
}

/// What one scenario produced, from the serial line's marker lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The domain's console (its whole log when dom0 sent it, else the streamed lines).
    pub console: Vec<String>,
    /// dom0's output lines about the domain.
    pub output: Vec<String>,
    /// How it ended (`end` marker payload), if it did.
    pub end: Option<String>,
}

/// Splits the serial output into the scenarios' outcomes: `xenia_log "scenario NAME"` starts
/// one; `@@XENIA|kind|domain|time|payload` lines fill it.
pub fn collect(lines: impl Iterator<Item = String>) -> Vec<(String, Outcome)> {
    let mut out: Vec<(String, Outcome)> = Vec::new();
    let mut streamed: Vec<String> = Vec::new();
    for line in lines {
        let Some(at) = line.find("@@XENIA|") else {
            continue;
        };
        let mut f = line[at + 8..].splitn(4, '|');
        let (kind, _dom, _time, payload) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        if kind == "dom0" {
            if let Some(n) = payload.strip_prefix("scenario ") {
                if let Some((_, o)) = out.last_mut() {
                    if o.console.is_empty() {
                        o.console = std::mem::take(&mut streamed);
                    }
                }
                streamed.clear();
                out.push((n.to_string(), Outcome::default()));
            }
            continue;
        }
        let Some((_, o)) = out.last_mut() else {
            continue;
        };
        match kind {
            "con" => streamed.push(payload.to_string()),
            "log" => o.console.push(payload.to_string()),
            "out" => o.output.push(payload.to_string()),
            "end" => o.end = Some(payload.to_string()),
            _ => {}
        }
    }
    if let Some((_, o)) = out.last_mut() {
        if o.console.is_empty() {
            o.console = streamed;
        }
    }
    out
}

/// The expected substrings not found in order in `lines`.
pub fn missing(expected: &[String], lines: &[String]) -> Vec<String> {
    let mut at = 0;
    let mut miss = Vec::new();
    for e in expected {
        match lines[at..].iter().position(|l| l.contains(e.as_str())) {
            Some(i) => at += i + 1,
            None => miss.push(e.clone()),
        }
    }
    miss
}

/// Runs the app's scenarios (those whose name contains `filter`, if given); returns the exit
/// status (0 all passed, 1 some failed).
pub fn test(p: &Project, release: bool, filter: Option<&str>) -> Result<i32> {
    let dir = p.manifest.parent().unwrap_or(Path::new("."));
    let file = dir.join(FILE);
    let text = fs::read_to_string(&file).map_err(|e| {
        err!(
            "{}: {e} (cargo xenia test runs the scenarios in this file; see `cargo xenia help test`)",
            file.display()
        )
    })?;
    let scenarios: Vec<Scenario> = parse(&text)?
        .into_iter()
        .filter(|s| filter.is_none_or(|f| s.name.contains(f)))
        .collect();
    if scenarios.is_empty() {
        return Err(err!("no scenario matches"));
    }
    let root = p.xenia_root()?;
    let name = &p.package;
    let job = JobDir::new()?;
    let built = image::build(
        p,
        &BuildOptions {
            release,
            out_dir: Some(job.0.clone()),
            debug_dir: Some(p.xen_dir()),
            kernel_path: Some(format!("/job/{name}.xen")),
            features: Vec::new(),
        },
    )?;
    let xl = fs::read_to_string(&built.xl).map_err(|e| err!("{}: {e}", built.xl.display()))?;
    let disk_dir = p.xen_dir().join(format!("{name}-test-disks"));
    // This program, stripped, for the scenarios' `xenia_http_get`.
    let me = std::env::current_exe().map_err(|e| err!("cannot find cargo-xenia itself: {e}"))?;
    let ok = std::process::Command::new("objcopy")
        .arg("--strip-all")
        .arg(&me)
        .arg(job.0.join("xenia-tool"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(err!("objcopy --strip-all {} failed", me.display()));
    }
    let mut script = String::from(
        "# Generated by cargo xenia test.\n\
         cp /job/xenia-tool /tmp/xenia-tool && chmod +x /tmp/xenia-tool\n\
         xenia_http_get() { /tmp/xenia-tool xenia http-get \"$@\"; }\n",
    );
    let mut boot_args = Vec::new();
    let mut total = 0;
    for (i, s) in scenarios.iter().enumerate() {
        let cfg = format!("/job/s{i}.xl");
        let text = match &s.cmdline {
            Some(c) => with_cmdline(&xl, c)?,
            None => xl.clone(),
        };
        fs::write(job.0.join(format!("s{i}.xl")), &text).map_err(|e| err!("job: {e}"))?;
        fs::write(job.0.join(format!("s{i}.sh")), &s.dom0).map_err(|e| err!("job: {e}"))?;
        script += &format!("xenia_log \"scenario {}\"\n", s.name);
        // The same QEMU drives serve every scenario; each config gets them in place of its
        // `target=/job/<file>` disks.
        let (setup, drives) = nested::disks(&xl, &cfg, &disk_dir)?;
        if i == 0 {
            boot_args.extend(drives);
        }
        for l in setup {
            script += &format!("{l}\n");
        }
        script += &format!("xenia_scenario {cfg} {} /job/s{i}.sh\n", s.timeout);
        total += s.timeout + 30;
    }
    fs::write(job.0.join("job.sh"), script).map_err(|e| err!("cannot write job.sh: {e}"))?;

    let log = p.xen_dir().join(format!("{name}.test.serial.log"));
    nested::catch_signals();
    host::info(&format!(
        "running {} scenario(s) of {name} in nested Xen",
        scenarios.len()
    ));
    let mut boot = nested::boot(&root, &job.0, total + 240, &log, &boot_args)?;
    let serial = boot.stdout.take().expect("piped");
    // Read the serial line as it comes (progress: the scenario being run).
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(serial).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("@@XENIA|dom0|-|") {
                if let Some(n) = line[at..].rsplit('|').next() {
                    if let Some(s) = n.strip_prefix("scenario ") {
                        host::info(&format!("scenario {s} ..."));
                    }
                }
            }
            lines.push(line);
        }
        lines
    });
    let mut children = [boot];
    let waited = nested::wait_all(&mut children)?;
    let lines = reader.join().unwrap_or_default();
    if let Some(sig) = waited.signal {
        return Ok(128 + sig);
    }
    let outcomes = collect(lines.into_iter());
    let mut failed = 0;
    for s in &scenarios {
        let o = outcomes
            .iter()
            .find(|(n, _)| *n == s.name)
            .map(|(_, o)| o.clone());
        let mut why = Vec::new();
        match &o {
            None => why.push("never ran (the nested VM failed before it)".to_string()),
            Some(o) => {
                if o.end.as_deref() != Some(s.end.as_str()) {
                    why.push(format!(
                        "ended {}, expected {}",
                        o.end.as_deref().unwrap_or("never"),
                        s.end
                    ));
                }
                for m in missing(&s.console, &o.console) {
                    why.push(format!("console line missing: {m:?}"));
                }
                for m in missing(&s.output, &o.output) {
                    why.push(format!("dom0 output line missing: {m:?}"));
                }
            }
        }
        if why.is_empty() {
            println!("ok   {}", s.name);
        } else {
            failed += 1;
            println!("FAIL {}: {}", s.name, why.join("; "));
            if let Some(o) = o {
                for l in &o.console {
                    println!("  console| {l}");
                }
                for l in &o.output {
                    println!("  dom0   | {l}");
                }
            }
        }
    }
    println!(
        "{} passed, {failed} failed (serial log: {})",
        scenarios.len() - failed,
        log.display()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let s = parse(
            r#"
[[scenario]]
name = "http"
timeout = 60
dom0 = "xenia_run \"$d\" true"
console = ["a", "b"]
output = ["[exit 0] true"]
"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].end, "poweroff");
        assert_eq!(s[0].timeout, 60);
        assert!(parse("[[scenario]]\nname = \"x\"\nexpect = []\n")
            .unwrap_err()
            .0
            .contains("unknown key"));
        assert!(parse("[[scenario]]\nname = \"a b\"\n").is_err());
        assert!(parse("[[scenario]]\nname = \"a\"\nend = \"boom\"\n").is_err());
        assert!(parse("[[scenario]]\nname = \"a\"\ntimeout = 0\n").is_err());
        assert!(parse("x = 1\n").is_err());
    }

    #[test]
    fn collects_outcomes() {
        let serial = [
            "[ 1.0] @@XENIA|dom0|-|3.00|scenario one",
            "[ 1.1] @@XENIA|con|app|0.50|hello",
            "[ 1.2] @@XENIA|out|app|0.60|hello from app",
            "[ 1.3] @@XENIA|end|app|0.70|poweroff",
            "[ 1.4] @@XENIA|log|app|-|hello",
            "[ 1.4] @@XENIA|log|app|-|bye",
            "[ 2.0] @@XENIA|dom0|-|9.00|scenario two",
            "[ 2.1] @@XENIA|con|app|0.50|streamed only",
            "[ 2.2] @@XENIA|end|app|0.70|crash",
        ];
        let o = collect(serial.iter().map(|s| s.to_string()));
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].1.console, ["hello", "bye"]);
        assert_eq!(o[0].1.output, ["hello from app"]);
        assert_eq!(o[0].1.end.as_deref(), Some("poweroff"));
        assert_eq!(o[1].1.console, ["streamed only"]);
        assert_eq!(o[1].1.end.as_deref(), Some("crash"));
        let lines: Vec<String> = ["a1", "b2", "a3"].map(String::from).to_vec();
        assert!(missing(&["a".into(), "b".into()], &lines).is_empty());
        assert_eq!(missing(&["b".into(), "b".into()], &lines), ["b"]);
    }
}
