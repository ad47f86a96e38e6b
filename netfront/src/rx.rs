//! Receiving: pages posted on the rx ring, responses assembled into frames
//! ([`assemble`](crate::assemble)).

use crate::assemble::{RxError, Step};
use crate::{Netfront, RX_RING_SIZE};
use xenia_xen::abi::netif_wire::{RxRequestSlot, RxResponseSlot};
use xenia_xen::abi::NetifRxRequest;

impl Netfront<'_> {
    /// Takes rx responses off the ring (while the frame queue has room), assembles frames and
    /// reposts the buffers.
    pub(crate) fn poll_rx(&mut self) -> bool {
        let mut progress = false;
        while self.rx_frames.len() < self.config.rx_queue {
            let had_error = self.rx.error().is_some();
            let idx = self.rx.rsp_cons();
            match self.rx.poll_response() {
                Ok(None) => break,
                Ok(Some(rsp)) => {
                    progress = true;
                    self.rx_slot(idx, rsp);
                }
                Err(e) => {
                    self.count_ring_error("rx", had_error, e);
                    break;
                }
            }
        }
        if progress {
            self.refill_rx(true);
        }
        progress
    }

    /// Handles the response in rx ring slot `idx`.
    fn rx_slot(&mut self, idx: u32, rsp: RxResponseSlot) {
        let slot = idx as usize % RX_RING_SIZE;
        // Whatever the response says, the backend is done with the buffer of this slot.
        let Some(page) = self.rx_slots[slot].take() else {
            // Every published request has its page; a response can only answer one.
            self.stats.ring_errors += 1;
            return;
        };
        // The request of ring slot `slot` had id `slot` (< RX_RING_SIZE = 256).
        let step = self.rx_assembler.push(slot as u16, rsp, |offset, dst| {
            // SAFETY: offset + dst.len() <= PAGE_SIZE was checked; the page is ours and the
            // backend is done with it (it answered the request); `dst` has room for the bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    page.as_ptr().add(offset),
                    dst.as_mut_ptr(),
                    dst.len(),
                )
            };
        });
        self.rx_pool.give_back(page);
        let s = &mut self.stats;
        match step {
            Step::More => {}
            Step::ExtraInfo => s.rx_extra_info += 1,
            Step::Dropped(reason) => match reason {
                RxError::BadId => s.rx_bad_id += 1,
                RxError::BadStatus => s.rx_bad_status += 1,
                RxError::BadSize | RxError::Empty => s.rx_bad_size += 1,
                RxError::BadFlags => s.rx_bad_flags += 1,
                RxError::TooLong => s.rx_too_long += 1,
            },
            Step::Frame(data) => {
                s.rx_packets += 1;
                s.rx_bytes += data.len() as u64;
                self.rx_frames.push_back(data);
            }
        }
    }

    /// Posts free receive pages to the backend.
    pub(crate) fn refill_rx(&mut self, notify: bool) {
        if self.rx.error().is_some() {
            return;
        }
        let mut pushed = false;
        while self.rx.free_requests() > 0 {
            let idx = self.rx.req_prod_pvt();
            let slot = idx as usize % RX_RING_SIZE;
            if self.rx_slots[slot].is_some() {
                // Cannot happen: the request this slot held was answered and consumed.
                break;
            }
            let Some(page) = self.rx_pool.take() else {
                break;
            };
            let req = NetifRxRequest {
                id: slot as u16,
                pad: 0,
                gref: page.gref(),
            };
            if self.rx.push_request(RxRequestSlot(req)).is_err() {
                self.rx_pool.give_back(page);
                break;
            }
            self.rx_slots[slot] = Some(page);
            pushed = true;
        }
        // Publish (always), notify (if the backend asked and we are connected).
        if pushed && self.rx.push_requests_and_check_notify() && notify {
            let _ = self.events.send(self.port);
        }
    }
}
