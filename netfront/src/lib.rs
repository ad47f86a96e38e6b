//! Xen netfront: the guest side of a Xen virtual network interface (`vif`).
//!
//! [`Netfront::connect`] finds `device/vif/<index>`, reads our MAC address, negotiates with the
//! backend (rx-copy is required; scatter-gather is used when the backend offers it), shares
//! one tx and one rx ring (a page each) and an event channel, posts receive buffers and walks
//! the xenbus handshake to `Connected`.
//!
//! Data pages come from two [`GrantPool`]s (read-only for tx, writable for rx): every page is
//! granted once at connect time and reused, so the data path never grants or revokes.
//!
//! Everything the backend writes (ring indices, response ids, statuses, offsets, sizes and
//! flags) is copied once out of the shared page and validated, never trusted. A frame the
//! backend reports as failed (`NETIF_RSP_ERROR`, `_DROPPED`) or empty is dropped and counted
//! in [`NetStats`]. A response no honest backend sends ([`Violation`]: an id not in flight,
//! an impossible status, data beyond its page, unknown flags, a frame over the MTU or
//! [`MAX_RX_SLOTS`]) marks the device broken ([`Netfront::broken`]): it is logged once and
//! counted, both rings are left alone from then on, [`Netfront::send`] fails with
//! [`NetfrontError::Broken`] and nothing more is received. A backend that breaks the ring
//! protocol itself (a producer index running past the requests we published) leaves that
//! ring dead ([`Netfront::rx_error`], [`Netfront::tx_error`]); [`Netfront::error`] reports
//! either. Nothing the backend writes makes the driver panic or touch memory it does not own.
//!
//! Feature flags are read as Linux does: `"1"` is on, anything else is off (a value other
//! than `"0"` or `"1"` is counted in [`NetStats::bad_features`]).
//!
//! [`Netfront`] implements [`smoltcp::phy::Device`], and [`Netfront::wait`] sleeps until the
//! device's event channel fires, so an executor can idle until packets come.
//!
//! The crate is laid out along the driver's seams: `connect` (xenbus negotiation and ring
//! setup, on [`GrantedRing`]s and the `xenia_xen::abi::netif_wire` codec), `tx` (sending and
//! reclaiming), `tso` (checksum fields and slot layout of offloaded tx frames), `rx` (posting
//! pages, taking responses), `assemble` (the pure rx state machine
//! turning a chain of responses into a frame or a drop reason), `config`, `error`, and the
//! smoltcp `device`.
//!
//! # Example
//!
//! ```no_run
//! use smoltcp::iface::{Config, Interface, SocketSet};
//! use smoltcp::time::Instant;
//! use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
//! use xenia_netfront::{NetfrontError, Netfront};
//! use xenia_xen::{events::EventChannels, grant::GrantTable, xenstore::{Transport, Xenstore}};
//!
//! async fn serve<T: Transport>(
//!     xs: &Xenstore<T>,
//!     events: &EventChannels,
//!     grants: &GrantTable,
//!     now_ms: impl Fn() -> i64,
//! ) -> Result<(), NetfrontError> {
//!     let mut nf = Netfront::connect(xs, events, grants, 0).await?;
//!     let config = Config::new(EthernetAddress(nf.mac()).into());
//!     let mut iface = Interface::new(config, &mut nf, Instant::from_millis(now_ms()));
//!     iface.update_ip_addrs(|a| {
//!         a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap();
//!     });
//!     let mut sockets = SocketSet::new(Vec::new());
//!     loop {
//!         iface.poll(Instant::from_millis(now_ms()), &mut nf, &mut sockets);
//!         // ... serve the sockets ...
//!         // Sleep until the backend notifies us (a real executor also wakes up after
//!         // `iface.poll_delay(..)` for smoltcp's timers).
//!         nf.wait().await;
//!     }
//! }
//! ```
#![no_std]

extern crate alloc;

mod assemble;
mod checksum;
mod config;
mod connect;
mod device;
mod error;
mod mac;
mod rx;
mod tso;
mod tx;

pub use config::{NetStats, NetfrontConfig};
pub use device::{NetRxToken, NetTxToken};
pub use error::{NetfrontError, Violation};
pub use mac::{format_mac, parse_mac};
pub use tso::{MAX_GSO_FRAME, MAX_TX_DATA_SLOTS};

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use assemble::Assembler;
use xenia_ring::{FrontRing, RingError};
use xenia_xen::abi::netif_wire::{RxRequestSlot, RxResponseSlot, TxRequestSlot, TxResponseSlot};
use xenia_xen::abi::{
    NETIF_RX_RING_SIZE, NETIF_TX_RING_SIZE, XEN_NETIF_MAX_TX_SIZE, XEN_NETIF_NR_SLOTS_MIN,
};
use xenia_xen::events::{DomId, EventChannels, Port};
use xenia_xen::grant::{GrantPool, GrantTable, GrantedPage, GrantedRing};

