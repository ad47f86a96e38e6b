//! What the host must have: the guest target, host tools (installed with apt as the scripts
//! do, or named exactly when that is not possible), and whether this is a Xen dom0.

use crate::err;
use crate::error::Result;
use std::path::Path;
use std::process::{Command, Stdio};

/// The guest's Rust target.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// Progress and notes on stderr.
pub fn info(msg: &str) {
    eprintln!("{msg}");
}

/// True when `cmd` is on PATH (or in /sbin, /usr/sbin).
pub fn have(cmd: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(cmd).is_file())
}

/// Installs the Debian package of each missing command (`(command, package)`), or says which
/// are missing.
pub fn need_packages(specs: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for (cmd, pkg) in specs {
        if !have(cmd) && !missing.contains(pkg) {
            missing.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !have("apt-get") {
        return Err(err!(
            "missing host packages: {} (install them: apt-get install {})",
            missing.join(" "),
            missing.join(" ")
        ));
    }
    info(&format!("installing host packages: {}", missing.join(" ")));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if install() {
        return Ok(());
    }
    info("apt-get update");
    let updated = Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !updated || !install() {
        return Err(err!("apt-get install {} failed", missing.join(" ")));
    }
    Ok(())
}

/// Makes sure the toolchain used in `dir` (its rust-toolchain.toml, if any) has the guest
/// target; adds it with rustup when it does not (a toolchain installed before without it
/// fails with "can't find crate for `core`").
pub fn need_guest_target(dir: &Path) -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok_or_else(|| {
            err!("rustc is not working here (install Rust with rustup: https://rustup.rs)")
        })?;
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(GUEST_TARGET)
        .is_dir()
    {
        return Ok(());
    }
    if !have("rustup") {
        return Err(err!(
            "the Rust target {GUEST_TARGET} is missing from {sysroot} and there is no rustup to add it"
        ));
    }
    info(&format!(
        "adding the guest target: rustup target add {GUEST_TARGET}"
    ));
    let ok = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(err!("rustup target add {GUEST_TARGET} failed"));
    }
    Ok(())
}

/// True on a Xen control domain with the xl toolstack.
pub fn on_xen_dom0() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"))
        && have("xl")
}
