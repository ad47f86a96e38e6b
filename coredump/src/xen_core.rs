//! Reading Xen's dump-core file (`xl dump-core`, `on_crash = "coredump-destroy"`).
//!
//! libxenguest writes an ELF64 file of type `ET_CORE` that has section headers and no program
//! headers, so gdb finds neither memory nor registers in it. Its sections (found by name; their
//! order is not fixed):
//!
//! - `.note.Xen`: notes named "Xen"; `XEN_ELFNOTE_DUMPCORE_HEADER` carries the magic (PV or
//!   HVM), the number of vCPUs and pages and the page size;
//! - `.xen_prstatus`: one `vcpu_guest_context` per vCPU (5168 bytes for a 64-bit x86 guest);
//! - `.xen_pages`: the guest's pages, `page_size` bytes each;
//! - `.xen_p2m` (PV: `{ pfn, gmfn }` pairs, 16 bytes) or `.xen_pfn` (auto-translated: the pfn,
//!   8 bytes): the pseudo-physical frame of each page in `.xen_pages`, in the same order.
//!
//! Everything is bounds-checked: a truncated or malformed file gives an [`Error`], never a panic.

use crate::Error;

/// `XEN_ELFNOTE_DUMPCORE_HEADER` (xen/include/public/elfnote.h).
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// The header's magic for a PV guest (libxenguest's `XC_CORE_MAGIC`).
pub const XC_CORE_MAGIC: u64 = 0xF00F_EBED;
/// The header's magic for an HVM guest (`XC_CORE_MAGIC_HVM`).
pub const XC_CORE_MAGIC_HVM: u64 = 0xF00F_EBEE;
/// Size of the 64-bit x86 `vcpu_guest_context` (xen/include/public/arch-x86/xen.h).
pub const VCPU_GUEST_CONTEXT_SIZE: usize = 5168;
/// A p2m entry whose pfn is this is not a page (libxenguest's `INVALID_PFN`).
pub const INVALID_PFN: u64 = u64::MAX;

/// Offsets in the 64-bit `vcpu_guest_context` (checked against libxen-dev's headers).
mod ctx {
    /// `fpu_ctxt`: the FXSAVE image, 512 bytes.
    pub const FPU_CTXT: usize = 0;
    /// `user_regs` (`struct cpu_user_regs`).
    pub const USER_REGS: usize = 520;
    /// `ctrlreg[8]`.
    pub const CTRLREG: usize = 4984;
    /// `fs_base`, `gs_base_kernel`, `gs_base_user`.
    pub const FS_BASE: usize = 5144;
    pub const GS_BASE_KERNEL: usize = 5152;
}

/// Offsets in the 64-bit `struct cpu_user_regs`: r15 .. rdi are 15 u64 at 0; then these.
mod regs {
    pub const RIP: usize = 128;
    pub const CS: usize = 136;
    pub const RFLAGS: usize = 144;
    pub const RSP: usize = 152;
    pub const SS: usize = 160;
    pub const ES: usize = 168;
    pub const DS: usize = 176;
    pub const FS: usize = 184;
    pub const GS: usize = 192;
}

/// One vCPU's registers, as Xen saved them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VcpuRegisters {
    /// r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi (Xen's order,
    /// which is also the order of Linux's `user_regs_struct`).
    pub gprs: [u64; 15],
    /// The instruction pointer.
    pub rip: u64,
    /// The stack pointer.
    pub rsp: u64,
    /// The flags.
    pub rflags: u64,
    /// cs, ss, ds, es, fs, gs.
    pub segments: [u16; 6],
    /// The fs base.
    pub fs_base: u64,
    /// The gs base in kernel mode (a PV guest's kernel runs in ring 3 with this gs).
    pub gs_base: u64,
    /// cr3 as Xen reports it (for PV, a machine frame in Xen's cr3 encoding).
    pub cr3: u64,
    /// The FXSAVE image (x87/SSE state).
    pub fxsave: Vec<u8>,
}

/// Index of a general register in [`VcpuRegisters::gprs`].
pub mod gpr {
    /// rbp.
    pub const RBP: usize = 4;
    /// r11.
    pub const R11: usize = 6;
    /// rcx.
    pub const RCX: usize = 11;
}

/// A parsed dump-core file, borrowing its bytes.
#[derive(Debug)]
pub struct XenCore<'a> {
    /// Whether the header says HVM (the pages are then guest-physical, not pseudo-physical).
    pub hvm: bool,
    /// The vCPUs' registers, in vCPU order.
    pub vcpus: Vec<VcpuRegisters>,
    /// The page size (4096).
    pub page_size: u64,
    /// `(pfn, page contents)` of every page in the file, in file order.
    pub pages: Vec<(u64, &'a [u8])>,
}

