//! `grant_table.h`: grant table v1 entries, `GNTTABOP_*` operations and their statuses.

use super::{assert_sizes, Domid, GuestHandle, XenPfn};

/// `grant_ref_t`: an index into a domain's grant table.
pub type GrantRef = u32;
/// `grant_handle_t`: the handle of a mapped grant (returned by `GNTTABOP_map_grant_ref`).
pub type GrantHandle = u32;

/// `struct grant_entry_v1`: one entry of a v1 grant table (8 bytes, shared with Xen).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags; write the type last, after `domid` and `frame`.
    pub flags: u16,
    /// The domain granted access.
    pub domid: Domid,
    /// The granted frame (a machine frame for PV guests).
    pub frame: u32,
}

/// Number of grant entries reserved for the toolstack at the start of the table.
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;
/// Reserved grant entry of the console ring page.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// Reserved grant entry of the xenstore ring page.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

/// Grant type: the entry is not in use.
pub const GTF_invalid: u16 = 0;
/// Grant type: the domain may map and access `frame`.
pub const GTF_permit_access: u16 = 1;
/// Grant type: the domain may transfer a page into `frame`.
pub const GTF_accept_transfer: u16 = 2;
/// Grant type: a transitive grant (v2 only).
pub const GTF_transitive: u16 = 3;
/// Mask of the grant type bits.
pub const GTF_type_mask: u16 = 3;
/// Grant flag: the access is read-only.
pub const GTF_readonly: u16 = 1 << 2;
/// Status flag set by Xen: the grantee is reading the frame.
pub const GTF_reading: u16 = 1 << 3;
/// Status flag set by Xen: the grantee is writing the frame.
pub const GTF_writing: u16 = 1 << 4;
/// Grant flag: map with page write-through.
pub const GTF_PWT: u16 = 1 << 5;
/// Grant flag: map with page cache disabled.
pub const GTF_PCD: u16 = 1 << 6;
/// Grant flag: map with the PAT bit.
pub const GTF_PAT: u16 = 1 << 7;
/// Grant flag: a sub-page grant (v2 only).
pub const GTF_sub_page: u16 = 1 << 8;
/// Transfer status: the transfer is committed.
pub const GTF_transfer_committed: u16 = 1 << 2;
/// Transfer status: the transfer is complete.
pub const GTF_transfer_completed: u16 = 1 << 3;

/// `GNTTABOP_map_grant_ref`: map a foreign grant (backend side).
pub const GNTTABOP_map_grant_ref: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`: unmap a foreign grant.
pub const GNTTABOP_unmap_grant_ref: u32 = 1;
/// `GNTTABOP_setup_table`: get the frames of our grant table.
pub const GNTTABOP_setup_table: u32 = 2;
/// `GNTTABOP_dump_table`: dump the grant table to Xen's console.
pub const GNTTABOP_dump_table: u32 = 3;
/// `GNTTABOP_transfer`: transfer a page to another domain.
pub const GNTTABOP_transfer: u32 = 4;
/// `GNTTABOP_copy`: copy between frames named by grant or frame number.
pub const GNTTABOP_copy: u32 = 5;
/// `GNTTABOP_query_size`: current and maximum number of grant-table frames.
pub const GNTTABOP_query_size: u32 = 6;
/// `GNTTABOP_unmap_and_replace`: unmap a grant, putting another mapping in its place.
pub const GNTTABOP_unmap_and_replace: u32 = 7;
/// `GNTTABOP_set_version`: choose grant table v1 or v2.
pub const GNTTABOP_set_version: u32 = 8;
/// `GNTTABOP_get_status_frames`: the v2 status frames.
pub const GNTTABOP_get_status_frames: u32 = 9;
/// `GNTTABOP_get_version`: the grant table version in use.
pub const GNTTABOP_get_version: u32 = 10;
/// `GNTTABOP_swap_grant_ref`: swap two grant entries.
pub const GNTTABOP_swap_grant_ref: u32 = 11;
/// `GNTTABOP_cache_flush`: flush caches of a granted frame.
pub const GNTTABOP_cache_flush: u32 = 12;

/// `struct gnttab_map_grant_ref`: argument of `GNTTABOP_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// In: where to map (virtual address, or PTE address with `GNTMAP_contains_pte`).
    pub host_addr: u64,
    /// In: `GNTMAP_*` flags.
    pub flags: u32,
    /// In: the grant reference in `dom`'s table.
    pub r#ref: GrantRef,
    /// In: the granting domain.
    pub dom: Domid,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: handle for the unmap.
    pub handle: GrantHandle,
    /// Out: bus address for device mappings.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`: argument of `GNTTABOP_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// In: the address given to the map.
    pub host_addr: u64,
    /// In: the bus address returned by the map, or 0.
    pub dev_bus_addr: u64,
    /// In: the handle returned by the map.
    pub handle: GrantHandle,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_setup_table`: argument of `GNTTABOP_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// In: the domain (`DOMID_SELF`).
    pub dom: Domid,
    /// In: number of frames wanted.
    pub nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: the machine frames of the table (`nr_frames` entries).
    pub frame_list: GuestHandle<XenPfn>,
}

