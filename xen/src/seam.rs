//! The signatures of the host build's link-time seam.
//!
//! Built for the host, this crate calls three functions it only declares (`_xenia_hypercall`,
//! `_xenia_virt_to_mfn`, `_xenia_mfn_to_virt`); a simulator linked into the binary defines them
//! (the `xenia-sim` crate). A symbol carries no type, so a definition with another signature
//! would still link: the defining crate checks each of its functions against the types here at
//! compile time (`const _: Hypercall = _xenia_hypercall;`), and so do the declarations in
//! [`crate::hypercall`] and [`crate::memory`]. (The types are `unsafe fn` because a declared
//! foreign function is unsafe to call; a safe definition coerces to them.)
//!
//! On the guest target nothing uses these types: hypercalls go through the hypercall page.

use crate::memory::Mfn;

/// `_xenia_hypercall(op, args) -> rax`: one hypercall with its five register arguments.
pub type Hypercall = unsafe fn(op: u32, args: [u64; 5]) -> i64;

/// `_xenia_virt_to_mfn(va)`: the machine frame of the page holding virtual address `va`.
pub type VirtToMfn = unsafe fn(va: usize) -> Option<Mfn>;

/// `_xenia_mfn_to_virt(mfn)`: the virtual address at which machine frame `mfn` is mapped.
pub type MfnToVirt = unsafe fn(mfn: Mfn) -> Option<usize>;
