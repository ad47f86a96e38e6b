//! Sending: frames copied into granted pages and queued on the tx ring; responses reclaim
//! the pages.

use crate::{Netfront, NetfrontError, Violation, MAX_FRAME_LEN};
use alloc::vec::Vec;
use xenia_xen::abi::netif_wire::TxRequestSlot;
use xenia_xen::abi::{
    NETTXF_more_data, NetifTxRequest, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY,
};
use xenia_xen::memory::PAGE_SIZE;

impl Netfront<'_> {
    /// Whether a frame of `len` bytes can be queued now (after reclaiming tx responses).
    pub fn can_send(&mut self, len: usize) -> bool {
        self.reclaim_tx();
        let pages = len.div_ceil(PAGE_SIZE).max(1);
        self.connected
            && self.broken.is_none()
            && self.tx.error().is_none()
            && self.tx.free_requests() as usize >= pages
            && self.tx_free_ids.len() >= pages
            && self.tx_pool.available() >= pages
    }

    /// Sends one Ethernet frame (copied into granted pages).
    ///
    /// # Errors
    /// [`NetfrontError::FrameTooLarge`] (counted in `tx_too_big`) for an empty frame or one longer
    /// than [`max_frame_len`](Self::max_frame_len); [`NetfrontError::Busy`] when no slot or page
    /// is free (nothing is counted: retry later); [`NetfrontError::Ring`] if the backend broke the
    /// tx ring; [`NetfrontError::Broken`] once the backend broke the protocol; [`NetfrontError::NotConnected`] after [`disconnect`](Self::disconnect).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetfrontError> {
        self.check_len(frame.len())?;
        if !self.connected {
            return Err(NetfrontError::NotConnected);
        }
        if let Some(v) = self.broken {
            return Err(NetfrontError::Broken(v));
        }
        if let Some(e) = self.tx.error() {
            return Err(NetfrontError::Ring(e));
        }
        if !self.can_send(frame.len()) {
            return Err(NetfrontError::Busy);
        }
        self.queue_frame(frame.len(), |page, off| {
            let chunk = &frame[off..frame.len().min(off + PAGE_SIZE)];
            // SAFETY: `page` is a whole page of ours, free in the pool (no request refers to
            // it), and `chunk` is at most a page long.
            unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), page, chunk.len()) };
        });
        Ok(())
    }

    pub(crate) fn check_len(&mut self, len: usize) -> Result<(), NetfrontError> {
        let max = self.max_frame_len().min(MAX_FRAME_LEN);
        if len == 0 || len > max || (!self.sg && len > PAGE_SIZE) {
            self.stats.tx_too_big += 1;
            return Err(NetfrontError::FrameTooLarge(len));
        }
        Ok(())
    }

    /// Puts a `len`-byte frame on the tx ring, one page per [`PAGE_SIZE`] bytes; `fill`
    /// writes the bytes at frame offset `off` into each page. The caller checked
    /// [`can_send`](Self::can_send) and the length.
    pub(crate) fn queue_frame(&mut self, len: usize, mut fill: impl FnMut(*mut u8, usize)) {
        let pages = len.div_ceil(PAGE_SIZE);
        for i in 0..pages {
            let (Some(page), Some(id)) = (self.tx_pool.take(), self.tx_free_ids.pop()) else {
                // can_send said there was room; nothing was lent out since.
                unreachable!("netfront: tx resources vanished");
            };
            let off = i * PAGE_SIZE;
            let chunk = (len - off).min(PAGE_SIZE);
            fill(page.as_ptr(), off);
            let req = NetifTxRequest {
                gref: page.gref(),
                offset: 0,
                flags: if i + 1 < pages { NETTXF_more_data } else { 0 },
                id,
                // The first slot carries the whole frame's size, the others their own.
                size: if i == 0 { len as u16 } else { chunk as u16 },
            };
            self.tx_slots[id as usize] = Some(page);
            if self.tx.push_request(TxRequestSlot(req)).is_err() {
                unreachable!("netfront: tx ring full after can_send");
            }
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        self.tx_unpublished = true;
        if !self.tx_batching {
            self.flush_tx();
        }
    }

    /// With batching on, frames sent are only written to the ring; the backend sees them (and
    /// gets at most one notification for all of them) at the next [`flush_tx`](Self::flush_tx)
    /// or [`has_work`](Self::has_work). A network stack that sends several frames per poll
    /// turns this on and flushes after each poll. Off by default: each frame is published
    /// (and the backend notified if it asked) as it is sent.
    pub fn set_tx_batching(&mut self, on: bool) {
        self.tx_batching = on;
        if !on {
            self.flush_tx();
        }
    }

    /// Publishes the tx requests written since the last flush, and notifies the backend if
    /// it asked to be (Xen's "push requests and check notify").
    pub fn flush_tx(&mut self) {
        if !self.tx_unpublished {
            return;
        }
        self.tx_unpublished = false;
        if self.tx.push_requests_and_check_notify() {
            let _ = self.events.send(self.port);
        }
    }

    /// Takes tx responses off the ring and returns their pages to the pool (a page the
    /// backend still maps is held back until it is unmapped).
    pub(crate) fn reclaim_tx(&mut self) -> bool {
        let mut progress = false;
        if !self.tx_held.is_empty() {
            let grants = self.grants;
            let (free, held): (Vec<_>, Vec<_>) = core::mem::take(&mut self.tx_held)
                .into_iter()
                .partition(|p| !grants.is_mapped(p.gref()));
            self.tx_held = held;
            progress |= !free.is_empty();
            for p in free {
                self.tx_pool.give_back(p);
            }
        }
        while self.broken.is_none() {
            let had_error = self.tx.error().is_some();
            match self.tx.poll_response() {
                Ok(None) => break,
                Ok(Some(slot)) => {
                    progress = true;
                    // Copied once out of the shared page; only the copy is looked at.
                    let rsp = slot.response();
                    if let Err(v) = self.complete_tx(rsp.id, rsp.status) {
                        self.break_device(v);
                    }
                }
                Err(e) => {
                    self.count_ring_error("tx", had_error, e);
                    break;
                }
            }
        }
        progress
    }
}

impl Netfront<'_> {
    /// Takes back the page of tx request `id`, answered with `status`, or says which rule
    /// the response breaks. A response with a bad status but a good id still answers its
    /// request.
    fn complete_tx(&mut self, id: u16, status: i16) -> Result<(), Violation> {
        let Some(page) = self.tx_slots.get_mut(id as usize).and_then(Option::take) else {
            self.stats.tx_bad_id += 1;
            return Err(Violation::TxBadId(id));
        };
        if self.grants.is_mapped(page.gref()) {
            // Answered but still mapped: the backend may still read it.
            self.stats.tx_still_mapped += 1;
            self.tx_held.push(page);
        } else {
            self.tx_pool.give_back(page);
        }
        self.tx_free_ids.push(id);
        match status {
            NETIF_RSP_OKAY => Ok(()),
            NETIF_RSP_ERROR | NETIF_RSP_DROPPED => {
                self.stats.tx_errors += 1;
                Ok(())
            }
            _ => {
                self.stats.tx_bad_status += 1;
                Err(Violation::TxBadStatus(status))
            }
        }
    }
}
