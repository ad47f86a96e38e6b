//! `cargo xenia run`: build the app and run it as a Xen PV domain, its console on stdout.
//!
//! On a Xen control domain this is `xl create -c`. Anywhere else the guest runs in the nested
//! Xen VM of the xenia checkout (Xen + a Linux dom0 in QEMU; the first run downloads and caches
//! Debian's Xen and kernel): its console is printed as it comes, host ports can be forwarded to
//! it, and its `target=/job/<file>` disks are image files kept across runs.
//!
//! Crash backtraces are followed by the call stack with names and lines (`scripts/symbolize`
//! with the `.debug` ELF). Exit status: 0 poweroff, 1 crash, 124 timeout, 130 / 143 stopped by
//! SIGINT / SIGTERM (the nested VM is stopped first), 2 anything else.

use crate::config::xl_string;
use crate::err;
use crate::error::Result;
use crate::host;
use crate::image::{self, BuildOptions};
use crate::nested::{self, JobDir};
use crate::project::Project;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// `cargo xenia run`'s options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Build with the release profile.
    pub release: bool,
    /// Seconds the guest may run (default 60; 3600 for an app with a network interface).
    pub timeout: Option<u64>,
    /// `HOST:GUEST` TCP forwards (nested VM only; default 8080:80 for an app with a vif).
    pub ports: Vec<String>,
    /// Replaces the metadata's `cmdline`.
    pub cmdline: Option<String>,
    /// Show the whole serial line (nested VM only).
    pub verbose: bool,
}

