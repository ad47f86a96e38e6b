//! CPU exceptions: a trap table so that a fault prints our own message on the console and
//! crashes the domain, instead of dying silently.
//!
//! Xen delivers an exception to a 64-bit PV kernel on the kernel stack with `rcx` and `r11` on
//! top of the hardware frame (`[error code,] rip, cs, rflags, rsp, ss`). Each stub restores
//! `rcx`/`r11`, pushes a zero error code where the CPU pushes none (the `pushq $0` argument),
//! pushes its vector, and calls [`xenia_trap`] with a pointer to the frame and the interrupted
//! code's frame pointer (`rbp`, which the stubs leave alone), so that the report can include
//! the call stack (see [`crate::backtrace`]).

use core::arch::global_asm;
use xenia_xen::abi::TrapInfo;

macro_rules! stubs {
    ($($name:ident: $vec:literal, $push:literal;)*) => {
        global_asm!(
            $(
                concat!(".pushsection .text.traps, \"ax\"\n",
                        ".globl ", stringify!($name), "\n",
                        stringify!($name), ":\n",
                        "    mov (%rsp), %rcx\n",
                        "    mov 8(%rsp), %r11\n",
                        "    add $16, %rsp\n",
                        "    ", $push, "\n",
                        "    pushq $", stringify!($vec), "\n",
                        "    jmp xenia_trap_common\n",
                        ".popsection\n"),
            )*
            ".pushsection .text.traps, \"ax\"",
            "xenia_trap_common:",
            "    mov %rsp, %rdi",
            "    mov %rbp, %rsi",
            "    and $-16, %rsp",
            "    call xenia_trap",
            "    ud2",
            ".popsection",
            options(att_syntax)
        );
        unsafe extern "C" { $(fn $name();)* }
        const STUBS: &[(u8, unsafe extern "C" fn())] = &[$(($vec, $name)),*];
    };
}

stubs! {
    trap_de: 0, "pushq $0";
    trap_of: 4, "pushq $0";
    trap_br: 5, "pushq $0";
    trap_ud: 6, "pushq $0";
    trap_nm: 7, "pushq $0";
    trap_df: 8, "";
    trap_ts: 10, "";
    trap_np: 11, "";
    trap_ss: 12, "";
    trap_gp: 13, "";
    trap_pf: 14, "";
    trap_mf: 16, "pushq $0";
    trap_ac: 17, "";
    trap_xm: 19, "pushq $0";
}

// The debug traps (#DB, #BP) can return: with a GDB session active (`crate::gdb`) the stopped
// code resumes where gdb says. Their stubs save every general register below the frame (the
// layout of `gdb::TrapRegs`), call `xenia_debug_trap`, restore them and return with `iretq`
// (the guest kernel runs in ring 3, so a direct `iretq` to ring 3 is allowed; Xen shows the
// kernel's `cs`/`ss` with RPL 0, which `iretq` must see as 3, as Mini-OS also does).
global_asm!(
    ".pushsection .text.traps, \"ax\"",
    ".globl trap_db",
    "trap_db:",
    "    mov (%rsp), %rcx",
    "    mov 8(%rsp), %r11",
    "    add $16, %rsp",
    "    pushq $0",
    "    pushq $1",
    "    jmp xenia_debug_common",
    ".globl trap_bp",
    "trap_bp:",
    "    mov (%rsp), %rcx",
    "    mov 8(%rsp), %r11",
    "    add $16, %rsp",
    "    pushq $0",
    "    pushq $3",
    "    jmp xenia_debug_common",
    "xenia_debug_common:",
    "    push %r15",
    "    push %r14",
    "    push %r13",
    "    push %r12",
    "    push %r11",
    "    push %r10",
    "    push %r9",
    "    push %r8",
    "    push %rbp",
    "    push %rdi",
    "    push %rsi",
    "    push %rdx",
    "    push %rcx",
    "    push %rbx",
    "    push %rax",
    "    mov %rsp, %rdi",
    "    mov %rsp, %rbx",
    "    and $-16, %rsp",
    "    call xenia_debug_trap",
    "    mov %rbx, %rsp",
    "    pop %rax",
    "    pop %rbx",
    "    pop %rcx",
    "    pop %rdx",
    "    pop %rsi",
    "    pop %rdi",
    "    pop %rbp",
    "    pop %r8",
    "    pop %r9",
    "    pop %r10",
    "    pop %r11",
    "    pop %r12",
    "    pop %r13",
    "    pop %r14",
    "    pop %r15",
    "    add $16, %rsp",
    "    orq $3, 8(%rsp)",
    "    orq $3, 32(%rsp)",
    "    iretq",
    ".popsection",
    options(att_syntax)
);
unsafe extern "C" {
    fn trap_db();
    fn trap_bp();
}
const DEBUG_STUBS: &[(u8, unsafe extern "C" fn())] = &[(1, trap_db), (3, trap_bp)];
const _: () = assert!(STUBS.len() + DEBUG_STUBS.len() == 16);

