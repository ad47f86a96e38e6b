//! Call stacks for crash reports: the panic handler, the CPU exception handler and the
//! allocator's out-of-memory path print the chain of return addresses and the image's build id.
//!
//! Guest images keep frame pointers (`-C force-frame-pointers=yes`, among the rustflags in
//! runtime/Cargo.toml that `cargo xenia build` applies), so every frame starts with the
//! caller's `rbp` and, above it, the return address. The walk reads only words inside the one
//! kernel stack (the boot stack of `boot.rs`, on which the executor
//! runs every task), 8-byte aligned, each frame strictly above the previous one, and stops at a
//! null frame pointer (set at `_start`), a return address outside `.text` or [`MAX_FRAMES`]; so
//! a corrupt stack ends the list instead of faulting in the crash path.
//!
//! The format is stable for `scripts/symbolize`, which turns it into `function (file:line)`
//! lines with the unstripped ELF (`target/xen/<app>.debug`, same build id):
//!
//! ```text
//! backtrace: build-id 3f1c…
//! backtrace: #0 pc 0xffffffff80012345      (the faulting instruction, exceptions only)
//! backtrace: #1 ra 0xffffffff80004567      (return addresses, innermost first)
//! backtrace: end (2 frames, stack ends)
//! ```
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use core::fmt::{self, Write};
use core::ops::Range;

/// Frames printed at most.
pub const MAX_FRAMES: usize = 64;

/// Why a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A null frame pointer: the outermost frame (`_start` clears `rbp`).
    End,
    /// A frame pointer outside the stack, misaligned, or not above the previous one.
    BadFrame(u64),
    /// A return address outside the image's code.
    BadReturn(u64),
    /// [`MAX_FRAMES`] frames were reported.
    Depth,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::End => f.write_str("stack ends"),
            Stop::BadFrame(fp) => write!(f, "stopped at frame pointer {fp:#x}"),
            Stop::BadReturn(ra) => write!(f, "stopped at return address {ra:#x}"),
            Stop::Depth => write!(f, "stopped after {MAX_FRAMES}"),
        }
    }
}

/// Walks the frame-pointer chain from `fp`, calling `each` with every return address
/// (innermost first, at most `max`), and says why it stopped.
///
/// `read` reads the 8-byte word at an address; it is called only for addresses `a` with
/// `a % 8 == 0` and `stack.start <= a`, `a + 8 <= stack.end`. A return address is accepted only
/// inside `text`.
pub fn walk(
    mut fp: u64,
    stack: Range<u64>,
    text: Range<u64>,
    max: usize,
    read: impl Fn(u64) -> u64,
    mut each: impl FnMut(u64),
) -> Stop {
    let mut lowest = stack.start;
    for _ in 0..max {
        if fp == 0 {
            return Stop::End;
        }
        // The frame holds two words: the saved rbp at fp and the return address at fp + 8.
        let in_stack = fp >= lowest && fp.checked_add(16).is_some_and(|e| e <= stack.end);
        if !in_stack || !fp.is_multiple_of(8) {
            return Stop::BadFrame(fp);
        }
        let ra = read(fp + 8);
        if !text.contains(&ra) {
            // The outermost frame's "return address" can be anything once the chain has left
            // the code; a zero one is the end too.
            return if ra == 0 {
                Stop::End
            } else {
                Stop::BadReturn(ra)
            };
        }
        each(ra);
        lowest = fp + 16;
        fp = read(fp);
    }
    Stop::Depth
}

/// The build id (the descriptor of a GNU `NT_GNU_BUILD_ID` note) in `note`, the bytes of the
/// image's `.note.gnu.build-id` section.
pub fn build_id(note: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let b = note.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (namesz, descsz, kind) = (word(0)?, word(4)?, word(8)?);
    const NT_GNU_BUILD_ID: usize = 3;
    if kind != NT_GNU_BUILD_ID || note.get(12..12 + namesz)? != b"GNU\0" {
        return None;
    }
    let desc = 12 + namesz.div_ceil(4) * 4;
    note.get(desc..desc + descsz).filter(|d| !d.is_empty())
}

