//! Host tests: synthetic dump-core files in Xen's layout, converted, and the ELF core read back
//! with the `object` crate (and, where installed, gdb).

use object::elf::{FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian as LE;

use crate::elf_core::{self, reg, NT_PRFPREG, NT_PRPSINFO, NT_PRSTATUS, PRSTATUS_REG};
use crate::xen_core::{gpr, layout, VCPU_GUEST_CONTEXT_SIZE, XC_CORE_MAGIC, XC_CORE_MAGIC_HVM};
use crate::{convert, Options, HYPERCALL_RETURN, XENIA_VIRT_BASE};

/// A synthetic guest: its pages by pfn and one vCPU's registers.
struct Guest {
    magic: u64,
    pages: Vec<(u64, Vec<u8>)>,
    rip: u64,
    rsp: u64,
    rbp: u64,
    /// Extra bytes added to the `.xen_prstatus` section (a wrong context size).
    context_extra: usize,
}

impl Guest {
    fn new() -> Self {
        // Frames 0, 1, 2 and 5: two runs. Each page starts with its pfn and a marker.
        let pages = [0u64, 1, 2, 5]
            .iter()
            .map(|&pfn| {
                let mut p = vec![0u8; 4096];
                p[..8].copy_from_slice(&pfn.to_le_bytes());
                p[8..16].copy_from_slice(b"xenpage!");
                p[4095] = pfn as u8 ^ 0x5a;
                (pfn, p)
            })
            .collect();
        Guest {
            magic: XC_CORE_MAGIC,
            pages,
            rip: XENIA_VIRT_BASE + 0x1234,
            rsp: XENIA_VIRT_BASE + 2 * 4096 + 0x800,
            rbp: XENIA_VIRT_BASE + 2 * 4096 + 0x900,
            context_extra: 0,
        }
    }

    fn page_mut(&mut self, pfn: u64) -> &mut Vec<u8> {
        &mut self.pages.iter_mut().find(|(p, _)| *p == pfn).unwrap().1
    }

    fn context(&self) -> Vec<u8> {
        let mut c = vec![0u8; VCPU_GUEST_CONTEXT_SIZE];
        let put =
            |c: &mut Vec<u8>, off: usize, v: u64| c[off..off + 8].copy_from_slice(&v.to_le_bytes());
        let r = layout::USER_REGS;
        // r15 .. rdi: 0x1000 + index, so that each lands in a checkable place.
        for i in 0..15 {
            put(&mut c, r + 8 * i, 0x1000 + i as u64);
        }
        put(&mut c, r + 8 * gpr::RBP, self.rbp);
        put(&mut c, r + layout::RIP, self.rip);
        put(&mut c, r + layout::RSP, self.rsp);
        put(&mut c, r + layout::RFLAGS, 0x246);
        c[r + layout::CS..r + layout::CS + 2].copy_from_slice(&0xe033u16.to_le_bytes());
        c[r + layout::SS..r + layout::SS + 2].copy_from_slice(&0xe02bu16.to_le_bytes());
        put(&mut c, layout::FS_BASE, 0xf5);
        put(&mut c, layout::GS_BASE_KERNEL, 0x65);
        put(&mut c, layout::CTRLREG + 24, 0x3000);
        c[0] = 0x7f; // first byte of the FXSAVE image
        c
    }

    /// The dump-core file, laid out the way libxenguest writes it.
    fn xen_core(&self) -> Vec<u8> {
        let mut notes = Vec::new();
        let mut note = |ty: u32, desc: &[u8]| {
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&ty.to_le_bytes());
            notes.extend_from_slice(b"Xen\0");
            notes.extend_from_slice(desc);
        };
        note(0x200_0000, &[]); // DUMPCORE_NONE
        let mut header = Vec::new();
        for v in [self.magic, 1, self.pages.len() as u64, 4096] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        note(0x200_0001, &header);
        note(0x200_0003, &1u64.to_le_bytes()); // FORMAT_VERSION
        let mut prstatus = self.context();
        prstatus.resize(prstatus.len() + self.context_extra, 0);
        let mut p2m = Vec::new();
        let mut pages = Vec::new();
        for (i, (pfn, data)) in self.pages.iter().enumerate() {
            p2m.extend_from_slice(&pfn.to_le_bytes());
            p2m.extend_from_slice(&(0x8000 + i as u64).to_le_bytes()); // gmfn
            pages.extend_from_slice(data);
        }
        let strtab = b"\0.shstrtab\0.note.Xen\0.xen_prstatus\0.xen_pages\0.xen_p2m\0".to_vec();
        let name = |n: &str| {
            let pat = format!("{n}\0");
            strtab
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap() as u32
        };
        // (name, type, contents): SHT_STRTAB, SHT_NOTE, then SHT_PROGBITS.
        let sections: Vec<(u32, u32, Vec<u8>)> = vec![
            (name(".shstrtab"), 3, strtab.clone()),
            (name(".note.Xen"), 7, notes),
            (name(".xen_prstatus"), 1, prstatus),
            (name(".xen_p2m"), 1, p2m),
            (name(".xen_pages"), 1, pages),
        ];
        let shnum = sections.len() + 1;
        let mut file = vec![0u8; 64 + 64 * shnum];
        file[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        file[16..18].copy_from_slice(&4u16.to_le_bytes());
        file[18..20].copy_from_slice(&62u16.to_le_bytes());
        file[20..24].copy_from_slice(&1u32.to_le_bytes());
        file[40..48].copy_from_slice(&64u64.to_le_bytes()); // e_shoff
        file[52..54].copy_from_slice(&64u16.to_le_bytes());
        file[58..60].copy_from_slice(&64u16.to_le_bytes());
        file[60..62].copy_from_slice(&(shnum as u16).to_le_bytes());
        file[62..64].copy_from_slice(&1u16.to_le_bytes()); // .shstrtab
        for (i, (name, ty, body)) in sections.iter().enumerate() {
            if *ty == 1 && name == &self::name_of(&strtab, ".xen_pages") {
                file.resize(file.len().next_multiple_of(4096), 0);
            }
            let off = file.len() as u64;
            file.extend_from_slice(body);
            let h = 64 + 64 * (i + 1);
            file[h..h + 4].copy_from_slice(&name.to_le_bytes());
            file[h + 4..h + 8].copy_from_slice(&ty.to_le_bytes());
            file[h + 24..h + 32].copy_from_slice(&off.to_le_bytes());
            file[h + 32..h + 40].copy_from_slice(&(body.len() as u64).to_le_bytes());
        }
        file
    }
}

fn name_of(strtab: &[u8], n: &str) -> u32 {
    let pat = format!("{n}\0");
    strtab
        .windows(pat.len())
        .position(|w| w == pat.as_bytes())
        .unwrap() as u32
}

fn convert_ok(xen: &[u8], opts: &Options) -> (Vec<u8>, crate::Summary) {
    let mut out = Vec::new();
    let s = convert(xen, opts, &mut out).unwrap_or_else(|e| panic!("convert: {e}"));
    (out, s)
}

/// The ELF core's `PT_LOAD`s as (vaddr, paddr, bytes) and its notes as (name, type, desc).
#[allow(clippy::type_complexity)]
fn read_core(elf: &[u8]) -> (Vec<(u64, u64, Vec<u8>)>, Vec<(Vec<u8>, u32, Vec<u8>)>) {
    let h = FileHeader64::<LE>::parse(elf).expect("an ELF64 header");
    assert_eq!(h.e_type.get(LE), object::elf::ET_CORE);
    assert_eq!(h.e_machine.get(LE), object::elf::EM_X86_64);
    let mut loads = Vec::new();
    let mut notes = Vec::new();
    for ph in h.program_headers(LE, elf).expect("program headers") {
        match ph.p_type(LE) {
            PT_LOAD => {
                assert_eq!(ph.p_filesz(LE), ph.p_memsz(LE));
                assert_eq!(ph.p_offset(LE) % 4096, 0, "page-aligned data");
                let data = ph.data(LE, elf).expect("segment data").to_vec();
                loads.push((ph.p_vaddr(LE), ph.p_paddr(LE), data));
            }
            PT_NOTE => {
                let mut it = ph.notes(LE, elf).expect("notes").expect("a note segment");
                while let Some(n) = it.next().expect("a note") {
                    notes.push((n.name().to_vec(), n.n_type(LE), n.desc().to_vec()));
                }
            }
            t => panic!("unexpected program header type {t}"),
        }
    }
    (loads, notes)
}

fn pr_reg(desc: &[u8], i: usize) -> u64 {
    let o = PRSTATUS_REG + 8 * i;
    u64::from_le_bytes(desc[o..o + 8].try_into().unwrap())
}

#[test]
fn pages_land_at_their_virtual_addresses_and_registers_in_prstatus() {
    let g = Guest::new();
    let (elf, s) = convert_ok(&g.xen_core(), &Options::default());
    assert_eq!((s.pages, s.segments), (4, 2));
    assert_eq!(s.left_hypercall, [false]);
    let (loads, notes) = read_core(&elf);

    // Frames 0-2 in one segment, frame 5 in another, each at VIRT_BASE + pfn * 4096.
    assert_eq!(loads.len(), 2);
    assert_eq!((loads[0].0, loads[0].1), (XENIA_VIRT_BASE, 0));
    assert_eq!(loads[0].2.len(), 3 * 4096);
    assert_eq!(
        (loads[1].0, loads[1].1),
        (XENIA_VIRT_BASE + 5 * 4096, 5 * 4096)
    );
    assert_eq!(loads[1].2.len(), 4096);
    for (pfn, data) in &g.pages {
        let (seg, idx) = if *pfn < 3 { (0, *pfn as usize) } else { (1, 0) };
        let got = &loads[seg].2[idx * 4096..(idx + 1) * 4096];
        assert_eq!(got, &data[..], "page {pfn}");
    }

    // One process info, then the vCPU's registers and FPU state, as Linux lays them out.
    let kinds: Vec<u32> = notes.iter().map(|n| n.1).collect();
    assert_eq!(kinds, [NT_PRPSINFO, NT_PRSTATUS, NT_PRFPREG]);
    assert!(notes.iter().all(|n| n.0 == b"CORE"));
    let pr = &notes[1].2;
    assert_eq!(pr.len(), elf_core::PRSTATUS_SIZE);
    assert_eq!(
        u32::from_le_bytes(pr[32..36].try_into().unwrap()),
        1,
        "pr_pid"
    );
    for i in 0..15 {
        let want = if i == gpr::RBP {
            g.rbp
        } else {
            0x1000 + i as u64
        };
        assert_eq!(pr_reg(pr, i), want, "general register {i}");
    }
    assert_eq!(pr_reg(pr, reg::RIP), g.rip);
    assert_eq!(pr_reg(pr, reg::RSP), g.rsp);
    assert_eq!(pr_reg(pr, reg::RBP), g.rbp);
    assert_eq!(pr_reg(pr, reg::EFLAGS), 0x246);
    assert_eq!(pr_reg(pr, reg::CS), 0xe033);
    assert_eq!(pr_reg(pr, reg::SS), 0xe02b);
    assert_eq!(pr_reg(pr, reg::FS_BASE), 0xf5);
    assert_eq!(pr_reg(pr, reg::GS_BASE), 0x65);
    assert_eq!(pr_reg(pr, reg::ORIG_RAX), u64::MAX);
    assert_eq!(notes[2].2.len(), 512);
    assert_eq!(notes[2].2[0], 0x7f);
    assert_eq!(&notes[0].2[40..45], b"xenia");
}

#[test]
fn another_virt_base_moves_the_segments() {
    let g = Guest::new();
    let opts = Options {
        virt_base: 0xffff_8000_0000_0000,
        ..Options::default()
    };
    let (elf, _) = convert_ok(&g.xen_core(), &opts);
    let (loads, _) = read_core(&elf);
    assert_eq!(loads[0].0, 0xffff_8000_0000_0000);
    assert_eq!(loads[1].0, 0xffff_8000_0000_0000 + 5 * 4096);
}

/// A vCPU stopped after `syscall` in a hypercall stub (how a guest that crashed itself is
/// saved) is shown after the stub's `pop %r11; pop %rcx; ret`, unless raw registers are asked.
#[test]
fn a_vcpu_in_the_hypercall_page_is_shown_where_the_hypercall_returns() {
    let mut g = Guest::new();
    // The stub in frame 1, the stack in frame 2: saved r11, saved rcx, return address.
    g.rip = XENIA_VIRT_BASE + 4096 + 0x18a;
    g.page_mut(1)[0x18a..0x18e].copy_from_slice(&HYPERCALL_RETURN);
    let stack = 0x800;
    let words = [0x202u64, 0xc0ffee, XENIA_VIRT_BASE + 0x4321];
    for (i, w) in words.iter().enumerate() {
        g.page_mut(2)[stack + 8 * i..stack + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    let xen = g.xen_core();

    let (elf, s) = convert_ok(&xen, &Options::default());
    assert_eq!(s.left_hypercall, [true]);
    let (_, notes) = read_core(&elf);
    let pr = &notes[1].2;
    assert_eq!(pr_reg(pr, reg::RIP), XENIA_VIRT_BASE + 0x4321);
    assert_eq!(pr_reg(pr, reg::RSP), g.rsp + 24);
    assert_eq!(pr_reg(pr, gpr::R11), 0x202);
    assert_eq!(pr_reg(pr, gpr::RCX), 0xc0ffee);
    assert_eq!(pr_reg(pr, reg::RBP), g.rbp, "rbp is untouched");

    let raw = Options {
        raw_registers: true,
        ..Options::default()
    };
    let (elf, s) = convert_ok(&xen, &raw);
    assert_eq!(s.left_hypercall, [false]);
    let (_, notes) = read_core(&elf);
    assert_eq!(pr_reg(&notes[1].2, reg::RIP), g.rip);
    assert_eq!(pr_reg(&notes[1].2, reg::RSP), g.rsp);

    // A stack outside the dump: the registers stay as they are.
    let mut g2 = Guest::new();
    g2.rip = g.rip;
    g2.page_mut(1)[0x18a..0x18e].copy_from_slice(&HYPERCALL_RETURN);
    g2.rsp = XENIA_VIRT_BASE + 9 * 4096;
    let (_, s) = convert_ok(&g2.xen_core(), &Options::default());
    assert_eq!(s.left_hypercall, [false]);
    assert_eq!(s.vcpus[0].rip, g.rip);
}

/// Every prefix of a dump-core file is refused with an error (never a panic or a core).
#[test]
fn truncated_files_are_errors() {
    let xen = Guest::new().xen_core();
    for len in (0..xen.len()).step_by(7).chain([xen.len() - 1]) {
        let mut out = Vec::new();
        let r = convert(&xen[..len], &Options::default(), &mut out);
        assert!(r.is_err(), "a file cut at {len} of {} converted", xen.len());
    }
}

#[test]
fn malformed_files_are_errors_that_say_why() {
    let err = |xen: &[u8]| {
        let mut out = Vec::new();
        convert(xen, &Options::default(), &mut out)
            .expect_err("must fail")
            .to_string()
    };
    assert!(
        err(b"not an elf file at all, but long enough to have a header....................")
            .contains("not an ELF")
    );

    let mut g = Guest::new();
    g.magic = 0x1234;
    assert!(err(&g.xen_core()).contains("magic 0x1234"));
    g.magic = XC_CORE_MAGIC_HVM;
    assert!(err(&g.xen_core()).contains("HVM"));

    let mut g = Guest::new();
    g.context_extra = 8;
    assert!(err(&g.xen_core()).contains("not a 64-bit x86 guest"));

    let mut g = Guest::new();
    let first = g.pages[0].1.clone();
    g.pages.push((0, first));
    assert!(err(&g.xen_core()).contains("twice"));

    // A section renamed away.
    let mut xen = Guest::new().xen_core();
    let at = xen.windows(8).position(|w| w == b".xen_p2m").unwrap();
    xen[at + 1] = b'y';
    assert!(err(&xen).contains(".xen_p2m or .xen_pfn"));

    // A section running past the end of the file.
    let mut xen = Guest::new().xen_core();
    let h = 64 + 64 * 5; // .xen_pages' header
    xen[h + 32..h + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(err(&xen).contains("truncated"));

    // An ELF core already (program headers) is not Xen's format.
    let (elf, _) = convert_ok(&Guest::new().xen_core(), &Options::default());
    assert!(err(&elf).contains("ELF core already"));

    // Frames beyond the top of the address space.
    let mut g = Guest::new();
    g.pages.push((1 << 20, vec![0; 4096]));
    assert!(err(&g.xen_core()).contains("beyond the end of the address space"));
}

/// gdb (when installed) reads the converted core: registers and memory.
#[test]
fn gdb_reads_registers_and_memory_of_the_converted_core() {
    if std::process::Command::new("gdb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("gdb is not installed: skipped (scripts/nested-xen/prepare installs it)");
        return;
    }
    let g = Guest::new();
    let (elf, _) = convert_ok(&g.xen_core(), &Options::default());
    let path = std::env::temp_dir().join(format!("xenia-coredump-test-{}.elf", std::process::id()));
    std::fs::write(&path, &elf).unwrap();
    let out = std::process::Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set architecture i386:x86-64",
            "-ex",
        ])
        .arg(format!("core-file {}", path.display()))
        .args(["-ex", "printf \"rip=%#lx rsp=%#lx\\n\", $rip, $rsp"])
        .args(["-ex", &format!("x/2gx {:#x}", XENIA_VIRT_BASE + 5 * 4096)])
        .output()
        .expect("run gdb");
    std::fs::remove_file(&path).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("rip={:#x} rsp={:#x}", g.rip, g.rsp)),
        "gdb's registers:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Frame 5's first words: its pfn and "xenpage!".
    assert!(
        text.contains("0x0000000000000005\t0x21656761706e6578"),
        "gdb's memory:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
