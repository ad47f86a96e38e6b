//! Xen blkfront frontend (to be written).
#![no_std]
#![deny(missing_docs)]
