//! Parsing the serial log of a nested-Xen run into per-domain results.
//!
//! dom0 reports through marker lines (written by `scripts/nested-xen/dom0/xenia.sh`):
//!
//! ```text
//! @@XENIA|<kind>|<domain or ->|<time or ->|<payload>
//! ```
//!
//! and `scripts/nested-xen/boot` writes every serial line to the log prefixed with the host's
//! elapsed time (`[  12.345] `) and adds `@@HOST|...` lines of its own. The serial line is shared
//! with Xen's and dom0's kernel messages, which can land in the middle of a dom0 line, so a marker
//! is looked for anywhere in a line, and a domain's console comes from the dump after the domain
//! ended, checked against its line count and SHA-256 (the `logsum` marker).

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

const MARK: &str = "@@XENIA|";

/// How a domain's run ended, as dom0 saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The domain shut down with reason poweroff.
    Poweroff,
    /// The domain crashed (shutdown reason crash, or state `c` with `on_crash = "preserve"`).
    Crash,
    /// The domain shut down with reason reboot.
    Reboot,
    /// The domain was still running when its time was up (it was destroyed).
    Timeout,
    /// `xl create` failed.
    CreateFailed,
    /// Anything else dom0 reported (`gone`, `suspend`, `watchdog`, ...).
    Other(String),
}

impl Outcome {
    fn parse(s: &str) -> Self {
        match s {
            "poweroff" => Outcome::Poweroff,
            "crash" => Outcome::Crash,
            "reboot" => Outcome::Reboot,
            "timeout" => Outcome::Timeout,
            "create-failed" => Outcome::CreateFailed,
            other => Outcome::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Poweroff => f.write_str("poweroff"),
            Outcome::Crash => f.write_str("crash"),
            Outcome::Reboot => f.write_str("reboot"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::CreateFailed => f.write_str("create-failed"),
            Outcome::Other(s) => f.write_str(s),
        }
    }
}

/// A console line as dom0 streamed it while the domain ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamedLine {
    /// Seconds from the start of `xl create` to when dom0 read the line.
    pub secs: f64,
    /// The line (trailing carriage returns removed).
    pub text: String,
}

/// Everything reported about one domain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainReport {
    /// dom0 uptime when `xl create` started.
    pub create_at: Option<f64>,
    /// `xl create`'s exit status.
    pub create_rc: Option<i32>,
    /// How long `xl create` took, in seconds.
    pub create_secs: Option<f64>,
    /// The console lines streamed live (can miss or garble lines; see [`DomainReport::console`]).
    pub streamed: Vec<StreamedLine>,
    /// The console log dumped after the end (`log` markers), before checking.
    pub log: Vec<String>,
    /// The `logsum` marker: number of lines and SHA-256 of the dump.
    pub logsum: Option<(usize, String)>,
    /// dom0 output about this domain (`out` markers: xl's output, commands run for it).
    pub dom0: Vec<String>,
    /// The hypervisor's log after a crash or timeout (`dmesg` markers).
    pub dmesg: Vec<String>,
    /// How the domain ended.
    pub outcome: Option<Outcome>,
    /// Seconds from the start of `xl create` to when dom0 noticed the end.
    pub end_secs: Option<f64>,
}

impl DomainReport {
    /// The domain's complete console, or why it cannot be trusted (no dump, or a dump that
    /// does not match its checksum: the serial line garbled it).
    pub fn console(&self) -> Result<&[String], String> {
        let (lines, sum) = self
            .logsum
            .as_ref()
            .ok_or_else(|| "no console dump (logsum marker missing)".to_string())?;
        if *lines != self.log.len() {
            return Err(format!(
                "console dump has {} lines, dom0 sent {lines}",
                self.log.len()
            ));
        }
        let mut h = Sha256::new();
        for l in &self.log {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        let got = hex(&h.finalize());
        if got != *sum {
            return Err(format!(
                "console dump checksum mismatch (got {got}, dom0 sent {sum}): garbled on the serial line"
            ));
        }
        Ok(&self.log)
    }

    /// Seconds from the start of `xl create` to the last streamed console line.
    pub fn last_line_secs(&self) -> Option<f64> {
        self.streamed.last().map(|l| l.secs)
    }
}

/// A parsed serial log of one nested-Xen boot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SerialLog {
    /// Host seconds (since QEMU started) at which dom0 reported ready.
    pub ready_host_secs: Option<f64>,
    /// dom0 uptime at ready.
    pub ready_uptime: Option<f64>,
    /// Host seconds at which the job finished.
    pub jobdone_host_secs: Option<f64>,
    /// Exit status of job.sh.
    pub job_rc: Option<i32>,
    /// A fatal dom0 setup error.
    pub fatal: Option<String>,
    /// Harness messages (`dom0` markers).
    pub messages: Vec<String>,
    /// Per-domain reports, by domain name.
    pub domains: BTreeMap<String, DomainReport>,
    /// Host seconds of the last line (about how long QEMU ran).
    pub last_host_secs: Option<f64>,
}

