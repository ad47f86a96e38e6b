//! A job for the nested Xen VM (`scripts/nested-xen/boot` of the xenia checkout: Xen + a Linux
//! dom0 in QEMU): a directory with the image, xl configs and `job.sh`, the disk images given
//! to QEMU as drives, and the forwarding of host ports.

use crate::err;
use crate::error::Result;
use crate::host;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// A temporary job directory, removed when dropped.
#[derive(Debug)]
pub struct JobDir(pub PathBuf);

impl JobDir {
    /// A fresh directory under $TMPDIR.
    pub fn new() -> Result<Self> {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let d = base.join(format!("xenia-job.{}.{i}", std::process::id()));
            if fs::create_dir(&d).is_ok() {
                return Ok(JobDir(d));
            }
        }
        Err(err!("cannot create a job directory in {}", base.display()))
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `target=/job/<file>` disk files of an xl config text, in order, once each.
pub fn job_disks(xl: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (at, _) in xl.match_indices("target=/job/") {
        let rest = &xl[at + "target=/job/".len()..];
        let f: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        if !f.is_empty() && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Disk images kept across runs: each `target=/job/<file>` of `xl` is `<dir>/<file>` on the
/// host (created blank, `$XENIA_DISK_SIZE` bytes, default 64M), attached to QEMU as a drive,
/// which dom0 gives the guest in place of the file. Returns the job.sh setup lines and the boot
/// arguments.
pub fn disks(xl: &str, xl_in_job: &str, dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let files = job_disks(xl);
    let (mut setup, mut args) = (Vec::new(), Vec::new());
    if files.is_empty() {
        return Ok((setup, args));
    }
    fs::create_dir_all(dir).map_err(|e| err!("cannot create {}: {e}", dir.display()))?;
    let size = std::env::var("XENIA_DISK_SIZE").unwrap_or_else(|_| "64M".into());
    let bytes = parse_size(&size)?;
    for (n, f) in files.iter().enumerate() {
        let path = dir.join(f);
        if !path.is_file() {
            let file = fs::File::create(&path)
                .map_err(|e| err!("cannot create {}: {e}", path.display()))?;
            file.set_len(bytes)
                .map_err(|e| err!("cannot size {}: {e}", path.display()))?;
            host::info(&format!("created a blank disk image {}", path.display()));
        }
        host::info(&format!("disk image {} (kept across runs)", path.display()));
        setup.push(format!("xenia_use_drive {xl_in_job} {f} {n} || exit 1"));
        args.push("--drive".into());
        args.push(path.display().to_string());
    }
    Ok((setup, args))
}

/// `64M`, `1G`, `4096`: bytes.
fn parse_size(s: &str) -> Result<u64> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|&n| n > 0)
        .ok_or_else(|| err!("XENIA_DISK_SIZE={s}: want bytes, e.g. 64M"))
}

/// The boot arguments of `--port HOST:GUEST` forwards to the guest at 10.0.0.2.
pub fn hostfwd(ports: &[String]) -> Result<Vec<String>> {
    let mut args = Vec::new();
    for p in ports {
        let ok = p.split_once(':').and_then(|(h, g)| {
            Some((h.parse::<u16>().ok()?, g.parse::<u16>().ok()?)).filter(|(h, g)| *h > 0 && *g > 0)
        });
        let (h, g) = ok.ok_or_else(|| err!("--port wants HOST:GUEST, got {p:?}"))?;
        host::info(&format!("forwarding host port {h} to 10.0.0.2:{g}"));
        args.push("--hostfwd".into());
        args.push(format!("tcp::{h}-10.0.0.2:{g}"));
    }
    Ok(args)
}

/// The first signal (SIGINT or SIGTERM) received, 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM: the nested VM runs in process groups of its own (a terminal's
/// Ctrl-C does not reach it), and [`wait_all`] stops it when one of them arrives.
pub fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: on_signal only does an atomic store, which is async-signal-safe.
        unsafe {
            libc::signal(sig, handler);
        }
    }
}

/// A command in a process group of its own.
pub fn own_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

/// The outcome of [`wait_all`].
#[derive(Debug)]
pub struct Waited {
    /// Each child's exit status, in the order given.
    pub statuses: Vec<ExitStatus>,
    /// The signal that stopped the run, if one did.
    pub signal: Option<i32>,
}

/// Waits for all `children`; when SIGINT or SIGTERM arrives, sends SIGTERM to the first one
/// (boot, which kills QEMU and returns only once it is gone) and keeps waiting.
pub fn wait_all(children: &mut [Child]) -> Result<Waited> {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut forwarded = None;
    loop {
        for (c, s) in children.iter_mut().zip(statuses.iter_mut()) {
            if s.is_none() {
                *s = c.try_wait().map_err(|e| err!("waiting for a child: {e}"))?;
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        let sig = SIGNAL.load(Ordering::SeqCst);
        if sig != 0 && forwarded.is_none() {
            let name = if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            host::info(&format!("cargo xenia: {name}: stopping the nested VM"));
            if statuses[0].is_none() {
                let pid = children[0].id() as libc::pid_t;
                // SAFETY: kill has no memory effects; the pid is our unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            forwarded = Some(sig);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Waited {
        statuses: statuses.into_iter().map(|s| s.expect("all done")).collect(),
        signal: forwarded,
    })
}

/// `scripts/nested-xen/boot JOB --timeout S --log LOG ARGS...` with its stdout piped.
pub fn boot(root: &Path, job: &Path, timeout: u64, log: &Path, args: &[String]) -> Result<Child> {
    host::need_packages(&[("python3", "python3")])?;
    let boot = root.join("scripts/nested-xen/boot");
    if !cache_ready() {
        host::info(
            "first run: preparing the nested Xen VM (Debian's Xen and kernel, downloaded once and cached in ~/.cache/xenia/nested-xen; a few minutes)",
        );
    }
    host::info(&format!("booting nested Xen (log: {})", log.display()));
    own_group(
        Command::new(&boot)
            .arg(job)
            .arg("--timeout")
            .arg(timeout.to_string())
            .arg("--log")
            .arg(log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    )
    .spawn()
    .map_err(|e| err!("cannot run {}: {e}", boot.display()))
}

/// True when the nested VM's files were prepared before (boot then starts at once).
fn cache_ready() -> bool {
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("xenia/nested-xen"));
    dir.is_some_and(|d| fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_job_disks() {
        let xl = "disk = [ \"format=raw,vdev=xvda,target=/job/a.img\", \"vdev=xvdb,target=/job/b-1.img\", \"target=/job/a.img\" ]\n";
        assert_eq!(job_disks(xl), ["a.img", "b-1.img"]);
        assert!(job_disks("disk = [ \"target=/srv/x.img\" ]").is_empty());
    }

    #[test]
    fn ports_and_sizes() {
        assert_eq!(
            hostfwd(&["8080:80".into()]).unwrap(),
            ["--hostfwd", "tcp::8080-10.0.0.2:80"]
        );
        assert!(hostfwd(&["8080".into()]).is_err());
        assert!(hostfwd(&["0:80".into()]).is_err());
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }
}
