//! The app being built, as `cargo metadata` describes it: its package, binary, target
//! directory, and the `xenia` runtime it depends on (whose checkout holds the nested-Xen
//! scripts and whose metadata holds the guest's rustflags).

use crate::config::DomainConfig;
use crate::err;
use crate::error::Result;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An app package.
#[derive(Debug, Clone)]
pub struct Project {
    /// The package's name (the domain's name and the output files' stem).
    pub package: String,
    /// Its one binary target.
    pub bin: String,
    /// Its Cargo.toml.
    pub manifest: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// The validated `[package.metadata.xenia]`.
    pub domain: DomainConfig,
    /// The guest's rustflags, from the `xenia` package's `[package.metadata.xenia-runtime]`.
    pub rustflags: Vec<String>,
    /// The directory of the `xenia` package's Cargo.toml (`runtime/` of a checkout).
    pub runtime_dir: PathBuf,
}

/// The Cargo.toml to use: `--manifest-path`, else the nearest one from the current directory up.
pub fn find_manifest(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return std::fs::canonicalize(p).map_err(|e| err!("manifest {}: {e}", p.display()));
    }
    let cwd = std::env::current_dir().map_err(|e| err!("current directory: {e}"))?;
    cwd.ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err!(
                "no Cargo.toml in {} or above; run in an app's directory or pass --manifest-path",
                cwd.display()
            )
        })
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| err!("cargo metadata: no string {key:?}"))
}

impl Project {
    /// Reads `cargo metadata` for `manifest` and validates the app's metadata. `manifest` may
    /// be a workspace member's or a single package's Cargo.toml.
    pub fn load(manifest: &Path) -> Result<Self> {
        let out = Command::new(cargo())
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(manifest)
            .current_dir(manifest.parent().unwrap_or(Path::new(".")))
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| err!("cannot run cargo metadata: {e}"))?;
        if !out.status.success() {
            return Err(err!(
                "cargo metadata --manifest-path {} failed ({})",
                manifest.display(),
                out.status
            ));
        }
        let meta: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| err!("cargo metadata printed something that is not JSON: {e}"))?;
        Self::from_metadata(manifest, &meta)
    }

    /// [`Project::load`] on `cargo metadata`'s JSON.
    pub fn from_metadata(manifest: &Path, meta: &Value) -> Result<Self> {
        let packages = meta
            .get("packages")
            .and_then(Value::as_array)
            .ok_or_else(|| err!("cargo metadata: no packages"))?;
        let real = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
        let pkg = packages
            .iter()
            .find(|p| {
                p.get("manifest_path")
                    .and_then(Value::as_str)
                    .map(|m| std::fs::canonicalize(m).unwrap_or_else(|_| PathBuf::from(m)))
                    == Some(real.clone())
            })
            .ok_or_else(|| {
                err!(
                    "{} is not a package's manifest (a workspace's root manifest? pass --manifest-path <app>/Cargo.toml)",
                    manifest.display()
                )
            })?;
        let package = str_of(pkg, "name")?.to_string();
        let bins: Vec<&str> = pkg
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|t| {
                t.get("kind")
                    .and_then(Value::as_array)
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        let [bin] = bins[..] else {
            return Err(err!(
                "package {package} must have exactly one binary target, has {bins:?}"
            ));
        };
        let domain = DomainConfig::from_metadata(&package, &pkg["metadata"])?;
        let runtime = packages
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("xenia"))
            .ok_or_else(|| {
                err!("package {package} does not depend on the runtime (`xenia`); add it to [dependencies]")
            })?;
        let runtime_manifest = PathBuf::from(str_of(runtime, "manifest_path")?);
        let runtime_dir = runtime_manifest
            .parent()
            .ok_or_else(|| err!("cargo metadata: xenia's manifest has no directory"))?
            .to_path_buf();
        let flags = runtime
            .get("metadata")
            .and_then(|m| m.get("xenia-runtime"))
            .and_then(|m| m.get("rustflags"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                err!(
                    "the xenia crate at {} has no [package.metadata.xenia-runtime] rustflags (too old for this cargo-xenia?)",
                    runtime_dir.display()
                )
            })?;
        let rustflags = flags
            .iter()
            .map(|f| {
                f.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err!("xenia's rustflags must be strings, got {f}"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Project {
            bin: bin.to_string(),
            package,
            manifest: real,
            target_dir: PathBuf::from(str_of(meta, "target_directory")?),
            domain,
            rustflags,
            runtime_dir,
        })
    }

    /// The xenia checkout (for `scripts/nested-xen` and `scripts/symbolize`): `$XENIA_ROOT` if
    /// set, else the parent of the runtime's directory when it holds them (a path dependency or
    /// a git checkout), else the checkout this cargo-xenia was installed from.
    pub fn xenia_root(&self) -> Result<PathBuf> {
        if let Some(r) = std::env::var_os("XENIA_ROOT") {
            let r = PathBuf::from(r);
            if r.join("scripts/nested-xen/boot").is_file() {
                return Ok(r);
            }
            return Err(err!(
                "XENIA_ROOT={} has no scripts/nested-xen/boot",
                r.display()
            ));
        }
        // The runtime's checkout, else the checkout this cargo-xenia was built from.
        let candidates = [
            self.runtime_dir.parent().map(Path::to_path_buf),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_path_buf),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|r| r.join("scripts/nested-xen/boot").is_file())
            .ok_or_else(|| {
                err!(
                    "no xenia checkout with scripts/nested-xen: the runtime at {} is not inside one, nor is this cargo-xenia's source; set XENIA_ROOT to one",
                    self.runtime_dir.display()
                )
            })
    }

    /// Where images and configs go by default: `<target>/xen`.
    pub fn xen_dir(&self) -> PathBuf {
        self.target_dir.join("xen")
    }
}

/// The cargo to run: the one on PATH (rustup's proxy picks the toolchain of the app's directory,
/// its rust-toolchain.toml; `$CARGO`, set when we run as `cargo xenia`, names one toolchain's).
pub fn cargo() -> &'static str {
    "cargo"
}
