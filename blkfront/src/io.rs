//! The I/O calls: [`Blkfront::read`], [`write`](Blkfront::write), [`flush`](Blkfront::flush)
//! and [`discard`](Blkfront::discard), each a future that splits its work into requests,
//! submits them as slots and pages allow and collects their responses in any order.

use crate::slots::{Inner, Slot, SlotState};
use crate::{Blkfront, BlkfrontError, SEGS_PER_INDIRECT_PAGE, WIRE_SECTOR};
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use xenia_xen::abi::blkif_wire::{encode_segment, RequestSlot};
use xenia_xen::abi::{
    BlkifRequestSegment, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER,
};
use xenia_xen::grant::GrantedPage;
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenstore::Transport;

impl<T: Transport> Blkfront<'_, T> {
    /// Reads `buf.len()` bytes (a multiple of the sector size) from `sector` on.
    pub async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlkfrontError> {
        let count = self.sectors_of(buf.len())?;
        self.check_range(sector, count)?;
        if buf.is_empty() {
            return Ok(());
        }
        Io::new(self, Kind::Read(buf), self.wire_sector(sector)).await
    }

    /// Writes `buf` (a multiple of the sector size) from `sector` on. Refused without sending
    /// anything if the disk is read-only or the sectors are beyond its end.
    pub async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlkfrontError> {
        if self.info.read_only {
            return Err(BlkfrontError::ReadOnly);
        }
        let count = self.sectors_of(buf.len())?;
        self.check_range(sector, count)?;
        if buf.is_empty() {
            return Ok(());
        }
        Io::new(self, Kind::Write(buf), self.wire_sector(sector)).await
    }

    /// Makes completed writes durable: `BLKIF_OP_FLUSH_DISKCACHE` (or a write barrier if the
    /// backend offers only that). Without either feature the backend has no cache to flush
    /// and this returns at once.
    pub async fn flush(&self) -> Result<(), BlkfrontError> {
        let op = if self.features.flush_cache {
            BLKIF_OP_FLUSH_DISKCACHE
        } else if self.features.barrier {
            BLKIF_OP_WRITE_BARRIER
        } else {
            return Ok(());
        };
        Io::new(self, Kind::Flush(op), 0).await
    }

    /// Discards `count` sectors from `sector` on (the backend may then read them as zeros or
    /// as their old contents). Needs `feature-discard`; refused on a read-only disk.
    pub async fn discard(&self, sector: u64, count: u64) -> Result<(), BlkfrontError> {
        if !self.features.discard {
            return Err(BlkfrontError::Unsupported);
        }
        if self.info.read_only {
            return Err(BlkfrontError::ReadOnly);
        }
        self.check_range(sector, count)?;
        if count == 0 {
            return Ok(());
        }
        let nr = self.wire_sector(count);
        Io::new(self, Kind::Discard(nr), self.wire_sector(sector)).await
    }
}

enum Kind<'b> {
    Read(&'b mut [u8]),
    Write(&'b [u8]),
    Flush(u8),
    /// Wire sectors to discard.
    Discard(u64),
}

impl Kind<'_> {
    fn len(&self) -> usize {
        match self {
            Kind::Read(b) => b.len(),
            Kind::Write(b) => b.len(),
            _ => 0,
        }
    }
}

/// One I/O call: its requests, submitted as slots and pages allow, collected as they complete.
struct Io<'s, 'a, 'b, T: Transport> {
    front: &'s Blkfront<'a, T>,
    kind: Kind<'b>,
    /// Wire sector of the start.
    sector: u64,
    /// Requests in all.
    chunks: usize,
    /// Next request to submit.
    next: usize,
    /// Bytes per request.
    chunk_bytes: usize,
    /// (chunk, slot, generation) of the requests in flight.
    inflight: Vec<(usize, usize, u32)>,
}

impl<'s, 'a, 'b, T: Transport> Io<'s, 'a, 'b, T> {
    fn new(front: &'s Blkfront<'a, T>, kind: Kind<'b>, sector: u64) -> Self {
        let len = kind.len();
        let chunk_bytes = front.segs_per_request * PAGE_SIZE;
        let chunks = if len == 0 {
            1
        } else {
            len.div_ceil(chunk_bytes)
        };
        Io {
            front,
            chunk_bytes,
            kind,
            sector,
            chunks,
            next: 0,
            inflight: Vec::new(),
        }
    }

