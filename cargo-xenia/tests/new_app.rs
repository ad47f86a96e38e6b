//! `cargo xenia new` makes an app outside the repository that `cargo xenia build` turns into a
//! PV image, its xl config, its libvirt XML (validated with `virt-xml-validate` when libvirt's
//! client tools are installed; scripts/test installs them) and its debug ELF. No Xen needed.
//!
//! The app lives in a temporary directory; its build shares this workspace's target directory
//! (CARGO_TARGET_DIR) so that the runtime's dependencies are not compiled a second time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cargo_xenia() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-xenia"));
    c.arg("xenia");
    c
}

/// The workspace's target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A fresh directory outside the repository, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("cargo-xenia-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let repo = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        assert!(
            !std::fs::canonicalize(&d).unwrap().starts_with(&repo),
            "the scratch directory must be outside the repository"
        );
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn new_app_builds_to_image_xl_and_valid_libvirt_xml() {
    let scratch = Scratch::new("new");
    let app = scratch.0.join("webapp");
    let out = cargo_xenia().arg("new").arg(&app).output().unwrap();
    assert!(
        out.status.success(),
        "new: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "Cargo.toml",
        "src/main.rs",
        "README.md",
        "xenia-scenarios.toml",
        "rust-toolchain.toml",
    ] {
        assert!(app.join(f).is_file(), "new did not write {f}");
    }
    let readme = std::fs::read_to_string(app.join("README.md")).unwrap();
    assert!(readme.contains("cargo xenia build") && readme.contains("cargo xenia run"));
    // A second `new` into the same place is refused.
    let again = cargo_xenia().arg("new").arg(&app).output().unwrap();
    assert!(!again.status.success());

    let out_dir = scratch.0.join("out");
    let out = cargo_xenia()
        .args(["build", "--release", "--out-dir"])
        .arg(&out_dir)
        .current_dir(&app)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let image = out_dir.join("webapp.xen");
    let size = std::fs::metadata(&image).expect("the image").len();
    let booted = out_dir.join("webapp.xen.gz");
    let gz = std::fs::read(&booted).expect("the compressed image");
    assert_eq!(
        stdout.trim(),
        format!("webapp: {size} bytes ({} bytes as booted, gzip)", gz.len())
    );
    // gzip, without a name or time stamp (reproducible), of the image itself.
    assert_eq!(&gz[..4], b"\x1f\x8b\x08\x00", "gzip, deflate, no FNAME");
    assert_eq!(&gz[4..8], [0; 4], "no MTIME");
    let inflated = Command::new("gzip")
        .arg("-dc")
        .arg(&booted)
        .output()
        .unwrap();
    assert!(inflated.status.success());
    assert!(
        inflated.stdout == std::fs::read(&image).unwrap(),
        "the .gz holds the image"
    );
    assert!(
        gz.len() < size as usize,
        "compressed: {} of {size}",
        gz.len()
    );

    // A static x86-64 ELF executable (what Xen's PV loader takes), stripped, with the build id
    // the .debug ELF also has.
    let elf = std::fs::read(&image).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "ELF64");
    assert_eq!(
        u16::from_le_bytes([elf[16], elf[17]]),
        2,
        "ET_EXEC, not PIE"
    );
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "x86-64");
    let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
    assert_eq!(
        entry, 0xffff_ffff_8000_0000,
        "linked at Xen's PV base by xenia.ld"
    );
    let debug = std::fs::read(out_dir.join("webapp.debug")).unwrap();
    assert!(debug.len() > elf.len(), "the .debug ELF keeps its symbols");

    let xl = std::fs::read_to_string(out_dir.join("webapp.xl")).unwrap();
    assert!(xl.contains("name = \"webapp\""));
    assert!(xl.contains(&format!(
        "kernel = \"{}\"",
        std::fs::canonicalize(&booted).unwrap().display()
    )));
    assert!(xl.contains("vif = [ \"bridge=xenbr0\" ]"));
    assert!(xl.contains("extra = \"ip=10.0.0.2/24 gw=10.0.0.1\""));

    let xml_path = out_dir.join("webapp.xml");
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    assert!(xml.contains("<domain type='xen'>"));
    assert!(xml.contains("<type arch='x86_64' machine='xenpv'>linux</type>"));
    assert!(xml.contains("<source bridge='xenbr0'/>"));
    assert!(xml.contains("<memory unit='MiB'>32</memory>"));
    assert!(xml.contains(&format!(
        "<kernel>{}</kernel>",
        std::fs::canonicalize(&booted).unwrap().display()
    )));
    match Command::new("virt-xml-validate").arg(&xml_path).arg("domain").output() {
        Ok(v) => assert!(
            v.status.success(),
            "virt-xml-validate refused {}:\n{}{}\n{xml}",
            xml_path.display(),
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        ),
        Err(_) => eprintln!(
            "virt-xml-validate is not installed (Debian: libvirt-clients): the XML was not validated"
        ),
    }
}

#[test]
fn bad_metadata_is_refused_before_building() {
    let scratch = Scratch::new("bad");
    let app = scratch.0.join("badapp");
    assert!(cargo_xenia()
        .arg("new")
        .arg(&app)
        .status()
        .unwrap()
        .success());
    let manifest = app.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("memory = 32", "memroy = 32")).unwrap();
    let out = cargo_xenia()
        .args(["build", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown keys in [package.metadata.xenia] of badapp"),
        "{stderr}"
    );
    assert!(stderr.contains("memroy"), "{stderr}");
    assert!(
        !stderr.contains("Compiling"),
        "refused before building: {stderr}"
    );
}
