//! `cargo xenia build`: the guest image, its xl config, its libvirt XML and its debug ELF.

use crate::config::xl_string;
use crate::err;
use crate::error::Result;
use crate::host::{self, GUEST_TARGET};
use crate::project::{cargo, Project};
use crate::{libvirt, xl};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What to build and where to put it.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Cargo's release profile instead of dev.
    pub release: bool,
    /// Where `<app>.xen`, `.xl` and `.xml` go (default `<target>/xen`).
    pub out_dir: Option<PathBuf>,
    /// Where `<app>.debug` goes (default: the out dir).
    pub debug_dir: Option<PathBuf>,
    /// The path `<app>.xen` will have where the domain is created (default: its absolute
    /// path); the configs boot the compressed image beside it, this path with `.gz` appended.
    pub kernel_path: Option<String>,
    /// The app's cargo features to turn on (a variant of the image, named by [`image_name`]).
    pub features: Vec<String>,
}

/// The name of an image's files (`<name>.xen`, `.xl`, `.xml`, `.debug`): the package's, followed
/// by `+<feature>` for each feature of a variant (sorted, without duplicates), so that the
/// variants of an app and its default image can sit in one directory.
pub fn image_name(package: &str, features: &[String]) -> Result<String> {
    let mut f: Vec<&str> = features.iter().map(String::as_str).collect();
    f.sort_unstable();
    f.dedup();
    let mut name = package.to_string();
    for feature in f {
        // A feature of the app itself: cargo's names (letters, digits, `_`, `-`); `dep/feature`
        // is refused, it would put a `/` in a file name.
        if !feature
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err(err!(
                "--features: {feature:?} is not a feature name of the app (letters, digits, '_', '-')"
            ));
        }
        name.push('+');
        name.push_str(feature);
    }
    Ok(name)
}

/// The files of one build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The stripped image (an uncompressed ELF: what symbolizers, gdb and build-id checks read).
    pub image: PathBuf,
    /// The stripped image gzip-compressed (`<app>.xen.gz`): what the xl config and the domain
    /// XML boot (Xen's domain builder inflates it in dom0, as it does Linux's bzImage payload).
    pub booted: PathBuf,
    /// The xl config.
    pub xl: PathBuf,
    /// The libvirt domain XML.
    pub xml: PathBuf,
    /// The unstripped ELF.
    pub debug: PathBuf,
    /// The files' name without extension ([`image_name`]).
    pub name: String,
}

fn mkdir_abs(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| err!("cannot create {}: {e}", dir.display()))?;
    fs::canonicalize(dir).map_err(|e| err!("{}: {e}", dir.display()))
}

/// Writes `path` whole or not at all (a temporary file renamed over it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(|e| err!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| err!("cannot write {}: {e}", path.display()))
}

/// The guest's rustflags as CARGO_ENCODED_RUSTFLAGS: the runtime's, then the user's own
/// (RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS, which would otherwise replace ours).
fn encoded_rustflags(p: &Project) -> OsString {
    let mut flags = p.rustflags.clone();
    if let Ok(enc) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        flags.extend(
            enc.split('\x1f')
                .filter(|f| !f.is_empty())
                .map(String::from),
        );
    } else if let Ok(plain) = std::env::var("RUSTFLAGS") {
        flags.extend(plain.split_whitespace().map(String::from));
    }
    flags.join("\x1f").into()
}

/// Our stderr, for a child's stdout (cargo's output must not mix with what we print on stdout).
fn stderr_stdio() -> Result<Stdio> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| err!("cannot duplicate stderr: {e}"))?;
    Ok(Stdio::from(fd))
}

