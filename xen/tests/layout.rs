//! Checks `xenia_xen::abi` against the Xen public headers (libxen-dev, `/usr/include/xen`).
//!
//! One table (the macro calls in [`table`]) lists every structure with all its fields and every
//! constant. Each entry yields, side by side, a Rust value (`size_of`, `align_of`,
//! `offset_of!`, a field's size or scalar type, a constant's value) and one line of a C
//! program that prints the same thing from the headers. The program is compiled with `cc`,
//! run, and its output compared line by line; a mismatch names the structure, field or
//! constant.
//!
//! For structures the table must name every Rust field (an exhaustive pattern enforces it) and
//! the C program must compile, so each field exists on both sides under the same name.

use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of, MaybeUninit};
use std::path::{Path, PathBuf};
use std::process::Command;

use xenia_xen::abi::*;

/// Where libxen-dev puts the headers.
const XEN_H: &str = "/usr/include/xen/xen.h";

/// One comparison: a label, the C statement printing the value, and Rust's value.
struct Check {
    what: String,
    c: String,
    rust: String,
}

/// The checks of the table, in order.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    /// An integer: C prints `c_expr` with `NUM`.
    fn num(&mut self, what: impl Into<String>, c_expr: impl AsRef<str>, rust: i128) {
        self.0.push(Check {
            what: what.into(),
            c: format!("NUM({});", c_expr.as_ref()),
            rust: rust.to_string(),
        });
    }

    /// A string: C prints `c_expr` with `STR`.
    fn str(&mut self, what: impl Into<String>, c_expr: impl AsRef<str>, rust: &str) {
        self.0.push(Check {
            what: what.into(),
            c: format!("STR({});", c_expr.as_ref()),
            rust: rust.to_string(),
        });
    }

    /// A scalar's type: C prints the Rust name of the type of `c_expr` with `TYPE`.
    fn ty(&mut self, what: impl Into<String>, c_expr: impl AsRef<str>, rust: &str) {
        self.0.push(Check {
            what: what.into(),
            c: format!("TYPE({});", c_expr.as_ref()),
            rust: rust.to_string(),
        });
    }

    /// Any C statement printing one line, compared with `rust`.
    fn raw(&mut self, what: impl Into<String>, c_stmt: impl Into<String>, rust: String) {
        self.0.push(Check {
            what: what.into(),
            c: c_stmt.into(),
            rust,
        });
    }
}

/// The size of what `p` points to (a field reached through a raw pointer).
fn pointee_size<T>(_p: *const T) -> usize {
    size_of::<T>()
}

/// Asserts (at compile time) that `p` points to a `T`.
fn is_a<T>(_p: *const T) {}

/// A field's C name: the Rust name without the raw-identifier prefix.
fn c_name(rust_field: &str) -> &str {
    rust_field.trim_start_matches("r#")
}

/// Checks a field's scalar type, unless annotated `_`.
macro_rules! field_type {
    ($checks:ident, $what:expr, $c:expr, $fp:ident, _) => {};
    ($checks:ident, $what:expr, $c:expr, $fp:ident, $fty:ident) => {
        is_a::<$fty>($fp);
        $checks.ty(format!("type of {}", $what), $c, stringify!($fty));
    };
}

/// Checks the offset, size and (for scalars) type of each field of `$t` against C type `$c`.
macro_rules! fields {
    ($checks:ident, $t:ty, $c:expr, $($f:ident : $fty:tt),+) => {{
        type T = $t;
        let name = stringify!($t);
        let cty: &str = $c;
        $(
            let f = c_name(stringify!($f));
            $checks.num(
                format!("offset of {name}.{f}"),
                format!("offsetof({cty}, {f})"),
                offset_of!(T, $f) as i128,
            );
            let m = MaybeUninit::<T>::uninit();
            // SAFETY: only the address of the field is taken, inside a live allocation;
            // nothing is read.
            let fp = unsafe { &raw const (*m.as_ptr()).$f };
            $checks.num(
                format!("size of {name}.{f}"),
                format!("sizeof(FIELD({cty}, {f}))"),
                pointee_size(fp) as i128,
            );
            field_type!($checks, format!("{name}.{f}"), format!("FIELD({cty}, {f})"), fp, $fty);
        )+
    }};
}

/// One structure or union of the table.
///
/// * `struct T = "C type" { field: type, ... }`: every field of the Rust struct must be listed
///   (`_` for non-scalars); size, alignment, offsets, field sizes and scalar types compared.
/// * `union T = "C type" { ... }`: the same for a union's members.
/// * `prefix T = "C type" upto member { ... }`: `T` is the part of the C struct before
///   `member` (size compared with `offsetof(C type, member)`).
macro_rules! layout {
    ($checks:ident, struct $t:ty = $c:expr, { $($f:ident : $fty:tt),+ $(,)? }) => {{
        type T = $t;
        // Every Rust field is in the table: this pattern has no `..`.
        let _ = |v: T| {
            let T { $($f: _),+ } = v;
        };
        layout!(@whole $checks, $t, $c);
        fields!($checks, $t, $c, $($f : $fty),+);
    }};
    ($checks:ident, union $t:ty = $c:expr, { $($f:ident : $fty:tt),+ $(,)? }) => {{
        layout!(@whole $checks, $t, $c);
        fields!($checks, $t, $c, $($f : $fty),+);
    }};
    ($checks:ident, prefix $t:ty = $c:expr, upto $end:ident { $($f:ident : $fty:tt),+ $(,)? }) => {{
        type T = $t;
        let _ = |v: T| {
            let T { $($f: _),+ } = v;
        };
        let c: &str = $c;
        $checks.num(
            format!("size_of::<{}>() (the part of {c} before {})", stringify!($t), stringify!($end)),
            format!("offsetof({c}, {})", stringify!($end)),
            size_of::<T>() as i128,
        );
        fields!($checks, $t, $c, $($f : $fty),+);
    }};
    (@whole $checks:ident, $t:ty, $c:expr) => {{
        let c: &str = $c;
        $checks.num(
            format!("size_of::<{}>() (C: {c})", stringify!($t)),
            format!("sizeof({c})"),
            size_of::<$t>() as i128,
        );
        $checks.num(
            format!("align_of::<{}>() (C: {c})", stringify!($t)),
            format!("_Alignof({c})"),
            align_of::<$t>() as i128,
        );
    }};
}

