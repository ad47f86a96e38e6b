//! Received frames from the rx responses that carry them: a pure state machine, with no ring,
//! grant or page in sight (the caller copies the bytes of a slot when asked).
//!
//! A frame arrives as a chain of responses: every one but the last is flagged
//! `NETRXF_more_data`, the first one's `status` is the bytes in its slot. A response flagged
//! `NETRXF_extra_info` is followed by an extra-info slot (and that by more while
//! `XEN_NETIF_EXTRA_FLAG_MORE` is set); extra info is skipped. Everything in a response is
//! checked: its id must be the one of its ring slot, its status not an error, its flags known,
//! its data inside the page, the chain no longer than [`MAX_RX_SLOTS`] slots or the frame
//! bound (the MTU's, at most [`MAX_FRAME_LEN`] bytes), and the frame not empty. The first failed check drops the whole
//! frame; the rest of its chain is consumed and ignored.

use crate::{MAX_FRAME_LEN, MAX_RX_SLOTS};
use alloc::vec::Vec;
use xenia_xen::abi::netif_wire::RxResponseSlot;
use xenia_xen::abi::{
    NETRXF_csum_blank, NETRXF_data_validated, NETRXF_extra_info, NETRXF_more_data,
    XEN_NETIF_EXTRA_FLAG_MORE,
};
use xenia_xen::memory::PAGE_SIZE;

/// The rx flags we understand; anything else is a bogus response.
const KNOWN_RX_FLAGS: u16 =
    NETRXF_data_validated | NETRXF_csum_blank | NETRXF_more_data | NETRXF_extra_info;

/// Why a received frame is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxError {
    /// A response's id was not the one of its slot.
    BadId,
    /// A response's status was an error.
    BadStatus,
    /// A response's data lay beyond its page.
    BadSize,
    /// A response carried flags we do not know.
    BadFlags,
    /// The chain was longer than [`MAX_RX_SLOTS`] slots.
    TooLong,
    /// The frame was longer than the assembler's bound (the MTU's frame size, at most
    /// [`MAX_FRAME_LEN`] bytes).
    Oversized,
    /// The frame had no bytes.
    Empty,
}

/// What one slot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// It was an extra-info slot, skipped.
    ExtraInfo,
    /// It was taken; the frame goes on (or is being dropped, which was already reported).
    More,
    /// The frame is dropped for this reason (reported once per frame, at its first bad slot,
    /// or at its end if it was empty).
    Dropped(RxError),
    /// The frame is complete.
    Frame(Vec<u8>),
}

/// The state between slots: the frame so far and whether extra-info slots come next.
#[derive(Debug)]
pub(crate) struct Assembler {
    data: Vec<u8>,
    slots: usize,
    dropped: Option<RxError>,
    extras: bool,
    /// The longest frame accepted.
    max_len: usize,
    /// The longest frame accepted when its first slot announces extra info (a GSO frame):
    /// `max_len` unless large receive was negotiated.
    gso_max_len: usize,
    /// The `NETRXF_*` flags of the frame's first slot.
    first_flags: u16,
    /// Those of the last frame completed.
    done_flags: u16,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler::new(MAX_FRAME_LEN)
    }
}

impl Assembler {
    /// An assembler that accepts frames of at most `max_len` bytes (capped at
    /// [`MAX_FRAME_LEN`]).
    pub(crate) fn new(max_len: usize) -> Self {
        Self::with_gso(max_len, max_len)
    }

    /// An assembler that accepts frames of at most `max_len` bytes, or `gso_max_len` for a
    /// frame whose first slot is flagged `NETRXF_extra_info` (a GSO frame; the caller
    /// negotiated large receive), both capped at [`MAX_FRAME_LEN`].
    pub(crate) fn with_gso(max_len: usize, gso_max_len: usize) -> Self {
        Assembler {
            data: Vec::new(),
            slots: 0,
            dropped: None,
            extras: false,
            max_len: max_len.min(MAX_FRAME_LEN),
            gso_max_len: gso_max_len.clamp(max_len, MAX_FRAME_LEN),
            first_flags: 0,
            done_flags: 0,
        }
    }