/// Prints a backtrace in the format above: `pc` (the faulting instruction, if any) as frame 0,
/// then the return addresses of the chain from `fp`.
pub fn write(
    out: &mut impl Write,
    build_id: Option<&[u8]>,
    pc: Option<u64>,
    fp: u64,
    stack: Range<u64>,
    text: Range<u64>,
    read: impl Fn(u64) -> u64,
) -> fmt::Result {
    out.write_str("backtrace: build-id ")?;
    match build_id {
        Some(id) => {
            for b in id {
                write!(out, "{b:02x}")?;
            }
        }
        None => out.write_str("none")?,
    }
    out.write_char('\n')?;
    let mut n = 0usize;
    let mut result = Ok(());
    if let Some(pc) = pc {
        result = writeln!(out, "backtrace: #{n} pc {pc:#018x}");
        n += 1;
    }
    let max = MAX_FRAMES - n;
    let stop = walk(fp, stack, text, max, read, |ra| {
        if result.is_ok() {
            result = writeln!(out, "backtrace: #{n} ra {ra:#018x}");
        }
        n += 1;
    });
    result?;
    writeln!(out, "backtrace: end ({n} frames, {stop})")
}

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicBool, Ordering};

    unsafe extern "C" {
        static BOOT_STACK: u8;
        static BOOT_STACK_TOP: u8;
        static _text: u8;
        static _etext: u8;
        static __build_id_note: u8;
        static __build_id_note_end: u8;
    }

    static CRASHING: AtomicBool = AtomicBool::new(false);

    /// Marks the start of a crash report; `false` if one is already under way (a fault or a
    /// panic while reporting), in which case the caller should print little and shut down.
    /// Also frees the console if the crash interrupted a writer.
    pub fn begin_crash() -> bool {
        crate::console::unlock_for_crash();
        !CRASHING.swap(true, Ordering::SeqCst)
    }

    /// The image's build id, from the linker's note.
    pub fn image_build_id() -> Option<&'static [u8]> {
        let start = &raw const __build_id_note;
        let end = &raw const __build_id_note_end;
        let len = (end as usize).saturating_sub(start as usize);
        // SAFETY: the linker script puts the note between these two symbols, in read-only data.
        super::build_id(unsafe { core::slice::from_raw_parts(start, len) })
    }

    /// Prints the backtrace of the frame chain from `fp` (with `pc` as frame 0 if given).
    pub fn print(pc: Option<u64>, fp: u64) {
        let stack = (&raw const BOOT_STACK) as u64..(&raw const BOOT_STACK_TOP) as u64;
        let text = (&raw const _text) as u64..(&raw const _etext) as u64;
        let read = |a: u64| {
            // SAFETY: `walk` reads only aligned words inside the boot stack, which is mapped.
            unsafe { (a as *const u64).read_volatile() }
        };
        let mut out = crate::console::Writer;
        let _ = super::write(&mut out, image_build_id(), pc, fp, stack, text, read);
    }

    /// Prints the backtrace of the caller (its return address is the first frame).
    #[inline(never)]
    pub fn print_here() {
        let fp: u64;
        // SAFETY: reads rbp, this function's frame pointer (frame pointers are forced).
        unsafe {
            core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        print(None, fp);
    }
}

