//! The stub's connection: the second PV console's rings, polled directly (the executor is
//! stopped while GDB has the guest, so nothing here is async).

use core::sync::atomic::{AtomicU64, Ordering};
use gdbstub::conn::{Connection, ConnectionExt};
use xenia_xen::console::{Console, ConsoleError};

/// Output is gathered up to this size before it goes to the ring.
const OUT_BUF: usize = 512;
/// How long a full output ring may stay full before the connection counts as broken.
const WRITE_TIMEOUT_NS: u64 = 10_000_000_000;
/// How long one wait for the backend lasts (then the rings are checked again).
const WAIT_NS: u64 = 100_000_000;

/// Why the connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The ring or the notification failed.
    Console(ConsoleError),
    /// The backend did not take our output for [`WRITE_TIMEOUT_NS`].
    Stalled,
}

impl core::fmt::Display for ConnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnError::Console(e) => write!(f, "gdb connection: {e}"),
            ConnError::Stalled => {
                f.write_str("gdb connection: the console backend stopped reading")
            }
        }
    }
}

impl core::error::Error for ConnError {}

/// Input is taken from the ring this much at a time (one notification per batch).
const IN_BUF: usize = 256;

/// GDB's end of the second console.
pub struct ConsoleConnection {
    con: Console,
    out: [u8; OUT_BUF],
    len: usize,
    input: [u8; IN_BUF],
    in_pos: usize,
    in_len: usize,
}

impl ConsoleConnection {
    /// Speaks on `con`.
    pub fn new(con: Console) -> Self {
        ConsoleConnection {
            con,
            out: [0; OUT_BUF],
            len: 0,
            input: [0; IN_BUF],
            in_pos: 0,
            in_len: 0,
        }
    }

    /// The console's event channel.
    pub fn port(&self) -> u32 {
        self.con.port()
    }

    /// Blocks (in Xen) until the backend notifies us or `WAIT_NS` pass. The port's pending bit
    /// is cleared first, so a notification that came before is not taken for a new one; the
    /// caller checks the ring again after each wait.
    fn wait(&self) {
        let port = self.con.port();
        if let Some(shared) = crate::shared_info::get() {
            // SAFETY: shared_info stays mapped; the pending words are only accessed atomically
            // by us and Xen.
            let word = unsafe {
                AtomicU64::from_ptr(&raw mut (*shared).evtchn_pending[(port / 64) as usize])
            };
            word.fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
        }
        let now = crate::time::now_ns().unwrap_or(0);
        let _ = xenia_xen::sched::poll(&[port], now + WAIT_NS);
    }

    /// The next input byte without taking it, refilling from the ring if needed.
    fn peek_now(&mut self) -> Result<Option<u8>, ConnError> {
        if self.in_pos == self.in_len {
            self.in_pos = 0;
            self.in_len = self.con.read(&mut self.input).map_err(ConnError::Console)?;
        }
        Ok((self.in_pos < self.in_len).then(|| self.input[self.in_pos]))
    }
}

impl Connection for ConsoleConnection {
    type Error = ConnError;

    fn write(&mut self, byte: u8) -> Result<(), ConnError> {
        if self.len == OUT_BUF {
            self.flush()?;
        }
        self.out[self.len] = byte;
        self.len += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnError> {
        let mut done = 0;
        let mut since = None;
        while done < self.len {
            let n = self
                .con
                .write_some(&self.out[done..self.len])
                .map_err(ConnError::Console)?;
            if n > 0 {
                done += n;
                since = None;
                continue;
            }
            let now = crate::time::now_ns().unwrap_or(0);
            let start = *since.get_or_insert(now);
            if now.saturating_sub(start) > WRITE_TIMEOUT_NS {
                self.len = 0;
                return Err(ConnError::Stalled);
            }
            self.wait();
        }
        self.len = 0;
        Ok(())
    }
}

impl ConnectionExt for ConsoleConnection {
    /// Waits for GDB's next byte, as long as it takes: the guest is stopped for the debugger.
    fn read(&mut self) -> Result<u8, ConnError> {
        loop {
            if let Some(b) = self.peek_now()? {
                self.in_pos += 1;
                return Ok(b);
            }
            self.wait();
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, ConnError> {
        self.peek_now()
    }
}
