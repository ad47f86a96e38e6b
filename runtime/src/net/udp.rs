//! UDP sockets.

use super::stack::Stack;
use super::{Ipv4Addr, NetError};
use alloc::vec;
use core::future::poll_fn;
use core::task::Poll;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

/// Datagrams each way a socket queues.
const QUEUE: usize = 32;
/// Bytes of datagrams each way a socket queues.
const BUFFER: usize = 32 * 1024;

/// A UDP socket bound to a local port.
pub struct UdpSocket {
    stack: &'static Stack,
    handle: SocketHandle,
    port: u16,
}

impl core::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("port", &self.port)
            .finish()
    }
}

impl UdpSocket {
    /// Binds `port` (0: a free one) of the default stack.
    pub fn bind(port: u16) -> Result<UdpSocket, NetError> {
        let stack = super::stack().ok_or(NetError::NotInitialized)?;
        Self::bind_on(stack, port)
    }

    /// Binds `port` (0: a free one) of `stack`.
    pub fn bind_on(stack: &'static Stack, port: u16) -> Result<UdpSocket, NetError> {
        let mut g = stack.borrow();
        let port = if port == 0 { g.ephemeral_port() } else { port };
        let taken = g.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
            _ => false,
        });
        if taken {
            return Err(NetError::AddrInUse(port));
        }
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; QUEUE], vec![0; BUFFER]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; QUEUE], vec![0; BUFFER]),
        );
        s.bind(IpListenEndpoint { addr: None, port })
            .map_err(|_| NetError::Unaddressable)?;
        let handle = g.sockets.add(s);
        Ok(UdpSocket {
            stack,
            handle,
            port,
        })
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends `data` as one datagram to `addr:port` (waiting for room in the send queue).
    pub async fn send_to(&self, data: &[u8], addr: Ipv4Addr, port: u16) -> Result<(), NetError> {
        if data.len() > BUFFER {
            return Err(NetError::TooLarge(data.len()));
        }
        if port == 0 || addr.is_unspecified() {
            return Err(NetError::Unaddressable);
        }
        let to = IpEndpoint::new(IpAddress::Ipv4(addr), port);
        poll_fn(|cx| {
            let mut guard = self.stack.borrow();
            let g = &mut *guard;
            let s = g.sockets.get_mut::<udp::Socket>(self.handle);
            match s.send_slice(data, to) {
                Ok(()) => {
                    g.kick();
                    Poll::Ready(Ok(()))
                }
                Err(udp::SendError::BufferFull) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => Poll::Ready(Err(NetError::Unaddressable)),
            }
        })
        .await
    }

    /// Receives one datagram into `buf` (the rest of a longer one is cut); returns its length
    /// in `buf` and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, Ipv4Addr, u16), NetError> {
        poll_fn(|cx| {
            let mut g = self.stack.borrow();
            let s = g.sockets.get_mut::<udp::Socket>(self.handle);
            loop {
                match s.recv() {
                    Ok((data, meta)) => {
                        let a = match meta.endpoint.addr {
                            IpAddress::Ipv4(a) => a,
                            // Only if smoltcp has IPv6 compiled in (the stack is IPv4 only):
                            // an IPv6 datagram is dropped.
                            #[allow(unreachable_patterns)]
                            _ => continue,
                        };
                        let n = data.len().min(buf.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        return Poll::Ready(Ok((n, a, meta.endpoint.port)));
                    }
                    Err(_) => {
                        s.register_recv_waker(cx.waker());
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.stack.borrow().sockets.remove(self.handle);
    }
}
