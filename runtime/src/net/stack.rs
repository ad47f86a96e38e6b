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
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
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
    /// Connections a listener reset because its accept queue stayed full until their
    /// handshake deadline.
    pub tcp_refused: u64,
    /// Connections reset because they did not close within the grace period after their
    /// stream was dropped, or because their listener's orphan budget was full.
    pub tcp_aborted: u64,
    /// Connections of listeners in SYN-RECEIVED now (handshake not complete).
    pub tcp_half_open: usize,
    /// SYNs dropped: half-open connections that timed out or gave their place to a newer
    /// SYN while their listener's budget was full.
    pub tcp_syn_dropped: u64,
    /// Sockets of dropped streams still closing now (orphans).
    pub tcp_orphans: usize,
    /// Orphans freed (closed, or reset at their deadline).
    pub tcp_reaped: u64,
    /// Sockets currently in the stack (listening, connected, closing, UDP, DHCP).
    pub sockets: usize,
    /// Times the driver polled the interface.
    pub polls: u64,
    /// Whether the backend broke the ring protocol (the netfront then stops using the ring
    /// that went wrong: the link is dead).
    pub ring_broken: bool,
    /// Whether TCP segmentation offload is on (the backend offered `feature-gso-tcpv4`): TCP
    /// goes out as super-frames of up to 64 KiB (`device.tx_gso_frames`) with checksums left
    /// to the backend.
    pub tso: bool,
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

/// A listener's sockets: one listening socket, the handshakes in progress, the accept queue.
pub(super) struct Listener {
    /// Unique for the stack's lifetime (streams name their listener by it).
    pub id: u64,
    pub port: u16,
    pub config: super::ListenConfig,
    /// Sockets in LISTEN (at most [`LISTEN_POOL`]).
    pub listening: Vec<SocketHandle>,
    /// Sockets past LISTEN not yet in the accept queue, oldest first, with their deadlines
    /// (ns): handshakes in progress, and completed ones waiting for room in the queue.
    pub half_open: VecDeque<(SocketHandle, u64)>,
    /// Established connections waiting for accept.
    pub ready: VecDeque<SocketHandle>,
    /// Accepted streams not yet dropped.
    pub live: usize,
    pub waker: Option<Waker>,
}

/// Listening sockets a listener keeps. The driver hands the stack one packet at a time and
/// sorts the listeners' sockets after each, so one is enough: every SYN finds one.
const LISTEN_POOL: usize = 1;

/// Orphans kept at once for streams that no listener owns (outgoing connections).
const DEFAULT_MAX_ORPHANS: usize = 64;

/// A dropped stream's socket, kept until its connection has closed.
struct Orphan {
    handle: SocketHandle,
    /// When it is reset (ns); 0: reset already, freed on the next poll.
    deadline_ns: u64,
    /// The listener whose budget it counts against.
    owner: Option<u64>,
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
    orphans: VecDeque<Orphan>,
    next_listener_id: u64,
    dhcp: Option<SocketHandle>,
    configured: bool,
    config_wakers: Vec<Waker>,
    driver_waker: Option<Waker>,
    kicked: bool,
    next_port: u16,
    pub stats: Stats,
    /// The lifecycle generation the device was connected in ([`crate::lifecycle::generation`]).
    generation: u64,
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
    let s = open(0, cfg, super::budget::netfront()).await?;
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
        "net: vif {index} connected: mac {}, mtu {}, tso {}, {ip:?}",
        xenia_netfront::format_mac(&mac),
        dev.mtu(),
        if dev.tso() { "on" } else { "off" }
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
            orphans: VecDeque::new(),
            next_listener_id: 1,
            dhcp,
            configured,
            config_wakers: Vec::new(),
            driver_waker: None,
            kicked: false,
            next_port: EPHEMERAL_FIRST + (seed % 8192) as u16,
            stats: Stats::default(),
            generation: crate::lifecycle::generation(),
        }),
    }));
    STACKS.lock().push(stack);
    crate::spawn(drive(stack));
    crate::spawn(supervise(stack));
    Ok(stack)
}