/// Bytes of an Ethernet header (destination, source, ethertype).
pub const ETH_HLEN: usize = 14;
/// The MTU when the backend names none.
pub const DEFAULT_MTU: usize = 1500;
/// The smallest MTU we accept from the backend (IPv4's minimum).
pub const MIN_MTU: usize = 68;
/// The most slots one received frame may use; longer chains are dropped.
pub const MAX_RX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN as usize;
/// The largest frame either direction handles (`XEN_NETIF_MAX_TX_SIZE`).
pub const MAX_FRAME_LEN: usize = XEN_NETIF_MAX_TX_SIZE as usize;

const TX_RING_SIZE: usize = NETIF_TX_RING_SIZE;
const RX_RING_SIZE: usize = NETIF_RX_RING_SIZE;

/// A connected Xen virtual network interface.
pub struct Netfront<'a> {
    events: &'a EventChannels,
    index: u32,
    backend_id: DomId,
    mac: [u8; 6],
    mtu: usize,
    sg: bool,
    /// Whether we send GSO super-frames and `csum_blank` TCP frames (the backend offers
    /// `feature-gso-tcpv4`, scatter-gather is on, the config allows it).
    gso_tx: bool,
    port: Port,
    config: NetfrontConfig,
    grants: &'a GrantTable,
    tx: FrontRing<TxRequestSlot, TxResponseSlot>,
    rx: FrontRing<RxRequestSlot, RxResponseSlot>,
    /// The rings' pages (declared after the rings that point into them).
    tx_ring: GrantedRing<'a>,
    rx_ring: GrantedRing<'a>,
    tx_pool: GrantPool<'a>,
    rx_pool: GrantPool<'a>,
    /// The page of each outstanding tx request, by request id.
    tx_slots: Vec<Option<GrantedPage>>,
    tx_free_ids: Vec<u16>,
    /// Tx pages answered while the backend still mapped them: back to the pool once unmapped.
    tx_held: Vec<GrantedPage>,
    /// Whether queued tx requests wait for [`Netfront::flush_tx`] (see `set_tx_batching`).
    tx_batching: bool,
    /// Tx requests written to the ring but not yet published to the backend.
    tx_unpublished: bool,
    /// The page of each outstanding rx request, by ring index modulo the ring size (which is
    /// also the request's id).
    rx_slots: Vec<Option<GrantedPage>>,
    /// The frame being assembled from rx responses.
    rx_assembler: Assembler,
    rx_frames: VecDeque<Vec<u8>>,
    scratch: Vec<u8>,
    stats: NetStats,
    connected: bool,
    /// The backend's first protocol violation: the device is broken.
    broken: Option<Violation>,
}

impl<'a> Netfront<'a> {
    /// After the domain resumed in a new domain (restore, migration): the rings, grants and
    /// event channel belong to a domain that no longer exists. Marks the device disconnected
    /// and forgets its port number, which the new domain may already use for something else,
    /// so that dropping the device does not close it. Connect a new one with
    /// [`Netfront::connect_with`].
    pub fn forget_old_domain(&mut self) {
        self.connected = false;
        self.port = 0;
    }

    /// The backend is closing (the device is being detached): marks the device disconnected.
    /// Close it through xenbus ([`Frontend::close`](xenia_xen::xenbus::Frontend::close)) and
    /// drop it; its grants end and its port closes when it drops.
    pub fn backend_closed(&mut self) {
        self.connected = false;
    }

    /// Whether the device is connected (not yet [`disconnect`](Self::disconnect)ed).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Our MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The MTU (IP packet size; frames are up to `mtu + ETH_HLEN` bytes).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The largest frame we send or expect (`mtu + ETH_HLEN`).
    pub fn max_frame_len(&self) -> usize {
        self.mtu + ETH_HLEN
    }

    /// Whether scatter-gather was negotiated (frames may span pages).
    pub fn scatter_gather(&self) -> bool {
        self.sg
    }

    /// Whether TCP segmentation offload is on for sending: TCP/IPv4 frames up to
    /// [`MAX_GSO_FRAME`] bytes go to the backend as GSO super-frames, and every TCP/IPv4
    /// frame with its checksum left to the backend.
    pub fn tso(&self) -> bool {
        self.gso_tx
    }

    /// The device index (`device/vif/<index>`).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// The event channel the backend notifies us on.
    pub fn port(&self) -> Port {
        self.port
    }

