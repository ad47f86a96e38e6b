//! The stack: interface, device, sockets and the task that drives them.

use super::{parse_cidr, Ipv4Addr, NetError};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Poll, Waker};
use core::time::Duration;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use xenia_netfront::{NetStats, Netfront, NetfrontConfig};
use xenia_xen::single::{VcpuCell, VcpuRefMut};

/// How a vif gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpConfig {
    /// A fixed address.
    Static {
        /// The address.
        addr: Ipv4Addr,
        /// The prefix length of its network (0 ..= 32).
        prefix: u8,
        /// The default gateway, if any.
        gateway: Option<Ipv4Addr>,
    },
    /// Ask a DHCP server.
    Dhcp,
}

impl IpConfig {
    /// The configuration of vif `index` on command line `line`: `ip=ADDR/PREFIX` and
    /// `gw=ADDR` for vif 0, `ip<index>=` and `gw<index>=` for the others; DHCP when no
    /// address is given (or `ip=dhcp`).
    pub fn from_cmdline(line: &str, index: u32) -> Result<IpConfig, NetError> {
        let (ip_key, gw_key) = if index == 0 {
            ("ip".into(), "gw".into())
        } else {
            (format!("ip{index}"), format!("gw{index}"))
        };
        let Some(ip) = crate::cmdline_value(line, &ip_key) else {
            return Ok(IpConfig::Dhcp);
        };
        if ip == "dhcp" {
            return Ok(IpConfig::Dhcp);
        }
        let (addr, prefix) = parse_cidr(ip)?;
        let gateway = match crate::cmdline_value(line, &gw_key) {
            Some(g) => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| NetError::BadConfig(format!("{gw_key}={g:?}")))?,
            ),
            None => None,
        };
        Ok(IpConfig::Static {
            addr,
            prefix,
            gateway,
        })
    }
}

/// Counters of a stack: the device's and the stack's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The netfront's counters (packets, bytes, and each kind of refused response).
    pub device: NetStats,
    /// Connections accepted by listeners.
    pub tcp_accepted: u64,
    /// Outgoing connections started.
    pub tcp_connects: u64,
    /// Connections a listener reset because its accept queue was full.
    pub tcp_refused: u64,
    /// Connections reset because they did not close within the grace period after their
    /// stream was dropped.
    pub tcp_aborted: u64,
    /// Sockets currently in the stack (listening, connected, closing, UDP, DHCP).
    pub sockets: usize,
    /// Times the driver polled the interface.
    pub polls: u64,
    /// Whether the backend broke the ring protocol (the netfront then stops using the ring
    /// that went wrong: the link is dead).
    pub ring_broken: bool,
}

impl Stats {
    /// Frames dropped or refused: responses the netfront refused (bad ids, statuses, sizes,
    /// flags, frames too long), frames it could not send, and ring errors.
    pub fn drops(&self) -> u64 {
        let d = &self.device;
        d.rx_bad_id
            + d.rx_bad_status
            + d.rx_bad_size
            + d.rx_bad_flags
            + d.rx_too_long
            + d.tx_too_big
            + d.tx_bad_id
            + d.tx_bad_status
            + d.tx_errors
            + d.ring_errors
    }
}

/// A listener's sockets: the listening backlog and the accept queue.
pub(super) struct Listener {
    pub port: u16,
    pub config: super::ListenConfig,
    pub listening: Vec<SocketHandle>,
    pub ready: VecDeque<SocketHandle>,
    pub waker: Option<Waker>,
}

/// A dropped stream's socket, kept until its connection has closed.
struct Orphan {
    handle: SocketHandle,
    deadline_ns: u64,
}

/// How long a dropped stream's connection may take to close before it is reset.
const ORPHAN_GRACE: Duration = Duration::from_secs(10);
/// How long connecting a vif may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);
/// First local port for outgoing connections.
const EPHEMERAL_FIRST: u16 = 49152;

pub(super) struct Inner {
    pub iface: Interface,
    pub dev: Netfront<'static>,
    pub sockets: SocketSet<'static>,
    pub listeners: Vec<Option<Listener>>,
    orphans: Vec<Orphan>,
    dhcp: Option<SocketHandle>,
    configured: bool,
    config_wakers: Vec<Waker>,
    driver_waker: Option<Waker>,
    kicked: bool,
    next_port: u16,
    pub stats: Stats,
}

