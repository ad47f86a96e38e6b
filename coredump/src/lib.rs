//! Core dumps of crashed Xenia guests, for gdb.
//!
//! `xl dump-core DOMAIN FILE` (or `on_crash = "coredump-destroy"`) writes Xen's dump-core
//! format ([`xen_core`]): the guest's pages by pseudo-physical frame and each vCPU's
//! `vcpu_guest_context`, in ELF sections that gdb does not read. [`convert`] turns it into a
//! standard ELF core ([`elf_core`]) that `gdb target/xen/<app>.debug CORE` loads:
//!
//! - memory as `PT_LOAD` segments at the guest's virtual addresses. A Xenia guest maps all its
//!   memory linearly, frame `pfn` at `VIRT_BASE + pfn * 4096` (runtime/src/mm.rs, with
//!   `VIRT_BASE` = 0xffffffff80000000 from runtime/link.ld; the image's own ELF notes say the
//!   same), so a page's virtual address follows from its pfn;
//! - each vCPU as a thread: `NT_PRSTATUS` with its general registers, `NT_PRFPREG` with its
//!   FXSAVE state.
//!
//! A guest that crashes itself does so with a hypercall, so Xen saved its vCPU inside the
//! hypercall page, just after `syscall`, where gdb cannot unwind (no symbol, no frame). Unless
//! [`Options::raw_registers`] is set, [`convert`] finishes the page's stub (`pop %r11; pop
//! %rcx; ret`, the sequence Xen writes for 64-bit PV guests) on the registers, so the core shows
//! the vCPU where the hypercall returns to, in the function that made it.

pub mod elf_core;
pub mod xen_core;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

use xen_core::{gpr, VcpuRegisters, XenCore};

/// Where a Xenia guest maps frame 0 (runtime/link.ld's `VIRT_BASE`).
pub const XENIA_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

/// The tail of each 64-bit PV hypercall stub after `syscall`: `pop %r11; pop %rcx; ret`.
pub const HYPERCALL_RETURN: [u8; 4] = [0x41, 0x5b, 0x59, 0xc3];

/// Why a dump-core file cannot be converted.
#[derive(Debug)]
pub enum Error {
    /// The file does not start with an ELF header.
    NotElf,
    /// The file ends before the named part.
    Truncated(&'static str),
    /// A part of the file is inconsistent.
    Malformed(&'static str),
    /// A section Xen's dump-core always has is not there.
    MissingSection(&'static str),
    /// The dump-core header's magic is neither PV's nor HVM's.
    BadMagic(u64),
    /// Something this converter does not handle (HVM, 32-bit guests, other page sizes).
    Unsupported(String),
    /// Reading or writing a file failed.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotElf => write!(f, "not an ELF file (Xen's dump-core is one)"),
            Error::Truncated(what) => write!(f, "the file is truncated: it ends inside {what}"),
            Error::Malformed(what) => write!(f, "malformed dump-core: {what}"),
            Error::MissingSection(name) => {
                write!(f, "no {name} section: not a Xen dump-core file")
            }
            Error::BadMagic(m) => write!(f, "dump-core header magic {m:#x} is not Xen's"),
            Error::Unsupported(what) => write!(f, "unsupported dump-core: {what}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// How to convert.
#[derive(Debug, Clone)]
pub struct Options {
    /// The virtual address of frame 0 ([`XENIA_VIRT_BASE`] for Xenia guests).
    pub virt_base: u64,
    /// Keep the registers exactly as Xen saved them (no hypercall-stub completion).
    pub raw_registers: bool,
    /// The program name recorded in the core (gdb prints it).
    pub name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            virt_base: XENIA_VIRT_BASE,
            raw_registers: false,
            name: "xenia".to_string(),
        }
    }
}

/// What [`convert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Pages written.
    pub pages: usize,
    /// `PT_LOAD` segments written (runs of consecutive frames).
    pub segments: usize,
    /// The registers written, per vCPU.
    pub vcpus: Vec<VcpuRegisters>,
    /// Whether each vCPU was moved out of the hypercall page (see [`Options::raw_registers`]).
    pub left_hypercall: Vec<bool>,
}

/// The guest's memory by virtual address, for reading words off the stack.
struct Memory<'a> {
    virt_base: u64,
    pages: BTreeMap<u64, &'a [u8]>,
}

impl Memory<'_> {
    fn byte(&self, va: u64) -> Option<u8> {
        let off = va.checked_sub(self.virt_base)?;
        self.pages
            .get(&(off >> 12))
            .map(|p| p[(off & 0xfff) as usize])
    }

