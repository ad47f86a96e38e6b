//! Writing a standard ELF core, the kind Linux writes for a process and gdb loads with
//! `gdb PROGRAM CORE`: program headers only, a `PT_NOTE` segment with the threads' registers
//! (`NT_PRSTATUS`, `NT_PRFPREG`, one of each per thread, after one `NT_PRPSINFO`) and one
//! `PT_LOAD` segment per run of memory at its virtual address.
//!
//! The note layouts are x86-64 Linux's (`struct elf_prstatus`, `struct elf_prpsinfo`,
//! `struct user_fpregs_struct`), which gdb's amd64 GNU/Linux support reads.

use std::io::{self, Write};

use crate::xen_core::VcpuRegisters;

/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
/// `NT_PRFPREG`.
pub const NT_PRFPREG: u32 = 2;
/// `NT_PRPSINFO`.
pub const NT_PRPSINFO: u32 = 3;
/// Size of x86-64 Linux's `struct elf_prstatus`.
pub const PRSTATUS_SIZE: usize = 336;
/// Offset of `pr_pid` in it.
pub const PRSTATUS_PID: usize = 32;
/// Offset of `pr_reg` (27 u64 in `user_regs_struct` order) in it.
pub const PRSTATUS_REG: usize = 112;
/// Size of x86-64 Linux's `struct elf_prpsinfo`.
pub const PRPSINFO_SIZE: usize = 136;
/// Index of each register in `pr_reg` (`struct user_regs_struct`).
pub mod reg {
    /// rbp.
    pub const RBP: usize = 4;
    /// `orig_rax`.
    pub const ORIG_RAX: usize = 15;
    /// rip.
    pub const RIP: usize = 16;
    /// cs.
    pub const CS: usize = 17;
    /// eflags.
    pub const EFLAGS: usize = 18;
    /// rsp.
    pub const RSP: usize = 19;
    /// ss.
    pub const SS: usize = 20;
    /// `fs_base`.
    pub const FS_BASE: usize = 21;
    /// `gs_base`.
    pub const GS_BASE: usize = 22;
}

/// One `PT_LOAD` segment: memory at `vaddr` (physical address `paddr`), from these pages.
pub struct Segment<'a> {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Physical (for a PV guest: pseudo-physical) address of the first byte.
    pub paddr: u64,
    /// The pages, in address order.
    pub pages: Vec<&'a [u8]>,
}

impl Segment<'_> {
    fn len(&self) -> u64 {
        self.pages.iter().map(|p| p.len() as u64).sum()
    }
}

fn note(out: &mut Vec<u8>, ty: u32, desc: &[u8]) {
    const NAME: &[u8] = b"CORE\0";
    out.extend_from_slice(&(NAME.len() as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(NAME);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The `NT_PRSTATUS` descriptor of thread `lwp` with these registers.
pub fn prstatus(lwp: u32, r: &VcpuRegisters) -> Vec<u8> {
    let mut d = vec![0u8; PRSTATUS_SIZE];
    d[PRSTATUS_PID..PRSTATUS_PID + 4].copy_from_slice(&lwp.to_le_bytes());
    let [cs, ss, ds, es, fs, gs] = r.segments.map(u64::from);
    let mut regs = [0u64; 27];
    regs[..15].copy_from_slice(&r.gprs);
    regs[reg::ORIG_RAX] = u64::MAX;
    regs[reg::RIP] = r.rip;
    regs[reg::CS] = cs;
    regs[reg::EFLAGS] = r.rflags;
    regs[reg::RSP] = r.rsp;
    regs[reg::SS] = ss;
    regs[reg::FS_BASE] = r.fs_base;
    regs[reg::GS_BASE] = r.gs_base;
    regs[23..27].copy_from_slice(&[ds, es, fs, gs]);
    for (i, v) in regs.iter().enumerate() {
        let o = PRSTATUS_REG + 8 * i;
        d[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    d
}

/// The `NT_PRPSINFO` descriptor: a running process named `name` (cut to 15 bytes), with
/// `args` (cut to 79) as its command line.
pub fn prpsinfo(name: &str, args: &str) -> Vec<u8> {
    let mut d = vec![0u8; PRPSINFO_SIZE];
    d[1] = b'R';
    let n = &name.as_bytes()[..name.len().min(15)];
    d[40..40 + n.len()].copy_from_slice(n);
    let a = &args.as_bytes()[..args.len().min(79)];
    d[56..56 + a.len()].copy_from_slice(a);
    d
}

/// Write the core: one thread per entry of `threads` (thread ids 1, 2, ...), the memory of
/// `segments`. `name` and `args` go into `NT_PRPSINFO` (gdb shows them as the program).
pub fn write(
    out: &mut impl Write,
    name: &str,
    args: &str,
    threads: &[VcpuRegisters],
    segments: &[Segment<'_>],
) -> io::Result<()> {
    const PAGE: u64 = 4096;
    let mut notes = Vec::new();
    note(&mut notes, NT_PRPSINFO, &prpsinfo(name, args));
    for (i, t) in threads.iter().enumerate() {
        note(&mut notes, NT_PRSTATUS, &prstatus(i as u32 + 1, t));
        let mut fx = t.fxsave.clone();
        fx.resize(512, 0);
        note(&mut notes, NT_PRFPREG, &fx);
    }
    let phnum = 1 + segments.len();
    if phnum > 0xffff {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{phnum} program headers do not fit an ELF header"),
        ));
    }
    let notes_off = 64 + 56 * phnum as u64;
    let mut data_off = (notes_off + notes.len() as u64).next_multiple_of(PAGE);

    let mut head = Vec::with_capacity(notes_off as usize);
    head.extend_from_slice(b"\x7fELF\x02\x01\x01");
    head.resize(16, 0);
    head.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    head.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    head.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    head.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    head.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    head.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    head.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    head.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    head.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    head.extend_from_slice(&(phnum as u16).to_le_bytes());
    head.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx

    let mut phdr = |ty: u32, flags: u32, off: u64, vaddr: u64, paddr: u64, size: u64, align| {
        head.extend_from_slice(&ty.to_le_bytes());
        head.extend_from_slice(&flags.to_le_bytes());
        for v in [off, vaddr, paddr, size, size, align] {
            head.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(4, 0, notes_off, 0, 0, notes.len() as u64, 4); // PT_NOTE
    for s in segments {
        phdr(1, 7, data_off, s.vaddr, s.paddr, s.len(), PAGE); // PT_LOAD, RWX
        data_off += s.len().next_multiple_of(PAGE);
    }
    out.write_all(&head)?;
    out.write_all(&notes)?;
    let pad =
        (notes_off + notes.len() as u64).next_multiple_of(PAGE) - notes_off - notes.len() as u64;
    out.write_all(&vec![0; pad as usize])?;
    for s in segments {
        for p in &s.pages {
            out.write_all(p)?;
        }
        let tail = s.len().next_multiple_of(PAGE) - s.len();
        out.write_all(&vec![0; tail as usize])?;
    }
    out.flush()
}
