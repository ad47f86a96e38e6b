//! `xen.h` and `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`: hypercall numbers, the start-of-day
//! and shared-info pages, page-table updates, domain ids; plus the x86-64 page-table bits.

use super::{assert_sizes, c_consts};
use core::fmt;

/// `domid_t`: a domain id.
pub type Domid = u16;
/// `xen_pfn_t`: a (pseudo-physical or machine) frame number.
pub type XenPfn = u64;
/// `xen_ulong_t`: Xen's `unsigned long` (64 bits on x86-64).
pub type XenUlong = u64;
/// `xen_callback_t`: a callback address (x86-64: the virtual address of the handler).
pub type XenCallback = u64;

/// The size of a page on x86 and of the pages shared with Xen and the backends.
pub const XEN_PAGE_SIZE: usize = 4096;

/// `XEN_GUEST_HANDLE(T)`: a pointer to guest memory that a hypercall reads or writes.
///
/// C wraps the pointer in a one-member struct (`struct { T *p; }`); so does this. A handle is
/// only an address for Xen: creating and sending it is safe, dereferencing it is up to the code
/// holding the memory.
#[repr(C)]
pub struct GuestHandle<T> {
    /// The guest virtual address.
    pub p: *mut T,
}

impl<T> GuestHandle<T> {
    /// A handle to `p`.
    pub const fn new(p: *mut T) -> Self {
        GuestHandle { p }
    }

    /// A handle to memory Xen will only read.
    pub const fn from_const(p: *const T) -> Self {
        GuestHandle { p: p as *mut T }
    }

    /// The null handle.
    pub const fn null() -> Self {
        GuestHandle {
            p: core::ptr::null_mut(),
        }
    }

    /// Whether the handle is null.
    pub fn is_null(&self) -> bool {
        self.p.is_null()
    }
}

impl<T> Clone for GuestHandle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GuestHandle<T> {}
impl<T> Default for GuestHandle<T> {
    fn default() -> Self {
        Self::null()
    }
}
impl<T> PartialEq for GuestHandle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.p == other.p
    }
}
impl<T> Eq for GuestHandle<T> {}
impl<T> fmt::Debug for GuestHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestHandle({:p})", self.p)
    }
}
// SAFETY: a guest handle is an address handed to Xen; the type never dereferences it, and all
// access to the memory behind it needs `unsafe` code that must uphold Rust's rules itself.
unsafe impl<T> Send for GuestHandle<T> {}
// SAFETY: as for `Send`: sharing the address itself is harmless.
unsafe impl<T> Sync for GuestHandle<T> {}

// Hypercall numbers (`__HYPERVISOR_*`).
c_consts! { "hypercall number": u32 {
    __HYPERVISOR_set_trap_table = 0,
    __HYPERVISOR_mmu_update = 1,
    __HYPERVISOR_set_gdt = 2,
    __HYPERVISOR_stack_switch = 3,
    __HYPERVISOR_set_callbacks = 4,
    __HYPERVISOR_fpu_taskswitch = 5,
    __HYPERVISOR_sched_op_compat = 6,
    __HYPERVISOR_platform_op = 7,
    __HYPERVISOR_set_debugreg = 8,
    __HYPERVISOR_get_debugreg = 9,
    __HYPERVISOR_update_descriptor = 10,
    __HYPERVISOR_memory_op = 12,
    __HYPERVISOR_multicall = 13,
    __HYPERVISOR_update_va_mapping = 14,
    __HYPERVISOR_set_timer_op = 15,
    __HYPERVISOR_event_channel_op_compat = 16,
    __HYPERVISOR_xen_version = 17,
    __HYPERVISOR_console_io = 18,
    __HYPERVISOR_physdev_op_compat = 19,
    __HYPERVISOR_grant_table_op = 20,
    __HYPERVISOR_vm_assist = 21,
    __HYPERVISOR_update_va_mapping_otherdomain = 22,
    __HYPERVISOR_iret = 23,
    __HYPERVISOR_vcpu_op = 24,
    __HYPERVISOR_set_segment_base = 25,
    __HYPERVISOR_mmuext_op = 26,
    __HYPERVISOR_xsm_op = 27,
    __HYPERVISOR_nmi_op = 28,
    __HYPERVISOR_sched_op = 29,
    __HYPERVISOR_callback_op = 30,
    __HYPERVISOR_xenoprof_op = 31,
    __HYPERVISOR_event_channel_op = 32,
    __HYPERVISOR_physdev_op = 33,
    __HYPERVISOR_hvm_op = 34,
    __HYPERVISOR_sysctl = 35,
    __HYPERVISOR_domctl = 36,
    __HYPERVISOR_kexec_op = 37,
    __HYPERVISOR_tmem_op = 38,
    __HYPERVISOR_argo_op = 39,
    __HYPERVISOR_xenpmu_op = 40,
    __HYPERVISOR_dm_op = 41,
    __HYPERVISOR_hypfs_op = 42,
    __HYPERVISOR_arch_0 = 48,
    __HYPERVISOR_arch_1 = 49,
    __HYPERVISOR_arch_2 = 50,
    __HYPERVISOR_arch_3 = 51,
    __HYPERVISOR_arch_4 = 52,
    __HYPERVISOR_arch_5 = 53,
    __HYPERVISOR_arch_6 = 54,
    __HYPERVISOR_arch_7 = 55,
} }

