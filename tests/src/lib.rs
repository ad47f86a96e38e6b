//! Xenia's integration-test framework.
//!
//! The nested-Xen tests (`tests/nested.rs`) boot real Xen 4.17 with a Linux dom0 inside QEMU
//! (scripts/nested-xen/) once per test run and `xl create` every scenario's guest in it:
//! - [`session`]: scenarios ([`session::Scenario`]), building their images and one job, booting
//!   once, and looking up each scenario's result;
//! - [`serial`]: parsing the serial log dom0 writes its results to;
//! - [`backtrace`]: naming the frames of a guest's crash backtrace (`scripts/symbolize`);
//! - [`xl`]: reading and adjusting the xl configurations `scripts/build` generates.

pub mod backtrace;
pub mod serial;
pub mod session;
pub mod xl;
