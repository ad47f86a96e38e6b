//! Running many scenarios in one boot of the nested Xen VM.
//!
//! A [`Session`] builds the images of the examples the scenarios use (`scripts/build`), writes one
//! xl configuration per scenario (the example's generated one, renamed and adjusted), writes a
//! job whose `job.sh` runs the scenarios one after the other, boots the nested VM once
//! (`scripts/nested-xen/boot`) and parses the serial log.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::serial::{DomainReport, SerialLog};
use crate::xl::{XlConfig, XlValue};

/// Seconds the VM gets on top of the scenarios' own timeouts (boot, image transfer, teardown).
const BOOT_ALLOWANCE_SECS: u32 = 300;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the repository) or `target/`.
/// Separate target directories keep concurrent test runs apart.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => repo_root().join(d),
        _ => repo_root().join("target"),
    }
}

/// One guest run: an example booted with its generated configuration plus changes.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Scenario name, also the domain name (`[A-Za-z0-9_.-]+`, unique in a session).
    pub name: String,
    /// The example (directory under examples/) whose image runs.
    pub example: String,
    /// Settings that replace or extend the example's generated xl configuration.
    pub settings: Vec<(String, XlValue)>,
    /// Seconds from `xl create` after which the domain is destroyed as timed out.
    pub timeout_secs: u32,
}

impl Scenario {
    /// A scenario running `example` unchanged, with a 30 s timeout.
    pub fn new(name: &str, example: &str) -> Self {
        Scenario {
            name: name.to_string(),
            example: example.to_string(),
            settings: Vec::new(),
            timeout_secs: 30,
        }
    }

    /// Set an xl configuration key for this scenario.
    pub fn set(mut self, key: &str, value: XlValue) -> Self {
        self.settings.push((key.to_string(), value));
        self
    }

    /// Set the guest's command line (`extra`).
    pub fn cmdline(self, cmdline: &str) -> Self {
        self.set("extra", XlValue::Str(cmdline.to_string()))
    }

    /// Set the timeout.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = secs;
        self
    }
}

/// The results of one boot with all scenarios.
#[derive(Debug)]
pub struct Session {
    /// The parsed serial log.
    pub log: SerialLog,
    /// The configuration each scenario ran with, by scenario name.
    pub configs: BTreeMap<String, XlConfig>,
    /// Image size in bytes of each example built.
    pub image_sizes: BTreeMap<String, u64>,
    /// Where the serial log is.
    pub log_path: PathBuf,
    /// Exit status of `scripts/nested-xen/boot` (0: the job ran to its end).
    pub boot_status: i32,
}

/// One scenario's configuration and report.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioResult<'a> {
    /// The scenario's name.
    pub name: &'a str,
    /// The xl configuration it ran with.
    pub config: &'a XlConfig,
    /// What dom0 reported.
    pub report: &'a DomainReport,
}

impl<'a> ScenarioResult<'a> {
    /// The verified console lines; an error says why they are not available.
    pub fn console(&self) -> Result<&'a [String], String> {
        self.report.console()
    }

    /// A one-line timing summary: `xl create` duration, last console line, end.
    pub fn timing(&self) -> String {
        let f = |v: Option<f64>| v.map_or("?".to_string(), |s| format!("{s:.2} s"));
        format!(
            "{}: xl create took {}, last console line {} after create, end ({}) {} after create",
            self.name,
            f(self.report.create_secs),
            f(self.report.last_line_secs()),
            self.report
                .outcome
                .as_ref()
                .map_or("none".to_string(), |o| o.to_string()),
            f(self.report.end_secs),
        )
    }
}