// Virtual IRQs (`VIRQ_*`, bound with `EVTCHNOP_bind_virq`).
c_consts! { "virtual IRQ (bound with `EVTCHNOP_bind_virq`)": u32 {
    VIRQ_TIMER = 0,
    VIRQ_DEBUG = 1,
    VIRQ_CONSOLE = 2,
    VIRQ_DOM_EXC = 3,
    VIRQ_TBUF = 4,
    VIRQ_DEBUGGER = 6,
    VIRQ_XENOPROF = 7,
    VIRQ_CON_RING = 8,
    VIRQ_PCPU_STATE = 9,
    VIRQ_MEM_EVENT = 10,
    VIRQ_ARGO = 11,
    VIRQ_ENOMEM = 12,
    VIRQ_XENPMU = 13,
    VIRQ_ARCH_0 = 16,
    VIRQ_ARCH_1 = 17,
    VIRQ_ARCH_2 = 18,
    VIRQ_ARCH_3 = 19,
    VIRQ_ARCH_4 = 20,
    VIRQ_ARCH_5 = 21,
    VIRQ_ARCH_6 = 22,
    VIRQ_ARCH_7 = 23,
    NR_VIRQS = 24,
} }

// `mmu_update` request types (`MMU_*`, the low 2 bits of `ptr`).
c_consts! { "`mmu_update` request type (the low 2 bits of `ptr`)": u32 {
    MMU_NORMAL_PT_UPDATE = 0,
    MMU_MACHPHYS_UPDATE = 1,
    MMU_PT_UPDATE_PRESERVE_AD = 2,
    MMU_PT_UPDATE_NO_TRANSLATE = 3,
} }

// `mmuext_op` commands (`MMUEXT_*`).
c_consts! { "`mmuext_op` command": u32 {
    MMUEXT_PIN_L1_TABLE = 0,
    MMUEXT_PIN_L2_TABLE = 1,
    MMUEXT_PIN_L3_TABLE = 2,
    MMUEXT_PIN_L4_TABLE = 3,
    MMUEXT_UNPIN_TABLE = 4,
    MMUEXT_NEW_BASEPTR = 5,
    MMUEXT_TLB_FLUSH_LOCAL = 6,
    MMUEXT_INVLPG_LOCAL = 7,
    MMUEXT_TLB_FLUSH_MULTI = 8,
    MMUEXT_INVLPG_MULTI = 9,
    MMUEXT_TLB_FLUSH_ALL = 10,
    MMUEXT_INVLPG_ALL = 11,
    MMUEXT_FLUSH_CACHE = 12,
    MMUEXT_SET_LDT = 13,
    MMUEXT_NEW_USER_BASEPTR = 15,
    MMUEXT_CLEAR_PAGE = 16,
    MMUEXT_COPY_PAGE = 17,
    MMUEXT_FLUSH_CACHE_GLOBAL = 18,
    MMUEXT_MARK_SUPER = 19,
    MMUEXT_UNMARK_SUPER = 20,
} }

// `console_io` commands and `vm_assist` commands and types.
c_consts! { "`console_io` command, `vm_assist` command or `vm_assist` type": u32 {
    CONSOLEIO_write = 0,
    VMASST_CMD_enable = 0,
    VMASST_TYPE_4gb_segments = 0,
    CONSOLEIO_read = 1,
    VMASST_CMD_disable = 1,
    VMASST_TYPE_4gb_segments_notify = 1,
    VMASST_TYPE_writable_pagetables = 2,
    VMASST_TYPE_pae_extended_cr3 = 3,
    VMASST_TYPE_architectural_iopl = 4,
    VMASST_TYPE_runstate_update_flag = 5,
    VMASST_TYPE_m2p_strict = 32,
} }

