//! The PV console: the byte rings shared with xenconsoled (`xencons_interface`, io/console.h)
//! and an event channel. Output goes to `out`, input typed at `xl console` arrives in `in`.
//! The ring logic (and its checks of xenconsoled's indices) is `xenia_ring::console`.

use crate::error::XenError;
use crate::events::{self, Port};
use core::ptr::NonNull;
use xenia_ring::console::ConsoleFront;
use xenia_ring::RingError;

/// The guest's end of the PV console.
pub struct Console {
    front: ConsoleFront,
    port: Port,
}

// SAFETY: the console page is shared memory accessed only through the ring crate's atomic and
// volatile accesses; callers serialise users (the runtime keeps it in a lock).
unsafe impl Send for Console {}

/// Console errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleError {
    /// xenconsoled left the ring's indices inconsistent.
    Ring(RingError),
    /// A hypercall failed.
    Xen(XenError),
}

impl core::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConsoleError::Ring(e) => write!(f, "console: xenconsoled broke the ring: {e}"),
            ConsoleError::Xen(e) => write!(f, "console: cannot notify xenconsoled: {e}"),
        }
    }
}

impl core::error::Error for ConsoleError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ConsoleError::Ring(e) => Some(e),
            ConsoleError::Xen(e) => Some(e),
        }
    }
}

impl Console {
    /// Attaches to the console page at `page` with event channel `port`.
    ///
    /// # Safety
    /// `page` must be the mapped console page, valid for the lifetime of the `Console`, and
    /// only one `Console` may use it.
    pub unsafe fn new(page: NonNull<u8>, port: Port) -> Result<Console, ConsoleError> {
        // SAFETY: forwarded from the caller.
        let front = unsafe { ConsoleFront::new(page) }.map_err(ConsoleError::Ring)?;
        Ok(Console { front, port })
    }

    /// The console's event channel port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Copies as much of `buf` into the output ring as fits and notifies xenconsoled; returns
    /// how much it took (0 when the ring is full).
    pub fn write_some(&mut self, buf: &[u8]) -> Result<usize, ConsoleError> {
        let n = self.front.write(buf).map_err(ConsoleError::Ring)?;
        if n > 0 {
            events::send(self.port).map_err(ConsoleError::Xen)?;
        }
        Ok(n)
    }

    /// Bytes written but not yet consumed by xenconsoled.
    pub fn pending_output(&mut self) -> Result<u32, ConsoleError> {
        self.front.output().pending().map_err(ConsoleError::Ring)
    }

    /// Reads typed input; returns how many bytes were copied (0 if none is waiting).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConsoleError> {
        let n = self.front.read(buf).map_err(ConsoleError::Ring)?;
        if n > 0 {
            events::send(self.port).map_err(ConsoleError::Xen)?;
        }
        Ok(n)
    }
}