const NAMES: [&str; 20] = [
    "divide error",
    "debug",
    "nmi",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
];

/// `FLAT_KERNEL_CS` of a 64-bit PV guest (ring 3, 64-bit).
const FLAT_KERNEL_CS: u16 = xenia_xen::abi::FLAT_KERNEL_CS as u16;

#[repr(C)]
struct Frame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

#[unsafe(no_mangle)]
extern "C" fn xenia_trap(frame: *const Frame, rbp: u64) -> ! {
    // SAFETY: the stub passes the frame it built on the stack.
    fatal(unsafe { &*frame }, rbp)
}

/// A debug trap (#DB or #BP): GDB's if a session is up, fatal otherwise.
#[unsafe(no_mangle)]
extern "C" fn xenia_debug_trap(regs: *mut crate::gdb::TrapRegs) {
    // SAFETY: the stub passes the registers it saved on the stack, ours until we return.
    let regs = unsafe { &mut *regs };
    if crate::gdb::on_debug_trap(regs) {
        return;
    }
    // SAFETY: TrapRegs ends with the fields of Frame, in Frame's order (checked below).
    let frame = unsafe { &*((&raw const regs.vector).cast::<Frame>()) };
    fatal(frame, regs.rbp)
}

const _: () = assert!(
    core::mem::size_of::<crate::gdb::TrapRegs>()
        - core::mem::offset_of!(crate::gdb::TrapRegs, vector)
        == core::mem::size_of::<Frame>()
);

/// Reports an exception and crashes the domain.
fn fatal(f: &Frame, rbp: u64) -> ! {
    // From here on this is a handler: the interrupted flow's single-vCPU state refuses us.
    let _handler = xenia_xen::single::enter_handler();
    let first = crate::backtrace::begin_crash();
    let name = NAMES.get(f.vector as usize).copied().unwrap_or("exception");
    let cr2 = crate::shared_info::get()
        // SAFETY: shared_info is mapped; arch.cr2 of vCPU 0 is where Xen puts the fault address.
        .map(|s| unsafe { (&raw const (*s).vcpu_info[0].arch.cr2).read_volatile() })
        .unwrap_or(0);
    crate::println!(
        "xenia: fatal {} (vector {}) error {:#x} at rip {:#x} rsp {:#x} cr2 {:#x}",
        name,
        f.vector,
        f.error,
        f.rip,
        f.rsp,
        cr2
    );
    if first {
        crate::backtrace::print(Some(f.rip), rbp);
    } else {
        crate::println!("xenia: (the fault happened while reporting a crash)");
    }
    crate::start::shutdown(xenia_xen::sched::ShutdownReason::Crash)
}

/// Registers the trap table with Xen.
pub fn init() {
    // Xen copies the table, so it can live on the stack; it ends with an all-zero entry.
    let mut table = [TrapInfo {
        vector: 0,
        flags: 0,
        cs: 0,
        address: 0,
    }; 17];
    {
        let mut stubs: [(u8, unsafe extern "C" fn()); 16] = [(0, trap_db); 16];
        for (slot, &s) in stubs.iter_mut().zip(STUBS.iter().chain(DEBUG_STUBS)) {
            *slot = s;
        }
        for (slot, &(vector, stub)) in table.iter_mut().zip(&stubs) {
            *slot = TrapInfo {
                // Breakpoints may be raised from ring 3 (our own privilege level).
                flags: if vector == 3 { 3 } else { 0 },
                vector,
                cs: FLAT_KERNEL_CS,
                address: stub as usize as u64,
            };
        }
        // SAFETY: the table is zero-terminated and every address is one of our stubs.
        if let Err(e) = unsafe { xenia_xen::hypercall::set_trap_table(table.as_ptr()) } {
            crate::println!("xenia: set_trap_table failed: {e}");
        }
    }
}