    /// The `NETRXF_*` flags of the first slot of the last frame completed
    /// ([`Step::Frame`]): `NETRXF_csum_blank` says its TCP or UDP checksum is partial.
    pub(crate) fn frame_flags(&self) -> u16 {
        self.done_flags
    }

    /// The longest frame accepted (without GSO).
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The bound of the frame being assembled.
    fn bound(&self) -> usize {
        if self.first_flags & NETRXF_extra_info != 0 {
            self.gso_max_len
        } else {
            self.max_len
        }
    }

    /// Takes the next response off the ring, which answered the request with id `expected_id`
    /// (its ring slot). When its bytes are to be kept, `copy(offset, dst)` must fill `dst`
    /// with the bytes at `offset` of the slot's page (`offset + dst.len() <= PAGE_SIZE` was
    /// checked).
    pub(crate) fn push(
        &mut self,
        expected_id: u16,
        slot: RxResponseSlot,
        copy: impl FnOnce(usize, &mut [u8]),
    ) -> Step {
        if self.extras {
            let extra = slot.extra_info();
            self.extras = extra.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0;
            return Step::ExtraInfo;
        }
        let rsp = slot.response();
        self.slots = self.slots.saturating_add(1);
        if self.slots == 1 {
            self.first_flags = rsp.flags;
        }
        let size = rsp.status as usize;
        let bad = if rsp.id != expected_id {
            Some(RxError::BadId)
        } else if rsp.status < 0 {
            Some(RxError::BadStatus)
        } else if rsp.flags & !KNOWN_RX_FLAGS != 0 {
            Some(RxError::BadFlags)
        } else if rsp.offset as usize + size > PAGE_SIZE {
            Some(RxError::BadSize)
        } else if self.slots > MAX_RX_SLOTS {
            Some(RxError::TooLong)
        } else if self.data.len() + size > self.bound() {
            Some(RxError::Oversized)
        } else {
            None
        };
        let mut step = Step::More;
        match (self.dropped, bad) {
            (None, Some(reason)) => {
                self.dropped = Some(reason);
                self.data = Vec::new();
                step = Step::Dropped(reason);
            }
            (None, None) => {
                let start = self.data.len();
                self.data.resize(start + size, 0);
                copy(rsp.offset as usize, &mut self.data[start..]);
            }
            (Some(_), _) => {}
        }
        if rsp.flags & NETRXF_extra_info != 0 {
            self.extras = true;
        }
        if rsp.flags & NETRXF_more_data == 0 {
            let (extras, max_len, gso) = (self.extras, self.max_len, self.gso_max_len);
            let done = core::mem::replace(self, Assembler::with_gso(max_len, gso));
            self.extras = extras;
            self.done_flags = done.first_flags;
            if done.dropped.is_none() {
                step = if done.data.is_empty() {
                    Step::Dropped(RxError::Empty)
                } else {
                    Step::Frame(done.data)
                };
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;
    use xenia_xen::abi::{
        NetifExtraInfo, NetifRxResponse, NETIF_RSP_ERROR, XEN_NETIF_EXTRA_TYPE_GSO,
    };

    /// A response in slot `id` with `len` bytes at `offset`.
    fn rsp(id: u16, offset: u16, flags: u16, status: i16) -> RxResponseSlot {
        RxResponseSlot(NetifRxResponse {
            id,
            offset,
            flags,
            status,
        })
    }

    fn extra(more: bool) -> RxResponseSlot {
        RxResponseSlot::from_extra_info(&NetifExtraInfo {
            r#type: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: if more { XEN_NETIF_EXTRA_FLAG_MORE } else { 0 },
            ..Default::default()
        })
    }

    /// Feeds `(expected id, slot)` pairs; slot `i`'s page is filled with byte `i`.
    fn run(a: &mut Assembler, slots: &[(u16, RxResponseSlot)]) -> Vec<Step> {
        slots
            .iter()
            .map(|&(id, s)| {
                a.push(id, s, |off, dst| {
                    assert!(off + dst.len() <= PAGE_SIZE);
                    dst.fill(id as u8);
                })
            })
            .collect()
    }

    #[test]
    fn one_slot_frame() {
        let mut a = Assembler::default();
        assert_eq!(
            run(&mut a, &[(3, rsp(3, 10, 0, 60))]),
            vec![Step::Frame(vec![3; 60])]
        );
    }

    #[test]
    fn chained_slots_make_one_frame() {
        let mut a = Assembler::default();
        let steps = run(
            &mut a,
            &[
                (0, rsp(0, 0, NETRXF_more_data, 4096)),
                (1, rsp(1, 0, NETRXF_more_data, 4096)),
                (2, rsp(2, 0, 0, 100)),
            ],
        );
        let mut want = vec![0u8; 4096];
        want.extend([1; 4096]);
        want.extend([2; 100]);
        assert_eq!(steps, vec![Step::More, Step::More, Step::Frame(want)]);
    }

    #[test]
    fn extra_info_slots_are_skipped() {
        let mut a = Assembler::default();
        let steps = run(
            &mut a,
            &[
                (0, rsp(0, 0, NETRXF_more_data | NETRXF_extra_info, 10)),
                // The extra slots carry no id of a request: whatever is expected.
                (9, extra(true)),
                (9, extra(false)),
                (3, rsp(3, 0, 0, 5)),
                // The last slot of a frame may announce extra info too.
                (4, rsp(4, 0, NETRXF_extra_info, 1)),
                (5, extra(false)),
                (6, rsp(6, 0, 0, 2)),
            ],
        );
        let mut want = vec![0u8; 10];
        want.extend([3; 5]);
        assert_eq!(
            steps,
            vec![
                Step::More,
                Step::ExtraInfo,
                Step::ExtraInfo,
                Step::Frame(want),
                Step::Frame(vec![4]),
                Step::ExtraInfo,
                Step::Frame(vec![6; 2]),
            ]
        );
    }

    #[test]
    fn each_check_drops_the_frame_once() {
        let cases = [
            (rsp(1, 0, 0, 10), RxError::BadId),
            (rsp(0, 0, 0, NETIF_RSP_ERROR), RxError::BadStatus),
            (rsp(0, 0, 0x100, 10), RxError::BadFlags),
            (rsp(0, 4000, 0, 100), RxError::BadSize),
            (rsp(0, 0, 0, 0), RxError::Empty),
        ];
        for (bad, reason) in cases {
            let mut a = Assembler::default();
            assert_eq!(
                run(&mut a, &[(0, bad)]),
                vec![Step::Dropped(reason)],
                "{reason:?} at the end"
            );
            // In the middle of a chain: reported at once, the rest of the chain ignored.
            let mut bad_more = bad;
            bad_more.0.flags |= NETRXF_more_data;
            let mut a = Assembler::default();
            let steps = run(
                &mut a,
                &[
                    (7, rsp(7, 0, NETRXF_more_data, 10)),
                    (0, bad_more),
                    (8, rsp(8, 0, NETRXF_more_data, 10)),
                    (9, rsp(9, 0, 0, 10)),
                    // The next frame is fine.
                    (1, rsp(1, 0, 0, 3)),
                ],
            );
            let want_mid = if reason == RxError::Empty {
                // An empty slot in a chain is fine; the frame is not empty.
                Step::More
            } else {
                Step::Dropped(reason)
            };
            let want_end = if reason == RxError::Empty {
                let mut d = vec![7u8; 10];
                d.extend([8; 10]);
                d.extend([9; 10]);
                Step::Frame(d)
            } else {
                Step::More
            };
            assert_eq!(
                steps,
                vec![
                    Step::More,
                    want_mid,
                    Step::More,
                    want_end,
                    Step::Frame(vec![1; 3])
                ],
                "{reason:?} in a chain"
            );
        }
    }

    #[test]
    fn the_first_slot_flags_describe_the_frame() {
        use xenia_xen::abi::{NETRXF_csum_blank, NETRXF_data_validated};
        let mut a = Assembler::default();
        let blank = NETRXF_csum_blank | NETRXF_data_validated;
        let steps = run(
            &mut a,
            &[
                (
                    0,
                    rsp(0, 0, blank | NETRXF_extra_info | NETRXF_more_data, 4096),
                ),
                (9, extra(false)),
                (1, rsp(1, 0, NETRXF_more_data, 4096)),
                (2, rsp(2, 0, 0, 10)),
            ],
        );
        assert!(matches!(&steps[3], Step::Frame(d) if d.len() == 8202));
        assert_eq!(a.frame_flags() & blank, blank);
        run(&mut a, &[(3, rsp(3, 0, 0, 10))]);
        assert_eq!(a.frame_flags(), 0);
    }

    #[test]
    fn long_chains_are_dropped() {
        let mut a = Assembler::default();
        let mut slots: Vec<_> = (0..MAX_RX_SLOTS as u16)
            .map(|i| (i, rsp(i, 0, NETRXF_more_data, 1)))
            .collect();
        slots.push((99, rsp(99, 0, 0, 1)));
        let steps = run(&mut a, &slots);
        assert_eq!(steps[MAX_RX_SLOTS], Step::Dropped(RxError::TooLong));
        assert!(steps[..MAX_RX_SLOTS].iter().all(|s| *s == Step::More));

        // Too many bytes: 15 full pages and a 16th make MAX_FRAME_LEN + 1 bytes; one byte less
        // is the largest frame.
        for (last, ok) in [(4095, true), (4096, false)] {
            let mut a = Assembler::default();
            let mut slots: Vec<_> = (0..15u16)
                .map(|i| (i, rsp(i, 0, NETRXF_more_data, 4096)))
                .collect();
            slots.push((15, rsp(15, 0, 0, last)));
            let steps = run(&mut a, &slots);
            match &steps[15] {
                Step::Frame(d) => assert!(ok && d.len() == MAX_FRAME_LEN),
                s => assert!(!ok && *s == Step::Dropped(RxError::Oversized), "{s:?}"),
            }
        }
        // A drop leaves no state behind.
        assert_eq!(
            run(&mut a, &[(5, rsp(5, 0, 0, 1))]),
            vec![Step::Frame(vec![5])]
        );
    }

    #[test]
    fn frames_are_bounded_by_the_mtu() {
        for (len, ok) in [(1514, true), (1515, false)] {
            let mut a = Assembler::new(1514);
            let steps = run(
                &mut a,
                &[
                    (0, rsp(0, 0, NETRXF_more_data, 1000)),
                    (1, rsp(1, 0, 0, len - 1000)),
                ],
            );
            match &steps[1] {
                Step::Frame(d) => assert!(ok && d.len() == 1514),
                s => assert!(!ok && *s == Step::Dropped(RxError::Oversized), "{s:?}"),
            }
            // The bound survives the end of a frame.
            assert_eq!(
                run(&mut a, &[(2, rsp(2, 0, 0, 1515))]),
                vec![Step::Dropped(RxError::Oversized)]
            );
        }
    }

    #[test]
    fn gso_frames_get_the_gso_bound_others_the_mtu() {
        let mut a = Assembler::with_gso(1514, MAX_FRAME_LEN);
        let big = |flags| {
            let mut v: Vec<_> = (0..15u16)
                .map(|i| {
                    (
                        i,
                        rsp(
                            i,
                            0,
                            NETRXF_more_data | if i == 0 { flags } else { 0 },
                            4096,
                        ),
                    )
                })
                .collect();
            v.insert(1, (99, extra(false)));
            v.push((15, rsp(15, 0, 0, 4095)));
            v
        };
        let steps = run(&mut a, &big(NETRXF_extra_info));
        assert!(matches!(steps.last(), Some(Step::Frame(d)) if d.len() == MAX_FRAME_LEN));
        // The same bytes without extra info are over the MTU. (The "extra" slot is then a
        // data slot of the chain: it has the id of its ring slot.)
        let mut plain = big(0);
        plain[1] = (99, rsp(99, 0, NETRXF_more_data, 0));
        let steps = run(&mut a, &plain);
        assert!(steps.contains(&Step::Dropped(RxError::Oversized)));
    }

    #[test]
    fn nothing_is_copied_from_a_dropped_frame() {
        let mut a = Assembler::default();
        let mut copied = 0;
        for s in [
            rsp(0, 0, NETRXF_more_data, 10),
            rsp(2, 0, NETRXF_more_data, 10),
            rsp(2, 0, 0, 10),
        ] {
            a.push(s.0.id.min(1), s, |_, _| copied += 1);
        }
        assert_eq!(copied, 1, "only the slot before the bad one");
    }
}
