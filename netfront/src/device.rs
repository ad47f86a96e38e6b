//! [`smoltcp::phy::Device`] for [`Netfront`].

use crate::tso::{self, Offload};
use crate::{Netfront, ETH_HLEN};
use alloc::vec::Vec;
use core::num::NonZeroUsize;
use smoltcp::phy::{
    Checksum, Device, DeviceCapabilities, Medium, PacketMeta, RxToken, SegmentationCapabilities,
    TxToken,
};
use smoltcp::time::Instant;
use xenia_xen::memory::PAGE_SIZE;

/// A received frame, owned by the token.
pub struct NetRxToken {
    frame: Vec<u8>,
}

impl RxToken for NetRxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.frame)
    }
}

/// Permission to send one frame on a [`Netfront`].
pub struct NetTxToken<'d, 'a> {
    dev: &'d mut Netfront<'a>,
    /// The segment payload size smoltcp asked the device to cut the frame into.
    gso_size: Option<u16>,
}

/// The offload for a frame smoltcp built: GSO when it asked for segmentation, a
/// backend-completed TCP checksum for any other TCP/IPv4 frame when TSO is on (smoltcp then
/// leaves TCP checksums to the device), none otherwise. Writes the checksum fields the
/// offload needs. `Err` for a TCP frame whose headers cannot be offloaded: it goes out as it
/// is (the caller counts it in `tx_offload_errors`).
fn offload_for(gso_tx: bool, frame: &mut [u8], gso_size: Option<u16>) -> Result<Offload, ()> {
    if !gso_tx || !tso::is_tcp_ipv4(frame) {
        return Ok(Offload::None);
    }
    let payload = tso::prepare_csum_blank(frame).map_err(|_| ())?;
    Ok(match gso_size {
        Some(mss) if mss > 0 && payload > usize::from(mss) => Offload::Gso { mss },
        _ => Offload::Csum,
    })
}

impl TxToken for NetTxToken<'_, '_> {
    fn set_meta(&mut self, meta: PacketMeta) {
        self.gso_size = meta.segmentation_offload_size.map(|s| s.get());
    }

    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let dev = self.dev;
        let gso_size = self.gso_size;
        // A one-page frame smoltcp may send (a TCP one over the MTU only as GSO) is built in
        // its page; anything else goes through the scratch buffer and `send_offloaded`.
        let in_page = len <= PAGE_SIZE
            && (dev.len_ok(len, Offload::None)
                || gso_size.is_some() && dev.len_ok(len, Offload::Gso { mss: 1 }));
        if in_page && dev.can_send(len) {
            // Build the frame in place in its (single) tx page.
            let mut result = None;
            let mut f = Some(f);
            let gso_tx = dev.gso_tx;
            let mut failed = false;
            dev.queue_frame(len, |pages| {
                // SAFETY: `pages[0]` is a whole page of ours, taken from the pool for this
                // frame (no published request refers to it), and len <= PAGE_SIZE; the slice
                // dies before the request is published.
                let buf = unsafe { core::slice::from_raw_parts_mut(pages[0], len) };
                if let Some(f) = f.take() {
                    result = Some(f(buf));
                }
                offload_for(gso_tx, buf, gso_size).unwrap_or_else(|()| {
                    failed = true;
                    Offload::None
                })
            });
            dev.stats.tx_offload_errors += u64::from(failed);
            match result {
                Some(r) => r,
                None => unreachable!("a one-page frame fills exactly one page"),
            }
        } else {
            // Multi-page frames (or ones we must drop) are built in a scratch buffer.
            let mut scratch = core::mem::take(&mut dev.scratch);
            scratch.clear();
            scratch.resize(len, 0);
            let r = f(&mut scratch);
            let offload = offload_for(dev.gso_tx, &mut scratch, gso_size).unwrap_or_else(|()| {
                dev.stats.tx_offload_errors += 1;
                Offload::None
            });
            match dev.send_offloaded(&scratch, offload) {
                Ok(()) => {}
                Err(crate::NetfrontError::Busy) => dev.stats.tx_no_buffers += 1,
                Err(_) => {}
            }
            dev.scratch = scratch;
            r
        }
    }
}

impl<'a> Device for Netfront<'a> {
    type RxToken<'t>
        = NetRxToken
    where
        Self: 't;
    type TxToken<'t>
        = NetTxToken<'t, 'a>
    where
        Self: 't;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.recv()?;
        Some((
            NetRxToken { frame },
            NetTxToken {
                dev: self,
                gso_size: None,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        // Room for the largest frame smoltcp may build.
        let max = if self.gso_tx {
            tso::MAX_GSO_FRAME
        } else {
            self.max_frame_len()
        };
        if self.can_send(max) {
            Some(NetTxToken {
                dev: self,
                gso_size: None,
            })
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HLEN;
        if self.gso_tx {
            // smoltcp sends TCP super-frames and leaves TCP checksums to us (the backend
            // completes them); it still checks those it receives.
            let mut seg = SegmentationCapabilities::default();
            seg.tcpv4 = NonZeroUsize::new(tso::MAX_GSO_FRAME);
            caps.segmentation = seg;
            caps.checksum.tcp = Checksum::Rx;
        }
        caps
    }
}
