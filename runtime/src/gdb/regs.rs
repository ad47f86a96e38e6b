//! The registers of a stopped guest: the frame the debug trap stubs save
//! ([`TrapRegs`]) and its conversion to and from GDB's x86-64 register set.

/// The trap flag (single step) in `rflags`.
pub const RFLAGS_TF: u64 = 1 << 8;

/// The `rflags` bits a debugger may change: the arithmetic flags, the direction flag and the
/// trap flag (CF, PF, AF, ZF, SF, TF, DF, OF). The rest (interrupt flag, IOPL, ...) belongs to
/// Xen and the CPU and is kept as the trap saved it.
pub const RFLAGS_DEBUGGER_BITS: u64 = 0x0cd5 | RFLAGS_TF;

/// The general registers and the exception frame, as the runtime's debug trap stubs lay them
/// out on the stack (the lowest address first): the stubs push `r15` first and `rax` last,
/// below the vector, the error code and the frame Xen delivered.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrapRegs {
    /// `rax`.
    pub rax: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `r8`.
    pub r8: u64,
    /// `r9`.
    pub r9: u64,
    /// `r10`.
    pub r10: u64,
    /// `r11`.
    pub r11: u64,
    /// `r12`.
    pub r12: u64,
    /// `r13`.
    pub r13: u64,
    /// `r14`.
    pub r14: u64,
    /// `r15`.
    pub r15: u64,
    /// The exception vector (1: debug, 3: breakpoint).
    pub vector: u64,
    /// The error code (0 for these vectors).
    pub error: u64,
    /// The interrupted instruction pointer.
    pub rip: u64,
    /// The interrupted code segment.
    pub cs: u64,
    /// The interrupted flags.
    pub rflags: u64,
    /// The interrupted stack pointer.
    pub rsp: u64,
    /// The interrupted stack segment.
    pub ss: u64,
}

// The conversions only exist with the stub (an image without it links no gdbstub code).
#[cfg(feature = "gdb")]
impl TrapRegs {
    /// GDB's view: the general registers, `rip`, `eflags`, `cs` and `ss`. The x87 and SSE
    /// registers read as zero: the guest's Rust code is built without them
    /// (`x86_64-unknown-none` is soft-float), so the stub does not save them.
    pub fn to_gdb(&self, out: &mut gdbstub_arch::x86::reg::X86_64CoreRegs) {
        *out = gdbstub_arch::x86::reg::X86_64CoreRegs::default();
        out.regs = [
            self.rax, self.rbx, self.rcx, self.rdx, self.rsi, self.rdi, self.rbp, self.rsp,
            self.r8, self.r9, self.r10, self.r11, self.r12, self.r13, self.r14, self.r15,
        ];
        out.rip = self.rip;
        out.eflags = self.rflags as u32;
        out.segments.cs = self.cs as u32;
        out.segments.ss = self.ss as u32;
    }

    /// Takes the general registers, `rip` and the debugger-owned flags from GDB. Segments and
    /// the flags Xen owns are kept: a PV guest cannot choose them.
    pub fn set_from_gdb(&mut self, r: &gdbstub_arch::x86::reg::X86_64CoreRegs) {
        let g = &r.regs;
        self.rax = g[0];
        self.rbx = g[1];
        self.rcx = g[2];
        self.rdx = g[3];
        self.rsi = g[4];
        self.rdi = g[5];
        self.rbp = g[6];
        self.rsp = g[7];
        self.r8 = g[8];
        self.r9 = g[9];
        self.r10 = g[10];
        self.r11 = g[11];
        self.r12 = g[12];
        self.r13 = g[13];
        self.r14 = g[14];
        self.r15 = g[15];
        self.rip = r.rip;
        self.rflags =
            (self.rflags & !RFLAGS_DEBUGGER_BITS) | (u64::from(r.eflags) & RFLAGS_DEBUGGER_BITS);
    }
}

// The trap stubs (runtime/src/traps.rs) hard-code this layout.
const _: () = assert!(core::mem::size_of::<TrapRegs>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(TrapRegs, vector) == 15 * 8);
const _: () = assert!(core::mem::offset_of!(TrapRegs, rip) == 17 * 8);
