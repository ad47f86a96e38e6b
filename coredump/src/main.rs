//! `xenia-coredump [--virt-base ADDR] [--raw-registers] [--name NAME] XEN_CORE ELF_CORE`:
//! convert Xen's dump-core of a crashed Xenia guest (`xl dump-core`) into an ELF core for
//! `gdb target/xen/<app>.debug ELF_CORE`. See the library's documentation.

use std::process::ExitCode;

use xenia_coredump::{convert, Options};

const USAGE: &str = "usage: xenia-coredump [--virt-base ADDR] [--raw-registers] [--name NAME] \
                     XEN_CORE ELF_CORE
  XEN_CORE         a core written by `xl dump-core DOMAIN FILE` (or on_crash = \"coredump-destroy\")
  ELF_CORE         the ELF core to write, for `gdb target/xen/<app>.debug ELF_CORE`
  --virt-base ADDR the virtual address of frame 0 (default 0xffffffff80000000, Xenia's)
  --raw-registers  keep the registers as Xen saved them (a vCPU that crashed itself is then
                   inside the hypercall page, where gdb cannot unwind)
  --name NAME      the program name recorded in the core (default xenia)";

fn parse_addr(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(&h.replace('_', ""), 16).ok(),
        None => s.parse().ok(),
    }
}

fn run() -> Result<(), String> {
    let mut opts = Options::default();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--raw-registers" => opts.raw_registers = true,
            "--virt-base" => {
                let v = args.next().ok_or("--virt-base needs an address")?;
                opts.virt_base = parse_addr(&v)
                    .filter(|a| a % 4096 == 0)
                    .ok_or_else(|| format!("--virt-base {v}: not a page-aligned address"))?;
            }
            "--name" => opts.name = args.next().ok_or("--name needs a name")?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => files.push(a),
        }
    }
    let [input, output] = files.as_slice() else {
        return Err(USAGE.to_string());
    };
    let xen = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let file = std::fs::File::create(output).map_err(|e| format!("cannot create {output}: {e}"))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let s = convert(&xen, &opts, &mut out).map_err(|e| {
        let _ = std::fs::remove_file(output);
        format!("{input}: {e}")
    })?;
    eprintln!(
        "xenia-coredump: {output}: {} pages ({} KiB) in {} segments, {} vCPU(s)",
        s.pages,
        s.pages * 4,
        s.segments,
        s.vcpus.len()
    );
    for (i, (r, left)) in s.vcpus.iter().zip(&s.left_hypercall).enumerate() {
        eprintln!(
            "xenia-coredump: vCPU {i} (thread {}): rip {:#x} rsp {:#x} rbp {:#x}{}",
            i + 1,
            r.rip,
            r.rsp,
            r.gprs[4],
            if *left {
                " (stopped in a hypercall: shown where it returns to)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xenia-coredump: {e}");
            ExitCode::FAILURE
        }
    }
}