/// Integer constants with the same name on both sides.
macro_rules! consts {
    ($checks:ident, $($n:ident),+ $(,)?) => {
        $( $checks.num(stringify!($n), stringify!($n), $n as i128); )+
    };
}

/// A C expression given as an identifier or as a string literal.
macro_rules! c_text {
    ($s:literal) => {
        $s
    };
    ($i:ident) => {
        stringify!($i)
    };
}

/// Integer values whose C counterpart has another name or is an expression.
macro_rules! mapped {
    ($checks:ident, $($r:expr => $c:tt),+ $(,)?) => {
        $( $checks.num(
            format!("{} (C: {})", stringify!($r), c_text!($c)),
            c_text!($c),
            ($r) as i128,
        ); )+
    };
}

/// String constants with the same name on both sides.
macro_rules! strs {
    ($checks:ident, $($n:ident),+ $(,)?) => {
        $( $checks.str(stringify!($n), stringify!($n), $n); )+
    };
}

/// The table: every structure and constant of `abi`.
fn table() -> Checks {
    let mut k = Checks::default();

    // ---- xen.h, arch-x86/xen.h, arch-x86/xen-x86_64.h ----
    mapped!(k, XEN_INTERFACE_VERSION => __XEN_LATEST_INTERFACE_VERSION__);
    layout!(k, struct GuestHandle<EvtchnPort> = "__guest_handle_evtchn_port_t", { p: _ });
    layout!(k, struct GuestHandle<XenPfn> = "__guest_handle_xen_pfn_t", { p: _ });
    layout!(k, struct StartInfo = "struct start_info", {
        magic: _,
        nr_pages: u64,
        shared_info: u64,
        flags: u32,
        store_mfn: u64,
        store_evtchn: u32,
        console: _,
        pt_base: u64,
        nr_pt_frames: u64,
        mfn_list: u64,
        mod_start: u64,
        mod_len: u64,
        cmd_line: _,
        first_p2m_pfn: u64,
        nr_p2m_frames: u64,
    });
    layout!(k, union StartInfoConsole = "__typeof__(FIELD(struct start_info, console))", {
        domU: _,
        dom0: _,
    });
    layout!(k, struct StartInfoConsoleDomU = "__typeof__(FIELD(struct start_info, console.domU))", {
        mfn: u64,
        evtchn: u32,
    });
    layout!(k, struct StartInfoConsoleDom0 = "__typeof__(FIELD(struct start_info, console.dom0))", {
        info_off: u32,
        info_size: u32,
    });
    layout!(k, struct TrapInfo = "struct trap_info", {
        vector: u8,
        flags: u8,
        cs: u16,
        address: u64,
    });
    layout!(k, struct MmuUpdate = "struct mmu_update", { ptr: u64, val: u64 });
    layout!(k, struct MmuextOp = "struct mmuext_op", { cmd: u32, arg1: _, arg2: _ });
    layout!(k, union MmuextOpArg1 = "__typeof__(FIELD(struct mmuext_op, arg1))", {
        mfn: u64,
        linear_addr: u64,
    });
    layout!(k, union MmuextOpArg2 = "__typeof__(FIELD(struct mmuext_op, arg2))", {
        nr_ents: u32,
        vcpumask: _,
        src_mfn: u64,
    });
    layout!(k, struct MulticallEntry = "struct multicall_entry", {
        op: u64,
        result: u64,
        args: _,
    });
    layout!(k, struct VcpuTimeInfo = "struct vcpu_time_info", {
        version: u32,
        pad0: u32,
        tsc_timestamp: u64,
        system_time: u64,
        tsc_to_system_mul: u32,
        tsc_shift: i8,
        flags: u8,
        pad1: _,
    });
    layout!(k, struct ArchVcpuInfo = "struct arch_vcpu_info", { cr2: u64, pad: u64 });
    layout!(k, struct VcpuInfo = "struct vcpu_info", {
        evtchn_upcall_pending: u8,
        evtchn_upcall_mask: u8,
        evtchn_pending_sel: u64,
        arch: _,
        time: _,
    });
    layout!(k, struct ArchSharedInfo = "struct arch_shared_info", {
        max_pfn: u64,
        pfn_to_mfn_frame_list_list: u64,
        nmi_reason: u64,
        p2m_cr3: u64,
        p2m_vaddr: u64,
        p2m_generation: u64,
    });
    layout!(k, struct SharedInfo = "struct shared_info", {
        vcpu_info: _,
        evtchn_pending: _,
        evtchn_mask: _,
        wc_version: u32,
        wc_sec: u32,
        wc_nsec: u32,
        wc_sec_hi: u32,
        arch: _,
    });
    consts!(
        k,
        __HYPERVISOR_set_trap_table,
        __HYPERVISOR_mmu_update,
        __HYPERVISOR_set_gdt,
        __HYPERVISOR_stack_switch,
        __HYPERVISOR_set_callbacks,
        __HYPERVISOR_fpu_taskswitch,
        __HYPERVISOR_sched_op_compat,
        __HYPERVISOR_platform_op,
        __HYPERVISOR_set_debugreg,
        __HYPERVISOR_get_debugreg,
        __HYPERVISOR_update_descriptor,
        __HYPERVISOR_memory_op,
        __HYPERVISOR_multicall,
        __HYPERVISOR_update_va_mapping,
        __HYPERVISOR_set_timer_op,
        __HYPERVISOR_event_channel_op_compat,
        __HYPERVISOR_xen_version,
        __HYPERVISOR_console_io,
        __HYPERVISOR_physdev_op_compat,
        __HYPERVISOR_grant_table_op,
        __HYPERVISOR_vm_assist,
        __HYPERVISOR_update_va_mapping_otherdomain,
        __HYPERVISOR_iret,
        __HYPERVISOR_vcpu_op,
        __HYPERVISOR_set_segment_base,
        __HYPERVISOR_mmuext_op,
        __HYPERVISOR_xsm_op,
        __HYPERVISOR_nmi_op,
        __HYPERVISOR_sched_op,
        __HYPERVISOR_callback_op,
        __HYPERVISOR_xenoprof_op,
        __HYPERVISOR_event_channel_op,
        __HYPERVISOR_physdev_op,
        __HYPERVISOR_hvm_op,
        __HYPERVISOR_sysctl,
        __HYPERVISOR_domctl,
        __HYPERVISOR_kexec_op,
        __HYPERVISOR_tmem_op,
        __HYPERVISOR_argo_op,
        __HYPERVISOR_xenpmu_op,
        __HYPERVISOR_dm_op,
        __HYPERVISOR_hypfs_op,
        __HYPERVISOR_arch_0,
        __HYPERVISOR_arch_1,
        __HYPERVISOR_arch_2,
        __HYPERVISOR_arch_3,
        __HYPERVISOR_arch_4,
        __HYPERVISOR_arch_5,
        __HYPERVISOR_arch_6,
        __HYPERVISOR_arch_7,
    );
    consts!(
        k,
        VIRQ_TIMER,
        VIRQ_DEBUG,
        VIRQ_CONSOLE,
        VIRQ_DOM_EXC,
        VIRQ_TBUF,
        VIRQ_DEBUGGER,
        VIRQ_XENOPROF,
        VIRQ_CON_RING,
        VIRQ_PCPU_STATE,
        VIRQ_MEM_EVENT,
        VIRQ_ARGO,
        VIRQ_ENOMEM,
        VIRQ_XENPMU,
        VIRQ_ARCH_0,
        VIRQ_ARCH_1,
        VIRQ_ARCH_2,
        VIRQ_ARCH_3,
        VIRQ_ARCH_4,
        VIRQ_ARCH_5,
        VIRQ_ARCH_6,
        VIRQ_ARCH_7,
        NR_VIRQS,
    );
    consts!(
        k,
        MMU_NORMAL_PT_UPDATE,
        MMU_MACHPHYS_UPDATE,
        MMU_PT_UPDATE_PRESERVE_AD,
        MMU_PT_UPDATE_NO_TRANSLATE,
        MMUEXT_PIN_L1_TABLE,
        MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE,
        MMUEXT_PIN_L4_TABLE,
        MMUEXT_UNPIN_TABLE,
        MMUEXT_NEW_BASEPTR,
        MMUEXT_TLB_FLUSH_LOCAL,
        MMUEXT_INVLPG_LOCAL,
        MMUEXT_TLB_FLUSH_MULTI,
        MMUEXT_INVLPG_MULTI,
        MMUEXT_TLB_FLUSH_ALL,
        MMUEXT_INVLPG_ALL,
        MMUEXT_FLUSH_CACHE,
        MMUEXT_SET_LDT,
        MMUEXT_NEW_USER_BASEPTR,
        MMUEXT_CLEAR_PAGE,
        MMUEXT_COPY_PAGE,
        MMUEXT_FLUSH_CACHE_GLOBAL,
        MMUEXT_MARK_SUPER,
        MMUEXT_UNMARK_SUPER,
    );
    consts!(
        k,
        UVMF_NONE,
        UVMF_TLB_FLUSH,
        UVMF_INVLPG,
        UVMF_FLUSHTYPE_MASK,
        UVMF_MULTI,
        UVMF_LOCAL,
        UVMF_ALL,
        CONSOLEIO_write,
        CONSOLEIO_read,
        VMASST_CMD_enable,
        VMASST_CMD_disable,
        VMASST_TYPE_4gb_segments,
        VMASST_TYPE_4gb_segments_notify,
        VMASST_TYPE_writable_pagetables,
        VMASST_TYPE_pae_extended_cr3,
        VMASST_TYPE_architectural_iopl,
        VMASST_TYPE_runstate_update_flag,
        VMASST_TYPE_m2p_strict,
    );
    consts!(
        k,
        DOMID_FIRST_RESERVED,
        DOMID_SELF,
        DOMID_IO,
        DOMID_XEN,
        DOMID_COW,
        DOMID_INVALID,
        DOMID_IDLE,
        DOMID_MASK,
    );
    consts!(
        k,
        SIF_PRIVILEGED,
        SIF_INITDOMAIN,
        SIF_MULTIBOOT_MOD,
        SIF_MOD_START_PFN,
        SIF_VIRT_P2M_4TOOLS,
        SIF_PM_MASK,
        MAX_GUEST_CMDLINE,
        XEN_LEGACY_MAX_VCPUS,
        XEN_PVCLOCK_TSC_STABLE_BIT,
        XEN_PVCLOCK_GUEST_STOPPED,
    );
    consts!(
        k,
        FLAT_RING3_CS32,
        FLAT_RING3_CS64,
        FLAT_RING3_DS32,
        FLAT_RING3_DS64,
        FLAT_RING3_SS32,
        FLAT_RING3_SS64,
        FLAT_KERNEL_DS64,
        FLAT_KERNEL_DS32,
        FLAT_KERNEL_DS,
        FLAT_KERNEL_CS64,
        FLAT_KERNEL_CS32,
        FLAT_KERNEL_CS,
        FLAT_KERNEL_SS64,
        FLAT_KERNEL_SS32,
        FLAT_KERNEL_SS,
        FLAT_USER_DS64,
        FLAT_USER_DS32,
        FLAT_USER_DS,
        FLAT_USER_CS64,
        FLAT_USER_CS32,
        FLAT_USER_CS,
        FLAT_USER_SS64,
        FLAT_USER_SS32,
        FLAT_USER_SS,
        HYPERVISOR_VIRT_START,
        HYPERVISOR_VIRT_END,
        MACH2PHYS_VIRT_START,
        MACH2PHYS_VIRT_END,
    );

    // ---- elfnote.h ----
    consts!(
        k,
        XEN_ELFNOTE_INFO,
        XEN_ELFNOTE_ENTRY,
        XEN_ELFNOTE_HYPERCALL_PAGE,
        XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_PADDR_OFFSET,
        XEN_ELFNOTE_XEN_VERSION,
        XEN_ELFNOTE_GUEST_OS,
        XEN_ELFNOTE_GUEST_VERSION,
        XEN_ELFNOTE_LOADER,
        XEN_ELFNOTE_PAE_MODE,
        XEN_ELFNOTE_FEATURES,
        XEN_ELFNOTE_BSD_SYMTAB,
        XEN_ELFNOTE_HV_START_LOW,
        XEN_ELFNOTE_L1_MFN_VALID,
        XEN_ELFNOTE_SUSPEND_CANCEL,
        XEN_ELFNOTE_INIT_P2M,
        XEN_ELFNOTE_MOD_START_PFN,
        XEN_ELFNOTE_SUPPORTED_FEATURES,
        XEN_ELFNOTE_PHYS32_ENTRY,
        XEN_ELFNOTE_MAX,
        XEN_ELFNOTE_CRASH_INFO,
        XEN_ELFNOTE_CRASH_REGS,
        XEN_ELFNOTE_DUMPCORE_NONE,
        XEN_ELFNOTE_DUMPCORE_HEADER,
        XEN_ELFNOTE_DUMPCORE_XEN_VERSION,
        XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION,
    );

    // ---- grant_table.h ----
    layout!(k, struct GrantEntryV1 = "struct grant_entry_v1", {
        flags: u16,
        domid: u16,
        frame: u32,
    });
    layout!(k, struct GnttabMapGrantRef = "struct gnttab_map_grant_ref", {
        host_addr: u64,
        flags: u32,
        r#ref: u32,
        dom: u16,
        status: i16,
        handle: u32,
        dev_bus_addr: u64,
    });
    layout!(k, struct GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref", {
        host_addr: u64,
        dev_bus_addr: u64,
        handle: u32,
        status: i16,
    });
    layout!(k, struct GnttabSetupTable = "struct gnttab_setup_table", {
        dom: u16,
        nr_frames: u32,
        status: i16,
        frame_list: _,
    });
    layout!(k, struct GnttabQuerySize = "struct gnttab_query_size", {
        dom: u16,
        nr_frames: u32,
        max_nr_frames: u32,
        status: i16,
    });
    layout!(k, union GnttabCopyPtrU = "__typeof__(FIELD(struct gnttab_copy_ptr, u))", {
        r#ref: u32,
        gmfn: u64,
    });
    layout!(k, struct GnttabCopyPtr = "struct gnttab_copy_ptr", {
        u: _,
        domid: u16,
        offset: u16,
    });
    layout!(k, struct GnttabCopy = "struct gnttab_copy", {
        source: _,
        dest: _,
        len: u16,
        flags: u16,
        status: i16,
    });
    consts!(
        k,
        GNTTAB_NR_RESERVED_ENTRIES,
        GNTTAB_RESERVED_CONSOLE,
        GNTTAB_RESERVED_XENSTORE,
        GTF_invalid,
        GTF_permit_access,
        GTF_accept_transfer,
        GTF_transitive,
        GTF_type_mask,
        GTF_readonly,
        GTF_reading,
        GTF_writing,
        GTF_PWT,
        GTF_PCD,
        GTF_PAT,
        GTF_sub_page,
        GTF_transfer_committed,
        GTF_transfer_completed,
    );
    consts!(
        k,
        GNTTABOP_map_grant_ref,
        GNTTABOP_unmap_grant_ref,
        GNTTABOP_setup_table,
        GNTTABOP_dump_table,
        GNTTABOP_transfer,
        GNTTABOP_copy,
        GNTTABOP_query_size,
        GNTTABOP_unmap_and_replace,
        GNTTABOP_set_version,
        GNTTABOP_get_status_frames,
        GNTTABOP_get_version,
        GNTTABOP_swap_grant_ref,
        GNTTABOP_cache_flush,
        GNTCOPY_source_gref,
        GNTCOPY_dest_gref,
        GNTMAP_device_map,
        GNTMAP_host_map,
        GNTMAP_readonly,
        GNTMAP_application_map,
        GNTMAP_contains_pte,
        GNTMAP_guest_avail_mask,
    );
    consts!(
        k,
        GNTST_okay,
        GNTST_general_error,
        GNTST_bad_domain,
        GNTST_bad_gntref,
        GNTST_bad_handle,
        GNTST_bad_virt_addr,
        GNTST_bad_dev_addr,
        GNTST_no_device_space,
        GNTST_permission_denied,
        GNTST_bad_page,
        GNTST_bad_copy_arg,
        GNTST_address_too_big,
        GNTST_eagain,
        GNTST_no_space,
    );

    // ---- event_channel.h ----
    layout!(k, struct EvtchnAllocUnbound = "struct evtchn_alloc_unbound", {
        dom: u16,
        remote_dom: u16,
        port: u32,
    });
    layout!(k, struct EvtchnBindInterdomain = "struct evtchn_bind_interdomain", {
        remote_dom: u16,
        remote_port: u32,
        local_port: u32,
    });
    layout!(k, struct EvtchnBindVirq = "struct evtchn_bind_virq", {
        virq: u32,
        vcpu: u32,
        port: u32,
    });
    layout!(k, struct EvtchnBindPirq = "struct evtchn_bind_pirq", {
        pirq: u32,
        flags: u32,
        port: u32,
    });
    layout!(k, struct EvtchnBindIpi = "struct evtchn_bind_ipi", { vcpu: u32, port: u32 });
    layout!(k, struct EvtchnClose = "struct evtchn_close", { port: u32 });
    layout!(k, struct EvtchnSend = "struct evtchn_send", { port: u32 });
    layout!(k, struct EvtchnStatus = "struct evtchn_status", {
        dom: u16,
        port: u32,
        status: u32,
        vcpu: u32,
        u: _,
    });
    layout!(k, union EvtchnStatusU = "__typeof__(FIELD(struct evtchn_status, u))", {
        unbound: _,
        interdomain: _,
        pirq: u32,
        virq: u32,
    });
    layout!(k, struct EvtchnStatusUnbound = "__typeof__(FIELD(struct evtchn_status, u.unbound))", {
        dom: u16,
    });
    layout!(k, struct EvtchnStatusInterdomain = "__typeof__(FIELD(struct evtchn_status, u.interdomain))", {
        dom: u16,
        port: u32,
    });
    layout!(k, struct EvtchnBindVcpu = "struct evtchn_bind_vcpu", { port: u32, vcpu: u32 });
    layout!(k, struct EvtchnUnmask = "struct evtchn_unmask", { port: u32 });
    layout!(k, struct EvtchnReset = "struct evtchn_reset", { dom: u16 });
    consts!(
        k,
        EVTCHNOP_bind_interdomain,
        EVTCHNOP_bind_virq,
        EVTCHNOP_bind_pirq,
        EVTCHNOP_close,
        EVTCHNOP_send,
        EVTCHNOP_status,
        EVTCHNOP_alloc_unbound,
        EVTCHNOP_bind_ipi,
        EVTCHNOP_bind_vcpu,
        EVTCHNOP_unmask,
        EVTCHNOP_reset,
        EVTCHNOP_init_control,
        EVTCHNOP_expand_array,
        EVTCHNOP_set_priority,
        EVTCHNSTAT_closed,
        EVTCHNSTAT_unbound,
        EVTCHNSTAT_interdomain,
        EVTCHNSTAT_pirq,
        EVTCHNSTAT_virq,
        EVTCHNSTAT_ipi,
        EVTCHN_2L_NR_CHANNELS,
    );

    // ---- sched.h ----
    layout!(k, struct SchedShutdown = "struct sched_shutdown", { reason: u32 });
    layout!(k, struct SchedRemoteShutdown = "struct sched_remote_shutdown", {
        domain_id: u16,
        reason: u32,
    });
    layout!(k, struct SchedWatchdog = "struct sched_watchdog", { id: u32, timeout: u32 });
    layout!(k, struct SchedPoll = "struct sched_poll", {
        ports: _,
        nr_ports: u32,
        timeout: u64,
    });
    consts!(
        k,
        SCHEDOP_yield,
        SCHEDOP_block,
        SCHEDOP_shutdown,
        SCHEDOP_poll,
        SCHEDOP_remote_shutdown,
        SCHEDOP_shutdown_code,
        SCHEDOP_watchdog,
        SCHEDOP_pin_override,
        SHUTDOWN_poweroff,
        SHUTDOWN_reboot,
        SHUTDOWN_suspend,
        SHUTDOWN_crash,
        SHUTDOWN_watchdog,
        SHUTDOWN_soft_reset,
        SHUTDOWN_MAX,
    );

    // ---- memory.h ----
    layout!(k, struct XenMemoryReservation = "struct xen_memory_reservation", {
        extent_start: _,
        nr_extents: u64,
        extent_order: u32,
        mem_flags: u32,
        domid: u16,
    });
    layout!(k, struct XenMemoryMap = "struct xen_memory_map", { nr_entries: u32, buffer: _ });
    layout!(k, struct XenMachphysMapping = "struct xen_machphys_mapping", {
        v_start: u64,
        v_end: u64,
        max_mfn: u64,
    });
    layout!(k, struct XenAddToPhysmap = "struct xen_add_to_physmap", {
        domid: u16,
        size: u16,
        space: u32,
        idx: u64,
        gpfn: u64,
    });
    consts!(
        k,
        XENMEM_increase_reservation,
        XENMEM_decrease_reservation,
        XENMEM_maximum_ram_page,
        XENMEM_current_reservation,
        XENMEM_maximum_reservation,
        XENMEM_machphys_mfn_list,
        XENMEM_populate_physmap,
        XENMEM_add_to_physmap,
        XENMEM_memory_map,
        XENMEM_machine_memory_map,
        XENMEM_exchange,
        XENMEM_machphys_mapping,
        XENMEM_maximum_gpfn,
        XENMEM_remove_from_physmap,
        XENMAPSPACE_shared_info,
        XENMAPSPACE_grant_table,
        XENMAPSPACE_gmfn,
        XENMAPSPACE_gmfn_range,
    );

    // ---- vcpu.h ----
    layout!(k, struct VcpuSetSingleshotTimer = "struct vcpu_set_singleshot_timer", {
        timeout_abs_ns: u64,
        flags: u32,
    });
    layout!(k, struct VcpuSetPeriodicTimer = "struct vcpu_set_periodic_timer", {
        period_ns: u64,
    });
    layout!(k, struct VcpuRegisterVcpuInfo = "struct vcpu_register_vcpu_info", {
        mfn: u64,
        offset: u32,
        rsvd: u32,
    });
    layout!(k, struct VcpuRunstateInfo = "struct vcpu_runstate_info", {
        state: i32,
        state_entry_time: u64,
        time: _,
    });
    consts!(
        k,
        VCPUOP_initialise,
        VCPUOP_up,
        VCPUOP_down,
        VCPUOP_is_up,
        VCPUOP_get_runstate_info,
        VCPUOP_register_runstate_memory_area,
        VCPUOP_set_periodic_timer,
        VCPUOP_stop_periodic_timer,
        VCPUOP_set_singleshot_timer,
        VCPUOP_stop_singleshot_timer,
        VCPUOP_register_vcpu_info,
        VCPUOP_send_nmi,
        VCPUOP_get_physid,
        VCPUOP_register_vcpu_time_memory_area,
        VCPU_SSHOTTMR_future,
        RUNSTATE_running,
        RUNSTATE_runnable,
        RUNSTATE_blocked,
        RUNSTATE_offline,
    );

    // ---- callback.h ----
    layout!(k, struct CallbackRegister = "struct callback_register", {
        r#type: u16,
        flags: u16,
        address: u64,
    });
    layout!(k, struct CallbackUnregister = "struct callback_unregister", {
        r#type: u16,
        _unused: u16,
    });
    consts!(
        k,
        CALLBACKTYPE_event,
        CALLBACKTYPE_failsafe,
        CALLBACKTYPE_syscall,
        CALLBACKTYPE_sysenter_deprecated,
        CALLBACKTYPE_nmi,
        CALLBACKTYPE_sysenter,
        CALLBACKTYPE_syscall32,
        CALLBACKF_mask_events,
        CALLBACKOP_register,
        CALLBACKOP_unregister,
    );

    // ---- version.h, features.h ----
    layout!(k, struct XenFeatureInfo = "struct xen_feature_info", {
        submap_idx: u32,
        submap: u32,
    });
    consts!(
        k,
        XENVER_version,
        XENVER_extraversion,
        XENVER_compile_info,
        XENVER_capabilities,
        XENVER_changeset,
        XENVER_platform_parameters,
        XENVER_get_features,
        XENVER_pagesize,
        XENVER_guest_handle,
        XENVER_commandline,
        XENVER_build_id,
        XEN_EXTRAVERSION_LEN,
    );
    consts!(
        k,
        XENFEAT_writable_page_tables,
        XENFEAT_writable_descriptor_tables,
        XENFEAT_auto_translated_physmap,
        XENFEAT_supervisor_mode_kernel,
        XENFEAT_pae_pgdir_above_4gb,
        XENFEAT_mmu_pt_update_preserve_ad,
        XENFEAT_highmem_assist,
        XENFEAT_gnttab_map_avail_bits,
        XENFEAT_hvm_callback_vector,
        XENFEAT_hvm_safe_pvclock,
        XENFEAT_hvm_pirqs,
        XENFEAT_dom0,
        XENFEAT_memory_op_vnode_supported,
        XENFEAT_ARM_SMCCC_supported,
        XENFEAT_linux_rsdp_unrestricted,
        XENFEAT_not_direct_mapped,
        XENFEAT_direct_mapped,
        XENFEAT_NR_SUBMAPS,
    );

    // ---- io/ring.h: the header of each ring we use, and how many entries fit ----
    for sring in [
        "struct netif_tx_sring",
        "struct netif_rx_sring",
        "struct blkif_sring",
    ] {
        layout!(k, prefix SringHeader = sring, upto ring {
            req_prod: u32,
            req_event: u32,
            rsp_prod: u32,
            rsp_event: u32,
            pvt: _,
            __pad: _,
        });
    }
    mapped!(
        k,
        SRING_HEADER_SIZE => "offsetof(struct blkif_sring, ring)",
        size_of::<NetifTxSringEntry>() => "sizeof(FIELD(struct netif_tx_sring, ring[0]))",
        size_of::<NetifRxSringEntry>() => "sizeof(FIELD(struct netif_rx_sring, ring[0]))",
        size_of::<BlkifSringEntry>() => "sizeof(FIELD(struct blkif_sring, ring[0]))",
        NETIF_TX_RING_SIZE => "__CONST_RING_SIZE(netif_tx, 4096)",
        NETIF_RX_RING_SIZE => "__CONST_RING_SIZE(netif_rx, 4096)",
        BLKIF_RING_SIZE => "__CONST_RING_SIZE(blkif, 4096)",
        const_ring_size(XEN_PAGE_SIZE, size_of::<BlkifSringEntry>()) => "__CONST_RING_SIZE(blkif, 4096)",
        const_ring_size(2 * XEN_PAGE_SIZE, size_of::<BlkifSringEntry>()) => "__CONST_RING_SIZE(blkif, 2 * 4096)",
        const_ring_size(4 * XEN_PAGE_SIZE, size_of::<BlkifSringEntry>()) => "__CONST_RING_SIZE(blkif, 4 * 4096)",
        const_ring_size(16 * XEN_PAGE_SIZE, size_of::<BlkifSringEntry>()) => "__CONST_RING_SIZE(blkif, 16 * 4096)",
        const_ring_size(2 * XEN_PAGE_SIZE, size_of::<NetifTxSringEntry>()) => "__CONST_RING_SIZE(netif_tx, 2 * 4096)",
        const_ring_size(3 * XEN_PAGE_SIZE, size_of::<NetifRxSringEntry>()) => "__CONST_RING_SIZE(netif_rx, 3 * 4096)",
    );

    // ---- io/netif.h ----
    layout!(k, struct NetifTxRequest = "struct netif_tx_request", {
        gref: u32,
        offset: u16,
        flags: u16,
        id: u16,
        size: u16,
    });
    layout!(k, struct NetifTxResponse = "struct netif_tx_response", { id: u16, status: i16 });
    layout!(k, struct NetifRxRequest = "struct netif_rx_request", {
        id: u16,
        pad: u16,
        gref: u32,
    });
    layout!(k, struct NetifRxResponse = "struct netif_rx_response", {
        id: u16,
        offset: u16,
        flags: u16,
        status: i16,
    });
    layout!(k, struct NetifExtraInfo = "struct netif_extra_info", {
        r#type: u8,
        flags: u8,
        u: _,
    });
    layout!(k, union NetifExtraInfoU = "__typeof__(FIELD(struct netif_extra_info, u))", {
        gso: _,
        mcast: _,
        hash: _,
        pad: _,
    });
    layout!(k, struct NetifExtraInfoGso = "__typeof__(FIELD(struct netif_extra_info, u.gso))", {
        size: u16,
        r#type: u8,
        pad: u8,
        features: u16,
    });
    layout!(k, struct NetifExtraInfoMcast = "__typeof__(FIELD(struct netif_extra_info, u.mcast))", {
        addr: _,
    });
    layout!(k, struct NetifExtraInfoHash = "__typeof__(FIELD(struct netif_extra_info, u.hash))", {
        r#type: u8,
        algorithm: u8,
        value: _,
    });
    layout!(k, union NetifTxSringEntry = "union netif_tx_sring_entry", { req: _, rsp: _ });
    layout!(k, union NetifRxSringEntry = "union netif_rx_sring_entry", { req: _, rsp: _ });
    consts!(
        k,
        XEN_NETIF_NR_SLOTS_MIN,
        XEN_NETIF_MAX_TX_SIZE,
        NETTXF_csum_blank,
        NETTXF_data_validated,
        NETTXF_more_data,
        NETTXF_extra_info,
        NETRXF_data_validated,
        NETRXF_csum_blank,
        NETRXF_more_data,
        NETRXF_extra_info,
        NETRXF_gso_prefix,
        NETIF_RSP_DROPPED,
        NETIF_RSP_ERROR,
        NETIF_RSP_OKAY,
        NETIF_RSP_NULL,
        XEN_NETIF_EXTRA_TYPE_NONE,
        XEN_NETIF_EXTRA_TYPE_GSO,
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
        XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
        XEN_NETIF_EXTRA_TYPE_HASH,
        XEN_NETIF_EXTRA_TYPE_MAX,
        XEN_NETIF_EXTRA_FLAG_MORE,
        XEN_NETIF_GSO_TYPE_NONE,
        XEN_NETIF_GSO_TYPE_TCPV4,
        XEN_NETIF_GSO_TYPE_TCPV6,
    );

    // ---- io/blkif.h (x86-64 layout) ----
    layout!(k, struct BlkifRequestSegment = "struct blkif_request_segment", {
        gref: u32,
        first_sect: u8,
        last_sect: u8,
    });
    layout!(k, struct BlkifRequest = "struct blkif_request", {
        operation: u8,
        nr_segments: u8,
        handle: u16,
        id: u64,
        sector_number: u64,
        seg: _,
    });
    layout!(k, struct BlkifRequestDiscard = "struct blkif_request_discard", {
        operation: u8,
        flag: u8,
        handle: u16,
        id: u64,
        sector_number: u64,
        nr_sectors: u64,
    });
    layout!(k, struct BlkifRequestIndirect = "struct blkif_request_indirect", {
        operation: u8,
        indirect_op: u8,
        nr_segments: u16,
        id: u64,
        sector_number: u64,
        handle: u16,
        indirect_grefs: _,
    });
    layout!(k, struct BlkifResponse = "struct blkif_response", {
        id: u64,
        operation: u8,
        status: i16,
    });
    layout!(k, union BlkifSringEntry = "union blkif_sring_entry", { req: _, rsp: _ });
    consts!(
        k,
        BLKIF_OP_READ,
        BLKIF_OP_WRITE,
        BLKIF_OP_WRITE_BARRIER,
        BLKIF_OP_FLUSH_DISKCACHE,
        BLKIF_OP_RESERVED_1,
        BLKIF_OP_DISCARD,
        BLKIF_OP_INDIRECT,
        BLKIF_MAX_SEGMENTS_PER_REQUEST,
        BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
        BLKIF_DISCARD_SECURE,
        BLKIF_RSP_EOPNOTSUPP,
        BLKIF_RSP_ERROR,
        BLKIF_RSP_OKAY,
        VDISK_CDROM,
        VDISK_REMOVABLE,
        VDISK_READONLY,
    );
    mapped!(
        k,
        BLKIF_SEGS_PER_INDIRECT_FRAME => "4096 / sizeof(struct blkif_request_segment)",
    );

    // ---- io/xs_wire.h ----
    layout!(k, struct XsdSockmsg = "struct xsd_sockmsg", {
        r#type: u32,
        req_id: u32,
        tx_id: u32,
        len: u32,
    });
    layout!(k, struct XenstoreDomainInterface = "struct xenstore_domain_interface", {
        req: _,
        rsp: _,
        req_cons: u32,
        req_prod: u32,
        rsp_cons: u32,
        rsp_prod: u32,
        server_features: u32,
        connection: u32,
        error: u32,
    });
    mapped!(
        k,
        XSD_SOCKMSG_SIZE => "sizeof(struct xsd_sockmsg)",
        XsdSockmsgType::Control => XS_CONTROL,
        XsdSockmsgType::DEBUG => XS_DEBUG,
        XsdSockmsgType::Directory => XS_DIRECTORY,
        XsdSockmsgType::Read => XS_READ,
        XsdSockmsgType::GetPerms => XS_GET_PERMS,
        XsdSockmsgType::Watch => XS_WATCH,
        XsdSockmsgType::Unwatch => XS_UNWATCH,
        XsdSockmsgType::TransactionStart => XS_TRANSACTION_START,
        XsdSockmsgType::TransactionEnd => XS_TRANSACTION_END,
        XsdSockmsgType::Introduce => XS_INTRODUCE,
        XsdSockmsgType::Release => XS_RELEASE,
        XsdSockmsgType::GetDomainPath => XS_GET_DOMAIN_PATH,
        XsdSockmsgType::Write => XS_WRITE,
        XsdSockmsgType::Mkdir => XS_MKDIR,
        XsdSockmsgType::Rm => XS_RM,
        XsdSockmsgType::SetPerms => XS_SET_PERMS,
        XsdSockmsgType::WatchEvent => XS_WATCH_EVENT,
        XsdSockmsgType::Error => XS_ERROR,
        XsdSockmsgType::IsDomainIntroduced => XS_IS_DOMAIN_INTRODUCED,
        XsdSockmsgType::Resume => XS_RESUME,
        XsdSockmsgType::SetTarget => XS_SET_TARGET,
        XsdSockmsgType::ResetWatches => XS_RESET_WATCHES,
        XsdSockmsgType::DirectoryPart => XS_DIRECTORY_PART,
    );
    consts!(
        k,
        XS_TYPE_COUNT,
        XS_INVALID,
        XS_WATCH_PATH,
        XS_WATCH_TOKEN,
        XENSTORE_RING_SIZE,
        XENSTORE_PAYLOAD_MAX,
        XENSTORE_ABS_PATH_MAX,
        XENSTORE_REL_PATH_MAX,
        XENSTORE_SERVER_FEATURE_RECONNECTION,
        XENSTORE_SERVER_FEATURE_ERROR,
        XENSTORE_CONNECTED,
        XENSTORE_RECONNECT,
        XENSTORE_ERROR_NONE,
        XENSTORE_ERROR_COMM,
        XENSTORE_ERROR_RINGIDX,
        XENSTORE_ERROR_PROTO,
    );
    strs!(k, XS_WRITE_NONE, XS_WRITE_CREATE, XS_WRITE_CREATE_EXCL);
    // The xsd_errors table, entry by entry (a missing C entry prints "<none>").
    let n = "(sizeof(xsd_errors) / sizeof(xsd_errors[0]))";
    k.num("XSD_ERRORS.len()", n, XSD_ERRORS.len() as i128);
    for (i, e) in XSD_ERRORS.iter().enumerate() {
        k.raw(
            format!("XSD_ERRORS[{i}].errnum"),
            format!("if ({i} < {n}) NUM(xsd_errors[{i}].errnum); else puts(\"<none>\");"),
            e.errnum.to_string(),
        );
        k.raw(
            format!("XSD_ERRORS[{i}].errstring"),
            format!("if ({i} < {n}) STR(xsd_errors[{i}].errstring); else puts(\"<none>\");"),
            e.errstring.to_string(),
        );
    }

    // ---- io/console.h ----
    layout!(k, struct XenconsInterface = "struct xencons_interface", {
        r#in: _,
        out: _,
        in_cons: u32,
        in_prod: u32,
        out_cons: u32,
        out_prod: u32,
    });
    mapped!(
        k,
        XENCONS_IN_SIZE => "sizeof(FIELD(struct xencons_interface, in))",
        XENCONS_OUT_SIZE => "sizeof(FIELD(struct xencons_interface, out))",
    );

    // ---- io/xenbus.h ----
    mapped!(
        k,
        XenbusState::Unknown => XenbusStateUnknown,
        XenbusState::Initialising => XenbusStateInitialising,
        XenbusState::InitWait => XenbusStateInitWait,
        XenbusState::Initialised => XenbusStateInitialised,
        XenbusState::Connected => XenbusStateConnected,
        XenbusState::Closing => XenbusStateClosing,
        XenbusState::Closed => XenbusStateClosed,
        XenbusState::Reconfiguring => XenbusStateReconfiguring,
        XenbusState::Reconfigured => XenbusStateReconfigured,
        size_of::<XenbusState>() => "sizeof(XenbusState)",
    );

    k
}

