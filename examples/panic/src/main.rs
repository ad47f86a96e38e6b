//! A guest that crashes on purpose, to show what a crash looks like: the message, the call stack
//! (`backtrace:` lines that `scripts/run` turns into `function (file:line)`), then the domain
//! crashes. The command line chooses the crash:
//!
//! - (default) `panic!` in `main`, with `reason=...` in its message;
//! - `crash=page-fault`: a spawned task reads an unmapped address (a CPU exception);
//! - `crash=oom`: `main` asks for more heap than the domain has (the allocator's failure path);
//! - `crash=state`: a panic in a function with a local variable, `checksum`, derived from
//!   `seed=N` (default 4711) and printed in the message: a core dump's variable to look at in
//!   gdb (README "Debugging a guest").
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

/// An address no Xenia guest maps (the low half holds nothing; the kernel lives at the top).
const UNMAPPED: usize = 0xdead_0000;

/// Reads the word at `addr`; kept out of line so that it is a frame of its own.
#[inline(never)]
fn read_word(addr: usize) -> u64 {
    // SAFETY: not safe at all: the point is to fault on an unmapped address.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// The spawned task of `crash=page-fault`.
async fn faulting_task(addr: usize) -> u64 {
    xenia::yield_now().await;
    read_word(addr)
}

/// Allocates `bytes` and touches them (`crash=oom`).
#[inline(never)]
fn allocate(bytes: usize) -> usize {
    let v = alloc::vec![1u8; bytes];
    v.iter().map(|&b| b as usize).sum()
}

/// `crash=state`: panics with a local variable worth printing in gdb. The variable lives in this
/// frame's stack slot (`black_box` takes its address), so a core dump has its value.
#[inline(never)]
fn panic_with_state(seed: u64) -> ! {
    let checksum = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    core::hint::black_box(&checksum);
    panic!("panic with state from the panic example: checksum {checksum:#x}");
}

#[xenia::main]
async fn main() {
    match xenia::cmdline_arg("crash") {
        Some("page-fault") => {
            xenia::println!("about to read {UNMAPPED:#x} in a spawned task");
            let v = xenia::spawn(faulting_task(UNMAPPED)).await;
            xenia::println!("read {v:#x}: the page fault did not happen");
        }
        Some("oom") => {
            let bytes = 1usize << 30;
            xenia::println!("about to allocate {bytes} bytes");
            let sum = allocate(bytes);
            xenia::println!("allocated {sum} bytes: the allocation did not fail");
        }
        Some("state") => {
            let seed = xenia::cmdline_arg("seed")
                .and_then(|s| s.parse().ok())
                .unwrap_or(4711);
            xenia::println!("about to panic with seed {seed}");
            panic_with_state(seed);
        }
        _ => {
            xenia::println!("about to panic");
            let reason = xenia::cmdline_arg("reason").unwrap_or("no reason given");
            panic!("deliberate panic from the panic example ({reason})");
        }
    }
}