/// Builds `p` (cargo's output on stderr) and writes the four files.
pub fn build(p: &Project, opts: &BuildOptions) -> Result<Built> {
    let out_dir = mkdir_abs(&opts.out_dir.clone().unwrap_or_else(|| p.xen_dir()))?;
    let debug_dir = match &opts.debug_dir {
        Some(d) => mkdir_abs(d)?,
        None => out_dir.clone(),
    };
    let package = &p.package;
    let name = &image_name(package, &opts.features)?;
    let image = out_dir.join(format!("{name}.xen"));
    let booted = out_dir.join(format!("{name}.xen.gz"));
    let kernel = opts
        .kernel_path
        .clone()
        .unwrap_or_else(|| image.display().to_string())
        + ".gz";
    xl_string("kernel path", &kernel)?;
    // The configs first: a metadata mistake is reported before a long build.
    let source = p.manifest.display().to_string();
    let xl_text = xl::render(&p.domain, &kernel, &source);
    let xml_text = libvirt::render(&p.domain, &kernel)?;

    host::need_packages(&[("objcopy", "binutils"), ("gzip", "gzip")])?;
    let dir = p.manifest.parent().unwrap_or(Path::new("."));
    host::need_guest_target(dir)?;
    let mut cmd = Command::new(cargo());
    cmd.args([
        "build",
        "--target",
        GUEST_TARGET,
        "-p",
        package,
        "--manifest-path",
    ])
    .arg(&p.manifest)
    .env("CARGO_ENCODED_RUSTFLAGS", encoded_rustflags(p))
    .env_remove("RUSTFLAGS")
    .current_dir(dir)
    .stdout(stderr_stdio()?);
    if opts.release {
        cmd.arg("--release");
    }
    if !opts.features.is_empty() {
        cmd.arg("--features").arg(opts.features.join(","));
    }
    let status = cmd
        .status()
        .map_err(|e| err!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(err!("cargo build of {name} for {GUEST_TARGET} failed"));
    }
    let profile = if opts.release { "release" } else { "debug" };
    let elf = p.target_dir.join(GUEST_TARGET).join(profile).join(&p.bin);
    if !elf.is_file() {
        return Err(err!("cargo did not produce {}", elf.display()));
    }

    let debug = debug_dir.join(format!("{name}.debug"));
    let tmp = debug.with_extension("tmp");
    fs::copy(&elf, &tmp).map_err(|e| err!("cannot copy {}: {e}", elf.display()))?;
    fs::rename(&tmp, &debug).map_err(|e| err!("cannot write {}: {e}", debug.display()))?;
    let tmp = image.with_extension("tmp");
    let ok = Command::new("objcopy")
        .arg("--strip-all")
        .arg(&elf)
        .arg(&tmp)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(err!("objcopy --strip-all {} failed", elf.display()));
    }
    fs::rename(&tmp, &image).map_err(|e| err!("cannot write {}: {e}", image.display()))?;
    gzip(&image, &booted)?;
    let xl = out_dir.join(format!("{name}.xl"));
    write_atomic(&xl, xl_text.as_bytes())?;
    let xml = out_dir.join(format!("{name}.xml"));
    write_atomic(&xml, xml_text.as_bytes())?;
    Ok(Built {
        image,
        booted,
        xl,
        xml,
        debug,
        name: name.clone(),
    })
}

/// Writes `from` gzip-compressed to `to`: `gzip -9 -n` (best compression, no name or time
/// stamp in the header, so the same image gives the same bytes).
fn gzip(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    let out = fs::File::create(&tmp).map_err(|e| err!("cannot write {}: {e}", tmp.display()))?;
    let ok = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(from)
        .stdout(out)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(err!("gzip -9 -n {} failed", from.display()));
    }
    fs::rename(&tmp, to).map_err(|e| err!("cannot write {}: {e}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::image_name;

    #[test]
    fn variant_names() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(image_name("http", &[]).unwrap(), "http");
        assert_eq!(image_name("http", &f(&["gdb"])).unwrap(), "http+gdb");
        assert_eq!(
            image_name("http", &f(&["zz", "gdb", "zz"])).unwrap(),
            "http+gdb+zz"
        );
        assert!(image_name("http", &f(&["xenia/gdb"])).is_err());
        assert!(image_name("http", &f(&["a b"])).is_err());
    }
}
