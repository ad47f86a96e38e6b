//! The ring's slots: each request in flight, matched to its response by id (slot index and
//! generation), and the bounce pages it holds.

use crate::{BlkfrontError, Stats, Violation};
use alloc::vec::Vec;
use core::task::Waker;
use xenia_ring::FrontRing;
use xenia_xen::abi::blkif_wire::{RequestSlot, ResponseSlot};
use xenia_xen::abi::{
    BlkifResponse, BLKIF_OP_INDIRECT, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
};
use xenia_xen::grant::{GrantPool, GrantedPage};

/// Where a ring slot's request is.
pub(crate) enum SlotState {
    Free,
    /// Sent; the owner waits.
    InFlight,
    /// Sent; the owner went away. The pages return to the pool when the response comes.
    Abandoned,
    /// Answered; the owner has not collected it yet.
    Done(Result<(), BlkfrontError>),
}

/// A ring slot: the request it carries (or carried) and who waits for it.
pub(crate) struct Slot {
    pub(crate) gen: u32,
    /// The operation the response must name.
    pub(crate) op: u8,
    /// An indirect request: its response may also name `BLKIF_OP_INDIRECT`.
    pub(crate) indirect: bool,
    pub(crate) state: SlotState,
    pub(crate) pages: Vec<GrantedPage>,
    pub(crate) waker: Option<Waker>,
}

/// The device's mutable state: the ring, the bounce pages and the slots.
pub(crate) struct Inner<'a> {
    pub(crate) ring: FrontRing<RequestSlot, ResponseSlot>,
    pub(crate) pool: GrantPool<'a>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) free_slots: Vec<usize>,
    /// Tasks waiting for a free slot or pages.
    pub(crate) waiters: Vec<Waker>,
    /// Why the device is broken: every request fails with this error.
    pub(crate) broken: Option<BlkfrontError>,
    pub(crate) stats: Stats,
}

