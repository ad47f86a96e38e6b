//! The guest's console: `print!`/`println!` and the `log` backend, on the PV console ring.
//!
//! On the host (tests, `cargo run` of an example) the same macros write to stdout.

use core::fmt::{self, Write};

#[cfg(target_os = "none")]
mod imp {
    use spin::Mutex;
    use xenia_xen::console::Console;

    pub(crate) static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

    pub(crate) fn write_bytes(mut bytes: &[u8]) {
        let mut guard = CONSOLE.lock();
        let Some(con) = guard.as_mut() else { return };
        let mut stalls = 0u32;
        while !bytes.is_empty() {
            match con.write_some(bytes) {
                Ok(0) => {
                    // The ring is full: wait for xenconsoled to consume (it notifies us),
                    // but never forever: without a backend, output is dropped.
                    stalls += 1;
                    if stalls > 200 {
                        return;
                    }
                    let deadline = crate::time::now_ns().map(|t| t + 10_000_000).unwrap_or(0);
                    if deadline == 0 {
                        xenia_xen::sched::yield_now();
                    } else {
                        let _ = xenia_xen::sched::poll(&[con.port()], deadline);
                    }
                }
                Ok(n) => {
                    stalls = 0;
                    bytes = &bytes[n..];
                }
                Err(_) => return,
            }
        }
    }

    /// Reads input typed at `xl console` into `buf`, waiting for some; returns the count.
    pub async fn read(buf: &mut [u8]) -> usize {
        loop {
            let (n, port) = {
                let mut guard = CONSOLE.lock();
                let Some(con) = guard.as_mut() else { return 0 };
                (con.read(buf).unwrap_or(0), con.port())
            };
            if n > 0 {
                return n;
            }
            match crate::services::events() {
                Some(ev) => ev.wait(port).await,
                None => return 0,
            }
        }
    }

    /// Frees the console for a crash report if the crash interrupted a writer.
    pub(crate) fn unlock_for_crash() {
        if CONSOLE.is_locked() {
            // SAFETY: one vCPU and no interrupts (events are polled): the holder was interrupted
            // by the panic or exception being reported, and the crash path never returns to it.
            unsafe { CONSOLE.force_unlock() };
        }
    }

    /// Waits (up to `timeout_ns`) until xenconsoled has read everything we wrote.
    pub(crate) fn flush(timeout_ns: u64) {
        let mut guard = CONSOLE.lock();
        let Some(con) = guard.as_mut() else { return };
        let start = crate::time::now_ns().unwrap_or(0);
        while let Ok(n) = con.pending_output() {
            if n == 0 {
                break;
            }
            let now = crate::time::now_ns().unwrap_or(0);
            if now.saturating_sub(start) > timeout_ns {
                break;
            }
            let _ = xenia_xen::sched::poll(&[con.port()], now + 5_000_000);
        }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    pub(crate) fn write_bytes(bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stdout().write_all(bytes);
    }

    pub(crate) fn flush(_timeout_ns: u64) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

pub(crate) use imp::{flush, write_bytes};
#[cfg(target_os = "none")]
pub(crate) use imp::{unlock_for_crash, CONSOLE};

/// Reads input typed at the console (`xl console`) into `buf`, waiting until there is some.
/// Returns the number of bytes read (0 if the console is gone).
#[cfg(target_os = "none")]
pub async fn read(buf: &mut [u8]) -> usize {
    imp::read(buf).await
}

/// Reads one line typed at the console (without its line ending; at most 1024 bytes).
#[cfg(target_os = "none")]
pub async fn read_line() -> alloc::string::String {
    let mut line = alloc::vec::Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 1024 {
        if read(&mut byte).await == 0 {
            break;
        }
        match byte[0] {
            b'\n' | b'\r' if !line.is_empty() => break,
            b'\n' | b'\r' => {}
            b => line.push(b),
        }
    }
    alloc::string::String::from_utf8_lossy(&line).into_owned()
}

/// Writes formatted text to the console (without allocating: usable in crash paths).
pub(crate) struct Writer;

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _ = Writer.write_fmt(args);
}

/// Prints to the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // The gdbstub crate logs from inside the GDB stub, which runs in the trap handler and
        // may have interrupted a console writer: its records are dropped.
        metadata.level() <= log::max_level() && !metadata.target().starts_with("gdbstub")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let t = crate::time::now_ns().unwrap_or(0);
            _print(format_args!(
                "[{:>5}.{:06}] {:<5} {}: {}\n",
                t / 1_000_000_000,
                (t % 1_000_000_000) / 1000,
                record.level(),
                record.target(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the console as the `log` backend, at the level given by `loglevel=` on the command
/// line (error, warn, info, debug, trace; default info).
pub fn init_log(level: Option<&str>) {
    let filter = match level {
        Some("off") => log::LevelFilter::Off,
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(filter);
    }
}