/// One network interface (vif) with its IP stack and sockets.
pub struct Stack {
    index: u32,
    mac: [u8; 6],
    /// The stack's state: used from the runtime's one context only (checked by the cell).
    inner: VcpuCell<Inner>,
}

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("index", &self.index)
            .field("mac", &xenia_netfront::format_mac(&self.mac))
            .field("ipv4", &self.ipv4())
            .finish_non_exhaustive()
    }
}

/// Stacks opened so far, by vif index order of opening; the first is the default.
static STACKS: spin::Mutex<Vec<&'static Stack>> = spin::Mutex::new(Vec::new());

pub(super) fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((crate::time::Instant::now().as_nanos() / 1000) as i64)
}

fn smol_to_ns(t: smoltcp::time::Instant) -> u64 {
    (t.total_micros().max(0) as u64).saturating_mul(1000)
}

/// Brings up vif 0 with the address from the command line (or DHCP) and returns its stack;
/// later calls return the same stack.
pub async fn init() -> Result<&'static Stack, NetError> {
    if let Some(s) = stack() {
        return Ok(s);
    }
    let cfg = IpConfig::from_cmdline(crate::cmdline(), 0)?;
    let s = open(0, cfg, NetfrontConfig::default()).await?;
    s.wait_configured(Duration::from_secs(30)).await?;
    Ok(s)
}

/// The default stack (the first one opened), if any.
pub fn stack() -> Option<&'static Stack> {
    STACKS.lock().first().copied()
}

/// The default stack's counters (all zero before [`init`]).
pub fn stats() -> Stats {
    stack().map(Stack::stats).unwrap_or_default()
}

/// Connects vif `index`, configures it with `ip` and starts its driver task. The stack lives
/// for the rest of the program. With [`IpConfig::Dhcp`] the address arrives later: see
/// [`Stack::wait_configured`].
pub async fn open(
    index: u32,
    ip: IpConfig,
    device: NetfrontConfig,
) -> Result<&'static Stack, NetError> {
    if STACKS.lock().iter().any(|s| s.index == index) {
        return Err(NetError::AlreadyOpen(index));
    }
    let xs = crate::services::xenstore();
    let events = crate::services::events().ok_or(NetError::NoServices("event channels"))?;
    let grants = crate::services::grant_table().ok_or(NetError::NoServices("grant table"))?;
    log::info!("net: connecting vif {index}");
    let connect = Netfront::connect_with(xs, events, grants, index, device);
    let mut dev = match crate::timeout(CONNECT_LIMIT, connect).await {
        Ok(r) => r?,
        Err(_) => {
            // Say where the handshake stopped.
            let fe = format!("device/vif/{index}");
            let read = |p: alloc::string::String| async move {
                xs.read_string(&p)
                    .await
                    .unwrap_or_else(|e| format!("<{e:?}>"))
            };
            let be = read(format!("{fe}/backend")).await;
            let what = format!(
                "vif {index}: no connection after {CONNECT_LIMIT:?}: frontend state {}, backend {be} state {}, hotplug-status {:?}",
                read(format!("{fe}/state")).await,
                read(format!("{be}/state")).await,
                read(format!("{be}/hotplug-status")).await,
            );
            log::error!("net: {what}");
            return Err(NetError::Timeout(what));
        }
    };
    dev.set_tx_batching(true);
    let mac = dev.mac();
    log::info!(
        "net: vif {index} connected: mac {}, mtu {}, {ip:?}",
        xenia_netfront::format_mac(&mac),
        dev.mtu()
    );
    let now = smol_now();
    let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let seed = mac.iter().fold(
        crate::time::wallclock_ns() ^ now.total_micros() as u64,
        |a, &b| a.rotate_left(8) ^ u64::from(b),
    );
    cfg.random_seed = seed;
    let mut iface = Interface::new(cfg, &mut dev, now);
    let mut sockets = SocketSet::new(Vec::new());
    let mut dhcp = None;
    let mut configured = false;
    match ip {
        IpConfig::Static {
            addr,
            prefix,
            gateway,
        } => {
            if prefix > 32 {
                return Err(NetError::BadConfig(format!("prefix /{prefix}")));
            }
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(addr, prefix)));
            });
            if let Some(gw) = gateway {
                iface
                    .routes_mut()
                    .add_default_ipv4_route(gw)
                    .map_err(|_| NetError::BadConfig(format!("gateway {gw}")))?;
            }
            configured = true;
        }
        IpConfig::Dhcp => {
            dhcp = Some(sockets.add(dhcpv4::Socket::new()));
        }
    }
    let stack: &'static Stack = Box::leak(Box::new(Stack {
        index,
        mac,
        inner: VcpuCell::new_here(Inner {
            iface,
            dev,
            sockets,
            listeners: Vec::new(),
            orphans: Vec::new(),
            dhcp,
            configured,
            config_wakers: Vec::new(),
            driver_waker: None,
            kicked: false,
            next_port: EPHEMERAL_FIRST + (seed % 8192) as u16,
            stats: Stats::default(),
        }),
    }));
    STACKS.lock().push(stack);
    crate::spawn(drive(stack));
    Ok(stack)
}

