//! A GDB stub on the guest's second PV console.
//!
//! With `debug=gdb` on the command line, boot attaches console 1 (`device/console/1`, which
//! an xl `channel` creates; see the README's "Debugging a guest"), stops right after the
//! runtime's services are up and waits there for GDB. GDB in dom0 attaches to the console's
//! pty (`target remote /dev/pts/N`) and can read and write registers and memory, set
//! software breakpoints, continue and single-step. A panic stops again before the domain
//! crashes, so GDB can look at it.
//!
//! The stub runs in the trap handler: `int3` (#BP) and the single-step trap (#DB) enter
//! `on_debug_trap` through the resumable stubs in `traps.rs`, with every general register
//! saved ([`TrapRegs`]). While GDB has the guest the executor is stopped, so the stub polls the
//! console ring itself; while the guest runs, a task watches the console for GDB's Ctrl-C (or a
//! new GDB after a detach) and stops the guest for it. The stub keeps to state of its own (a lock it only tries, the console it
//! owns, the shared_info page and hypercalls) and runs under `single::enter_handler`, so the
//! interrupted flow's `VcpuCell` state is out of its reach. A breakpoint in code the stub itself
//! runs (the console ring, this module) cannot be served: that trap is reported as fatal.
//!
//! Memory access is checked against the page tables ([`memory`]): an address the guest does
//! not map (or maps read-only, for a write) is an error reply to GDB, never a fault.
//!
//! The protocol is the `gdbstub` crate's; this module is its target ([`target::Guest`]) and
//! its connection.

pub mod memory;
pub mod regs;
pub mod session;
pub mod target;

#[cfg(target_os = "none")]
mod conn;
#[cfg(target_os = "none")]
mod console;

pub use regs::TrapRegs;

use core::sync::atomic::{AtomicBool, Ordering};

/// Whether a session is up (checked by the trap handler before anything else).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The index of the console the stub speaks on.
pub const CONSOLE_INDEX: u32 = 1;

/// How long boot waits for console 1's backend to connect.
#[cfg(target_os = "none")]
const ATTACH_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(60);

/// Size of the packet buffer (GDB is told it in `qSupported`).
#[cfg(target_os = "none")]
const PACKET_BUFFER: usize = 4096;

/// Whether `line` asks for the stub (`debug=gdb`).
pub fn requested(line: &str) -> bool {
    crate::cmdline_value(line, "debug") == Some("gdb")
}

/// Whether GDB (or a wait for it) is active.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

#[cfg(target_os = "none")]
type GuestSession = session::Session<memory::PageTables, conn::ConsoleConnection>;

#[cfg(target_os = "none")]
static SESSION: spin::Mutex<Option<GuestSession>> = spin::Mutex::new(None);

/// Boot's hook, after the services are up: with `debug=gdb`, attach console 1, start the
/// session and stop for GDB. Errors are reported and the guest runs on without the stub.
#[cfg(target_os = "none")]
pub(crate) fn start_if_requested(pt_base: u64) {
    if !requested(crate::cmdline()) {
        return;
    }
    crate::println!("xenia: debug=gdb: attaching console {CONSOLE_INDEX} for gdb");
    let attach = crate::exec::timeout(ATTACH_TIMEOUT, console::attach(CONSOLE_INDEX));
    let con = match crate::exec::block_on(attach) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            crate::println!("xenia: debug=gdb: no gdb stub: {e}");
            return;
        }
        Err(_) => {
            crate::println!(
                "xenia: debug=gdb: no gdb stub: console {CONSOLE_INDEX}'s backend did not \
                 connect within {} s (is QEMU serving the channel in dom0?)",
                ATTACH_TIMEOUT.as_secs()
            );
            return;
        }
    };
    let buffer: &'static mut [u8] = alloc::vec![0u8; PACKET_BUFFER].leak();
    let conn = conn::ConsoleConnection::new(con);
    let port = conn.port();
    match session::Session::new(memory::PageTables::new(pt_base), conn, buffer) {
        Ok(s) => *SESSION.lock() = Some(s),
        Err(e) => {
            crate::println!("xenia: debug=gdb: no gdb stub: {e}");
            return;
        }
    }
    ACTIVE.store(true, Ordering::Release);
    drop(crate::exec::spawn(watch_running(port)));
    crate::println!(
        "xenia: debug=gdb: stopped, waiting for gdb on console {CONSOLE_INDEX} \
         (in dom0: gdb -ex 'target remote <its pty>')"
    );
    crate::console::flush(1_000_000_000);
    breakpoint();
}

/// Set by [`watch_running`] before its `int3` when GDB sent Ctrl-C.
#[cfg(target_os = "none")]
static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// A task watching console 1 while the guest runs: Ctrl-C from GDB, or a new GDB after a
/// detach, stops the guest.
#[cfg(target_os = "none")]
async fn watch_running(port: u32) {
    let Some(events) = crate::services::events() else {
        return;
    };
    loop {
        events.wait(port).await;
        let incoming = match SESSION.try_lock() {
            Some(mut s) => s
                .as_mut()
                .map_or(session::Incoming::Nothing, |s| s.poll_running()),
            None => session::Incoming::Nothing,
        };
        match incoming {
            session::Incoming::Nothing => {}
            session::Incoming::Interrupt => {
                INTERRUPT.store(true, Ordering::Release);
                breakpoint();
            }
            session::Incoming::Attach => breakpoint(),
        }
    }
}

/// Stops in the debugger here if a session is active (an `int3`); does nothing otherwise.
pub fn breakpoint() {
    if active() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: with a session active, the #BP handler returns to the next instruction.
        unsafe {
            core::arch::asm!("int3")
        };
    }
}

/// The panic handler's hook: with a session active, tell the console and stop for GDB.
#[cfg(target_os = "none")]
pub(crate) fn stop_on_panic() {
    if active() {
        crate::println!("xenia: debug=gdb: stopped on the panic, waiting for gdb");
        crate::console::flush(1_000_000_000);
        breakpoint();
    }
}

/// The debug trap's entry (vector 1 or 3): hands the guest to GDB and returns true, with
/// `regs` updated for the return; false if no session can take the trap (the caller reports it
/// as fatal).
#[cfg(target_os = "none")]
pub(crate) fn on_debug_trap(regs: &mut TrapRegs) -> bool {
    if !active() {
        return false;
    }
    let _handler = xenia_xen::single::enter_handler();
    // A trap inside the stub itself finds the lock taken: that one is fatal.
    let Some(mut guard) = SESSION.try_lock() else {
        return false;
    };
    let Some(s) = guard.as_mut() else {
        return false;
    };
    let why = match s.classify(regs) {
        session::Stop::Trap if INTERRUPT.swap(false, Ordering::AcqRel) => session::Stop::Interrupt,
        why => why,
    };
    let _ = s.stop(regs, why);
    true
}
