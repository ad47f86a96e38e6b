//! Xen's shared-memory ring protocols, independent of any hypervisor interface.
#![no_std]
#![deny(missing_docs)]