// `start_info.flags` bits (`SIF_*`), guest-visible limits and pvclock flags.
c_consts! { "`start_info.flags` bit, guest-visible limit or pvclock flag": u32 {
    SIF_PRIVILEGED = 1,
    XEN_PVCLOCK_TSC_STABLE_BIT = 1,
    SIF_INITDOMAIN = 2,
    XEN_PVCLOCK_GUEST_STOPPED = 2,
    SIF_MULTIBOOT_MOD = 4,
    SIF_MOD_START_PFN = 8,
    SIF_VIRT_P2M_4TOOLS = 16,
    XEN_LEGACY_MAX_VCPUS = 32,
    MAX_GUEST_CMDLINE = 1024,
    SIF_PM_MASK = 0xff00,
} }

// The flat segment selectors Xen sets up for x86-64 PV guests (`FLAT_*`).
c_consts! { "flat segment selector Xen sets up for x86-64 PV guests": u32 {
    FLAT_KERNEL_DS = 0,
    FLAT_KERNEL_DS64 = 0,
    FLAT_RING3_DS64 = 0,
    FLAT_USER_DS = 0,
    FLAT_USER_DS64 = 0,
    FLAT_KERNEL_CS32 = 0xe023,
    FLAT_RING3_CS32 = 0xe023,
    FLAT_USER_CS32 = 0xe023,
    FLAT_KERNEL_DS32 = 0xe02b,
    FLAT_KERNEL_SS = 0xe02b,
    FLAT_KERNEL_SS32 = 0xe02b,
    FLAT_KERNEL_SS64 = 0xe02b,
    FLAT_RING3_DS32 = 0xe02b,
    FLAT_RING3_SS32 = 0xe02b,
    FLAT_RING3_SS64 = 0xe02b,
    FLAT_USER_DS32 = 0xe02b,
    FLAT_USER_SS = 0xe02b,
    FLAT_USER_SS32 = 0xe02b,
    FLAT_USER_SS64 = 0xe02b,
    FLAT_KERNEL_CS = 0xe033,
    FLAT_KERNEL_CS64 = 0xe033,
    FLAT_RING3_CS64 = 0xe033,
    FLAT_USER_CS = 0xe033,
    FLAT_USER_CS64 = 0xe033,
} }

/// Start of the hypervisor's hole in every x86-64 PV address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the hypervisor's hole.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Where Xen maps the read-only machine-to-phys table (mfn → pfn) into every PV guest.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the machine-to-phys table's window.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;

/// `update_va_mapping` flags: no TLB flush.
pub const UVMF_NONE: u64 = 0;
/// `update_va_mapping` flags: flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `update_va_mapping` flags: flush just the one page.
pub const UVMF_INVLPG: u64 = 2;
/// `update_va_mapping` flags: mask of the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `update_va_mapping` flags: flush on the vCPUs in the given mask.
pub const UVMF_MULTI: u64 = 0;
/// `update_va_mapping` flags: flush on this vCPU only.
pub const UVMF_LOCAL: u64 = 0;
/// `update_va_mapping` flags: flush on all vCPUs.
pub const UVMF_ALL: u64 = 1 << 2;

/// The first reserved domain id; the ids from here on are special.
pub const DOMID_FIRST_RESERVED: Domid = 0x7FF0;
/// The calling domain.
pub const DOMID_SELF: Domid = 0x7FF0;
/// The I/O domain (pages of I/O memory).
pub const DOMID_IO: Domid = 0x7FF1;
/// Xen itself (pages owned by Xen).
pub const DOMID_XEN: Domid = 0x7FF2;
/// Copy-on-write pages.
pub const DOMID_COW: Domid = 0x7FF3;
/// An invalid domain id.
pub const DOMID_INVALID: Domid = 0x7FF4;
/// The idle domain.
pub const DOMID_IDLE: Domid = 0x7FFF;
/// Mask of the bits of a domain id.
pub const DOMID_MASK: Domid = 0x7FFF;

