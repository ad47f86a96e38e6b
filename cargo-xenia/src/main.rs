//! `cargo xenia`: create, build, run and test Xenia apps (async Rust unikernels that run as
//! Xen PV guests), inside or outside the xenia repository.
//!
//! ```text
//! cargo xenia new <path> [--xenia <checkout>]
//! cargo xenia build [--release] [--manifest-path M] [--features F] [--out-dir D] [--debug-dir D] [--kernel-path P]
//! cargo xenia run [--release] [--manifest-path M] [--timeout S] [--port H:G]... [--cmdline T] [--verbose]
//! cargo xenia test [--release] [--manifest-path M] [FILTER]
//! ```
//!
//! Installed with `cargo install --path cargo-xenia` from a xenia checkout.

mod config;
mod error;
mod fetch;
mod host;
mod image;
mod libvirt;
mod nested;
mod new;
mod project;
mod run;
mod scenario;
mod xl;

use error::Result;
use std::path::PathBuf;

const USAGE: &str = "\
cargo xenia: create, build, run and test Xenia apps (Xen PV guests)

Usage:
  cargo xenia new <path> [--xenia <checkout>]
      A new app at <path>: Cargo.toml (depending on the xenia checkout's runtime by path, the
      domain in [package.metadata.xenia]), an HTTP service in src/main.rs, its nested-Xen
      scenarios in xenia-scenarios.toml, rust-toolchain.toml (with the guest target), README.md.
      The checkout: --xenia, else $XENIA_ROOT, else the one cargo-xenia was installed from.

  cargo xenia build [--release] [--manifest-path M] [--features F] [--out-dir D]
                    [--debug-dir D] [--kernel-path P]
      Builds the app for x86_64-unknown-none with the runtime's link settings and writes, in D
      (default <target>/xen): <app>.xen (the stripped PV image, an ELF), <app>.xen.gz (it
      compressed: what the configs boot), <app>.xl (xl config), <app>.xml (libvirt domain, Xen
      driver), and <app>.debug (the unstripped ELF, in the --debug-dir if given). P is the path
      <app>.xen will have where the domain is created (default: its absolute path); the
      configs boot P.gz. --features: the app's cargo features F (comma-separated, as
      cargo's --features), a variant of the image: its files are named <app>+<f1>+<f2>...
      (features sorted) instead of <app>, so it never replaces the default image. Prints
      `<name>: <size> bytes` on stdout; cargo's output goes to stderr.

  cargo xenia run [--release] [--manifest-path M] [--timeout S] [--port HOST:GUEST]...
                  [--cmdline TEXT] [--verbose]
      Builds the app (release profile, always: it is what runs in production; --release is
      accepted for habit) and runs it with its console on stdout: `xl create -c` on a Xen dom0,
      elsewhere in the nested Xen VM of the xenia checkout (QEMU; prepared on the first run).
      --timeout: seconds the guest may run (default 60, 3600 for an app with a vif).
      --port (nested VM only): forward host TCP port HOST to the guest's port GUEST at
      10.0.0.2; an app with a vif gets 8080:80 when none is given. --cmdline replaces the
      metadata's cmdline. --verbose shows the whole serial line (nested VM only).
      Disks `target=/job/<file>` are image files kept in $XENIA_DISK_DIR (default
      <target>/xen/<app>-disks). Exit status: 0 poweroff, 1 crash, 124 timeout, 130/143
      SIGINT/SIGTERM, 2 other failures.

  cargo xenia test [--release] [--manifest-path M] [FILTER]
      Builds the app (release profile, always) and runs the scenarios of xenia-scenarios.toml
      (beside Cargo.toml; format in the file cargo xenia new writes) whose name contains
      FILTER, in one boot of the nested Xen VM.
      Exit status 0 when all pass, 1 when one fails. The scenarios' dom0 scripts may call
      `xenia_http_get URL [--wait S]` (this program's http-get, copied into the VM).

  cargo xenia http-get URL [--wait S]
      GET an http:// URL (HTTP/1.0), print the body; exit 0 on a 2xx status. --wait: retry a
      failed connection for up to S seconds.

Environment: XENIA_ROOT (the xenia checkout, for the nested-Xen scripts), XENIA_DISK_SIZE.";

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    command: String,
    positional: Vec<String>,
    release: bool,
    manifest: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    debug_dir: Option<PathBuf>,
    kernel_path: Option<String>,
    features: Vec<String>,
    timeout: Option<u64>,
    ports: Vec<String>,
    cmdline: Option<String>,
    verbose: bool,
    xenia: Option<PathBuf>,
}

/// Which options each command takes.
fn allowed(command: &str, opt: &str) -> bool {
    let common = ["--release", "--manifest-path"];
    match command {
        "new" => opt == "--xenia",
        "build" => {
            common.contains(&opt)
                || ["--out-dir", "--debug-dir", "--kernel-path", "--features"].contains(&opt)
        }
        "run" => {
            common.contains(&opt)
                || ["--timeout", "--port", "--cmdline", "--verbose"].contains(&opt)
        }
        "test" => common.contains(&opt),
        "http-get" => opt == "--wait",
        _ => false,
    }
}