/// The driver task of a stack.
async fn drive(stack: &'static Stack) {
    loop {
        let deadline = stack.poll_once();
        if deadline == Some(0) {
            // More to send right away: let the socket tasks run first.
            crate::yield_now().await;
            continue;
        }
        let mut sleep = deadline.map(|d| crate::sleep_until(crate::time::Instant::from_nanos(d)));
        poll_fn(|cx| {
            {
                let mut g = stack.inner.borrow_mut();
                if core::mem::take(&mut g.kicked) {
                    return Poll::Ready(());
                }
                match &g.driver_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => g.driver_waker = Some(cx.waker().clone()),
                }
                if g.dev.poll_event(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            if let Some(s) = sleep.as_mut() {
                if Pin::new(s).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }
}

impl Stack {
    /// The vif index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface's IPv4 address and prefix, once configured.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        let g = self.inner.borrow();
        g.iface
            .ip_addrs()
            .iter()
            .map(|c| match c {
                IpCidr::Ipv4(c) => (c.address(), c.prefix_len()),
            })
            .next()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let g = self.inner.borrow();
        let mut s = g.stats.clone();
        s.device = g.dev.stats();
        s.sockets = g.sockets.iter().count();
        s.ring_broken = g.dev.error().is_some();
        s
    }

    /// Waits until the interface has an address (at once for a static one), for at most
    /// `limit`.
    pub async fn wait_configured(&self, limit: Duration) -> Result<(), NetError> {
        let wait = poll_fn(|cx| {
            let mut g = self.inner.borrow_mut();
            if g.configured {
                return Poll::Ready(());
            }
            g.config_wakers.push(cx.waker().clone());
            Poll::Pending
        });
        crate::timeout(limit, wait)
            .await
            .map_err(|_| NetError::DhcpTimeout)
    }

    pub(super) fn borrow(&self) -> VcpuRefMut<'_, Inner> {
        self.inner.borrow_mut()
    }

    /// Polls the interface once and does the stack's housekeeping. Returns when the driver
    /// must poll again (ns; 0 = right away), or `None` for "on an event only".
    fn poll_once(&self) -> Option<u64> {
        let mut guard = self.inner.borrow_mut();
        let g = &mut *guard;
        let now = smol_now();
        let before = g.dev.stats();
        g.iface.poll(now, &mut g.dev, &mut g.sockets);
        // Everything this poll sent goes to netback at once, with at most one notification.
        g.dev.flush_tx();
        g.stats.polls += 1;
        g.update_dhcp();
        if !g.stats.ring_broken {
            if let Some(e) = g.dev.error() {
                g.stats.ring_broken = true;
                log::error!(
                    "net: vif {}: the backend broke the ring protocol ({e}): link down",
                    self.index
                );
            }
        }
        g.reap_orphans(smol_to_ns(now));
        g.refill_listeners();
        let after = g.dev.stats();
        let progress = before.rx_packets != after.rx_packets
            || before.tx_packets != after.tx_packets
            || before.rx_bad_id != after.rx_bad_id;
        match g.iface.poll_at(now, &g.sockets) {
            Some(t) if t <= now => {
                if progress && g.dev.can_send(g.dev.max_frame_len()) {
                    Some(0)
                } else if !g.dev.can_send(g.dev.max_frame_len()) {
                    // The tx ring is full: the device's event (pages back) wakes us.
                    None
                } else {
                    // Nothing moved although smoltcp wants to: back off a little.
                    Some(smol_to_ns(now) + 1_000_000)
                }
            }
            Some(t) => Some(smol_to_ns(t).max(1)),
            None => None,
        }
    }
}

impl Inner {
    /// Asks the driver to poll the interface soon (a socket has something to send).
    pub(super) fn kick(&mut self) {
        self.kicked = true;
        if let Some(w) = self.driver_waker.take() {
            w.wake();
        }
    }

    /// A free local port for an outgoing connection or an unbound socket.
    pub(super) fn ephemeral_port(&mut self) -> u16 {
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            if !self.port_in_use(p) {
                return p;
            }
        }
        self.next_port
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.listeners.iter().flatten().any(|l| l.port == port)
            || self.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => t.local_endpoint().map(|e| e.port) == Some(port),
                smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
                _ => false,
            })
    }

    pub(super) fn tcp_port_bound(&self, port: u16) -> bool {
        self.listeners.iter().flatten().any(|l| l.port == port)
    }

    fn update_dhcp(&mut self) {
        let Some(h) = self.dhcp else { return };
        let event = self.sockets.get_mut::<dhcpv4::Socket>(h).poll();
        match event {
            Some(dhcpv4::Event::Configured(c)) => {
                let (addr, router) = (c.address, c.router);
                log::info!("net: DHCP gave {addr} (router {router:?})");
                self.iface.update_ip_addrs(|a| {
                    a.clear();
                    let _ = a.push(IpCidr::Ipv4(addr));
                });
                self.iface.routes_mut().remove_default_ipv4_route();
                if let Some(r) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                }
                self.configured = true;
                for w in self.config_wakers.drain(..) {
                    w.wake();
                }
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.configured = false;
            }
            None => {}
        }
    }

    /// Moves listening sockets that got a connection to their accept queue and opens new
    /// listening sockets in their place.
    fn refill_listeners(&mut self) {
        for slot in self.listeners.iter_mut() {
            let Some(l) = slot else { continue };
            let mut moved = false;
            let mut i = 0;
            while i < l.listening.len() {
                let h = l.listening[i];
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                match s.state() {
                    tcp::State::Listen => i += 1,
                    tcp::State::Closed => {
                        // Reset during the handshake: listen again on the same socket.
                        if s.listen(l.port).is_err() {
                            l.listening.swap_remove(i);
                            self.sockets.remove(h);
                        } else {
                            i += 1;
                        }
                    }
                    _ => {
                        l.listening.swap_remove(i);
                        if l.ready.len() >= l.config.backlog {
                            s.abort();
                            self.kicked = true;
                            self.stats.tcp_refused += 1;
                            self.orphans.push(Orphan {
                                handle: h,
                                deadline_ns: 0,
                            });
                        } else {
                            l.ready.push_back(h);
                            moved = true;
                        }
                    }
                }
            }
            // Drop queued connections that died before being accepted.
            l.ready.retain(|&h| {
                let alive = self.sockets.get::<tcp::Socket>(h).state() != tcp::State::Closed;
                if !alive {
                    self.sockets.remove(h);
                }
                alive
            });
            while l.listening.len() < l.config.backlog {
                let mut s = l.config.socket();
                if s.listen(l.port).is_err() {
                    break;
                }
                l.listening.push(self.sockets.add(s));
            }
            if moved {
                if let Some(w) = l.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Hands a socket whose stream was dropped to the stack, which frees it once closed.
    pub(super) fn orphan(&mut self, handle: SocketHandle) {
        let now = crate::time::Instant::now().as_nanos();
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        if s.recv_queue() > 0 {
            // Unread data: tell the peer at once (as other stacks do).
            s.abort();
        } else {
            s.close();
        }
        self.orphans.push(Orphan {
            handle,
            deadline_ns: now.saturating_add(ORPHAN_GRACE.as_nanos() as u64),
        });
        self.kick();
    }

    fn reap_orphans(&mut self, now_ns: u64) {
        let sockets = &mut self.sockets;
        let stats = &mut self.stats;
        let kicked = &mut self.kicked;
        self.orphans.retain(|o| {
            let s = sockets.get_mut::<tcp::Socket>(o.handle);
            match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    sockets.remove(o.handle);
                    false
                }
                _ if now_ns >= o.deadline_ns && o.deadline_ns != 0 => {
                    s.abort();
                    stats.tcp_aborted += 1;
                    *kicked = true;
                    // Freed on a later poll, once the reset went out.
                    true
                }
                _ => true,
            }
        });
    }
}
