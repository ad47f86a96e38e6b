//! PV boot: the Xen ELF notes, the entry point, the boot stack and the hypercall page.
//!
//! Xen's domain builder reads the `.note.Xen` notes to learn how to load us (linked at
//! `VIRT_BASE`, physical offset 0, "generic" loader, 64-bit PAE paging), maps the image and its
//! bootstrap data, fills the hypercall page and jumps to `_start` with `rsi` pointing at
//! `start_info`. We zero `.bss`, switch to our own stack and enter [`crate::start`].

use core::arch::global_asm;

// XEN_ELFNOTE_* numbers from Xen's public/elfnote.h. 14 (SUSPEND_CANCEL) says we handle a
// suspend hypercall that returns 1 (cancelled: the same domain carries on).
global_asm!(
    r#"
    .macro XEN_NOTE type, desc:vararg
        .balign 4
        .long 2f - 1f
        .long 4f - 3f
        .long \type
    1:  .asciz "Xen"
    2:  .balign 4
    3:  \desc
    4:  .balign 4
    .endm

    .pushsection .note.Xen, "a", @note
    XEN_NOTE 6,  .asciz "xenia"
    XEN_NOTE 7,  .asciz "0.1"
    XEN_NOTE 5,  .asciz "xen-3.0"
    XEN_NOTE 8,  .asciz "generic"
    XEN_NOTE 3,  .quad 0xffffffff80000000
    XEN_NOTE 4,  .quad 0
    XEN_NOTE 1,  .quad _start
    XEN_NOTE 2,  .quad HYPERCALL_PAGE
    XEN_NOTE 10, .asciz "!writable_page_tables"
    XEN_NOTE 9,  .asciz "yes"
    XEN_NOTE 14, .long 1
    .popsection

    .pushsection .text.hypercall_page, "ax"
    .balign 4096
    .globl HYPERCALL_PAGE
    HYPERCALL_PAGE:
        .fill 4096, 1, 0xcc
    .popsection

    .pushsection .bss.boot_stack, "aw", @nobits
    .balign 4096
    .globl BOOT_STACK, BOOT_STACK_TOP
    BOOT_STACK:
        .skip 262144
    BOOT_STACK_TOP:
    .popsection

    .pushsection .text.boot, "ax"
    .globl _start
    _start:
        cld
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        mov %rax, %r12
        mov %rsi, %r13
        lea _bss_start(%rip), %rdi
        lea _bss_end(%rip), %rcx
        sub %rdi, %rcx
        xor %eax, %eax
        rep stosb
        lea BOOT_STACK_TOP(%rip), %rsp
        xor %ebp, %ebp
        mov %r13, %rdi
        mov %r12, %rsi
        call xenia_start
    1:  ud2
        jmp 1b
    .popsection
    "#,
    options(att_syntax)
);