fn parse(mut argv: Vec<String>) -> Result<Args> {
    // As `cargo xenia ...`, cargo passes "xenia" first.
    if argv.first().map(String::as_str) == Some("xenia") {
        argv.remove(0);
    }
    let mut it = argv.into_iter();
    let mut a = Args {
        command: it.next().unwrap_or_default(),
        ..Default::default()
    };
    if !["new", "build", "run", "test", "http-get"].contains(&a.command.as_str()) {
        return Err(err!(
            "unknown command {:?}; one of new, build, run, test (see cargo xenia --help)",
            a.command
        ));
    }
    while let Some(arg) = it.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if !opt.starts_with("--") || opt == "--" {
            a.positional.push(arg);
            continue;
        }
        if !allowed(&a.command, &opt) {
            return Err(err!("cargo xenia {}: unknown option {opt}", a.command));
        }
        if opt == "--release" || opt == "--verbose" {
            if inline.is_some() {
                return Err(err!("{opt} takes no value"));
            }
            if opt == "--release" {
                a.release = true;
            } else {
                a.verbose = true;
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| err!("{opt} needs a value"))?,
        };
        match opt.as_str() {
            "--manifest-path" => a.manifest = Some(value.into()),
            "--out-dir" => a.out_dir = Some(value.into()),
            "--debug-dir" => a.debug_dir = Some(value.into()),
            "--kernel-path" => a.kernel_path = Some(value),
            "--features" => a.features.extend(
                value
                    .split([',', ' '])
                    .filter(|f| !f.is_empty())
                    .map(String::from),
            ),
            "--timeout" => {
                a.timeout = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|&t| t > 0)
                        .ok_or_else(|| err!("--timeout needs a positive number of seconds"))?,
                )
            }
            "--port" => a.ports.push(value),
            "--cmdline" => a.cmdline = Some(value),
            "--xenia" => a.xenia = Some(value.into()),
            "--wait" => {
                a.timeout = Some(
                    value
                        .parse()
                        .map_err(|_| err!("--wait needs a number of seconds"))?,
                )
            }
            _ => unreachable!("allowed() knows only these"),
        }
    }
    let max_positional = match a.command.as_str() {
        "new" | "test" | "http-get" => 1,
        _ => 0,
    };
    if a.positional.len() > max_positional {
        return Err(err!(
            "cargo xenia {}: unexpected argument {:?}",
            a.command,
            a.positional[max_positional]
        ));
    }
    Ok(a)
}

fn real_main() -> Result<i32> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty()
        || argv
            .iter()
            .take(2)
            .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        println!("{USAGE}");
        return Ok(0);
    }
    let a = parse(argv)?;
    match a.command.as_str() {
        "new" => {
            let path = a
                .positional
                .first()
                .ok_or_else(|| err!("cargo xenia new needs a path"))?;
            let name = new::new(path.as_ref(), a.xenia.as_deref())?;
            host::info(&format!(
                "created the app {name} in {path}; next: cd {path} && cargo xenia run"
            ));
            Ok(0)
        }
        "build" => {
            let manifest = project::find_manifest(a.manifest.as_deref())?;
            let p = project::Project::load(&manifest)?;
            let built = image::build(
                &p,
                &image::BuildOptions {
                    release: a.release,
                    out_dir: a.out_dir,
                    debug_dir: a.debug_dir,
                    kernel_path: a.kernel_path,
                    features: a.features,
                },
            )?;
            let size = |f: &std::path::Path| {
                std::fs::metadata(f)
                    .map(|m| m.len())
                    .map_err(|e| err!("{}: {e}", f.display()))
            };
            let (elf, gz) = (size(&built.image)?, size(&built.booted)?);
            host::info(&format!(
                "wrote {}, {}, {}, {} and {}",
                built.image.display(),
                built.booted.display(),
                built.xl.display(),
                built.xml.display(),
                built.debug.display()
            ));
            println!("{}: {elf} bytes ({gz} bytes as booted, gzip)", built.name);
            Ok(0)
        }
        "run" => {
            let manifest = project::find_manifest(a.manifest.as_deref())?;
            let p = project::Project::load(&manifest)?;
            run::run(
                &p,
                &run::RunOptions {
                    release: true,
                    timeout: a.timeout,
                    ports: a.ports,
                    cmdline: a.cmdline,
                    verbose: a.verbose,
                },
            )
        }
        "test" => {
            let manifest = project::find_manifest(a.manifest.as_deref())?;
            let p = project::Project::load(&manifest)?;
            scenario::test(&p, true, a.positional.first().map(String::as_str))
        }
        "http-get" => {
            let url = a
                .positional
                .first()
                .ok_or_else(|| err!("cargo xenia http-get needs a URL"))?;
            fetch::http_get(url, std::time::Duration::from_secs(a.timeout.unwrap_or(0)))
        }
        _ => unreachable!("parse() checked the command"),
    }
}

fn main() {
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            // 2 like the scripts' "other failures" (1 means a crashed guest for `run`).
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args> {
        parse(s.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn parses_commands() {
        let a = args("xenia build --release --out-dir=/o --kernel-path /job/a.xen").unwrap();
        assert_eq!(a.command, "build");
        assert!(a.release);
        assert_eq!(a.out_dir, Some("/o".into()));
        assert_eq!(a.kernel_path.as_deref(), Some("/job/a.xen"));
        let a = args("run --port 8080:80 --port 9000:90 --timeout 5").unwrap();
        assert_eq!(a.ports, ["8080:80", "9000:90"]);
        assert_eq!(a.timeout, Some(5));
        assert!(args("run --timeout 0").is_err());
        assert!(args("build --port 1:2")
            .unwrap_err()
            .0
            .contains("unknown option"));
        assert!(args("frobnicate").is_err());
        assert!(args("build extra").is_err());
        assert!(args("run --cmdline")
            .unwrap_err()
            .0
            .contains("needs a value"));
        assert_eq!(args("new /tmp/x").unwrap().positional, ["/tmp/x"]);
        let a = args("build --features gdb,net --features=extra").unwrap();
        assert_eq!(a.features, ["gdb", "net", "extra"]);
        assert!(args("run --features gdb")
            .unwrap_err()
            .0
            .contains("unknown option"));
    }
}