    /// Submits request `chunk` if resources allow.
    fn submit(&mut self, inner: &mut Inner<'_>, chunk: usize) -> Option<(usize, u32)> {
        let handle = self.front.handle;
        let off = chunk * self.chunk_bytes;
        let len = self.kind.len().saturating_sub(off).min(self.chunk_bytes);
        let sector = self.sector + (off / WIRE_SECTOR) as u64;
        match &self.kind {
            Kind::Read(_) | Kind::Write(_) => {
                let (op, data) = match &self.kind {
                    Kind::Write(b) => (BLKIF_OP_WRITE, Some(&b[off..off + len])),
                    _ => (BLKIF_OP_READ, None),
                };
                let nsegs = len.div_ceil(PAGE_SIZE);
                let indirect = nsegs > BLKIF_MAX_SEGMENTS_PER_REQUEST;
                let ind_pages = if indirect {
                    nsegs.div_ceil(SEGS_PER_INDIRECT_PAGE)
                } else {
                    0
                };
                inner.try_submit(op, indirect, nsegs + ind_pages, |id, pages| {
                    let (data_pages, ind) = pages.split_at(nsegs);
                    let seg = |i: usize, page: &GrantedPage| {
                        let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE);
                        if let Some(d) = data {
                            // SAFETY: the page is a live PAGE_SIZE allocation of the pool, not
                            // in flight (just taken), and `bytes <= PAGE_SIZE`.
                            unsafe {
                                core::ptr::copy_nonoverlapping(
                                    d[i * PAGE_SIZE..].as_ptr(),
                                    page.as_ptr(),
                                    bytes,
                                )
                            };
                        }
                        BlkifRequestSegment {
                            gref: page.gref(),
                            first_sect: 0,
                            last_sect: (bytes / WIRE_SECTOR - 1) as u8,
                        }
                    };
                    if !indirect {
                        let mut segs =
                            [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
                        for (i, (s, page)) in segs.iter_mut().zip(data_pages).enumerate() {
                            *s = seg(i, page);
                        }
                        return RequestSlot::request(op, handle, id, sector, &segs[..nsegs]);
                    }
                    let mut grefs = [0u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
                    for (g, p) in grefs.iter_mut().zip(ind) {
                        *g = p.gref();
                    }
                    for (i, page) in data_pages.iter().enumerate() {
                        let entry = encode_segment(&seg(i, page));
                        let table = ind[i / SEGS_PER_INDIRECT_PAGE].as_ptr() as *mut u64;
                        // SAFETY: the indirect page is a live, page-aligned PAGE_SIZE
                        // allocation of the pool; entry `i % 512` of 8 bytes is inside it.
                        unsafe { table.add(i % SEGS_PER_INDIRECT_PAGE).write(entry) };
                    }
                    RequestSlot::indirect(op, nsegs as u16, handle, id, sector, &grefs[..ind_pages])
                })
            }
            Kind::Flush(op) => {
                let op = *op;
                inner.try_submit(op, false, 0, |id, _| {
                    RequestSlot::request(op, handle, id, 0, &[])
                })
            }
            Kind::Discard(nr) => {
                let nr = *nr;
                // Plain discard: we never ask for BLKIF_DISCARD_SECURE.
                let flag = 0;
                inner.try_submit(BLKIF_OP_DISCARD, false, 0, |id, _| {
                    RequestSlot::discard(flag, handle, id, sector, nr)
                })
            }
        }
    }

    /// Copies a completed read's pages into the caller's buffer.
    fn copy_out(&mut self, slot: &Slot, chunk: usize) {
        if let Kind::Read(buf) = &mut self.kind {
            let off = chunk * self.chunk_bytes;
            let len = buf.len().saturating_sub(off).min(self.chunk_bytes);
            // Data pages come first; indirect pages (if any) follow.
            for (i, page) in slot.pages.iter().take(len.div_ceil(PAGE_SIZE)).enumerate() {
                let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE);
                let dst = &mut buf[off + i * PAGE_SIZE..off + i * PAGE_SIZE + bytes];
                // SAFETY: the page is a live PAGE_SIZE allocation; the backend answered, so it
                // is done writing it (a hostile backend writing on only spoils its own data).
                unsafe { core::ptr::copy_nonoverlapping(page.as_ptr(), dst.as_mut_ptr(), bytes) };
            }
        }
    }

