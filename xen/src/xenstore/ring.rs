//! The guest's xenstore transport: the xenstore ring page shared with xenstored and its event
//! channel (both given in start_info).

use super::{Transport, XenstoreTransportError};
use crate::events::{EventChannels, Port};
use core::ptr::NonNull;
use core::task::{Context, Poll};
use xenia_ring::xenstore::XenstoreFront;

/// [`Transport`] over the xenstore ring page and event channel.
pub struct RingTransport {
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
            front,
            port,
            events,
        })
    }

    /// After the domain resumed in a new domain: drops the responses left on the ring from
    /// the old connection (xenstored's replies to requests whose waiters are gone) and takes
    /// the new event channel from start_info. Returns how many stale bytes were dropped.
    pub fn resume(&mut self, port: Port) -> Result<usize, XenstoreTransportError> {
        self.events
            .adopt(port)
            .map_err(|_| XenstoreTransportError::Other("bad xenstore event channel"))?;
        self.port = port;
        let mut dropped = 0;
        let mut buf = [0u8; 256];
        loop {
            let n = self
                .front
                .read_response(&mut buf)
                .map_err(|_| XenstoreTransportError::InvalidPeerState)?;
            if n == 0 {
                return Ok(dropped);
            }
            dropped += n;
        }
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
