//! `xen.h` and `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`: hypercall numbers, the start-of-day
//! and shared-info pages, page-table updates, domain ids; plus the x86-64 page-table bits.

use super::assert_sizes;
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

/// Hypercall numbers (`__HYPERVISOR_*`), re-exported from xen-sys.
pub use xen_sys::{
    __HYPERVISOR_arch_0, __HYPERVISOR_arch_1, __HYPERVISOR_arch_2, __HYPERVISOR_arch_3,
    __HYPERVISOR_arch_4, __HYPERVISOR_arch_5, __HYPERVISOR_arch_6, __HYPERVISOR_arch_7,
    __HYPERVISOR_argo_op, __HYPERVISOR_callback_op, __HYPERVISOR_console_io, __HYPERVISOR_dm_op,
    __HYPERVISOR_domctl, __HYPERVISOR_event_channel_op, __HYPERVISOR_event_channel_op_compat,
    __HYPERVISOR_fpu_taskswitch, __HYPERVISOR_get_debugreg, __HYPERVISOR_grant_table_op,
    __HYPERVISOR_hvm_op, __HYPERVISOR_hypfs_op, __HYPERVISOR_iret, __HYPERVISOR_kexec_op,
    __HYPERVISOR_memory_op, __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op,
    __HYPERVISOR_multicall, __HYPERVISOR_nmi_op, __HYPERVISOR_physdev_op,
    __HYPERVISOR_physdev_op_compat, __HYPERVISOR_platform_op, __HYPERVISOR_sched_op,
    __HYPERVISOR_sched_op_compat, __HYPERVISOR_set_callbacks, __HYPERVISOR_set_debugreg,
    __HYPERVISOR_set_gdt, __HYPERVISOR_set_segment_base, __HYPERVISOR_set_timer_op,
    __HYPERVISOR_set_trap_table, __HYPERVISOR_stack_switch, __HYPERVISOR_sysctl,
    __HYPERVISOR_tmem_op, __HYPERVISOR_update_descriptor, __HYPERVISOR_update_va_mapping,
    __HYPERVISOR_update_va_mapping_otherdomain, __HYPERVISOR_vcpu_op, __HYPERVISOR_vm_assist,
    __HYPERVISOR_xen_version, __HYPERVISOR_xenoprof_op, __HYPERVISOR_xenpmu_op,
    __HYPERVISOR_xsm_op,
};

/// Virtual IRQs (`VIRQ_*`, bound with `EVTCHNOP_bind_virq`), re-exported from xen-sys.
pub use xen_sys::{
    NR_VIRQS, VIRQ_ARCH_0, VIRQ_ARCH_1, VIRQ_ARCH_2, VIRQ_ARCH_3, VIRQ_ARCH_4, VIRQ_ARCH_5,
    VIRQ_ARCH_6, VIRQ_ARCH_7, VIRQ_ARGO, VIRQ_CONSOLE, VIRQ_CON_RING, VIRQ_DEBUG, VIRQ_DEBUGGER,
    VIRQ_DOM_EXC, VIRQ_ENOMEM, VIRQ_MEM_EVENT, VIRQ_PCPU_STATE, VIRQ_TBUF, VIRQ_TIMER,
    VIRQ_XENOPROF, VIRQ_XENPMU,
};

/// `mmu_update` request types (`MMU_*`, the low 2 bits of `ptr`), re-exported from xen-sys.
pub use xen_sys::{
    MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_NO_TRANSLATE,
    MMU_PT_UPDATE_PRESERVE_AD,
};

/// `mmuext_op` commands (`MMUEXT_*`), re-exported from xen-sys.
pub use xen_sys::{
    MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_FLUSH_CACHE, MMUEXT_FLUSH_CACHE_GLOBAL,
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_MARK_SUPER,
    MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL,
    MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNMARK_SUPER, MMUEXT_UNPIN_TABLE,
};

/// `console_io` commands and `vm_assist` commands and types, re-exported from xen-sys.
pub use xen_sys::{
    CONSOLEIO_read, CONSOLEIO_write, VMASST_CMD_disable, VMASST_CMD_enable,
    VMASST_TYPE_4gb_segments, VMASST_TYPE_4gb_segments_notify, VMASST_TYPE_architectural_iopl,
    VMASST_TYPE_m2p_strict, VMASST_TYPE_pae_extended_cr3, VMASST_TYPE_runstate_update_flag,
    VMASST_TYPE_writable_pagetables,
};

/// `start_info.flags` bits (`SIF_*`), guest-visible limits and pvclock flags, re-exported from
/// xen-sys.
pub use xen_sys::{
    MAX_GUEST_CMDLINE, SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD, SIF_PM_MASK,
    SIF_PRIVILEGED, SIF_VIRT_P2M_4TOOLS, XEN_LEGACY_MAX_VCPUS, XEN_PVCLOCK_GUEST_STOPPED,
    XEN_PVCLOCK_TSC_STABLE_BIT,
};

/// The flat segment selectors Xen sets up for x86-64 PV guests (`FLAT_*`), re-exported from
/// xen-sys.
pub use xen_sys::{
    FLAT_KERNEL_CS, FLAT_KERNEL_CS32, FLAT_KERNEL_CS64, FLAT_KERNEL_DS, FLAT_KERNEL_DS32,
    FLAT_KERNEL_DS64, FLAT_KERNEL_SS, FLAT_KERNEL_SS32, FLAT_KERNEL_SS64, FLAT_RING3_CS32,
    FLAT_RING3_CS64, FLAT_RING3_DS32, FLAT_RING3_DS64, FLAT_RING3_SS32, FLAT_RING3_SS64,
    FLAT_USER_CS, FLAT_USER_CS32, FLAT_USER_CS64, FLAT_USER_DS, FLAT_USER_DS32, FLAT_USER_DS64,
    FLAT_USER_SS, FLAT_USER_SS32, FLAT_USER_SS64,
};

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

/// `struct mmu_update`: one request of `HYPERVISOR_mmu_update`, re-exported from xen-sys.
pub use xen_sys::mmu_update as MmuUpdate;
/// `struct mmuext_op`: one request of `HYPERVISOR_mmuext_op`, re-exported from xen-sys.
pub use xen_sys::mmuext_op as MmuextOp;
/// `mmuext_op.arg1`: the frame or linear address the command works on.
pub use xen_sys::mmuext_op__bindgen_ty_1 as MmuextOpArg1;
/// `mmuext_op.arg2`: entry count, vCPU mask or source frame.
pub use xen_sys::mmuext_op__bindgen_ty_2 as MmuextOpArg2;
/// `struct multicall_entry`: one call of `HYPERVISOR_multicall`, re-exported from xen-sys.
pub use xen_sys::multicall_entry as MulticallEntry;
/// `struct start_info`: what Xen hands a PV guest at boot (pointer in `rsi`), re-exported from
/// xen-sys.
pub use xen_sys::start_info as StartInfo;
/// `start_info.console`: the console ring of a domU, or the VGA info of dom0.
pub use xen_sys::start_info__bindgen_ty_1 as StartInfoConsole;
/// `start_info.console.domU`: machine frame and event channel of the console ring.
pub use xen_sys::start_info__bindgen_ty_1__bindgen_ty_1 as StartInfoConsoleDomU;
/// `start_info.console.dom0`: where dom0's VGA console info lies in start_info.
pub use xen_sys::start_info__bindgen_ty_1__bindgen_ty_2 as StartInfoConsoleDom0;
/// `struct trap_info`: one entry of the table given to `set_trap_table`, re-exported from
/// xen-sys.
pub use xen_sys::trap_info as TrapInfo;

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