impl SerialLog {
    /// Parse a log as written by `boot` (lines optionally prefixed with `[  secs] `).
    pub fn parse(text: &str) -> Self {
        let mut log = SerialLog::default();
        for raw in text.lines() {
            let (host, line) = split_host_stamp(raw);
            if host.is_some() {
                log.last_host_secs = host;
            }
            let Some(at) = line.find(MARK) else { continue };
            let mut f = line[at + MARK.len()..].splitn(4, '|');
            let (Some(kind), Some(dom), Some(t), Some(payload)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let t: Option<f64> = t.parse().ok();
            match kind {
                "ready" => {
                    log.ready_host_secs = log.ready_host_secs.or(host);
                    log.ready_uptime = t;
                }
                "jobdone" => {
                    log.jobdone_host_secs = host;
                    log.job_rc = payload
                        .strip_prefix("rc=")
                        .and_then(|s| s.trim().parse().ok());
                }
                "fatal" => log.fatal = Some(payload.to_string()),
                "dom0" => log.messages.push(payload.to_string()),
                _ => log.domain_marker(kind, dom, t, payload),
            }
        }
        log
    }

    fn domain_marker(&mut self, kind: &str, dom: &str, t: Option<f64>, payload: &str) {
        let known = matches!(
            kind,
            "create" | "con" | "out" | "log" | "logsum" | "dmesg" | "end"
        );
        if !known || dom == "-" || dom.is_empty() {
            return;
        }
        let d = self.domains.entry(dom.to_string()).or_default();
        match kind {
            "create" => {
                d.create_at = t;
                for word in payload.split_whitespace() {
                    if let Some(rc) = word.strip_prefix("rc=") {
                        d.create_rc = rc.parse().ok();
                    } else if let Some(s) = word.strip_prefix("secs=") {
                        d.create_secs = s.parse().ok();
                    }
                }
            }
            "con" => {
                if let Some(secs) = t {
                    d.streamed.push(StreamedLine {
                        secs,
                        text: payload.to_string(),
                    });
                }
            }
            "out" => d.dom0.push(payload.to_string()),
            "log" => d.log.push(payload.to_string()),
            "logsum" => {
                let mut w = payload.split_whitespace();
                if let (Some(n), Some(sum)) = (w.next().and_then(|n| n.parse().ok()), w.next()) {
                    d.logsum = Some((n, sum.to_string()));
                }
            }
            "dmesg" => d.dmesg.push(payload.to_string()),
            "end" => {
                d.outcome = Some(Outcome::parse(payload.trim()));
                d.end_secs = t;
            }
            _ => {}
        }
    }

    /// Seconds from QEMU's start to dom0 ready (the nested boot time).
    pub fn boot_secs(&self) -> Option<f64> {
        self.ready_host_secs
    }
}

/// Split `[  12.345] rest` into (Some(12.345), rest); other lines are returned whole.
fn split_host_stamp(line: &str) -> (Option<f64>, &str) {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some(end) = rest.find("] ") {
            if let Ok(secs) = rest[..end].trim().parse::<f64>() {
                return (Some(secs), &rest[end + 2..]);
            }
        }
    }
    (None, line)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(lines: &[&str]) -> String {
        let mut h = Sha256::new();
        for l in lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        hex(&h.finalize())
    }

