//! `cargo xenia new <path>`: an app project that builds and runs with no edit.

use crate::err;
use crate::error::Result;
use std::fs;
use std::path::{Path, PathBuf};

/// The xenia checkout new apps depend on: `$XENIA_ROOT`, `--xenia`, or the checkout this
/// cargo-xenia was built from.
pub fn default_root(given: Option<&Path>) -> Result<PathBuf> {
    let root = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("XENIA_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let root =
        fs::canonicalize(&root).map_err(|e| err!("xenia checkout {}: {e}", root.display()))?;
    if !root.join("runtime/Cargo.toml").is_file() {
        return Err(err!(
            "{} is not a xenia checkout (no runtime/Cargo.toml); pass --xenia <checkout>",
            root.display()
        ));
    }
    Ok(root)
}

/// A package name from the directory name: cargo's rules, and the domain name's
/// (`[A-Za-z0-9_-]`, starting with a letter).
fn package_name(dir: &Path) -> Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err!("{}: no directory name to name the app after", dir.display()))?;
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(err!(
            "{name:?} cannot name an app: use a letter then letters, digits, '-' or '_'"
        ));
    }
    Ok(name.to_string())
}

/// The files of a new app `name` depending on the runtime at `runtime` (the checkout's
/// `runtime/`), with the checkout's pinned toolchain `toolchain` (its rust-toolchain.toml).
pub fn files(name: &str, runtime: &Path, toolchain: &str) -> Vec<(&'static str, String)> {
    let runtime = runtime.display();
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
# The runtime's drivers are features: this app uses the network (add "block" for disks,
# "gdb" for the GDB stub behind `debug=gdb`).
xenia = {{ path = "{runtime}", features = ["net"] }}

# The Xen domain: `cargo xenia build` writes it as target/xen/{name}.xl (xl) and
# target/xen/{name}.xml (libvirt) beside the image target/xen/{name}.xen.
# Keys: memory (MiB), vcpus, cmdline, vifs, disks (xl specs), on_crash.
[package.metadata.xenia]
memory = 32
vcpus = 1
cmdline = "ip=10.0.0.2/24 gw=10.0.0.1"
vifs = ["bridge=xenbr0"]

# Small images that still name the functions of a crash's backtrace; `cargo xenia build`
# keeps the unstripped ELF as target/xen/{name}.debug.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
debug = "limited"
strip = false

# An app of its own, even when created inside another workspace.
[workspace]
"#
    );
    let main_rs = format!(
        r#"//! {name}: a web service as a Xen PV guest. It answers every HTTP request on port 80 with a
//! greeting.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use core::time::Duration;
use xenia::net::{{NetError, TcpListener, TcpStream}};

/// What every request gets.
const GREETING: &str = "hello from {name}\n";
/// The most of a request's head that is read.
const MAX_HEAD: usize = 2048;
/// A client must send its request head within this time.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);

#[xenia::main]
async fn main() -> Result<(), NetError> {{
    let stack = xenia::net::init().await?;
    // The default ListenConfig bounds the connections (and so the memory) whatever clients do.
    let listener = TcpListener::bind(80)?;
    match stack.ipv4() {{
        Some((addr, prefix)) => xenia::println!("{name}: listening on {{addr}}/{{prefix}} port 80"),
        None => xenia::println!("{name}: listening on port 80"),
    }}
    loop {{
        let conn = listener.accept().await?;
        xenia::spawn(async move {{
            let _ = xenia::timeout(HEAD_DEADLINE, serve(conn)).await;
        }});
    }}
}}

/// Reads one request head and answers it.
async fn serve(mut conn: TcpStream) -> Result<(), NetError> {{
    let mut head = alloc::vec![0u8; MAX_HEAD];
    let mut len = 0;
    while !head[..len].windows(4).any(|w| w == b"\r\n\r\n") {{
        if len == head.len() {{
            return respond(conn, "431 Request Header Fields Too Large", "").await;
        }}
        match conn.read(&mut head[len..]).await? {{
            0 => return Ok(()),
            n => len += n,
        }}
    }}
    respond(conn, "200 OK", GREETING).await
}}

/// Sends a response and closes the connection.
async fn respond(mut conn: TcpStream, status: &str, body: &str) -> Result<(), NetError> {{
    let head = alloc::format!(
        "HTTP/1.1 {{status}}\r\nContent-Type: text/plain\r\nContent-Length: {{}}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.close().await
}}
"#
    );
    let scenarios = format!(
        r#"# Scenarios on real Xen, run by `cargo xenia test` (one boot of the nested Xen VM runs them
# all). dom0 is busybox sh; $d is the domain's name; `xenia_run "$d" CMD...` reports CMD's
# output and "[exit N] CMD" as output lines; `xenia_http_get URL [--wait S]` GETs a URL (exit 0
# on a 2xx status). console/output: lines that must appear, in order. end: poweroff (default),
# crash, reboot or timeout.

[[scenario]]
name = "http"
timeout = 180
dom0 = '''
xenia_run "$d" xenia_http_get http://10.0.0.2/ --wait 60
xenia_run "$d" timeout 30 xl shutdown -w "$d"
'''
console = ["{name}: listening on 10.0.0.2/24 port 80"]
output = ["hello from {name}", "[exit 0] xenia_http_get", "[exit 0] timeout 30 xl shutdown"]
end = "poweroff"
"#
    );
    let readme = format!(
        r#"# {name}

A web service that runs as a Xen PV guest ([Xenia](https://example.invalid/xenia)).

    cargo xenia build --release   # target/xen/{name}.xen, .xl (xl), .xml (libvirt), .debug
    cargo xenia run               # on a Xen dom0: xl create -c; elsewhere: a nested Xen VM

`cargo xenia run` outside Xen serves at http://localhost:8080/ (host port 8080 forwarded to the
guest's port 80; `--port HOST:GUEST` to change it). `cargo xenia test` runs the scenarios of
`xenia-scenarios.toml` on real Xen. The domain (memory, command line, network, disks) is
`[package.metadata.xenia]` in Cargo.toml.

On a Xen host: `xl create -c target/xen/{name}.xl`, or with libvirt: `virsh create
target/xen/{name}.xml`.
"#
    );
    vec![
        ("Cargo.toml", cargo_toml),
        ("src/main.rs", main_rs),
        ("xenia-scenarios.toml", scenarios),
        ("README.md", readme),
        ("rust-toolchain.toml", toolchain.to_string()),
        (".gitignore", "/target\n".to_string()),
    ]
}

/// Creates the app at `dir` (which must not exist or be empty).
pub fn new(dir: &Path, xenia: Option<&Path>) -> Result<String> {
    let root = default_root(xenia)?;
    if dir.exists()
        && fs::read_dir(dir)
            .map_err(|e| err!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(err!("{} exists and is not empty", dir.display()));
    }
    fs::create_dir_all(dir).map_err(|e| err!("cannot create {}: {e}", dir.display()))?;
    let dir = fs::canonicalize(dir).map_err(|e| err!("{}: {e}", dir.display()))?;
    let name = package_name(&dir)?;
    let toolchain = fs::read_to_string(root.join("rust-toolchain.toml"))
        .map_err(|e| err!("{}/rust-toolchain.toml: {e}", root.display()))?;
    // The checkout's lock file: the app starts with the dependency versions the runtime was
    // tested with (cargo drops the entries it does not need).
    if let Ok(lock) = fs::read_to_string(root.join("Cargo.lock")) {
        fs::write(dir.join("Cargo.lock"), lock)
            .map_err(|e| err!("cannot write {}/Cargo.lock: {e}", dir.display()))?;
    }
    for (path, text) in files(&name, &root.join("runtime"), &toolchain) {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| err!("{}: {e}", parent.display()))?;
        }
        fs::write(&p, text).map_err(|e| err!("cannot write {}: {e}", p.display()))?;
    }
    Ok(name)
}