/// A section: name, file offset, size.
struct Section<'a> {
    name: &'a [u8],
    offset: usize,
    size: usize,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, Error> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(Error::Truncated("a 16-bit field"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, Error> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or(Error::Truncated("a 32-bit field"))
}

/// The little-endian u64 at `off` in `b`.
pub(crate) fn u64_at(b: &[u8], off: usize) -> Result<u64, Error> {
    b.get(off..off.saturating_add(8))
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or(Error::Truncated("a 64-bit field"))
}

fn usize_of(v: u64, what: &'static str) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::Malformed(what))
}

impl<'a> XenCore<'a> {
    /// Parse a dump-core file.
    pub fn parse(file: &'a [u8]) -> Result<Self, Error> {
        let sections = sections(file)?;
        let find = |name: &str| sections.iter().find(|s| s.name == name.as_bytes());
        let body = |s: &Section<'a>| &file[s.offset..s.offset + s.size];

        let notes = find(".note.Xen").ok_or(Error::MissingSection(".note.Xen"))?;
        let header = dumpcore_header(body(notes))?;
        let (magic, nr_vcpus, nr_pages, page_size) = header;
        let hvm = match magic {
            XC_CORE_MAGIC => false,
            XC_CORE_MAGIC_HVM => true,
            m => return Err(Error::BadMagic(m)),
        };
        if page_size != 4096 {
            return Err(Error::Unsupported(format!("page size {page_size}")));
        }

        let prstatus = find(".xen_prstatus").ok_or(Error::MissingSection(".xen_prstatus"))?;
        let per_vcpu = (prstatus.size as u64).checked_div(nr_vcpus);
        if per_vcpu != Some(VCPU_GUEST_CONTEXT_SIZE as u64)
            || prstatus.size as u64 != nr_vcpus * VCPU_GUEST_CONTEXT_SIZE as u64
        {
            return Err(Error::Unsupported(format!(
                "{} bytes of vCPU context for {nr_vcpus} vCPUs: not a 64-bit x86 guest \
                 ({VCPU_GUEST_CONTEXT_SIZE} bytes each)",
                prstatus.size
            )));
        }
        let vcpus = body(prstatus)
            .chunks_exact(VCPU_GUEST_CONTEXT_SIZE)
            .map(vcpu_registers)
            .collect::<Result<Vec<_>, _>>()?;

        let pages_sec = find(".xen_pages").ok_or(Error::MissingSection(".xen_pages"))?;
        let nr = usize_of(nr_pages, "page count")?;
        let page = page_size as usize;
        if pages_sec.size / page != nr || pages_sec.size % page != 0 {
            return Err(Error::Malformed(
                ".xen_pages does not hold the header's number of pages",
            ));
        }
        let (pfns, entry) = match (find(".xen_p2m"), find(".xen_pfn")) {
            (Some(s), _) => (s, 16),
            (None, Some(s)) => (s, 8),
            (None, None) => return Err(Error::MissingSection(".xen_p2m or .xen_pfn")),
        };
        if pfns.size
            != nr
                .checked_mul(entry)
                .ok_or(Error::Malformed("page count"))?
        {
            return Err(Error::Malformed(
                "the pfn table does not have one entry per page",
            ));
        }
        let table = body(pfns);
        let data = body(pages_sec);
        let mut pages = Vec::with_capacity(nr);
        for i in 0..nr {
            let pfn = u64_at(table, i * entry)?;
            if pfn == INVALID_PFN {
                continue;
            }
            pages.push((pfn, &data[i * page..(i + 1) * page]));
        }
        Ok(XenCore {
            hvm,
            vcpus,
            page_size,
            pages,
        })
    }
}

/// The section headers of an ELF64 little-endian x86-64 core, with checked bounds.
fn sections(file: &[u8]) -> Result<Vec<Section<'_>>, Error> {
    if file.len() < 64 || &file[..4] != b"\x7fELF" {
        return Err(Error::NotElf);
    }
    if file[4] != 2 || file[5] != 1 {
        return Err(Error::Unsupported("not a 64-bit little-endian ELF".into()));
    }
    let e_type = u16_at(file, 16)?;
    let machine = u16_at(file, 18)?;
    if e_type != 4 {
        return Err(Error::Unsupported(format!("ELF type {e_type}, not a core")));
    }
    if machine != 62 {
        return Err(Error::Unsupported(format!("machine {machine}, not x86-64")));
    }
    if u16_at(file, 56)? != 0 && u64_at(file, 32)? != 0 {
        return Err(Error::Unsupported(
            "the file has program headers: it is an ELF core already, not Xen's dump-core".into(),
        ));
    }
    let shoff = usize_of(u64_at(file, 40)?, "section header offset")?;
    let shentsize = usize::from(u16_at(file, 58)?);
    let shnum = usize::from(u16_at(file, 60)?);
    let shstrndx = usize::from(u16_at(file, 62)?);
    if shentsize != 64 || shnum == 0 || shstrndx >= shnum {
        return Err(Error::Malformed("section header table"));
    }
    let end = shnum
        .checked_mul(64)
        .and_then(|n| n.checked_add(shoff))
        .ok_or(Error::Malformed("section header table"))?;
    if end > file.len() {
        return Err(Error::Truncated("the section headers"));
    }
    let mut raw = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = shoff + i * 64;
        let name = u32_at(file, h)? as usize;
        let offset = usize_of(u64_at(file, h + 24)?, "section offset")?;
        let size = usize_of(u64_at(file, h + 32)?, "section size")?;
        let sh_type = u32_at(file, h + 4)?;
        // SHT_NOBITS has no bytes in the file; any other section must lie within it.
        let size = if sh_type == 8 { 0 } else { size };
        if offset.checked_add(size).is_none_or(|e| e > file.len()) {
            return Err(Error::Truncated("a section's contents"));
        }
        raw.push((name, offset, size));
    }
    let (_, str_off, str_size) = raw[shstrndx];
    let strtab = &file[str_off..str_off + str_size];
    raw.into_iter()
        .map(|(name, offset, size)| {
            let rest = strtab
                .get(name..)
                .ok_or(Error::Malformed("section name offset"))?;
            let len = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(Error::Malformed("section name"))?;
            Ok(Section {
                name: &rest[..len],
                offset,
                size,
            })
        })
        .collect()
}

