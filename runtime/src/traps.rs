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
    trap_db: 1, "pushq $0";
    trap_bp: 3, "pushq $0";
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
    // From here on this is a handler: the interrupted flow's single-vCPU state refuses us.
    let _handler = xenia_xen::single::enter_handler();
    // SAFETY: the stub passes the frame it built on the stack.
    let f = unsafe { &*frame };
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
        for (slot, &(vector, stub)) in table.iter_mut().zip(STUBS) {
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