/// After the domain resumed in a new domain (`resumed`), or after the vif was attached again:
/// connects the vif through xenbus (new rings, grants and event channel) and swaps it in under
/// the stack, whose addresses and sockets stay; frames in flight on the old rings are lost
/// (TCP retransmits). Tries again every second while the backend is not there yet.
async fn reconnect(stack: &'static Stack, generation: u64, resumed: bool) {
    let (index, config) = {
        let mut g = stack.inner.borrow_mut();
        if resumed {
            g.dev.forget_old_domain();
        }
        (stack.index, g.dev.config())
    };
    let xs = crate::services::xenstore();
    let (Some(events), Some(grants)) = (crate::services::events(), crate::services::grant_table())
    else {
        return;
    };
    loop {
        log::info!("net: vif {index}: connecting again");
        let connect = Netfront::connect_with(xs, events, grants, index, config);
        match crate::timeout(CONNECT_LIMIT, connect).await {
            Ok(Ok(mut dev)) => {
                dev.set_tx_batching(true);
                let mac = dev.mac();
                let old = {
                    let mut g = stack.inner.borrow_mut();
                    if mac != current_mac(&g.iface) {
                        log::warn!(
                            "net: vif {index}: the MAC is now {}",
                            xenia_netfront::format_mac(&mac)
                        );
                        g.iface
                            .set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(mac)));
                    }
                    g.generation = generation;
                    g.stats.ring_broken = false;
                    let old = core::mem::replace(&mut g.dev, dev);
                    // The driver may be waiting on the old device's port: wake it.
                    g.kicked = true;
                    if let Some(w) = g.driver_waker.take() {
                        w.wake();
                    }
                    old
                };
                // Its grants and port died with the old domain: dropping it frees its pages.
                drop(old);
                log::info!("net: vif {index} reconnected");
                return;
            }
            Ok(Err(e)) => log::warn!("net: vif {index}: reconnect failed: {e}"),
            Err(_) => log::warn!("net: vif {index}: reconnect timed out"),
        }
        if crate::lifecycle::generation() != generation {
            // Resumed again meanwhile: start over in the newest domain.
            return;
        }
        crate::sleep(Duration::from_secs(1)).await;
    }
}

fn current_mac(iface: &Interface) -> [u8; 6] {
    match iface.hardware_addr() {
        HardwareAddress::Ethernet(EthernetAddress(m)) => m,
        #[allow(unreachable_patterns)]
        _ => [0; 6],
    }
}

/// Why [`backend_gone`] returned.
enum Gone {
    /// The backend is closing or was removed (`xl network-detach`, its domain went away).
    Closing,
    /// The domain resumed in a new domain: the backend path is another one now.
    Resumed,
}

/// Waits until vif `index`'s backend closes or disappears, through a watch on its state.
async fn backend_gone(index: u32, generation: u64) -> Result<Gone, NetError> {
    let xs = crate::services::xenstore();
    let dev = xenia_xen::xenbus::Frontend::find(xs, "vif", index)
        .await
        .map_err(|e| NetError::Device(xenia_netfront::NetfrontError::Xenbus(e)))?;
    let path = format!("{}/state", dev.backend());
    let token = format!("xenia-vif{index}-backend");
    let mut watch = xs
        .watch(&path, &token)
        .await
        .map_err(|e| NetError::Device(xenia_netfront::NetfrontError::Xenbus(e.into())))?;
    let gone = loop {
        if crate::lifecycle::generation() != generation {
            break Gone::Resumed;
        }
        match xs.read_optional(&path).await {
            Ok(None) => break Gone::Closing,
            Ok(Some(v)) if v == b"5" || v == b"6" => break Gone::Closing,
            _ => {}
        }
        let mut next = core::pin::pin!(watch.next_event());
        let ended = poll_fn(|cx| {
            if crate::lifecycle::poll_generation(generation, cx).is_some() {
                return Poll::Ready(false);
            }
            next.as_mut().poll(cx).map(|e| e.is_none())
        })
        .await;
        if ended {
            break Gone::Closing;
        }
    };
    let _ = xs.unwatch(watch).await;
    Ok(gone)
}