/// `struct gnttab_query_size`: argument of `GNTTABOP_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// In: the domain (`DOMID_SELF`).
    pub dom: Domid,
    /// Out: frames in use.
    pub nr_frames: u32,
    /// Out: the most frames the table may have.
    pub max_nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// `gnttab_copy_ptr.u`: a grant reference (with `GNTCOPY_*_gref`) or a frame number.
#[repr(C)]
#[derive(Clone, Copy)]
pub union GnttabCopyPtrU {
    /// The grant reference, when the `GNTCOPY_*_gref` flag is set.
    pub r#ref: GrantRef,
    /// The frame of the local domain, otherwise.
    pub gmfn: XenPfn,
}

impl GnttabCopyPtrU {
    /// A grant reference, with the unused high bytes zeroed.
    pub fn gref(r: GrantRef) -> Self {
        let mut u = GnttabCopyPtrU { gmfn: 0 };
        u.r#ref = r;
        u
    }

    /// A frame number.
    pub fn gmfn(f: XenPfn) -> Self {
        GnttabCopyPtrU { gmfn: f }
    }
}

impl Default for GnttabCopyPtrU {
    fn default() -> Self {
        GnttabCopyPtrU { gmfn: 0 }
    }
}

/// `struct gnttab_copy_ptr`: one side of a `GNTTABOP_copy`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct GnttabCopyPtr {
    /// The grant or frame.
    pub u: GnttabCopyPtrU,
    /// The domain owning the grant or frame.
    pub domid: Domid,
    /// Byte offset in the page.
    pub offset: u16,
}

/// `struct gnttab_copy`: one request of `GNTTABOP_copy`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct GnttabCopy {
    /// In: where to copy from.
    pub source: GnttabCopyPtr,
    /// In: where to copy to.
    pub dest: GnttabCopyPtr,
    /// In: bytes to copy (must not cross a page boundary on either side).
    pub len: u16,
    /// In: `GNTCOPY_*`.
    pub flags: u16,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// `GNTTABOP_copy` flag: `source.u` is a grant reference.
pub const GNTCOPY_source_gref: u16 = 1 << 0;
/// `GNTTABOP_copy` flag: `dest.u` is a grant reference.
pub const GNTCOPY_dest_gref: u16 = 1 << 1;

/// Map flag: map for device (I/O) access.
pub const GNTMAP_device_map: u32 = 1 << 0;
/// Map flag: map for host CPU access.
pub const GNTMAP_host_map: u32 = 1 << 1;
/// Map flag: read-only mapping.
pub const GNTMAP_readonly: u32 = 1 << 2;
/// Map flag: the host mapping is usable by applications too.
pub const GNTMAP_application_map: u32 = 1 << 3;
/// Map flag: `host_addr` is the machine address of the PTE to update.
pub const GNTMAP_contains_pte: u32 = 1 << 4;
/// Map flags: bits the guest may use for itself in the PTE.
pub const GNTMAP_guest_avail_mask: u32 = !0 << 16;

/// Grant status: success.
pub const GNTST_okay: i16 = 0;
/// Grant status: general error.
pub const GNTST_general_error: i16 = -1;
/// Grant status: unknown domain.
pub const GNTST_bad_domain: i16 = -2;
/// Grant status: bad grant reference.
pub const GNTST_bad_gntref: i16 = -3;
/// Grant status: bad mapping handle.
pub const GNTST_bad_handle: i16 = -4;
/// Grant status: bad virtual address for the mapping.
pub const GNTST_bad_virt_addr: i16 = -5;
/// Grant status: bad device address.
pub const GNTST_bad_dev_addr: i16 = -6;
/// Grant status: no space in the I/O MMU.
pub const GNTST_no_device_space: i16 = -7;
/// Grant status: permission denied.
pub const GNTST_permission_denied: i16 = -8;
/// Grant status: bad page.
pub const GNTST_bad_page: i16 = -9;
/// Grant status: the copy crosses a page boundary.
pub const GNTST_bad_copy_arg: i16 = -10;
/// Grant status: the transfer address is too large.
pub const GNTST_address_too_big: i16 = -11;
/// Grant status: not done, try again.
pub const GNTST_eagain: i16 = -12;
/// Grant status: out of space (handles).
pub const GNTST_no_space: i16 = -13;

assert_sizes! {
    GrantEntryV1 => 8,
    GnttabMapGrantRef => 32,
    GnttabUnmapGrantRef => 24,
    GnttabSetupTable => 24,
    GnttabQuerySize => 16,
    GnttabCopyPtrU => 8,
    GnttabCopyPtr => 16,
    GnttabCopy => 40,
}