impl Inner<'_> {
    /// Requests sent whose response has not been matched (some may never be, if the
    /// backend answered them with a bad id).
    pub(crate) fn in_flight(&self) -> u32 {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::InFlight | SlotState::Abandoned))
            .count() as u32
    }

    /// Wakers of every task that waits on this device.
    pub(crate) fn take_all_wakers(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.waiters);
        for s in &mut self.slots {
            if let Some(w) = s.waker.take() {
                out.push(w);
            }
        }
    }

    /// Marks the device broken (once): logs why, fails every request in flight with `e` and
    /// frees every slot whose owner went away. Later requests fail with `e` too.
    pub(crate) fn fail_all(&mut self, e: BlkfrontError, wake: &mut Vec<Waker>) {
        if self.broken.is_some() {
            return;
        }
        if e == BlkfrontError::Resumed {
            // Expected after a restore or migration: the caller reconnects and resubmits.
            log::info!("{e}");
        } else {
            log::error!("{e}: every request fails from now on");
        }
        self.stats.broken += 1;
        self.broken = Some(e.clone());
        for index in 0..self.slots.len() {
            match self.slots[index].state {
                SlotState::InFlight => {
                    self.slots[index].state = SlotState::Done(Err(e.clone()));
                }
                // Nobody collects these: free them now. Their pages go back to the pool,
                // which is never used again (the backend may still write them).
                SlotState::Abandoned => self.release(index, wake),
                SlotState::Free | SlotState::Done(_) => {}
            }
        }
        self.take_all_wakers(wake);
    }

    /// Consumes every response on the ring, completing the matching slots. The first
    /// response that breaks the protocol marks the device broken.
    pub(crate) fn drain(&mut self, wake: &mut Vec<Waker>) {
        while self.broken.is_none() {
            let rsp = match self.ring.poll_response() {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => return self.fail_all(BlkfrontError::Ring(e), wake),
            };
            // Copied once out of the shared page; only the copy is looked at.
            let BlkifResponse {
                id,
                operation: op,
                status,
            } = rsp.response();
            if let Err(v) = self.complete(id, op, status, wake) {
                match v {
                    Violation::UnknownId(_) | Violation::DuplicateId(_) => {
                        self.stats.bad_responses += 1
                    }
                    Violation::WrongOperation { .. } => self.stats.wrong_operation += 1,
                    Violation::BadStatus { .. } => self.stats.bad_status += 1,
                }
                self.fail_all(BlkfrontError::Broken(v), wake);
            }
        }
    }

    /// Completes the request that response (`id`, `op`, `status`) answers, or says which
    /// rule the response breaks.
    fn complete(
        &mut self,
        id: u64,
        op: u8,
        status: i16,
        wake: &mut Vec<Waker>,
    ) -> Result<(), Violation> {
        let index = (id & 0xffff_ffff) as usize;
        let gen = (id >> 32) as u32;
        let slot = match self.slots.get_mut(index) {
            Some(s) if s.gen == gen => s,
            // Generations only grow; a slot never used has generation 0 and state Free.
            _ => return Err(Violation::UnknownId(id)),
        };
        if !matches!(slot.state, SlotState::InFlight | SlotState::Abandoned) {
            return Err(if slot.gen == 0 {
                Violation::UnknownId(id)
            } else {
                Violation::DuplicateId(id)
            });
        }
        if !(op == slot.op || (slot.indirect && op == BLKIF_OP_INDIRECT)) {
            return Err(Violation::WrongOperation {
                id,
                op,
                expected: slot.op,
            });
        }
        let result = match status {
            BLKIF_RSP_OKAY => Ok(()),
            BLKIF_RSP_EOPNOTSUPP => Err(BlkfrontError::Unsupported),
            BLKIF_RSP_ERROR => Err(BlkfrontError::Io(status)),
            status => return Err(Violation::BadStatus { id, status }),
        };
        self.stats.responses += 1;
        if matches!(slot.state, SlotState::Abandoned) {
            self.release(index, wake);
        } else {
            slot.state = SlotState::Done(result);
            if let Some(w) = slot.waker.take() {
                wake.push(w);
            }
        }
        Ok(())
    }

    /// Frees slot `index` and returns its pages to the pool.
    pub(crate) fn release(&mut self, index: usize, wake: &mut Vec<Waker>) {
        let slot = &mut self.slots[index];
        slot.state = SlotState::Free;
        slot.waker = None;
        for p in slot.pages.drain(..) {
            self.pool.give_back(p);
        }
        self.free_slots.push(index);
        // A slot and pages are free: whoever waits for them may go on. Everyone is woken so
        // that some live task registers again on the event channel.
        self.take_all_wakers(wake);
    }

    /// Puts a request on the ring if a slot and `npages` pages are free; `build` gets the
    /// request id and the pages (to copy data in) and makes the request. Returns the slot and
    /// its generation.
    pub(crate) fn try_submit(
        &mut self,
        op: u8,
        indirect: bool,
        npages: usize,
        build: impl FnOnce(u64, &[GrantedPage]) -> RequestSlot,
    ) -> Option<(usize, u32)> {
        if self.broken.is_some() || self.ring.is_full() || self.pool.available() < npages {
            return None;
        }
        let index = self.free_slots.pop()?;
        let slot = &mut self.slots[index];
        for _ in 0..npages {
            // Checked above: the pool has npages free.
            slot.pages.extend(self.pool.take());
        }
        slot.gen = slot.gen.wrapping_add(1);
        slot.op = op;
        slot.indirect = indirect;
        slot.state = SlotState::InFlight;
        let gen = slot.gen;
        let id = u64::from(gen) << 32 | index as u64;
        let req = build(id, &slot.pages);
        if self.ring.push_request(req).is_err() {
            // Not full (checked above), so this cannot happen; undo all the same.
            let mut wake = Vec::new();
            self.release(index, &mut wake);
            return None;
        }
        self.stats.requests += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight());
        Some((index, gen))
    }
}