    /// Lets go of the requests still in flight: answered ones are released, the others are
    /// released when their response comes.
    fn abandon(&mut self, inner: &mut Inner<'_>, wake: &mut Vec<Waker>) {
        for (_, index, _) in self.inflight.drain(..) {
            match inner.slots[index].state {
                SlotState::Done(_) => inner.release(index, wake),
                _ => {
                    let s = &mut inner.slots[index];
                    s.state = SlotState::Abandoned;
                    s.waker = None;
                }
            }
        }
        // We may have been the task registered on the port.
        inner.take_all_wakers(wake);
    }

    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        wake: &mut Vec<Waker>,
    ) -> Poll<Result<(), BlkfrontError>> {
        let front = self.front;
        loop {
            if front.events.epoch() != front.epoch {
                // Resumed in a new domain: nothing on the old ring will ever be answered.
                front
                    .inner
                    .borrow_mut()
                    .fail_all(BlkfrontError::Resumed, wake);
            }
            let mut inner = front.inner.borrow_mut();
            inner.drain(wake);
            // Collect what completed, in any order.
            let mut i = 0;
            let mut failure = None;
            while i < self.inflight.len() {
                let (chunk, index, gen) = self.inflight[i];
                let slot = &inner.slots[index];
                debug_assert_eq!(slot.gen, gen);
                let SlotState::Done(r) = &slot.state else {
                    i += 1;
                    continue;
                };
                let r = r.clone();
                if r.is_ok() {
                    self.copy_out(&inner.slots[index], chunk);
                } else if failure.is_none() {
                    failure = Some(r.clone());
                }
                inner.release(index, wake);
                self.inflight.swap_remove(i);
            }
            if let Some(Err(e)) = failure {
                // The call failed: let go of its other requests now.
                self.abandon(&mut inner, wake);
                return Poll::Ready(Err(e));
            }
            if self.next == self.chunks && self.inflight.is_empty() {
                // Every request was answered (before the device broke, if it did).
                inner.take_all_wakers(wake);
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = inner.broken.clone() {
                self.abandon(&mut inner, wake);
                return Poll::Ready(Err(e));
            }
            let mut pushed = false;
            while self.next < self.chunks {
                match self.submit(&mut inner, self.next) {
                    Some((index, gen)) => {
                        self.inflight.push((self.next, index, gen));
                        self.next += 1;
                        pushed = true;
                    }
                    None => break,
                }
            }
            if pushed {
                front.notify(&mut inner);
            }
            if self.next == self.chunks && self.inflight.is_empty() {
                // We may have been the task registered on the port: let another take over.
                inner.take_all_wakers(wake);
                return Poll::Ready(Ok(()));
            }
            // Wait: for our responses, and for a slot or pages if requests are left.
            for &(_, index, _) in &self.inflight {
                inner.slots[index].waker = Some(cx.waker().clone());
            }
            if self.next < self.chunks {
                inner.waiters.push(cx.waker().clone());
            }
            if inner.ring.outstanding_requests() == 0 {
                // Nothing can complete: the slots or pages we wait for are held by other
                // tasks' finished requests, which those tasks release (and wake us).
                return Poll::Pending;
            }
            match inner.ring.final_check_for_responses() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    inner.fail_all(BlkfrontError::Ring(e), wake);
                    continue;
                }
            }
            drop(inner);
            match front.events.poll_port(front.port, cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: Transport> Future for Io<'_, '_, '_, T> {
    type Output = Result<(), BlkfrontError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut wake = Vec::new();
        let r = this.poll_io(cx, &mut wake);
        // Our own waker may be among them (joined futures share one): a spurious wake is
        // harmless, a skipped one could stall a sibling.
        for w in wake {
            w.wake();
        }
        r
    }
}

impl<T: Transport> Drop for Io<'_, '_, '_, T> {
    fn drop(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        let mut wake = Vec::new();
        if let Ok(mut inner) = self.front.inner.try_borrow_mut() {
            self.abandon(&mut inner, &mut wake);
        }
        for w in wake {
            w.wake();
        }
    }
}