/// Fails with the install hint when the headers are missing.
fn require_headers() {
    assert!(
        Path::new(XEN_H).exists(),
        "{XEN_H} is missing: the layout test needs the Xen public headers; \
         run `apt-get install libxen-dev` (scripts/test installs it)"
    );
}

/// A fresh directory for the generated program.
fn work_dir(tag: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("layout-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the work directory");
    dir
}

/// Writes the C program for `checks`, compiles it with `cc` and returns its output lines.
fn run_c(checks: &Checks, tag: &str) -> Vec<String> {
    require_headers();
    let dir = work_dir(tag);
    let mut src = String::new();
    writeln!(src, "/* Generated by xen/tests/layout.rs; do not edit. */").unwrap();
    writeln!(
        src,
        "#define __XEN_INTERFACE_VERSION__ {XEN_INTERFACE_VERSION:#010x}"
    )
    .unwrap();
    writeln!(src, "#include \"prelude.h\"").unwrap();
    writeln!(src, "int main(void) {{").unwrap();
    for (i, c) in checks.0.iter().enumerate() {
        writeln!(src, "    /* {i}: {} */", c.what.replace("*/", "* /")).unwrap();
        writeln!(src, "    {}", c.c).unwrap();
    }
    writeln!(src, "    return 0;\n}}").unwrap();
    let c_file = dir.join("layout.c");
    std::fs::write(&c_file, &src).expect("write layout.c");

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let exe = dir.join("layout");
    let prelude_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layout");
    let out = Command::new(&cc)
        .args([
            "-std=gnu11",
            "-O0",
            "-Wall",
            "-Werror=implicit-function-declaration",
        ])
        .arg("-I")
        .arg(&prelude_dir)
        .arg("-o")
        .arg(&exe)
        .arg(&c_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` ({e}); apt-get install gcc"));
    assert!(
        out.status.success(),
        "compiling {} failed (a field or constant in the table does not exist in the Xen \
         headers under that name?):\n{}",
        c_file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("run the compiled layout program");
    assert!(
        run.status.success(),
        "{} failed: {:?}",
        exe.display(),
        run.status
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(run.stdout)
        .expect("the layout program prints UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Compares C's lines with Rust's values; returns one message per mismatch.
fn mismatches(checks: &Checks, c_lines: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    if c_lines.len() != checks.0.len() {
        bad.push(format!(
            "the C program printed {} lines for {} checks",
            c_lines.len(),
            checks.0.len()
        ));
    }
    for (check, c) in checks.0.iter().zip(c_lines) {
        if *c != check.rust {
            bad.push(format!(
                "{}: Rust has {}, the C headers have {} (C: `{}`)",
                check.what, check.rust, c, check.c
            ));
        }
    }
    bad
}

#[test]
fn abi_matches_the_xen_headers() {
    let checks = table();
    let c_lines = run_c(&checks, "table");
    let bad = mismatches(&checks, &c_lines);
    assert!(
        bad.is_empty(),
        "{} of {} ABI checks against the Xen headers failed:\n  {}",
        bad.len(),
        checks.0.len(),
        bad.join("\n  ")
    );
    println!(
        "{} ABI checks against the Xen headers passed",
        checks.0.len()
    );
}

/// The comparison really reports a wrong size, offset, type or value, by name.
#[test]
fn a_wrong_entry_is_reported_by_name() {
    let mut k = Checks::default();
    k.num("right size", "sizeof(struct grant_entry_v1)", 8);
    k.num(
        "size_of::<GrantEntryV1>() claimed 9",
        "sizeof(struct grant_entry_v1)",
        9,
    );
    k.num(
        "offset of GrantEntryV1.frame claimed 2",
        "offsetof(struct grant_entry_v1, frame)",
        2,
    );
    k.ty(
        "type of GnttabCopy.status claimed u16",
        "FIELD(struct gnttab_copy, status)",
        "u16",
    );
    k.num("GNTST_bad_page claimed 9", "GNTST_bad_page", 9);
    k.str("XS_WRITE_CREATE claimed CREAT", "XS_WRITE_CREATE", "CREAT");
    let c_lines = run_c(&k, "negative");
    let bad = mismatches(&k, &c_lines);
    assert_eq!(bad.len(), 5, "{bad:#?}");
    assert!(
        bad[0].starts_with("size_of::<GrantEntryV1>() claimed 9: Rust has 9, the C headers have 8")
    );
    assert!(bad[1].contains("have 4"), "{}", bad[1]);
    assert!(bad[2].contains("have i16"), "{}", bad[2]);
    assert!(bad[3].contains("have -9"), "{}", bad[3]);
    assert!(bad[4].contains("have CREATE"), "{}", bad[4]);

    // A missing line is reported too.
    let short = mismatches(&k, &c_lines[..2]);
    assert!(
        short[0].contains("printed 2 lines for 6 checks"),
        "{short:?}"
    );
}