    fn bytes<const N: usize>(&self, va: u64) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.byte(va.checked_add(i as u64)?)?;
        }
        Some(b)
    }

    fn u64(&self, va: u64) -> Option<u64> {
        self.bytes::<8>(va).map(u64::from_le_bytes)
    }
}

/// If `r` stands after `syscall` in a hypercall stub, the registers after the stub's
/// `pop %r11; pop %rcx; ret`; otherwise `None`.
fn leave_hypercall(mem: &Memory<'_>, r: &VcpuRegisters) -> Option<VcpuRegisters> {
    if mem.bytes::<4>(r.rip)? != HYPERCALL_RETURN {
        return None;
    }
    let mut out = r.clone();
    out.gprs[gpr::R11] = mem.u64(r.rsp)?;
    out.gprs[gpr::RCX] = mem.u64(r.rsp.checked_add(8)?)?;
    out.rip = mem.u64(r.rsp.checked_add(16)?)?;
    out.rsp = r.rsp.checked_add(24)?;
    Some(out)
}

/// Convert the dump-core `xen` into an ELF core written to `out`.
pub fn convert(xen: &[u8], opts: &Options, out: &mut impl Write) -> Result<Summary, Error> {
    let core = XenCore::parse(xen)?;
    if core.hvm {
        return Err(Error::Unsupported(
            "an HVM guest's core (Xenia guests are PV; their pfns are not the layout here)".into(),
        ));
    }
    let mut pages = BTreeMap::new();
    let last_pfn = (u64::MAX - opts.virt_base) >> 12;
    for &(pfn, data) in &core.pages {
        if pfn > last_pfn {
            return Err(Error::Unsupported(format!(
                "frame {pfn:#x} lies beyond the end of the address space at virt base {:#x}",
                opts.virt_base
            )));
        }
        if pages.insert(pfn, data).is_some() {
            return Err(Error::Malformed("a frame appears twice in the pfn table"));
        }
    }
    let mem = Memory {
        virt_base: opts.virt_base,
        pages,
    };

    let mut vcpus = Vec::new();
    let mut left_hypercall = Vec::new();
    for r in &core.vcpus {
        match leave_hypercall(&mem, r).filter(|_| !opts.raw_registers) {
            Some(after) => {
                vcpus.push(after);
                left_hypercall.push(true);
            }
            None => {
                vcpus.push(r.clone());
                left_hypercall.push(false);
            }
        }
    }

    let mut segments: Vec<elf_core::Segment<'_>> = Vec::new();
    let mut next_pfn = None;
    for (&pfn, &data) in &mem.pages {
        match segments.last_mut() {
            Some(s) if next_pfn == Some(pfn) => s.pages.push(data),
            _ => segments.push(elf_core::Segment {
                vaddr: opts.virt_base + (pfn << 12),
                paddr: pfn << 12,
                pages: vec![data],
            }),
        }
        next_pfn = pfn.checked_add(1);
    }
    let args = format!(
        "Xen dump-core of a PV guest, {} vCPU(s), {} pages",
        vcpus.len(),
        mem.pages.len()
    );
    elf_core::write(out, &opts.name, &args, &vcpus, &segments)?;
    Ok(Summary {
        pages: mem.pages.len(),
        segments: segments.len(),
        vcpus,
        left_hypercall,
    })
}
