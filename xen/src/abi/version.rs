//! `version.h` and `features.h`: `XENVER_*` queries and `XENFEAT_*` feature bits.

use super::assert_sizes;

/// `XENVER_version`: returns `major << 16 | minor`.
pub const XENVER_version: u32 = 0;
/// `XENVER_extraversion`: the extra version string (16 bytes).
pub const XENVER_extraversion: u32 = 1;
/// `XENVER_compile_info`: compiler, user, domain and date of the build.
pub const XENVER_compile_info: u32 = 2;
/// `XENVER_capabilities`: the guest ABIs supported (1024 bytes).
pub const XENVER_capabilities: u32 = 3;
/// `XENVER_changeset`: the source changeset (64 bytes).
pub const XENVER_changeset: u32 = 4;
/// `XENVER_platform_parameters`: the hypervisor's virtual start address.
pub const XENVER_platform_parameters: u32 = 5;
/// `XENVER_get_features`: a 32-bit submap of `XENFEAT_*` (argument: [`XenFeatureInfo`]).
pub const XENVER_get_features: u32 = 6;
/// `XENVER_pagesize`: the page size.
pub const XENVER_pagesize: u32 = 7;
/// `XENVER_guest_handle`: the domain's handle (UUID).
pub const XENVER_guest_handle: u32 = 8;
/// `XENVER_commandline`: Xen's command line (1024 bytes).
pub const XENVER_commandline: u32 = 9;
/// `XENVER_build_id`: the build id.
pub const XENVER_build_id: u32 = 10;

/// Length of the `XENVER_extraversion` string buffer.
pub const XEN_EXTRAVERSION_LEN: usize = 16;

/// `struct xen_feature_info`: argument of `XENVER_get_features`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// In: which 32-bit submap.
    pub submap_idx: u32,
    /// Out: the feature bits `32 * submap_idx ..`.
    pub submap: u32,
}

/// Feature: the guest may write its page tables directly (Xen emulates).
pub const XENFEAT_writable_page_tables: u32 = 0;
/// Feature: the guest may write its descriptor tables directly.
pub const XENFEAT_writable_descriptor_tables: u32 = 1;
/// Feature: the physmap is translated by Xen (not a PV guest).
pub const XENFEAT_auto_translated_physmap: u32 = 2;
/// Feature: the guest kernel runs in ring 0.
pub const XENFEAT_supervisor_mode_kernel: u32 = 3;
/// Feature: PAE page directories may be above 4 GiB.
pub const XENFEAT_pae_pgdir_above_4gb: u32 = 4;
/// Feature: `MMU_PT_UPDATE_PRESERVE_AD` is supported.
pub const XENFEAT_mmu_pt_update_preserve_ad: u32 = 5;
/// Feature: highmem assist.
pub const XENFEAT_highmem_assist: u32 = 6;
/// Feature: grant maps may use the guest-available PTE bits.
pub const XENFEAT_gnttab_map_avail_bits: u32 = 7;
/// Feature: HVM callback vector.
pub const XENFEAT_hvm_callback_vector: u32 = 8;
/// Feature: HVM safe pvclock.
pub const XENFEAT_hvm_safe_pvclock: u32 = 9;
/// Feature: HVM PIRQs.
pub const XENFEAT_hvm_pirqs: u32 = 10;
/// Feature: the domain is dom0.
pub const XENFEAT_dom0: u32 = 11;
/// Feature: vNUMA in memory ops.
pub const XENFEAT_memory_op_vnode_supported: u32 = 13;
/// Feature: Arm SMCCC.
pub const XENFEAT_ARM_SMCCC_supported: u32 = 14;
/// Feature: Linux may put the RSDP anywhere.
pub const XENFEAT_linux_rsdp_unrestricted: u32 = 15;
/// Feature: the domain is not direct mapped.
pub const XENFEAT_not_direct_mapped: u32 = 16;
/// Feature: the domain is direct mapped.
pub const XENFEAT_direct_mapped: u32 = 17;
/// Number of 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

assert_sizes! {
    XenFeatureInfo => 8,
}