    fn sample(log_lines: &[&str], sum_lines: &[&str]) -> String {
        let mut s = String::from(
            "[   0.000] @@HOST|qemu|qemu-system-x86_64 ...\n\
             [   0.300] (XEN) Xen version 4.17\n\
             [  12.500] @@XENIA|dom0|-|9.10|init started\n\
             [  13.250] @@XENIA|ready|-|9.80|xen_version=4.17.7\n\
             [  13.300] @@XENIA|out|hello|0.70|Parsing config from /job/hello.xl\n\
             [  13.310] @@XENIA|create|hello|9.90|rc=0 secs=0.70\n\
             [  13.900] @@XENIA|con|hello|0.65|hello from xenia\n\
             [  14.000] (XEN) some hypervisor message @@XENIA|con|hello|0.75|memory: 32 MiB\n\
             [  14.300] @@XENIA|end|hello|1.10|poweroff\n",
        );
        for l in log_lines {
            s.push_str(&format!("[  14.400] @@XENIA|log|hello|-|{l}\n"));
        }
        s.push_str(&format!(
            "[  14.500] @@XENIA|logsum|hello|-|{} {}\n",
            sum_lines.len(),
            sum(sum_lines)
        ));
        s.push_str("[  14.600] @@XENIA|jobdone|-|11.00|rc=0\n");
        s
    }

    #[test]
    fn parses_a_run() {
        let lines = ["hello from xenia", "memory: 32 MiB", "a|line|with|bars", ""];
        let log = SerialLog::parse(&sample(&lines, &lines));
        assert_eq!(log.ready_host_secs, Some(13.25));
        assert_eq!(log.boot_secs(), Some(13.25));
        assert_eq!(log.ready_uptime, Some(9.8));
        assert_eq!(log.job_rc, Some(0));
        assert_eq!(log.messages, vec!["init started"]);
        assert_eq!(log.last_host_secs, Some(14.6));
        let d = &log.domains["hello"];
        assert_eq!(d.create_rc, Some(0));
        assert_eq!(d.create_secs, Some(0.7));
        assert_eq!(d.create_at, Some(9.9));
        assert_eq!(d.outcome, Some(Outcome::Poweroff));
        assert_eq!(d.end_secs, Some(1.1));
        assert_eq!(d.dom0, vec!["Parsing config from /job/hello.xl"]);
        // The marker after a hypervisor message on the same line is still found.
        assert_eq!(d.streamed.len(), 2);
        assert_eq!(d.streamed[1].text, "memory: 32 MiB");
        assert_eq!(d.last_line_secs(), Some(0.75));
        assert_eq!(d.console().unwrap(), &lines.map(String::from)[..]);
    }

    #[test]
    fn garbled_dump_is_rejected() {
        let sent = ["hello from xenia", "memory: 32 MiB"];
        let received = ["hello from xenia", "memory: 3(XEN) oops2 MiB"];
        let log = SerialLog::parse(&sample(&received, &sent));
        let err = log.domains["hello"].console().unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn lost_dump_lines_are_rejected() {
        let sent = ["hello from xenia", "memory: 32 MiB"];
        let log = SerialLog::parse(&sample(&sent[..1], &sent));
        let err = log.domains["hello"].console().unwrap_err();
        assert!(err.contains("1 lines, dom0 sent 2"), "{err}");
    }

    #[test]
    fn missing_dump_is_rejected() {
        let log = SerialLog::parse("@@XENIA|end|x|1.00|crash\n");
        let d = &log.domains["x"];
        assert_eq!(d.outcome, Some(Outcome::Crash));
        assert!(d.console().is_err());
        assert_eq!(log.ready_host_secs, None);
        assert_eq!(log.job_rc, None);
    }

    #[test]
    fn outcomes_and_odd_lines() {
        let text = "@@XENIA|end|a|2.00|timeout\n\
                    @@XENIA|end|b|-|create-failed\n\
                    @@XENIA|end|c|3.5|gone\n\
                    @@XENIA|con|a\n\
                    @@XENIA|con|a|notanumber|dropped\n\
                    @@XENIA|fatal|-|5.00|xenstored does not answer\n\
                    @@XENIA|unknown|z|1|ignored\n\
                    [ 1.0 no stamp here\n";
        let log = SerialLog::parse(text);
        assert_eq!(log.domains["a"].outcome, Some(Outcome::Timeout));
        assert!(log.domains["a"].streamed.is_empty());
        assert_eq!(log.domains["b"].outcome, Some(Outcome::CreateFailed));
        assert_eq!(log.domains["b"].end_secs, None);
        assert_eq!(
            log.domains["c"].outcome,
            Some(Outcome::Other("gone".into()))
        );
        assert_eq!(log.fatal.as_deref(), Some("xenstored does not answer"));
        assert!(!log.domains.contains_key("z"));
        assert_eq!(Outcome::Other("gone".into()).to_string(), "gone");
    }
}