/// x86-64 page-table entry bit: present. (Architectural, from the Intel/AMD manuals; not in
/// Xen's public headers.)
pub const _PAGE_PRESENT: u64 = 1 << 0;
/// x86-64 page-table entry bit: writable.
pub const _PAGE_RW: u64 = 1 << 1;
/// x86-64 page-table entry bit: user accessible (set on all PV kernel mappings, which run in
/// ring 3).
pub const _PAGE_USER: u64 = 1 << 2;
/// x86-64 page-table entry bit: write-through.
pub const _PAGE_PWT: u64 = 1 << 3;
/// x86-64 page-table entry bit: cache disable.
pub const _PAGE_PCD: u64 = 1 << 4;
/// x86-64 page-table entry bit: accessed.
pub const _PAGE_ACCESSED: u64 = 1 << 5;
/// x86-64 page-table entry bit: dirty.
pub const _PAGE_DIRTY: u64 = 1 << 6;
/// x86-64 page-table entry bit: large page (in an L2/L3 entry).
pub const _PAGE_PSE: u64 = 1 << 7;
/// x86-64 page-table entry bit: global.
pub const _PAGE_GLOBAL: u64 = 1 << 8;
/// x86-64 page-table entry bit: no execute.
pub const _PAGE_NX: u64 = 1 << 63;
/// Mask of the frame number bits of an x86-64 page-table entry (bits 12..52).
pub const PTE_FRAME_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// `struct mmu_update`: one request of `HYPERVISOR_mmu_update`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry to update, with the request type (`MMU_*`) in the low 2
    /// bits.
    pub ptr: u64,
    /// The new value.
    pub val: u64,
}

/// `struct mmuext_op`: one request of `HYPERVISOR_mmuext_op`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MmuextOp {
    /// The command (`MMUEXT_*`).
    pub cmd: u32,
    /// The frame or linear address the command works on.
    pub arg1: MmuextOpArg1,
    /// Entry count, vCPU mask or source frame.
    pub arg2: MmuextOpArg2,
}

/// `mmuext_op.arg1`: the frame or linear address the command works on.
#[repr(C)]
#[derive(Clone, Copy)]
pub union MmuextOpArg1 {
    /// A machine frame (pin/unpin, new base pointer, clear/copy page, mark super).
    pub mfn: XenPfn,
    /// A linear address (`INVLPG`, `SET_LDT`).
    pub linear_addr: XenUlong,
}

impl Default for MmuextOpArg1 {
    fn default() -> Self {
        MmuextOpArg1 { mfn: 0 }
    }
}

/// `mmuext_op.arg2`: entry count, vCPU mask or source frame.
#[repr(C)]
#[derive(Clone, Copy)]
pub union MmuextOpArg2 {
    /// Number of LDT entries (`SET_LDT`).
    pub nr_ents: u32,
    /// The vCPUs to flush (`TLB_FLUSH_MULTI`, `INVLPG_MULTI`); a guest handle in C.
    pub vcpumask: *const core::ffi::c_void,
    /// The source frame (`COPY_PAGE`).
    pub src_mfn: XenPfn,
}

impl Default for MmuextOpArg2 {
    fn default() -> Self {
        MmuextOpArg2 { src_mfn: 0 }
    }
}

/// `struct multicall_entry`: one call of `HYPERVISOR_multicall`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number.
    pub op: XenUlong,
    /// Its result, filled in by Xen.
    pub result: XenUlong,
    /// Its arguments.
    pub args: [XenUlong; 6],
}

/// `struct start_info`: what Xen hands a PV guest at boot (pointer in `rsi`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, e.g. `xen-3.0-x86_64`, NUL-padded.
    pub magic: [core::ffi::c_char; 32],
    /// Total pages allocated to the domain.
    pub nr_pages: u64,
    /// Machine address of the shared_info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Machine frame of the xenstore ring page.
    pub store_mfn: XenPfn,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// The console: ring of a domU, VGA info of dom0.
    pub console: StartInfoConsole,
    /// Virtual address of the initial page tables.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the page-frame list (pfn → mfn).
    pub mfn_list: u64,
    /// Virtual address (or pfn, with `SIF_MOD_START_PFN`) of the pre-loaded module.
    pub mod_start: u64,
    /// Size of the module in bytes.
    pub mod_len: u64,
    /// The command line, NUL-terminated.
    pub cmd_line: [core::ffi::c_char; 1024],
    /// First pfn of the p2m list if mapped by the domain builder, else 0.
    pub first_p2m_pfn: u64,
    /// Number of pfns of the p2m list if mapped by the domain builder.
    pub nr_p2m_frames: u64,
}

impl Default for StartInfo {
    /// All zero.
    fn default() -> Self {
        StartInfo {
            magic: [0; 32],
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            store_mfn: 0,
            store_evtchn: 0,
            console: StartInfoConsole::default(),
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; 1024],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }
}