/// Waits until vif `index` is there again, new (`xl network-attach`): its frontend node in
/// `Initialising` and a backend that is not closing.
async fn device_back(index: u32) {
    let xs = crate::services::xenstore();
    let token = format!("xenia-vif{index}-attach");
    let Ok(mut watch) = xs.watch("device/vif", &token).await else {
        return;
    };
    loop {
        let fe = format!("device/vif/{index}");
        let state = xs
            .read_optional(&format!("{fe}/state"))
            .await
            .ok()
            .flatten();
        if state.as_deref() == Some(b"1".as_slice()) {
            if let Ok(Some(be)) = xs.read_optional(&format!("{fe}/backend")).await {
                let be = alloc::string::String::from_utf8_lossy(&be).into_owned();
                let be_state = xs
                    .read_optional(&format!("{be}/state"))
                    .await
                    .ok()
                    .flatten();
                if matches!(be_state.as_deref(), Some(b"1") | Some(b"2")) {
                    break;
                }
            }
        }
        if watch.next_event().await.is_none() {
            break;
        }
    }
    let _ = xs.unwatch(watch).await;
}

/// Follows vif `index`'s backend: when it closes (`xl network-detach`, a backend domain going
/// away) the frontend closes at once (Closing, then Closed when the backend is), so the
/// toolstack is not kept waiting; when the device is there again (`xl network-attach`) it is
/// connected and put under the stack, whose addresses and sockets stay.
async fn supervise(stack: &'static Stack) {
    let index = stack.index;
    loop {
        let generation = crate::lifecycle::generation();
        match backend_gone(index, generation).await {
            Ok(Gone::Closing) => {}
            Ok(Gone::Resumed) => {
                // The driver reconnects in the new domain; follow the new backend then.
                while stack.inner.borrow().generation != crate::lifecycle::generation() {
                    crate::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            Err(e) => {
                log::warn!("net: vif {index}: cannot follow the backend: {e}");
                return;
            }
        }
        log::info!("net: vif {index}: the backend is closing: closing the frontend");
        stack.inner.borrow_mut().dev.backend_closed();
        let xs = crate::services::xenstore();
        if let Ok(dev) = xenia_xen::xenbus::Frontend::find(xs, "vif", index).await {
            if crate::timeout(Duration::from_secs(5), dev.close())
                .await
                .is_err()
            {
                log::warn!("net: vif {index}: the backend did not close within 5 s");
                let _ = dev.switch_state(xenia_xen::abi::XenbusState::Closed).await;
            }
        }
        log::info!("net: vif {index} closed; waiting for it to be attached again");
        device_back(index).await;
        if crate::lifecycle::generation() != generation {
            continue;
        }
        log::info!("net: vif {index} is back");
        reconnect(stack, generation, false).await;
    }
}

/// The driver task of a stack.
async fn drive(stack: &'static Stack) {
    loop {
        let generation = crate::lifecycle::generation();
        if stack.inner.borrow().generation != generation {
            reconnect(stack, generation, true).await;
            continue;
        }
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
                if crate::lifecycle::poll_generation(g.generation, cx).is_some() {
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
    /// Read-only view for the introspection dump ([`crate::dump`]): each stack's interface, its
    /// listeners and its TCP and UDP sockets, passed to `out`; a stack borrowed right now is
    /// reported busy (this never waits or panics).
    pub(crate) fn dump_view(out: &mut dyn FnMut(crate::dump::NetItem)) {
        use crate::dump::NetItem;
        let Some(stacks) = STACKS.try_lock().map(|s| s.clone()) else {
            return out(NetItem::Busy(None));
        };
        for s in stacks {
            let Ok(g) = s.inner.try_borrow() else {
                out(NetItem::Busy(Some(s.index)));
                continue;
            };
            out(NetItem::Vif {
                index: s.index,
                mac: s.mac,
                ipv4: g.iface.ip_addrs().iter().find_map(|c| match c {
                    IpCidr::Ipv4(c) => Some(*c),
                    // Only if smoltcp has IPv6 compiled in.
                    #[allow(unreachable_patterns)]
                    _ => None,
                }),
                sockets: g.sockets.iter().count(),
                polls: g.stats.polls,
                ring_broken: g.dev.error().is_some(),
            });
            for l in g.listeners.iter().flatten() {
                out(NetItem::Listener {
                    port: l.port,
                    listening: l.listening.len(),
                    half_open: l.half_open.len(),
                    queued: l.ready.len(),
                    live: l.live,
                });
            }
            for (_, sock) in g.sockets.iter() {
                match sock {
                    smoltcp::socket::Socket::Tcp(t) if t.state() != tcp::State::Listen => {
                        out(NetItem::Tcp {
                            state: t.state(),
                            local: t.local_endpoint(),
                            remote: t.remote_endpoint(),
                            send_queue: t.send_queue(),
                            recv_queue: t.recv_queue(),
                        })
                    }
                    smoltcp::socket::Socket::Udp(u) => out(NetItem::Udp {
                        port: u.endpoint().port,
                    }),
                    _ => {}
                }
            }
        }
    }

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
        g.iface.ip_addrs().iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some((c.address(), c.prefix_len())),
            // Only if smoltcp has IPv6 compiled in.
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let g = self.inner.borrow();
        let mut s = g.stats.clone();
        s.device = g.dev.stats();
        s.sockets = g.sockets.iter().count();
        s.ring_broken = g.dev.error().is_some();
        s.tso = g.dev.tso();
        s.tcp_half_open = g
            .listeners
            .iter()
            .flatten()
            .map(|l| l.half_open.len())
            .sum();
        s.tcp_orphans = g.orphans.iter().filter(|o| o.deadline_ns != 0).count();
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
        let now_ns = smol_to_ns(now);
        let before = g.dev.stats();
        // One packet at a time: after each, a listener whose listening socket took a SYN
        // moves it to its half-open connections and listens on another, so every SYN finds
        // a listening socket and the half-open budget holds at every packet.
        while g.iface.poll_ingress_single(now, &mut g.dev, &mut g.sockets)
            != PollIngressSingleResult::None
        {
            g.catch_syns(now_ns);
        }
        g.iface.poll_egress(now, &mut g.dev, &mut g.sockets);
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
        g.reap_orphans(now_ns);
        g.refill_listeners(now_ns);
        // Half-open and orphan deadlines wake the driver by themselves. (Those due were
        // handled above; one still due would be a bug, and must not make the driver spin.)
        let own = g
            .next_deadline()
            .map(|d| d.max(now_ns.saturating_add(1_000_000)));
        let after = g.dev.stats();
        let progress = before.rx_packets != after.rx_packets
            || before.tx_packets != after.tx_packets
            || before.rx_bad_id != after.rx_bad_id;
        let smol = match g.iface.poll_at(now, &g.sockets) {
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
        };
        match (smol, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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

    /// Adds a listener on `port` (checked free); returns its slot.
    pub(super) fn add_listener(
        &mut self,
        port: u16,
        config: super::ListenConfig,
    ) -> Result<usize, NetError> {
        if self.tcp_port_bound(port) {
            return Err(NetError::AddrInUse(port));
        }
        let mut s = config.socket();
        s.listen(port).map_err(|_| NetError::Unaddressable)?;
        let l = Listener {
            id: self.next_listener_id,
            port,
            config,
            listening: alloc::vec![self.sockets.add(s)],
            half_open: VecDeque::new(),
            ready: VecDeque::new(),
            live: 0,
            waker: None,
        };
        self.next_listener_id += 1;
        Ok(match self.listeners.iter().position(Option::is_none) {
            Some(i) => {
                self.listeners[i] = Some(l);
                i
            }
            None => {
                self.listeners.push(Some(l));
                self.listeners.len() - 1
            }
        })
    }

    /// Closes the listener in `slot`: frees its listening and half-open sockets, resets the
    /// connections it had not handed out.
    pub(super) fn remove_listener(&mut self, slot: usize) {
        let Some(l) = self.listeners.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for h in l.listening {
            self.sockets.remove(h);
        }
        for (h, _) in l.half_open {
            self.sockets.remove(h);
        }
        for h in l.ready {
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.orphan(h, None);
        }
    }

    /// After one incoming packet: sorts the sockets of listeners whose listening socket
    /// took a SYN.
    fn catch_syns(&mut self, now_ns: u64) {
        for slot in 0..self.listeners.len() {
            let Some(l) = &self.listeners[slot] else {
                continue;
            };
            let took = l
                .listening
                .iter()
                .any(|&h| self.sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen);
            if took {
                self.tend_listener(slot, now_ns);
            }
        }
    }

    /// Sorts every listener's sockets (see [`Inner::tend_listener`]).
    fn refill_listeners(&mut self, now_ns: u64) {
        for slot in 0..self.listeners.len() {
            self.tend_listener(slot, now_ns);
        }
    }

    /// Sorts the sockets of the listener in `slot`: listening sockets that took a SYN become
    /// half-open; half-open ones that completed their handshake go to the accept queue (or
    /// are reset when it is full); half-open ones past their deadline, and the oldest beyond
    /// the budget, are dropped; queued connections that died are freed; and a listening
    /// socket is there for the next SYN (a dropped half-open socket is reused for it).
    fn tend_listener(&mut self, slot: usize, now_ns: u64) {
        let Some(l) = self.listeners.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let sockets = &mut self.sockets;
        let stats = &mut self.stats;
        let timeout = l.config.half_open_timeout.as_nanos() as u64;
        // Takes a socket back: it listens again if the pool is short, else it is freed.
        // A connection dropped this way goes silently (no reset to a spoofed address).
        let recycle = |l: &mut Listener, sockets: &mut SocketSet<'static>, h: SocketHandle| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.state() != tcp::State::Listen {
                s.abort();
            }
            if l.listening.len() < LISTEN_POOL && s.listen(l.port).is_ok() {
                l.listening.push(h);
            } else {
                sockets.remove(h);
            }
        };
        let mut i = 0;
        while i < l.listening.len() {
            let h = l.listening[i];
            match sockets.get::<tcp::Socket>(h).state() {
                tcp::State::Listen => i += 1,
                _ => {
                    l.listening.swap_remove(i);
                    l.half_open.push_back((h, now_ns.saturating_add(timeout)));
                }
            }
        }
        let mut moved = false;
        let mut orphans = Vec::new();
        let mut pending = core::mem::take(&mut l.half_open);
        pending.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            match s.state() {
                tcp::State::SynReceived if now_ns >= deadline => {
                    stats.tcp_syn_dropped += 1;
                    recycle(l, sockets, h);
                    false
                }
                tcp::State::SynReceived => true,
                // Reset during the handshake (back in LISTEN or closed).
                tcp::State::Listen | tcp::State::Closed | tcp::State::TimeWait => {
                    recycle(l, sockets, h);
                    false
                }
                _ if l.ready.len() < l.config.backlog => {
                    l.ready.push_back(h);
                    moved = true;
                    false
                }
                // The accept queue is full: the connection waits here for room until its
                // handshake deadline, within the half-open budget, rather than being reset at
                // once (a client told "reset" reconnects at once, and a load generator's
                // reconnect loop costs more than its requests: scripts/bench, 256 conns).
                _ if now_ns < deadline => true,
                _ => {
                    s.abort();
                    stats.tcp_refused += 1;
                    orphans.push(h);
                    false
                }
            }
        });
        // Over budget: the oldest handshakes give their place to the newest.
        while pending.len() > l.config.max_half_open {
            let Some((h, _)) = pending.pop_front() else {
                break;
            };
            stats.tcp_syn_dropped += 1;
            recycle(l, sockets, h);
        }
        l.half_open = pending;
        // Drop queued connections that died before being accepted.
        l.ready.retain(|&h| {
            let alive = sockets.get::<tcp::Socket>(h).state() != tcp::State::Closed;
            if !alive {
                sockets.remove(h);
            }
            alive
        });
        while l.listening.len() < LISTEN_POOL {
            let mut s = l.config.socket();
            if s.listen(l.port).is_err() {
                break;
            }
            l.listening.push(sockets.add(s));
        }
        if moved {
            if let Some(w) = l.waker.take() {
                w.wake();
            }
        }
        if !orphans.is_empty() {
            // The resets go out on the next poll; the sockets are freed after it.
            self.kicked = true;
            for h in orphans {
                self.orphans.push_back(Orphan {
                    handle: h,
                    deadline_ns: 0,
                    owner: None,
                });
            }
        }
    }

    /// The earliest half-open or orphan deadline (ns), if any.
    fn next_deadline(&self) -> Option<u64> {
        let half_open = self
            .listeners
            .iter()
            .flatten()
            .filter_map(|l| l.half_open.iter().map(|&(_, d)| d).min());
        let orphans = self
            .orphans
            .iter()
            .map(|o| o.deadline_ns)
            .filter(|&d| d != 0);
        half_open.chain(orphans).min()
    }

    /// A stream was dropped: its listener has one connection less, its socket becomes an
    /// orphan.
    pub(super) fn stream_dropped(&mut self, handle: SocketHandle, owner: Option<u64>) {
        if let Some(id) = owner {
            if let Some(l) = self.listeners.iter_mut().flatten().find(|l| l.id == id) {
                let was_full = l.live >= l.config.max_connections;
                l.live = l.live.saturating_sub(1);
                if was_full {
                    if let Some(w) = l.waker.take() {
                        w.wake();
                    }
                }
            }
        }
        self.orphan(handle, owner);
    }

    /// Hands a socket whose stream was dropped to the stack, which frees it once closed (or
    /// resets it at the deadline, by a timer). Past its listener's orphan budget, the oldest
    /// orphan of that listener is reset at once.
    fn orphan(&mut self, handle: SocketHandle, owner: Option<u64>) {
        let now = crate::time::Instant::now().as_nanos();
        let limit = owner
            .and_then(|id| self.listeners.iter().flatten().find(|l| l.id == id))
            .map_or(DEFAULT_MAX_ORPHANS, |l| l.config.max_orphans);
        let mut live = self
            .orphans
            .iter()
            .filter(|o| o.owner == owner && o.deadline_ns != 0)
            .count();
        for o in self.orphans.iter_mut() {
            if live < limit {
                break;
            }
            if o.owner == owner && o.deadline_ns != 0 {
                self.sockets.get_mut::<tcp::Socket>(o.handle).abort();
                o.deadline_ns = 0;
                self.stats.tcp_aborted += 1;
                live -= 1;
            }
        }
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        let deadline_ns = if s.state() == tcp::State::Closed {
            0
        } else if s.recv_queue() > 0 {
            // Unread data: tell the peer at once (as other stacks do).
            s.abort();
            0
        } else {
            s.close();
            now.saturating_add(ORPHAN_GRACE.as_nanos() as u64)
        };
        self.orphans.push_back(Orphan {
            handle,
            deadline_ns,
            owner,
        });
        self.kick();
    }

    fn reap_orphans(&mut self, now_ns: u64) {
        let sockets = &mut self.sockets;
        let stats = &mut self.stats;
        let kicked = &mut self.kicked;
        self.orphans.retain_mut(|o| {
            let s = sockets.get_mut::<tcp::Socket>(o.handle);
            match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    sockets.remove(o.handle);
                    stats.tcp_reaped += 1;
                    false
                }
                _ if o.deadline_ns != 0 && now_ns >= o.deadline_ns => {
                    s.abort();
                    o.deadline_ns = 0;
                    stats.tcp_aborted += 1;
                    *kicked = true;
                    // Freed on the next poll, once the reset went out.
                    true
                }
                _ => true,
            }
        });
    }
}
