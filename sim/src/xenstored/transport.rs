//! [`DirectTransport`]: the xenstore client straight into the daemon, without a ring.

use super::{ConnId, Xenstored, XenstoredError};
use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Context, Poll};
use xenia_xen::xenstore::{Transport, XenstoreTransportError};

/// A [`Transport`] straight into a shared [`Xenstored`] (no ring): requests are handled as
/// they are written, replies are read back in chunks of at most `max_chunk` bytes. For host
/// tests of code that uses the xenstore client.
#[derive(Debug, Clone)]
pub struct DirectTransport {
    xsd: Rc<RefCell<Xenstored>>,
    conn: ConnId,
    max_chunk: usize,
}

impl DirectTransport {
    /// Connects a new wire connection of domain `domid` to `xsd`.
    pub fn connect(xsd: &Rc<RefCell<Xenstored>>, domid: u16) -> DirectTransport {
        let conn = xsd.borrow_mut().connect(domid);
        DirectTransport {
            xsd: xsd.clone(),
            conn,
            max_chunk: usize::MAX,
        }
    }

    /// Limits how many bytes one `read` or `write` moves (to exercise reassembly).
    pub fn with_max_chunk(mut self, n: usize) -> DirectTransport {
        self.max_chunk = n.max(1);
        self
    }

    /// The connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }
}

impl Transport for DirectTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, XenstoreTransportError> {
        let n = buf.len().min(self.max_chunk);
        match self.xsd.borrow_mut().feed(self.conn, &buf[..n]) {
            Ok(()) => Ok(n),
            Err(XenstoredError::Protocol(_))
            | Err(XenstoredError::Closed)
            | Err(XenstoredError::UnknownConnection) => Err(XenstoreTransportError::Closed),
            Err(XenstoredError::NotWire) => {
                Err(XenstoreTransportError::Other("not a wire connection"))
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreTransportError> {
        let mut x = self.xsd.borrow_mut();
        if !x.is_connected(self.conn) {
            return Err(XenstoreTransportError::Closed);
        }
        let n = buf.len().min(self.max_chunk);
        Ok(x.read_output(self.conn, &mut buf[..n]))
    }

    fn notify(&mut self) {}

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut x = self.xsd.borrow_mut();
        if x.output_len(self.conn) > 0 || !x.is_connected(self.conn) {
            Poll::Ready(())
        } else {
            x.register_waker(self.conn, cx.waker());
            Poll::Pending
        }
    }

    fn poll_writable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}
