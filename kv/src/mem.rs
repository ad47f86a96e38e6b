//! An in-memory [`Device`] for tests: it keeps a journal of every write and flush (to replay a
//! crash at any byte of the write stream) and can fail writes, flushes and reads on demand.

use crate::Device;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A write of these bytes at this byte offset.
    Write(u64, Vec<u8>),
    /// A flush.
    Flush,
}

/// An injected failure (or an access beyond the end) of a [`MemDisk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemDiskError;

impl core::fmt::Display for MemDiskError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("in-memory disk: injected failure or access beyond the end")
    }
}

impl core::error::Error for MemDiskError {}

/// Failures to inject (each is consumed when it fires).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail the next write; with `Some(n)`, its first `n` bytes reach the disk (a torn write).
    pub fail_write: Option<Option<usize>>,
    /// Fail the next flush.
    pub fail_flush: bool,
    /// Fail every read.
    pub fail_reads: bool,
}

/// A disk in memory.
#[derive(Debug)]
pub struct MemDisk {
    sector_size: u32,
    state: RefCell<State>,
}

#[derive(Debug)]
struct State {
    data: Vec<u8>,
    journal: Vec<Op>,
    /// Whether writes and flushes are journaled.
    journaling: bool,
    faults: Faults,
}

impl MemDisk {
    /// A zeroed disk of `sectors` sectors of `sector_size` bytes.
    pub fn new(sectors: u64, sector_size: u32) -> MemDisk {
        Self::from_image(
            vec![0; (sectors * u64::from(sector_size)) as usize],
            sector_size,
        )
    }

    /// A disk holding `image` (its length a multiple of `sector_size`).
    pub fn from_image(image: Vec<u8>, sector_size: u32) -> MemDisk {
        assert!(image.len().is_multiple_of(sector_size as usize));
        MemDisk {
            sector_size,
            state: RefCell::new(State {
                data: image,
                journal: Vec::new(),
                journaling: true,
                faults: Faults::default(),
            }),
        }
    }

    /// A copy of the disk's bytes.
    pub fn image(&self) -> Vec<u8> {
        self.state.borrow().data.clone()
    }

    /// The journal of writes and flushes so far.
    pub fn journal(&self) -> Vec<Op> {
        self.state.borrow().journal.clone()
    }

    /// Turns the journal on (the default) or off (for tests that measure memory: the journal
    /// keeps a copy of every write).
    pub fn set_journaling(&self, on: bool) {
        self.state.borrow_mut().journaling = on;
    }

    /// Sets the faults to inject.
    pub fn set_faults(&self, f: Faults) {
        self.state.borrow_mut().faults = f;
    }

    /// Overwrites bytes directly (to corrupt the disk), bypassing the journal.
    pub fn poke(&self, offset: usize, bytes: &[u8]) {
        self.state.borrow_mut().data[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, MemDiskError> {
        let ss = self.sector_size as usize;
        let start = usize::try_from(sector).map_err(|_| MemDiskError)?;
        let start = start.checked_mul(ss).ok_or(MemDiskError)?;
        let end = start.checked_add(len).ok_or(MemDiskError)?;
        if !len.is_multiple_of(ss) || end > self.state.borrow().data.len() {
            return Err(MemDiskError);
        }
        Ok(start..end)
    }
}

/// Replays the first `cut` bytes of the journal's write stream onto `base`: writes before the
/// cut land whole, the write the cut falls in lands up to the cut (a torn write; the rest of
/// its bytes keep `base`'s contents, or become `garbage` if given), later writes are lost.
pub fn replay(base: &[u8], journal: &[Op], cut: u64, garbage: Option<u8>) -> Vec<u8> {
    let mut img = base.to_vec();
    let mut pos = 0u64;
    for op in journal {
        if let Op::Write(off, data) = op {
            let off = *off as usize;
            let len = data.len() as u64;
            if pos + len <= cut {
                img[off..off + data.len()].copy_from_slice(data);
            } else {
                let n = (cut - pos) as usize;
                img[off..off + n].copy_from_slice(&data[..n]);
                if let Some(g) = garbage {
                    for (i, b) in img[off + n..off + data.len()].iter_mut().enumerate() {
                        *b = g.wrapping_add(i as u8).wrapping_mul(37);
                    }
                }
                return img;
            }
            pos += len;
        }
    }
    img
}

/// Bytes in the journal's write stream.
pub fn stream_len(journal: &[Op]) -> u64 {
    journal
        .iter()
        .map(|op| match op {
            Op::Write(_, d) => d.len() as u64,
            Op::Flush => 0,
        })
        .sum()
}

impl Device for MemDisk {
    type Error = MemDiskError;

    fn sector_size(&self) -> u32 {
        self.sector_size
    }

    fn sectors(&self) -> u64 {
        (self.state.borrow().data.len() / self.sector_size as usize) as u64
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), MemDiskError> {
        let r = self.range(sector, buf.len())?;
        let s = self.state.borrow();
        if s.faults.fail_reads {
            return Err(MemDiskError);
        }
        buf.copy_from_slice(&s.data[r]);
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), MemDiskError> {
        let r = self.range(sector, buf.len())?;
        let mut s = self.state.borrow_mut();
        if let Some(torn) = s.faults.fail_write.take() {
            let n = torn.unwrap_or(0).min(buf.len());
            let start = r.start;
            s.data[start..start + n].copy_from_slice(&buf[..n]);
            if s.journaling {
                s.journal.push(Op::Write(start as u64, buf[..n].to_vec()));
            }
            return Err(MemDiskError);
        }
        s.data[r.clone()].copy_from_slice(buf);
        if s.journaling {
            s.journal.push(Op::Write(r.start as u64, buf.to_vec()));
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), MemDiskError> {
        let mut s = self.state.borrow_mut();
        if core::mem::take(&mut s.faults.fail_flush) {
            return Err(MemDiskError);
        }
        if s.journaling {
            s.journal.push(Op::Flush);
        }
        Ok(())
    }
}
