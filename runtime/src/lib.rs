//! # Xenia
//!
//! Async Rust unikernels as Xen PV guests. An app depends on this crate, declares its entry
//! with [`#[xenia::main]`](main), and `cargo xenia build` links it into a PV kernel that
//! `xl create` boots:
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//!
//! #[xenia::main]
//! async fn main() {
//!     xenia::println!("hello from xenia");
//! }
//! ```
//!
//! The runtime boots the domain (start_info, memory, console, time, exceptions), runs the
//! app's `main` to completion, and powers the domain off (or crashes it if `main` returns an
//! error or panics).
//!
//! ## Features
//!
//! The drivers are Cargo features, none on by default: an app names what it uses and links
//! nothing else (`hello` links neither driver).
//!
//! - `net`: the network (`xenia::net`: netfront and the smoltcp TCP/IP stack).
//! - `block`: disks (`xenia::block`: blkfront).
//! - `gdb`: the GDB stub on the second PV console (`debug=gdb`, `xenia::gdb`). Without it,
//!   `debug=gdb` is reported on the console and ignored.
//!
//! Suspend and resume ([`lifecycle`]) work with any set: each driver reconnects on its own when
//! it sees the lifecycle generation change.
#![no_std]

extern crate alloc;
#[cfg(not(target_os = "none"))]
extern crate std; // the host build's console (stdout), clock and exit

mod backtrace;
#[cfg(feature = "block")]
pub mod block;
#[cfg(target_os = "none")]
mod boot;
pub mod console;
pub mod domain;
pub mod dump;
pub mod exec;
#[cfg(feature = "gdb")]
pub mod gdb;
// Without the stub, the guest's hooks for boot, panics and the debug traps (with the trap
// frame's layout, which the trap stubs save either way).
#[cfg(all(not(feature = "gdb"), target_os = "none"))]
#[path = "gdb/absent.rs"]
mod gdb;
pub mod lifecycle;
#[cfg(target_os = "none")]
mod mm;
#[cfg(feature = "net")]
pub mod net;
#[cfg(target_os = "none")]
mod panic;
pub mod services;
mod shared_info;
#[cfg(target_os = "none")]
mod start;
pub mod time;
#[cfg(target_os = "none")]
mod traps;

#[cfg(feature = "block")]
pub use block::{BlockError, Disk};
pub use exec::{
    block_on, sleep, sleep_until, spawn, timeout, yield_now, Elapsed, JoinHandle, Sleep,
};
#[cfg(feature = "net")]
pub use net::{NetError, TcpListener, TcpStream, UdpSocket};
pub use services::{grant_table, xenstore};
#[cfg(target_os = "none")]
pub use start::{boot_info, boot_ns, BootInfo};
pub use xenia_xen::sched::ShutdownReason;

/// Bytes of heap in use.
pub fn heap_in_use() -> usize {
    #[cfg(target_os = "none")]
    {
        mm::heap_in_use()
    }
    #[cfg(not(target_os = "none"))]
    {
        0
    }
}

/// Bytes of heap the domain has (what is left of its memory after the image, page tables and
/// boot data); 0 on the host.
pub fn heap_bytes() -> usize {
    #[cfg(target_os = "none")]
    {
        start::boot_info().heap_bytes
    }
    #[cfg(not(target_os = "none"))]
    {
        0
    }
}

/// The guest command line (`extra=` in the xl config); empty on the host.
pub fn cmdline() -> &'static str {
    #[cfg(target_os = "none")]
    {
        start::cmdline()
    }
    #[cfg(not(target_os = "none"))]
    {
        ""
    }
}

/// The value of `key=value` on the command line, if present (the first occurrence).
pub fn cmdline_arg(key: &str) -> Option<&'static str> {
    cmdline_value(cmdline(), key)
}

/// Finds `key=value` among the space-separated words of `line`.
pub fn cmdline_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace().find_map(|w| {
        let (k, v) = w.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// Ends the domain now: `Poweroff`, `Reboot` or `Crash` (console output is flushed first).
pub fn exit(reason: ShutdownReason) -> ! {
    #[cfg(target_os = "none")]
    {
        start::shutdown(reason)
    }
    #[cfg(not(target_os = "none"))]
    {
        console::flush(0);
        std::process::exit(if reason == ShutdownReason::Poweroff {
            0
        } else {
            1
        })
    }
}

/// What an app's `main` may return: `()` or a `Result` whose error is printed.
pub trait Termination {
    /// Reports the outcome; `true` means success (poweroff), `false` failure (crash).
    fn report(self) -> bool;
}

impl Termination for () {
    fn report(self) -> bool {
        true
    }
}

impl<E: core::fmt::Debug> Termination for Result<(), E> {
    fn report(self) -> bool {
        match self {
            Ok(()) => true,
            Err(e) => {
                println!("xenia: main returned an error: {e:?}");
                false
            }
        }
    }
}

#[doc(hidden)]
/// Runs the app's main next to the runtime's own tasks.
pub async fn __run_app<F: core::future::Future>(main: F) -> F::Output {
    spawn(services::shutdown_watcher());
    spawn(dump::watcher());
    main.await
}

/// Declares the app's `async fn main` (the attribute of the `xenia-macros` crate).
///
/// ```ignore
/// #[xenia::main]
/// async fn main() -> Result<(), MyError> {
///     xenia::println!("hello");
///     Ok(())
/// }
/// ```
///
/// On Xen the runtime calls it after boot and powers off when it returns (or crashes the domain
/// on an error or a panic). Built for the host, the program says how to run it instead (it
/// prints that it is a Xen PV guest, to be run with `cargo xenia run`, and exits with status 2),
/// so an app builds, lints and tests on the host without `cfg` blocks around its entry point.
pub use xenia_macros::main;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_values() {
        let line = "ip=10.0.0.2/24 gw=10.0.0.1  loglevel=debug flag token=a=b";
        assert_eq!(cmdline_value(line, "ip"), Some("10.0.0.2/24"));
        assert_eq!(cmdline_value(line, "loglevel"), Some("debug"));
        assert_eq!(cmdline_value(line, "token"), Some("a=b"));
        assert_eq!(cmdline_value(line, "flag"), None);
        assert_eq!(cmdline_value(line, "missing"), None);
        assert_eq!(cmdline_value("", "ip"), None);
    }
}