/// The xl text with its `extra = "..."` line replaced by `cmdline`.
pub fn with_cmdline(xl: &str, cmdline: &str) -> Result<String> {
    xl_string("--cmdline", cmdline)?;
    if !xl.lines().any(|l| l.starts_with("extra = ")) {
        return Err(err!("the xl config has no extra = line"));
    }
    Ok(xl
        .lines()
        .map(|l| {
            if l.starts_with("extra = ") {
                format!("extra = \"{cmdline}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect())
}

/// Runs the app; returns the exit status for the process.
pub fn run(p: &Project, opts: &RunOptions) -> Result<i32> {
    if let Some(c) = &opts.cmdline {
        xl_string("--cmdline", c)?;
    }
    if opts.timeout == Some(0) {
        return Err(err!("--timeout needs a positive number of seconds"));
    }
    if host::on_xen_dom0() {
        on_dom0(p, opts)
    } else {
        in_nested_vm(p, opts)
    }
}

fn symbolize(root: Option<&Path>, debug: &Path) -> Command {
    match root {
        Some(r) => {
            let mut c = Command::new(r.join("scripts/symbolize"));
            c.arg(debug);
            c
        }
        // Without the checkout's symbolizer the console passes through unchanged.
        None => Command::new("cat"),
    }
}

fn on_dom0(p: &Project, opts: &RunOptions) -> Result<i32> {
    let built = image::build(
        p,
        &BuildOptions {
            release: opts.release,
            ..Default::default()
        },
    )?;
    let mut cfg = built.xl.clone();
    let _tmp;
    if let Some(c) = &opts.cmdline {
        // A copy: the generated config stays as the build wrote it.
        let job = JobDir::new()?;
        cfg = job.0.join(format!("{}.xl", p.package));
        let text =
            fs::read_to_string(&built.xl).map_err(|e| err!("{}: {e}", built.xl.display()))?;
        fs::write(&cfg, with_cmdline(&text, c)?).map_err(|e| err!("{}: {e}", cfg.display()))?;
        _tmp = job;
    }
    if !opts.ports.is_empty() {
        host::info("warning: --port is for the nested VM; on a real dom0 use the bridge");
    }
    let timeout = opts.timeout.unwrap_or(60);
    let root = p.xenia_root().ok();
    let mut xl = Command::new("timeout")
        .args(["--foreground", &timeout.to_string(), "xl", "create", "-c"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| err!("cannot run xl create: {e}"))?;
    let out = xl.stdout.take().expect("piped");
    let mut sym = symbolize(root.as_deref(), &built.debug)
        .stdin(out)
        .spawn()
        .map_err(|e| err!("cannot run scripts/symbolize: {e}"))?;
    let rc = xl
        .wait()
        .map_err(|e| err!("waiting for xl: {e}"))?
        .code()
        .unwrap_or(2);
    let _ = sym.wait();
    let name = &p.package;
    // The console detaches when the domain goes away or stops; tell how it ended.
    let state = Command::new("xl")
        .args(["list", name])
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(4).map(String::from))
        });
    let destroy = || {
        let _ = Command::new("xl")
            .args(["destroy", name])
            .stderr(Stdio::null())
            .status();
    };
    if rc == 124 {
        host::info(&format!(
            "{name}: TIMED OUT after {timeout} s; destroying it"
        ));
        destroy();
        return Ok(124);
    }
    if state.is_some_and(|s| s.contains('c')) {
        host::info(&format!("{name}: CRASHED; xl dmesg tail:"));
        if let Ok(o) = Command::new("xl").arg("dmesg").output() {
            let text = String::from_utf8_lossy(&o.stdout);
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
        destroy();
        return Ok(1);
    }
    Ok(if rc == 0 { 0 } else { 2 })
}

fn in_nested_vm(p: &Project, opts: &RunOptions) -> Result<i32> {
    let root = p.xenia_root()?;
    let name = &p.package;
    let job = JobDir::new()?;
    let xen_dir = p.xen_dir();
    // The unstripped ELF goes to target/xen directly (not into the job, which travels to the VM).
    let built = image::build(
        p,
        &BuildOptions {
            release: opts.release,
            out_dir: Some(job.0.clone()),
            debug_dir: Some(xen_dir.clone()),
            kernel_path: Some(format!("/job/{name}.xen")),
            features: Vec::new(),
        },
    )?;
    let mut xl = fs::read_to_string(&built.xl).map_err(|e| err!("{}: {e}", built.xl.display()))?;
    if let Some(c) = &opts.cmdline {
        xl = with_cmdline(&xl, c)?;
        fs::write(&built.xl, &xl).map_err(|e| err!("{}: {e}", built.xl.display()))?;
    }
    // The image is also left where builds go (the .xl there would name the nested path, so
    // it is not copied).
    let kept = xen_dir.join(format!("{name}.xen"));
    fs::copy(&built.image, kept.with_extension("tmp"))
        .and_then(|_| fs::rename(kept.with_extension("tmp"), &kept))
        .map_err(|e| err!("cannot copy the image to {}: {e}", kept.display()))?;

    // A service (an app with a network interface) runs until interrupted and is reachable from
    // the host at localhost:8080 unless told otherwise.
    let service = !p.domain.vifs.is_empty();
    let timeout = opts.timeout.unwrap_or(if service { 3600 } else { 60 });
    let mut ports = opts.ports.clone();
    if service && ports.is_empty() {
        ports.push("8080:80".into());
    }
    let mut args = nested::hostfwd(&ports)?;
    let disk_dir = std::env::var_os("XENIA_DISK_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| xen_dir.join(format!("{name}-disks")));
    let (setup, drives) = nested::disks(&xl, &format!("/job/{name}.xl"), &disk_dir)?;
    args.extend(drives);
    let mut script =
        String::from("# Generated by cargo xenia run: run one guest, then dump its console.\n");
    for l in setup {
        script += &format!("{l}\n");
    }
    script += &format!("xenia_scenario /job/{name}.xl {timeout}\n");
    fs::write(job.0.join("job.sh"), script).map_err(|e| err!("cannot write job.sh: {e}"))?;

    let log = xen_dir.join(format!("{name}.serial.log"));
    nested::catch_signals();
    let mut boot = nested::boot(&root, &job.0, timeout + 240, &log, &args)?;
    let serial = boot.stdout.take().expect("piped");
    let mut follow_cmd = Command::new(root.join("scripts/nested-xen/follow"));
    follow_cmd.arg(name).stdin(serial).stdout(Stdio::piped());
    if opts.verbose {
        follow_cmd.arg("--verbose");
    }
    let mut follow = nested::own_group(&mut follow_cmd)
        .spawn()
        .map_err(|e| err!("cannot run scripts/nested-xen/follow: {e}"))?;
    let console = follow.stdout.take().expect("piped");
    let sym = nested::own_group(symbolize(Some(&root), &built.debug).stdin(console))
        .spawn()
        .map_err(|e| err!("cannot run scripts/symbolize: {e}"))?;
    let mut children = [boot, follow, sym];
    let waited = nested::wait_all(&mut children)?;
    if let Some(sig) = waited.signal {
        return Ok(128 + sig);
    }
    let boot_status = waited.statuses[0].code().unwrap_or(1);
    let follow_status = waited.statuses[1].code().unwrap_or(2);
    if follow_status == 2 && boot_status != 0 {
        // The guest's end was never reported: the nested VM itself failed or timed out.
        host::info(&format!(
            "nested Xen failed (boot status {boot_status}); the serial log's tail:"
        ));
        if let Ok(text) = fs::read_to_string(&log) {
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{l}");
            }
        }
    }
    Ok(follow_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_cmdline() {
        let xl = "name = \"a\"\nextra = \"x=1\"\nmemory = 8\n";
        assert_eq!(
            with_cmdline(xl, "crash=page-fault").unwrap(),
            "name = \"a\"\nextra = \"crash=page-fault\"\nmemory = 8\n"
        );
        assert!(with_cmdline(xl, "a\"b").is_err());
        assert!(with_cmdline("name = \"a\"\n", "x").is_err());
    }
}
