//! The GDB stub's hooks in an image built without the `gdb` feature: `debug=gdb` is reported
//! and ignored, and a debug trap (#DB, #BP) is fatal. The trap frame's layout ([`TrapRegs`])
//! is the stub's, since the trap stubs in `traps.rs` save it either way.

// The flag constants there are the stub's alone.
#[allow(dead_code)]
#[path = "regs.rs"]
mod regs;

pub use regs::TrapRegs;

/// Boot's hook: says that this image has no stub if the command line asks for one.
pub(crate) fn start_if_requested(_pt_base: u64) {
    if crate::cmdline_value(crate::cmdline(), "debug") == Some("gdb") {
        crate::println!(
            "xenia: debug=gdb: no gdb stub: the image was built without the runtime's `gdb` \
             feature"
        );
    }
}

/// The panic handler's hook: there is no debugger to stop for.
pub(crate) fn stop_on_panic() {}

/// The debug trap's entry: no session can take it (the caller reports it as fatal).
pub(crate) fn on_debug_trap(_regs: &mut TrapRegs) -> bool {
    false
}