/// `(magic, nr_vcpus, nr_pages, page_size)` from the `XEN_ELFNOTE_DUMPCORE_HEADER` note.
fn dumpcore_header(notes: &[u8]) -> Result<(u64, u64, u64, u64), Error> {
    let mut off = 0usize;
    while off + 12 <= notes.len() {
        let namesz = u32_at(notes, off)? as usize;
        let descsz = u32_at(notes, off + 4)? as usize;
        let ty = u32_at(notes, off + 8)?;
        let name_off = off + 12;
        let desc_off = name_off
            .checked_add(namesz.next_multiple_of(4))
            .ok_or(Error::Malformed("note"))?;
        let next = desc_off
            .checked_add(descsz.next_multiple_of(4))
            .ok_or(Error::Malformed("note"))?;
        if next > notes.len() {
            return Err(Error::Truncated("a note in .note.Xen"));
        }
        let name = &notes[name_off..name_off + namesz];
        if name.strip_suffix(b"\0").unwrap_or(name) == b"Xen" && ty == XEN_ELFNOTE_DUMPCORE_HEADER {
            if descsz < 32 {
                return Err(Error::Truncated("the dump-core header note"));
            }
            let d = &notes[desc_off..desc_off + descsz];
            return Ok((u64_at(d, 0)?, u64_at(d, 8)?, u64_at(d, 16)?, u64_at(d, 24)?));
        }
        off = next;
    }
    Err(Error::Malformed("no dump-core header note in .note.Xen"))
}

fn vcpu_registers(c: &[u8]) -> Result<VcpuRegisters, Error> {
    let r = ctx::USER_REGS;
    let mut gprs = [0u64; 15];
    for (i, g) in gprs.iter_mut().enumerate() {
        *g = u64_at(c, r + 8 * i)?;
    }
    let seg = |o: usize| u16_at(c, r + o);
    Ok(VcpuRegisters {
        gprs,
        rip: u64_at(c, r + regs::RIP)?,
        rsp: u64_at(c, r + regs::RSP)?,
        rflags: u64_at(c, r + regs::RFLAGS)?,
        segments: [
            seg(regs::CS)?,
            seg(regs::SS)?,
            seg(regs::DS)?,
            seg(regs::ES)?,
            seg(regs::FS)?,
            seg(regs::GS)?,
        ],
        fs_base: u64_at(c, ctx::FS_BASE)?,
        gs_base: u64_at(c, ctx::GS_BASE_KERNEL)?,
        cr3: u64_at(c, ctx::CTRLREG + 3 * 8)?,
        fxsave: c[ctx::FPU_CTXT..ctx::FPU_CTXT + 512].to_vec(),
    })
}

/// Offsets a test uses to build a `vcpu_guest_context`.
#[cfg(test)]
pub(crate) mod layout {
    pub use super::ctx::{CTRLREG, FS_BASE, GS_BASE_KERNEL, USER_REGS};
    pub use super::regs::{CS, RFLAGS, RIP, RSP, SS};
}
