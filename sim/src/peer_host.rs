//! Host tests only: dom0's end of a simulated vif as a running host, the peer the network
//! tests talk to: a smoltcp interface on a [`PeerDevice`] with its TCP clients, polled as a
//! simulator [`Backend`] whenever the guest blocks.

use crate::peer::PeerDevice;
use crate::{Backend, Host, Sim};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use std::boxed::Box;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use std::vec;
use std::vec::Vec;

/// Local ports the peer's clients take, in turn (wrapping to the first again).
const LAST_PORT: u16 = 60000;

/// A hook the peer runs on its sockets after each poll (for example to free sockets the guest
/// closed).
type AfterPoll = Box<dyn FnMut(&mut SocketSet<'static>)>;

/// dom0's end of the link ([`crate::peer::PEER_IP`]): its interface and TCP sockets.
pub struct PeerHost {
    /// The simulated vif's host side.
    pub dev: PeerDevice,
    /// The peer's smoltcp interface.
    pub iface: Interface,
    /// The peer's sockets.
    pub sockets: SocketSet<'static>,
    first_port: u16,
    next_port: u16,
    polls_took: Duration,
    after_poll: Option<AfterPoll>,
}

impl PeerHost {
    /// Puts a peer on `dev` (interface seeded with `seed`, see [`PeerDevice::interface`]) into
    /// `sim` as a backend; its clients take local ports from `first_port` on.
    pub fn attach(
        sim: &Sim,
        mut dev: PeerDevice,
        seed: u64,
        first_port: u16,
    ) -> Rc<RefCell<PeerHost>> {
        let iface = dev.interface(seed);
        let peer = Rc::new(RefCell::new(PeerHost {
            dev,
            iface,
            sockets: SocketSet::new(vec![]),
            first_port,
            next_port: first_port,
            polls_took: Duration::ZERO,
            after_poll: None,
        }));
        sim.add_backend(Box::new(PeerBackend(peer.clone())));
        peer
    }

    /// A TCP client with `buf`-byte send and receive buffers, connecting to `to`.
    pub fn connect(&mut self, to: (IpAddress, u16), buf: usize) -> SocketHandle {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; buf]),
        );
        self.next_port = if self.next_port >= LAST_PORT {
            self.first_port
        } else {
            self.next_port + 1
        };
        s.connect(self.iface.context(), to, self.next_port)
            .expect("a fresh socket with a free local port connects");
        self.sockets.add(s)
    }

    /// The client socket `h`.
    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Host (wall-clock) time the peer's polls took so far: what a test measuring the guest's
    /// cost leaves out.
    pub fn polls_took(&self) -> Duration {
        self.polls_took
    }

    /// Runs `f` on the sockets after each poll.
    pub fn after_poll(&mut self, f: impl FnMut(&mut SocketSet<'static>) + 'static) {
        self.after_poll = Some(Box::new(f));
    }

    fn step(&mut self, host: &Host) -> bool {
        let t = std::time::Instant::now();
        let now = Instant::from_micros((host.now_ns() / 1000) as i64);
        self.dev.take_moved();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        if let Some(f) = self.after_poll.as_mut() {
            f(&mut self.sockets);
        }
        // Only frames count as progress (transmit tokens that sent nothing do not).
        let moved = self.dev.netback().pending_to_guest() > 0 && self.dev.take_moved();
        self.polls_took += t.elapsed();
        moved
    }
}

struct PeerBackend(Rc<RefCell<PeerHost>>);

impl Backend for PeerBackend {
    fn step(&mut self, host: &mut Host) -> bool {
        self.0.borrow_mut().step(host)
    }
}

/// Frees the sockets of `handles` that have closed; keeps the others.
pub fn free_closed(sockets: &mut SocketSet<'static>, handles: &mut Vec<SocketHandle>) {
    handles.retain(|&h| {
        let open = sockets.get::<tcp::Socket>(h).state() != tcp::State::Closed;
        if !open {
            sockets.remove(h);
        }
        open
    });
}
