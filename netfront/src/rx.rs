//! Receiving: pages posted on the rx ring, responses assembled into frames
//! ([`assemble`](crate::assemble)).

use crate::assemble::{RxError, Step};
use crate::{Netfront, Violation, RX_RING_SIZE};
use xenia_xen::abi::netif_wire::{RxRequestSlot, RxResponseSlot};
use xenia_xen::abi::{
    NETRXF_csum_blank, NetifRxRequest, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, XEN_NETIF_EXTRA_TYPE_GSO,
};

impl Netfront<'_> {
    /// Takes rx responses off the ring (while the frame queue has room), assembles frames and
    /// reposts the buffers.
    pub(crate) fn poll_rx(&mut self) -> bool {
        let mut progress = false;
        while self.broken.is_none() && self.rx_frames.len() < self.config.rx_queue {
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
        // The copy of the response we judge (the ring slot may change under us).
        let r = rsp.response();
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
        let frame_flags = self.rx_assembler.frame_flags();
        let s = &mut self.stats;
        s.rx_slots += 1;
        let violation = match step {
            Step::Dropped(RxError::BadId) => Some(Violation::RxBadId {
                expected: slot as u16,
                got: r.id,
            }),
            Step::Dropped(RxError::BadStatus)
                if r.status != NETIF_RSP_ERROR && r.status != NETIF_RSP_DROPPED =>
            {
                Some(Violation::RxBadStatus(r.status))
            }
            Step::Dropped(RxError::BadSize) => Some(Violation::RxBadSize {
                offset: r.offset,
                size: r.status,
            }),
            Step::Dropped(RxError::BadFlags) => Some(Violation::RxBadFlags(r.flags)),
            Step::Dropped(RxError::TooLong) => Some(Violation::RxTooManySlots),
            Step::Dropped(RxError::Oversized) => {
                Some(Violation::RxOversized(self.rx_assembler.max_len()))
            }
            _ => None,
        };
        match step {
            Step::More => {}
            Step::ExtraInfo => {
                s.rx_extra_info += 1;
                if rsp.extra_info().r#type == XEN_NETIF_EXTRA_TYPE_GSO {
                    s.rx_gso_frames += 1;
                }
            }
            Step::Dropped(reason) => match reason {
                RxError::BadId => s.rx_bad_id += 1,
                RxError::BadStatus => s.rx_bad_status += 1,
                RxError::BadSize | RxError::Empty => s.rx_bad_size += 1,
                RxError::BadFlags => s.rx_bad_flags += 1,
                RxError::TooLong | RxError::Oversized => s.rx_too_long += 1,
            },
            Step::Frame(mut data) => {
                if frame_flags & NETRXF_csum_blank != 0 {
                    // The sender left the checksum to "hardware": we are it.
                    if crate::checksum::complete_rx(&mut data) {
                        s.rx_csum_completed += 1;
                    }
                }
                s.rx_packets += 1;
                s.rx_bytes += data.len() as u64;
                self.rx_frames.push_back(data);
            }
        }
        if let Some(v) = violation {
            self.break_device(v);
        }
    }

    /// Posts free receive pages to the backend.
    pub(crate) fn refill_rx(&mut self, notify: bool) {
        if self.rx.error().is_some() || self.broken.is_some() {
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
            self.stats.rx_notifications += 1;
            let _ = self.events.send(self.port);
        }
    }
}