/// `start_info.console`: the console ring of a domU, or the VGA info of dom0.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_snake_case)] // `domU` is C's name
pub union StartInfoConsole {
    /// A domU's console ring.
    pub domU: StartInfoConsoleDomU,
    /// Where dom0's VGA console info lies in start_info.
    pub dom0: StartInfoConsoleDom0,
}

impl Default for StartInfoConsole {
    fn default() -> Self {
        StartInfoConsole {
            domU: StartInfoConsoleDomU::default(),
        }
    }
}

/// `start_info.console.domU`: machine frame and event channel of the console ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfoConsoleDomU {
    /// Machine frame of the console ring page.
    pub mfn: XenPfn,
    /// Event channel of the console ring.
    pub evtchn: u32,
}

/// `start_info.console.dom0`: where dom0's VGA console info lies in start_info.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfoConsoleDom0 {
    /// Offset of the `dom0_vga_console_info` from the start of start_info.
    pub info_off: u32,
    /// Its size.
    pub info_size: u32,
}

/// `struct trap_info`: one entry of the table given to `set_trap_table` (an all-zero entry
/// ends the table).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// The exception vector.
    pub vector: u8,
    /// Bits 0-1: the privilege level that may raise it with `int`; bit 2: clear the event
    /// mask on entry.
    pub flags: u8,
    /// The code selector of the handler.
    pub cs: u16,
    /// The handler's address.
    pub address: u64,
}

/// `struct vcpu_time_info`: a vCPU's system-time snapshot and TSC scaling (pvclock), updated by
/// Xen under the `version` counter (odd while being written).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Update counter: odd while Xen writes the record.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the moment `system_time` was taken.
    pub tsc_timestamp: u64,
    /// Nanoseconds since the host booted, at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC → ns multiplier (32.32 fixed point), applied after `tsc_shift`.
    pub tsc_to_system_mul: u32,
    /// Shift applied to TSC deltas before the multiplication (negative: right shift).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

/// `struct arch_vcpu_info` (x86): the page-fault address of a PV vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// The faulting address of the last page fault (PV's `%cr2`).
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}

/// `struct vcpu_info`: per-vCPU event and time state, in `shared_info` (first 32 vCPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU.
    pub evtchn_upcall_pending: u8,
    /// Nonzero to mask event upcalls (the PV "interrupt flag").
    pub evtchn_upcall_mask: u8,
    /// Selector: which words of `shared_info.evtchn_pending` may have bits set.
    pub evtchn_pending_sel: XenUlong,
    /// x86-specific state.
    pub arch: ArchVcpuInfo,
    /// System-time snapshot.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86): p2m information and the NMI reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Highest pfn + 1 the guest has (for the toolstack's p2m walk).
    pub max_pfn: u64,
    /// Frame of the list of frames of the list of p2m frames (for save/restore).
    pub pfn_to_mfn_frame_list_list: XenPfn,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// `cr3` of the virtually mapped p2m list, or 0.
    pub p2m_cr3: u64,
    /// Virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// Incremented around changes of the linear p2m list.
    pub p2m_generation: u64,
}

/// `struct shared_info`: the page Xen shares with the guest (event channel bitmaps, per-vCPU
/// info, wallclock).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    /// Per-vCPU info of the first [`XEN_LEGACY_MAX_VCPUS`] vCPUs.
    pub vcpu_info: [VcpuInfo; 32],
    /// Pending bits of the 2-level event channels, one per port.
    pub evtchn_pending: [XenUlong; 64],
    /// Mask bits of the 2-level event channels, one per port.
    pub evtchn_mask: [XenUlong; 64],
    /// Update counter of the wallclock: odd while Xen writes it.
    pub wc_version: u32,
    /// Wallclock at system time 0: seconds since the epoch (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock at system time 0: nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock at system time 0: seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// x86-specific state.
    pub arch: ArchSharedInfo,
}

impl Default for SharedInfo {
    fn default() -> Self {
        SharedInfo {
            vcpu_info: [VcpuInfo::default(); 32],
            evtchn_pending: [0; 64],
            evtchn_mask: [0; 64],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
            arch: ArchSharedInfo::default(),
        }
    }
}

assert_sizes! {
    GuestHandle<u32> => 8,
    StartInfo => 1168,
    StartInfoConsole => 16,
    TrapInfo => 16,
    MmuUpdate => 16,
    MmuextOp => 24,
    MulticallEntry => 64,
    VcpuTimeInfo => 32,
    ArchVcpuInfo => 16,
    VcpuInfo => 64,
    ArchSharedInfo => 48,
    SharedInfo => 3136,
}
