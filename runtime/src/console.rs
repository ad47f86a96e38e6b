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

pub(crate) use imp::*;

struct Writer;

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
        metadata.level() <= log::max_level()
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
