//! `memory.h`: `XENMEM_*` operations and the structures we use with them.

use super::{assert_sizes, Domid, GuestHandle, XenPfn, XenUlong};

/// `XENMEM_increase_reservation`: add extents of memory to a domain.
pub const XENMEM_increase_reservation: u32 = 0;
/// `XENMEM_decrease_reservation`: give extents of memory back to Xen (ballooning).
pub const XENMEM_decrease_reservation: u32 = 1;
/// `XENMEM_maximum_ram_page`: the highest machine frame of the host.
pub const XENMEM_maximum_ram_page: u32 = 2;
/// `XENMEM_current_reservation`: pages a domain has now (argument: a `domid_t`).
pub const XENMEM_current_reservation: u32 = 3;
/// `XENMEM_maximum_reservation`: the most pages a domain may have (argument: a `domid_t`).
pub const XENMEM_maximum_reservation: u32 = 4;
/// `XENMEM_machphys_mfn_list`: the frames holding the machine-to-phys table.
pub const XENMEM_machphys_mfn_list: u32 = 5;
/// `XENMEM_populate_physmap`: back pseudo-physical frames with memory.
pub const XENMEM_populate_physmap: u32 = 6;
/// `XENMEM_add_to_physmap`: map a special page (shared_info, grant frames) into the physmap.
pub const XENMEM_add_to_physmap: u32 = 7;
/// `XENMEM_memory_map`: the domain's pseudo-physical memory map (e820 entries).
pub const XENMEM_memory_map: u32 = 9;
/// `XENMEM_machine_memory_map`: the host's memory map (privileged).
pub const XENMEM_machine_memory_map: u32 = 10;
/// `XENMEM_exchange`: exchange extents for others (e.g. contiguous ones).
pub const XENMEM_exchange: u32 = 11;
/// `XENMEM_machphys_mapping`: where the machine-to-phys table is mapped.
pub const XENMEM_machphys_mapping: u32 = 12;
/// `XENMEM_maximum_gpfn`: the highest pseudo-physical frame of a domain (argument: a
/// `domid_t`).
pub const XENMEM_maximum_gpfn: u32 = 14;
/// `XENMEM_remove_from_physmap`: remove a page from the physmap.
pub const XENMEM_remove_from_physmap: u32 = 15;

/// `struct xen_memory_reservation`: argument of `XENMEM_{increase,decrease}_reservation` and
/// `XENMEM_populate_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// The frames (`nr_extents` entries): in for decrease/populate, out for increase.
    pub extent_start: GuestHandle<XenPfn>,
    /// Number of extents.
    pub nr_extents: XenUlong,
    /// log2 of the pages per extent.
    pub extent_order: u32,
    /// `XENMEMF_*` flags (address bits, NUMA node).
    pub mem_flags: u32,
    /// The domain (`DOMID_SELF`).
    pub domid: Domid,
}

/// `struct xen_memory_map`: argument of `XENMEM_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// In: room in `buffer` (entries); out: entries written.
    pub nr_entries: u32,
    /// The e820-style entries (20 bytes each: address, size, type).
    pub buffer: GuestHandle<core::ffi::c_void>,
}

/// `struct xen_machphys_mapping`: result of `XENMEM_machphys_mapping`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMapping {
    /// Start of the machine-to-phys table's virtual window.
    pub v_start: XenUlong,
    /// End of the window.
    pub v_end: XenUlong,
    /// The highest machine frame the table covers.
    pub max_mfn: XenUlong,
}

/// `XENMAPSPACE_shared_info`: `xen_add_to_physmap.space` of the shared_info page.
pub const XENMAPSPACE_shared_info: u32 = 0;
/// `XENMAPSPACE_grant_table`: `xen_add_to_physmap.space` of a grant-table frame.
pub const XENMAPSPACE_grant_table: u32 = 1;
/// `XENMAPSPACE_gmfn`: `xen_add_to_physmap.space` of a guest frame.
pub const XENMAPSPACE_gmfn: u32 = 2;
/// `XENMAPSPACE_gmfn_range`: `xen_add_to_physmap.space` of `size` guest frames.
pub const XENMAPSPACE_gmfn_range: u32 = 3;

/// `struct xen_add_to_physmap`: argument of `XENMEM_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// The domain (`DOMID_SELF`).
    pub domid: Domid,
    /// Number of pages (for `XENMAPSPACE_gmfn_range`).
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index in the space (e.g. the grant-table frame number).
    pub idx: XenUlong,
    /// The pseudo-physical frame to map it at.
    pub gpfn: XenPfn,
}

assert_sizes! {
    XenMemoryReservation => 32,
    XenMemoryMap => 16,
    XenMachphysMapping => 24,
    XenAddToPhysmap => 24,
}
