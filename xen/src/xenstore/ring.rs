//! The guest's xenstore transport: the xenstore ring page shared with xenstored and its event
//! channel (both given in start_info).

use super::{Transport, XenstoreTransportError};
use crate::events::{EventChannels, Port};
use core::ptr::NonNull;
use core::task::{Context, Poll};
use xenia_ring::xenstore::XenstoreFront;

/// [`Transport`] over the xenstore ring page and event channel.
pub struct RingTransport {
    /// The page's address (a plain address keeps the transport `Send`, as the ring views are).
    page: usize,
    front: XenstoreFront,
    port: Port,
    events: &'static EventChannels,
}

impl RingTransport {
    /// Attaches to the ring at `page`, notified through `port`.
    ///
    /// # Safety
    /// `page` must be the mapped xenstore ring page, valid for the lifetime of the transport,
    /// and only one transport may use it.
    pub unsafe fn new(
        page: NonNull<u8>,
        port: Port,
        events: &'static EventChannels,
    ) -> Result<RingTransport, XenstoreTransportError> {
        // SAFETY: forwarded from the caller.
        let front = unsafe { XenstoreFront::new(page) }
            .map_err(|_| XenstoreTransportError::InvalidPeerState)?;
        events
            .adopt(port)
            .map_err(|_| XenstoreTransportError::Other("bad xenstore event channel"))?;
        Ok(RingTransport {
            page: page.as_ptr() as usize,
            front,
            port,
            events,
        })
    }

    /// After the domain resumed in a new domain: drops the responses left on the ring from
    /// the old connection (xenstored's replies to requests whose waiters are gone: our
    /// `rsp_cons` is set to `rsp_prod`, as Linux does), takes our indices from the page again
    /// (the new connection may have reset them) and takes the new event channel from
    /// start_info. Returns the page's indices before: `[req_cons, req_prod, rsp_cons,
    /// rsp_prod]`.
    pub fn resume(&mut self, port: Port) -> Result<[u32; 4], XenstoreTransportError> {
        use core::sync::atomic::{AtomicU32, Ordering};
        use xenia_ring::xenstore::{
            REQ_CONS_OFFSET, REQ_PROD_OFFSET, RSP_CONS_OFFSET, RSP_PROD_OFFSET,
        };
        let index = |off: usize| {
            // SAFETY: the page is the mapped xenstore page (contract of `new`); its indices
            // are aligned u32s that both sides access atomically.
            unsafe { AtomicU32::from_ptr((self.page + off) as *mut u32) }
        };
        let before = [
            index(REQ_CONS_OFFSET).load(Ordering::SeqCst),
            index(REQ_PROD_OFFSET).load(Ordering::SeqCst),
            index(RSP_CONS_OFFSET).load(Ordering::SeqCst),
            index(RSP_PROD_OFFSET).load(Ordering::SeqCst),
        ];
        index(RSP_CONS_OFFSET).store(before[3], Ordering::SeqCst);
        let page =
            NonNull::new(self.page as *mut u8).ok_or(XenstoreTransportError::InvalidPeerState)?;
        // SAFETY: the same page as in `new`; the old view is replaced, so one view uses it.
        self.front = unsafe { XenstoreFront::new(page) }
            .map_err(|_| XenstoreTransportError::InvalidPeerState)?;
        self.events
            .adopt(port)
            .map_err(|_| XenstoreTransportError::Other("bad xenstore event channel"))?;
        self.port = port;
        Ok(before)
    }

    fn wait(&mut self, ready: bool, cx: &mut Context<'_>) -> Poll<()> {
        if ready {
            return Poll::Ready(());
        }
        // Ready means the port fired: the caller looks at the ring again.
        self.events.poll_port(self.port, cx)
    }
}

impl Transport for RingTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, XenstoreTransportError> {
        self.front
            .write_request(buf)
            .map_err(|_| XenstoreTransportError::InvalidPeerState)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreTransportError> {
        self.front
            .read_response(buf)
            .map_err(|_| XenstoreTransportError::InvalidPeerState)
    }

    fn notify(&mut self) {
        let _ = self.events.send(self.port);
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = !matches!(self.front.responses().available(), Ok(0));
        self.wait(ready, cx)
    }

    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = !matches!(self.front.requests().space(), Ok(0));
        self.wait(ready, cx)
    }
}
