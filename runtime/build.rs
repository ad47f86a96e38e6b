//! Hands a guest image's link settings to the app that depends on this crate.
//!
//! For the guest target (`x86_64-unknown-none`) the linker script `link.ld` is copied into
//! `OUT_DIR` as `xenia.ld` and that directory is put on the linker's search path of every
//! crate that depends on this one (`cargo:rustc-link-search` reaches dependents; a
//! `cargo:rustc-link-arg` would only reach this crate's own binaries and tests). The flags
//! that name it (`-C link-arg=-Txenia.ld`, the static relocation model, frame pointers, the
//! build id, ...) are this crate's `[package.metadata.xenia-runtime] rustflags`, which
//! `cargo xenia build` reads from `cargo metadata` of the app: so the script and its flags come
//! from the runtime version the app builds against, wherever the app lives.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = fs::read(manifest_dir.join("link.ld")).expect("runtime/link.ld is readable");
    fs::write(out.join("xenia.ld"), script).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", out.display());
}