    /// The buffer sizes in use.
    pub fn config(&self) -> NetfrontConfig {
        self.config
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The rx ring's protocol error, if the backend broke it (no frame arrives any more).
    pub fn rx_error(&self) -> Option<RingError> {
        self.rx.error()
    }

    /// The tx ring's protocol error, if the backend broke it (no tx slot is reclaimed any
    /// more).
    pub fn tx_error(&self) -> Option<RingError> {
        self.tx.error()
    }

    /// The backend's protocol violation, if it broke the protocol: nothing is sent or
    /// received any more.
    pub fn broken(&self) -> Option<Violation> {
        self.broken
    }

    /// Why the device (or one of its rings) no longer works: a protocol violation
    /// ([`NetfrontError::Broken`]) or a ring the backend corrupted ([`NetfrontError::Ring`]).
    pub fn error(&self) -> Option<NetfrontError> {
        if let Some(v) = self.broken {
            return Some(NetfrontError::Broken(v));
        }
        self.rx.error().or(self.tx.error()).map(NetfrontError::Ring)
    }

    /// Marks the device broken by `v` (the first violation only): logs it once and counts it.
    pub(crate) fn break_device(&mut self, v: Violation) {
        if self.broken.is_some() {
            return;
        }
        self.broken = Some(v);
        self.stats.broken += 1;
        log::error!(
            "netfront {}: {}: nothing is sent or received any more",
            self.index,
            NetfrontError::Broken(v)
        );
    }

    /// Receive pages currently posted to the backend.
    pub fn rx_posted(&self) -> usize {
        self.rx_slots.iter().filter(|s| s.is_some()).count()
    }

    /// Tx pages currently lent to the backend.
    pub fn tx_in_flight(&self) -> usize {
        self.tx_slots.iter().filter(|s| s.is_some()).count()
    }

    /// Takes responses off both rings, reposts receive buffers and reclaims tx pages.
    /// Returns true if anything happened.
    pub fn poll(&mut self) -> bool {
        let a = self.reclaim_tx();
        let b = self.poll_rx();
        a | b
    }

    /// The next received frame, if any.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        if self.rx_frames.is_empty() {
            self.poll_rx();
        }
        self.rx_frames.pop_front()
    }

    /// Whether there is work for the network stack: received frames (queued or on the ring),
    /// or tx pages that just came back (so a sender that found the ring full can retry).
    ///
    /// Tx responses are reclaimed here, so they count as work once, not until someone
    /// transmits. When there is no work, both rings are armed so that the backend notifies us
    /// for its next response (Xen's final check): it is then safe to sleep on
    /// [`port`](Self::port).
    pub fn has_work(&mut self) -> bool {
        if self.broken.is_some() {
            // The rings are left alone: only frames received before are left.
            return !self.rx_frames.is_empty();
        }
        // Nothing may wait unpublished while the caller sleeps.
        self.flush_tx();
        let mut work = !self.rx_frames.is_empty();
        loop {
            work |= self.reclaim_tx();
            if self.broken.is_some() {
                return work;
            }
            let had_error = self.tx.error().is_some();
            match self.tx.final_check_for_responses() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.count_ring_error("tx", had_error, e);
                    break;
                }
            }
        }
        if self.broken.is_some() {
            return work;
        }
        let had_error = self.rx.error().is_some();
        match self.rx.final_check_for_responses() {
            Ok(more) => work | more,
            Err(e) => {
                self.count_ring_error("rx", had_error, e);
                work
            }
        }
    }

    /// Counts and logs a ring's protocol error the first time it shows (`had_error`: the
    /// ring had already failed before this call).
    fn count_ring_error(&mut self, ring: &str, had_error: bool, e: RingError) {
        if !had_error {
            self.stats.ring_errors += 1;
            log::warn!("netfront {}: {ring} ring: {e}", self.index);
        }
    }

    /// Polls for work: ready if [`has_work`](Self::has_work), else registers `cx`'s waker
    /// on the device's event channel (for executors that select over several sources).
    pub fn poll_event(&mut self, cx: &mut core::task::Context<'_>) -> core::task::Poll<()> {
        loop {
            if self.has_work() {
                return core::task::Poll::Ready(());
            }
            if self.events.poll_port(self.port, cx).is_pending() {
                return core::task::Poll::Pending;
            }
        }
    }

    /// Waits until there is work ([`has_work`](Self::has_work)), sleeping on the device's
    /// event channel meanwhile.
    pub async fn wait(&mut self) {
        while !self.has_work() {
            self.events.wait(self.port).await;
        }
    }
}

impl core::fmt::Debug for Netfront<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Netfront")
            .field("index", &self.index)
            .field("mac", &format_mac(&self.mac))
            .field("mtu", &self.mtu)
            .field("sg", &self.sg)
            .field("gso_tx", &self.gso_tx)
            .field("port", &self.port)
            .field("connected", &self.connected)
            .field("rx_error", &self.rx.error())
            .field("tx_error", &self.tx.error())
            .field("broken", &self.broken)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Drop for Netfront<'_> {
    fn drop(&mut self) {
        // Return every lent page to its pool: the pools end the grants, and keep (leak)
        // pages the backend still maps instead of freeing them under its feet.
        for p in self.tx_slots.iter_mut().filter_map(Option::take) {
            self.tx_pool.give_back(p);
        }
        for p in self.tx_held.drain(..) {
            self.tx_pool.give_back(p);
        }
        for p in self.rx_slots.iter_mut().filter_map(Option::take) {
            self.rx_pool.give_back(p);
        }
        // The ring pages end their grants when the fields drop (and are leaked if the backend
        // still maps them).
        let _ = self.events.close(self.port);
    }
}
