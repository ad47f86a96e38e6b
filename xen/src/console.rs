//! The PV console: a byte ring shared with xenconsoled (`xencons_interface`, io/console.h)
//! and an event channel. Output goes to `out`, input typed at `xl console` arrives in `in`.

use crate::error::XenError;
use crate::events::{self, Port};
use core::sync::atomic::{fence, AtomicU32, Ordering};

const IN_OFF: usize = 0;
const IN_SIZE: u32 = 1024;
const OUT_OFF: usize = 1024;
const OUT_SIZE: u32 = 2048;
const IN_CONS: usize = 3072;
const IN_PROD: usize = 3076;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// The guest's end of the PV console.
pub struct Console {
    page: *mut u8,
    port: Port,
}

// SAFETY: the console page is shared memory accessed only with atomics and volatile copies;
// the guest is single-vCPU and callers serialise writers (the runtime keeps it in a lock).
unsafe impl Send for Console {}

/// Console errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleError {
    /// The backend's index runs ahead of ours by more than the ring size.
    BadIndex,
    /// A hypercall failed.
    Xen(XenError),
}

impl Console {
    /// Attaches to the console page at `page` with event channel `port`.
    ///
    /// # Safety
    /// `page` must be the mapped console page, valid for the lifetime of the `Console`.
    pub unsafe fn new(page: *mut u8, port: Port) -> Console {
        Console { page, port }
    }

    fn idx(&self, off: usize) -> &AtomicU32 {
        // SAFETY: off is one of the index fields inside the page, 4-byte aligned.
        unsafe { &*(self.page.add(off) as *const AtomicU32) }
    }

    /// The console's event channel port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Copies as much of `buf` into the output ring as fits; returns how much it took.
    pub fn write_some(&mut self, buf: &[u8]) -> Result<usize, ConsoleError> {
        let cons = self.idx(OUT_CONS).load(Ordering::Acquire);
        let prod = self.idx(OUT_PROD).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > OUT_SIZE {
            return Err(ConsoleError::BadIndex);
        }
        let n = buf.len().min((OUT_SIZE - used) as usize);
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = (prod.wrapping_add(i as u32) & (OUT_SIZE - 1)) as usize;
            // SAFETY: at < OUT_SIZE keeps the write inside `out`.
            unsafe { self.page.add(OUT_OFF + at).write_volatile(b) };
        }
        if n > 0 {
            fence(Ordering::Release);
            self.idx(OUT_PROD)
                .store(prod.wrapping_add(n as u32), Ordering::Release);
            events::send(self.port).map_err(ConsoleError::Xen)?;
        }
        Ok(n)
    }

    /// Bytes written but not yet consumed by the backend.
    pub fn pending_output(&self) -> Result<u32, ConsoleError> {
        let cons = self.idx(OUT_CONS).load(Ordering::Acquire);
        let prod = self.idx(OUT_PROD).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > OUT_SIZE {
            return Err(ConsoleError::BadIndex);
        }
        Ok(used)
    }

    /// Reads typed input; returns how many bytes were copied (0 if none is waiting).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConsoleError> {
        let prod = self.idx(IN_PROD).load(Ordering::Acquire);
        let cons = self.idx(IN_CONS).load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(cons);
        if avail > IN_SIZE {
            return Err(ConsoleError::BadIndex);
        }
        fence(Ordering::Acquire);
        let n = buf.len().min(avail as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = (cons.wrapping_add(i as u32) & (IN_SIZE - 1)) as usize;
            // SAFETY: at < IN_SIZE keeps the read inside `in`.
            *b = unsafe { self.page.add(IN_OFF + at).read_volatile() };
        }
        if n > 0 {
            fence(Ordering::Release);
            self.idx(IN_CONS)
                .store(cons.wrapping_add(n as u32), Ordering::Release);
            events::send(self.port).map_err(ConsoleError::Xen)?;
        }
        Ok(n)
    }
}