impl Session {
    /// Build, boot once, run every scenario; `dir` (emptied first) receives the job and the
    /// serial log. Fails only when the job cannot be built or the VM cannot be started; what
    /// happened to each scenario is in the result.
    pub fn run(dir: &Path, scenarios: &[Scenario]) -> Result<Session, String> {
        let root = repo_root();
        let mut names = std::collections::BTreeSet::new();
        for s in scenarios {
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(format!("bad scenario name {:?}", s.name));
            }
            if !names.insert(s.name.as_str()) {
                return Err(format!("two scenarios are named {:?}", s.name));
            }
        }
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("cannot empty {}: {e}", dir.display()))?;
        }
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

        // Images and generated configs, one per example.
        let mut base = BTreeMap::new();
        let mut image_sizes = BTreeMap::new();
        for s in scenarios {
            if base.contains_key(&s.example) {
                continue;
            }
            let out = Command::new(root.join("scripts/build"))
                .arg(&s.example)
                .arg("--out-dir")
                .arg(dir)
                .arg("--kernel-path")
                .arg(format!("/job/{}.xen", s.example))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run scripts/build: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/build {} failed ({}):\n{}",
                    s.example,
                    out.status,
                    tail(&String::from_utf8_lossy(&out.stderr), 40)
                ));
            }
            let cfg_path = dir.join(format!("{}.xl", s.example));
            let text = fs::read_to_string(&cfg_path)
                .map_err(|e| format!("cannot read {}: {e}", cfg_path.display()))?;
            base.insert(s.example.clone(), XlConfig::parse(&text)?);
            let size = fs::metadata(dir.join(format!("{}.xen", s.example)))
                .map_err(|e| format!("image of {}: {e}", s.example))?
                .len();
            image_sizes.insert(s.example.clone(), size);
        }

        // One config per scenario and the job script.
        let mut configs = BTreeMap::new();
        let mut job = String::from(
            "# Generated by xenia-tests (tests/src/session.rs): the scenarios, one after the other.\n",
        );
        for s in scenarios {
            let mut cfg = base[&s.example].clone();
            cfg.set("name", XlValue::Str(s.name.clone()))?;
            for (k, v) in &s.settings {
                cfg.set(k, v.clone())?;
            }
            let path = dir.join(format!("{}.xl", s.name));
            fs::write(&path, cfg.to_string())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            job.push_str(&format!(
                "xenia_scenario /job/{}.xl {} || true\n",
                s.name, s.timeout_secs
            ));
            configs.insert(s.name.clone(), cfg);
        }
        fs::write(dir.join("job.sh"), job).map_err(|e| format!("cannot write job.sh: {e}"))?;

        let log_path = dir.join("serial.log");
        let timeout: u32 =
            scenarios.iter().map(|s| s.timeout_secs).sum::<u32>() + BOOT_ALLOWANCE_SECS;
        let status = Command::new(root.join("scripts/nested-xen/boot"))
            .arg(dir)
            .arg("--quiet")
            .arg("--timeout")
            .arg(timeout.to_string())
            .arg("--log")
            .arg(&log_path)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run scripts/nested-xen/boot: {e}"))?;
        let text = fs::read(&log_path)
            .map_err(|e| format!("no serial log {}: {e}", log_path.display()))?;
        Ok(Session {
            log: SerialLog::parse(&String::from_utf8_lossy(&text)),
            configs,
            image_sizes,
            log_path,
            boot_status: status.code().unwrap_or(-1),
        })
    }

    /// The result of a scenario, or an error with what is known about why there is none.
    pub fn scenario(&self, name: &str) -> Result<ScenarioResult<'_>, String> {
        let (name, config) = self
            .configs
            .get_key_value(name)
            .ok_or_else(|| format!("no scenario {name:?} in this session"))?;
        match self.log.domains.get(name) {
            Some(report) if report.outcome.is_some() => Ok(ScenarioResult {
                name,
                config,
                report,
            }),
            _ => Err(format!(
                "scenario {name} has no result (boot status {}, {}); serial log {}:\n{}",
                self.boot_status,
                self.log
                    .fatal
                    .as_deref()
                    .map_or("dom0 did not report a fatal error".to_string(), |f| {
                        format!("dom0 fatal: {f}")
                    }),
                self.log_path.display(),
                self.log_tail(30)
            )),
        }
    }

    /// The last `n` lines of the serial log.
    pub fn log_tail(&self, n: usize) -> String {
        fs::read(&self.log_path)
            .map(|t| tail(&String::from_utf8_lossy(&t), n))
            .unwrap_or_else(|e| format!("(cannot read the log: {e})"))
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_builder() {
        let s = Scenario::new("hello-x", "hello")
            .cmdline("a=b")
            .set("memory", XlValue::Int(48))
            .timeout(5);
        assert_eq!(s.timeout_secs, 5);
        assert_eq!(
            s.settings,
            vec![
                ("extra".to_string(), XlValue::Str("a=b".into())),
                ("memory".to_string(), XlValue::Int(48)),
            ]
        );
    }

    #[test]
    fn bad_names_are_refused_before_anything_runs() {
        let dir = std::env::temp_dir().join("xenia-tests-never-created");
        let err = Session::run(&dir, &[Scenario::new("a b", "hello")]).unwrap_err();
        assert!(err.contains("bad scenario name"), "{err}");
        let twice = [Scenario::new("a", "hello"), Scenario::new("a", "panic")];
        let err = Session::run(&dir, &twice).unwrap_err();
        assert!(err.contains("two scenarios"), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