#[cfg(target_os = "none")]
pub use guest::{begin_crash, print, print_here};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    const STACK: u64 = 0x1000;
    const TEXT: Range<u64> = 0xffff_8000..0xffff_9000;

    /// A fake stack of 64 words at 0x1000 and a reader for it.
    fn stack(words: &[(u64, u64)]) -> impl Fn(u64) -> u64 {
        let mut mem = [0u64; 64];
        for &(addr, v) in words {
            mem[((addr - STACK) / 8) as usize] = v;
        }
        move |a| {
            assert!(
                a % 8 == 0 && (STACK..STACK + 64 * 8).contains(&a),
                "read at {a:#x}"
            );
            mem[((a - STACK) / 8) as usize]
        }
    }

    fn run(fp: u64, mem: &[(u64, u64)], max: usize) -> (Vec<u64>, Stop) {
        let mut got = Vec::new();
        let stop = walk(fp, STACK..STACK + 64 * 8, TEXT, max, stack(mem), |ra| {
            got.push(ra)
        });
        (got, stop)
    }

    #[test]
    fn follows_a_chain_to_its_end() {
        let mem = [
            (0x1010, 0x1040),
            (0x1018, 0xffff_8010),
            (0x1040, 0x1100),
            (0x1048, 0xffff_8020),
            (0x1100, 0),
            (0x1108, 0xffff_8030),
        ];
        assert_eq!(
            run(0x1010, &mem, 64),
            (
                alloc::vec![0xffff_8010, 0xffff_8020, 0xffff_8030],
                Stop::End
            )
        );
    }

    #[test]
    fn stops_at_a_bad_frame_pointer() {
        // Pointing down (a loop), misaligned, outside the stack, one word below its end.
        for bad in [0x1008, 0x1043, 0x9000, 0x11f8] {
            let mem = [(0x1010, 0x1040), (0x1018, 0xffff_8010), (0x1040, bad)];
            let mem = [mem.as_slice(), &[(0x1048, 0xffff_8020)]].concat();
            let (got, stop) = run(0x1010, &mem, 64);
            assert_eq!(got, alloc::vec![0xffff_8010, 0xffff_8020], "{bad:#x}");
            assert_eq!(stop, Stop::BadFrame(bad));
        }
        // A frame pointing at itself.
        let (got, stop) = run(0x1010, &[(0x1010, 0x1010), (0x1018, 0xffff_8010)], 64);
        assert_eq!((got.len(), stop), (1, Stop::BadFrame(0x1010)));
    }

    #[test]
    fn stops_at_a_return_address_outside_the_code() {
        let mem = [(0x1010, 0x1040), (0x1018, 0xffff_8010), (0x1048, 0x4242)];
        assert_eq!(
            run(0x1010, &mem, 64),
            (alloc::vec![0xffff_8010], Stop::BadReturn(0x4242))
        );
    }

    #[test]
    fn stops_at_the_depth_limit() {
        // Frames every 16 bytes, each pointing to the next.
        let mem: Vec<(u64, u64)> = (0..30u64)
            .flat_map(|i| {
                [
                    (0x1000 + 16 * i, 0x1010 + 16 * i),
                    (0x1008 + 16 * i, 0xffff_8000 + i),
                ]
            })
            .collect();
        let (got, stop) = run(0x1000, &mem, 5);
        assert_eq!(got, (0..5).map(|i| 0xffff_8000 + i).collect::<Vec<_>>());
        assert_eq!(stop, Stop::Depth);
    }

    #[test]
    fn writes_the_stable_format() {
        let mem = [(0x1010, 0), (0x1018, 0xffff_8010)];
        let mut out = String::new();
        let id = [0x3f, 0x01, 0xab];
        write(
            &mut out,
            Some(&id),
            Some(0xffff_8123),
            0x1010,
            STACK..STACK + 64 * 8,
            TEXT,
            stack(&mem),
        )
        .unwrap();
        assert_eq!(
            out,
            "backtrace: build-id 3f01ab\n\
             backtrace: #0 pc 0x00000000ffff8123\n\
             backtrace: #1 ra 0x00000000ffff8010\n\
             backtrace: end (2 frames, stack ends)\n"
        );
    }

    #[test]
    fn reads_a_gnu_build_id_note() {
        let mut note = Vec::new();
        for w in [4u32, 5, 3] {
            note.extend_from_slice(&w.to_le_bytes());
        }
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(build_id(&note), Some(&[1u8, 2, 3, 4, 5][..]));
        // Wrong type, wrong owner, truncated, empty.
        let mut other = note.clone();
        other[8] = 1;
        assert_eq!(build_id(&other), None);
        let mut owner = note.clone();
        owner[12] = b'X';
        assert_eq!(build_id(&owner), None);
        assert_eq!(build_id(&note[..18]), None);
        assert_eq!(build_id(&[]), None);
    }
}
