//! Sending: frames copied into granted pages and queued on the tx ring; responses reclaim
//! the pages.

use crate::tso::{self, Offload};
use crate::{Netfront, NetfrontError, Violation, MAX_FRAME_LEN};
use alloc::vec::Vec;
use xenia_xen::abi::{NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY};
use xenia_xen::memory::PAGE_SIZE;

impl Netfront<'_> {
    /// Whether a frame of `len` bytes can be queued now (after reclaiming tx responses).
    /// (A frame may need one ring slot more than pages, for the GSO extra info.)
    pub fn can_send(&mut self, len: usize) -> bool {
        self.reclaim_tx();
        let pages = tso::data_slots(len);
        self.connected
            && self.broken.is_none()
            && self.tx.error().is_none()
            && self.tx.free_requests() as usize > pages
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
        self.queue_frame(frame.len(), |pages| {
            copy_to_pages(frame, pages);
            Offload::None
        });
        Ok(())
    }

    /// Sends `frame` with `offload` (a GSO or `csum_blank` frame whose checksum fields
    /// [`tso::prepare_csum_blank`] wrote).
    pub(crate) fn send_offloaded(
        &mut self,
        frame: &[u8],
        offload: Offload,
    ) -> Result<(), NetfrontError> {
        if !self.len_ok(frame.len(), offload) {
            self.stats.tx_too_big += 1;
            return Err(NetfrontError::FrameTooLarge(frame.len()));
        }
        if !self.can_send(frame.len()) {
            return Err(self.error().unwrap_or(if self.connected {
                NetfrontError::Busy
            } else {
                NetfrontError::NotConnected
            }));
        }
        self.queue_frame(frame.len(), |pages| {
            copy_to_pages(frame, pages);
            offload
        });
        Ok(())
    }

    pub(crate) fn check_len(&mut self, len: usize) -> Result<(), NetfrontError> {
        if !self.len_ok(len, Offload::None) {
            self.stats.tx_too_big += 1;
            return Err(NetfrontError::FrameTooLarge(len));
        }
        Ok(())
    }

    /// Whether a `len`-byte frame with `offload` may be sent (nothing counted).
    pub(crate) fn len_ok(&self, len: usize, offload: Offload) -> bool {
        let max = match offload {
            Offload::Gso { .. } if self.gso_tx => tso::MAX_GSO_FRAME,
            _ => self.max_frame_len().min(MAX_FRAME_LEN),
        };
        len != 0 && len <= max && (self.sg || len <= PAGE_SIZE)
    }

    /// Puts a `len`-byte frame on the tx ring, one page per [`PAGE_SIZE`] bytes; `fill`
    /// writes the frame into the pages (page `i` holds bytes `i * PAGE_SIZE ..`, from its
    /// start) and says which offload the frame asks for. The caller checked
    /// [`can_send`](Self::can_send) and the length (at most [`tso::MAX_GSO_FRAME`]).
    pub(crate) fn queue_frame(&mut self, len: usize, fill: impl FnOnce(&[*mut u8]) -> Offload) {
        let n = tso::data_slots(len);
        let mut ptrs = [core::ptr::null_mut(); tso::MAX_TX_DATA_SLOTS];
        let mut refs = [(0, 0); tso::MAX_TX_DATA_SLOTS];
        for i in 0..n {
            let (Some(page), Some(id)) = (self.tx_pool.take(), self.tx_free_ids.pop()) else {
                // can_send said there was room; nothing was lent out since.
                unreachable!("netfront: tx resources vanished");
            };
            ptrs[i] = page.as_ptr();
            refs[i] = (page.gref(), id);
            self.tx_slots[id as usize] = Some(page);
        }
        let offload = fill(&ptrs[..n]);
        let Ok(slots) = tso::requests(len, &refs[..n], offload) else {
            unreachable!("netfront: a checked length fits the tx slot limits");
        };
        self.stats.tx_slots += slots.len() as u64;
        for slot in slots {
            if self.tx.push_request(slot).is_err() {
                unreachable!("netfront: tx ring full after can_send");
            }
        }
        match offload {
            Offload::None => {}
            Offload::Csum => self.stats.tx_csum_offload += 1,
            Offload::Gso { .. } => self.stats.tx_gso_frames += 1,
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
            self.stats.tx_notifications += 1;
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
                    if rsp.status == NETIF_RSP_NULL {
                        // The answer to a GSO extra-info slot: its id means nothing.
                        continue;
                    }
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

/// Copies `frame` into `pages`, [`PAGE_SIZE`] bytes each from its start.
fn copy_to_pages(frame: &[u8], pages: &[*mut u8]) {
    for (chunk, &page) in frame.chunks(PAGE_SIZE).zip(pages) {
        // SAFETY: each page is a whole page of ours, taken from the pool for this frame (no
        // request refers to it yet), and a chunk is at most a page long.
        unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), page, chunk.len()) };
    }
}
