//! [`smoltcp::phy::Device`] for [`Netfront`].

use crate::{Netfront, ETH_HLEN};
use alloc::vec::Vec;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
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
}

impl TxToken for NetTxToken<'_, '_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let dev = self.dev;
        if len <= PAGE_SIZE && dev.check_len(len).is_ok() && dev.can_send(len) {
            // Build the frame in place in its (single) tx page.
            let mut result = None;
            let mut f = Some(f);
            dev.queue_frame(len, |page, _off| {
                // SAFETY: `page` is a whole page of ours, free in the pool (no request refers
                // to it yet), and len <= PAGE_SIZE; the slice dies before the request is
                // published.
                let buf = unsafe { core::slice::from_raw_parts_mut(page, len) };
                if let Some(f) = f.take() {
                    result = Some(f(buf));
                }
            });
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
            match dev.send(&scratch) {
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
        Some((NetRxToken { frame }, NetTxToken { dev: self }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let max = self.max_frame_len();
        if self.can_send(max) {
            Some(NetTxToken { dev: self })
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HLEN;
        caps
    }
}
