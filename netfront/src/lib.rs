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
//! flags) is validated; a bad response is dropped and counted in [`NetStats`], never trusted.
//! A backend that breaks the ring protocol itself (a producer index running past the
//! requests we published) leaves that ring dead ([`Netfront::rx_error`],
//! [`Netfront::tx_error`]) but never makes the driver panic or touch memory it does not own.
//!
//! [`Netfront`] implements [`smoltcp::phy::Device`], and [`Netfront::wait`] sleeps until the
//! device's event channel fires, so an executor can idle until packets come.
//!
//! # Example
//!
//! ```no_run
//! use smoltcp::iface::{Config, Interface, SocketSet};
//! use smoltcp::time::Instant;
//! use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
//! use xenia_netfront::{NetError, Netfront};
//! use xenia_xen::{events::EventChannels, grant::GrantTable, xenstore::{Transport, Xenstore}};
//!
//! async fn serve<T: Transport>(
//!     xs: &Xenstore<T>,
//!     events: &EventChannels,
//!     grants: &GrantTable,
//!     now_ms: impl Fn() -> i64,
//! ) -> Result<(), NetError> {
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
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod device;
mod mac;

pub use device::{NetRxToken, NetTxToken};
pub use mac::{format_mac, parse_mac};

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use xenia_ring::{FrontRing, RingError, RingMessage, SharedRing};
use xenia_xen::abi::{
    NETRXF_csum_blank, NETRXF_data_validated, NETRXF_extra_info, NETRXF_more_data,
    NETTXF_more_data, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
    XenbusState, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETIF_RX_RING_SIZE,
    NETIF_TX_RING_SIZE, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_MAX_TX_SIZE, XEN_NETIF_NR_SLOTS_MIN,
};
use xenia_xen::events::{DomId, EventChannels, EventError, Port};
use xenia_xen::grant::{GrantError, GrantPool, GrantRef, GrantTable, GrantedPage, Page};
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenbus::{Frontend, Handshake, XenbusError};
use xenia_xen::xenstore::{Transport, Xenstore};

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
/// The rx flags we understand; anything else is a bogus response.
const KNOWN_RX_FLAGS: u16 =
    NETRXF_data_validated | NETRXF_csum_blank | NETRXF_more_data | NETRXF_extra_info;

/// Netfront errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// Xenbus or xenstore failed (missing node, backend closed, ...).
    Xenbus(XenbusError),
    /// The grant table failed (no free entries, ...).
    Grant(GrantError),
    /// An event channel operation failed.
    Event(EventError),
    /// A ring could not be set up, or the backend broke its protocol.
    Ring(RingError),
    /// The backend does not offer `feature-rx-copy`.
    NoRxCopy,
    /// Our `mac` node does not hold a unicast `aa:bb:cc:dd:ee:ff` address.
    BadMac(String),
    /// The backend's `mtu` node holds a value we cannot use.
    BadMtu(String),
    /// A configuration value is out of range (named).
    BadConfig(&'static str),
    /// No memory for a page.
    NoMemory,
    /// The frame is empty or larger than the device can send (its length).
    FrameTooLarge(usize),
    /// No free tx slot or page now: retry after the backend answered.
    Busy,
    /// The device was disconnected.
    NotConnected,
}

impl From<XenbusError> for NetError {
    fn from(e: XenbusError) -> Self {
        NetError::Xenbus(e)
    }
}

impl From<GrantError> for NetError {
    fn from(e: GrantError) -> Self {
        NetError::Grant(e)
    }
}

impl From<EventError> for NetError {
    fn from(e: EventError) -> Self {
        NetError::Event(e)
    }
}

impl From<RingError> for NetError {
    fn from(e: RingError) -> Self {
        NetError::Ring(e)
    }
}

impl From<xenia_xen::xenstore::Error> for NetError {
    fn from(e: xenia_xen::xenstore::Error) -> Self {
        NetError::Xenbus(XenbusError::Xenstore(e))
    }
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::Xenbus(e) => write!(f, "netfront: {e}"),
            NetError::Grant(e) => write!(f, "netfront: {e}"),
            NetError::Event(e) => write!(f, "netfront: event channel: {e:?}"),
            NetError::Ring(e) => write!(f, "netfront: ring: {e}"),
            NetError::NoRxCopy => write!(f, "netfront: backend lacks feature-rx-copy"),
            NetError::BadMac(m) => write!(f, "netfront: bad MAC address {m:?}"),
            NetError::BadMtu(m) => write!(f, "netfront: bad MTU {m:?}"),
            NetError::BadConfig(what) => write!(f, "netfront: bad configuration: {what}"),
            NetError::NoMemory => write!(f, "netfront: out of memory"),
            NetError::FrameTooLarge(n) => write!(f, "netfront: cannot send a {n}-byte frame"),
            NetError::Busy => write!(f, "netfront: tx ring or buffers full"),
            NetError::NotConnected => write!(f, "netfront: not connected"),
        }
    }
}

/// Sizes of a [`Netfront`]'s buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// Receive pages posted to the backend (1 ..= 256).
    pub rx_buffers: usize,
    /// Transmit pages (1 ..= 256): how many pages of frames can be in flight.
    pub tx_buffers: usize,
    /// Received frames kept for the reader before we stop taking responses off the ring.
    pub rx_queue: usize,
    /// Use scatter-gather (frames larger than a page) when the backend offers it.
    pub sg: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            rx_buffers: 128,
            tx_buffers: 64,
            rx_queue: 64,
            sg: true,
        }
    }
}

impl NetConfig {
    fn validate(&self) -> Result<(), NetError> {
        if !(1..=RX_RING_SIZE).contains(&self.rx_buffers) {
            return Err(NetError::BadConfig("rx_buffers"));
        }
        if !(1..=TX_RING_SIZE).contains(&self.tx_buffers) {
            return Err(NetError::BadConfig("tx_buffers"));
        }
        if self.rx_queue == 0 {
            return Err(NetError::BadConfig("rx_queue"));
        }
        Ok(())
    }
}

/// What the device did, and what it refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames received and handed on.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent (handed to the backend).
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Received frames dropped: a response's id was not the one of its slot.
    pub rx_bad_id: u64,
    /// Received frames dropped: a response's status was an error.
    pub rx_bad_status: u64,
    /// Received frames dropped: offset + size beyond the page, or an empty frame.
    pub rx_bad_size: u64,
    /// Received frames dropped: a response carried flags we do not know.
    pub rx_bad_flags: u64,
    /// Received frames dropped: the chain of slots was longer than [`MAX_RX_SLOTS`] or
    /// [`MAX_FRAME_LEN`] bytes.
    pub rx_too_long: u64,
    /// Extra-info slots skipped.
    pub rx_extra_info: u64,
    /// Frames not sent: larger than the device can send.
    pub tx_too_big: u64,
    /// Frames not sent: no tx slot or page was free.
    pub tx_no_buffers: u64,
    /// Tx responses ignored: their id was out of range or not outstanding.
    pub tx_bad_id: u64,
    /// Tx responses whose status is not one the protocol defines for our requests.
    pub tx_bad_status: u64,
    /// Tx responses reporting that the backend dropped or failed the frame.
    pub tx_errors: u64,
    /// Tx responses for a page the backend still had mapped: the page was held back until
    /// the backend unmapped it, so later frames could not be written under its feet.
    pub tx_still_mapped: u64,
    /// Ring protocol errors (each kills the ring it happened on).
    pub ring_errors: u64,
}

/// A ring entry type of ours (the ABI structs are another crate's, so they are wrapped).
macro_rules! ring_message {
    ($name:ident, $inner:ty) => {
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, Default)]
        struct $name($inner);
        // SAFETY: a `#[repr(C)]` plain-old-data struct of integers: every bit pattern is valid.
        unsafe impl RingMessage for $name {}
    };
}
ring_message!(TxReq, NetifTxRequest);
ring_message!(TxRsp, NetifTxResponse);
ring_message!(RxReq, NetifRxRequest);
ring_message!(RxRsp, NetifRxResponse);

/// Why a received frame is being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropReason {
    BadId,
    BadStatus,
    BadSize,
    BadFlags,
    TooLong,
}

/// The frame being assembled from a chain of rx slots.
#[derive(Default)]
struct RxChain {
    data: Vec<u8>,
    slots: usize,
    drop: Option<DropReason>,
}

/// A ring page granted to the backend; dropping it ends the grant (or leaks the page if
/// the backend still maps it).
struct RingPage<'a> {
    grants: &'a GrantTable,
    page: Option<Page>,
    gref: GrantRef,
}

/// A connected Xen virtual network interface.
pub struct Netfront<'a> {
    events: &'a EventChannels,
    index: u32,
    backend_id: DomId,
    mac: [u8; 6],
    mtu: usize,
    sg: bool,
    port: Port,
    config: NetConfig,
    tx: FrontRing<TxReq, TxRsp>,
    rx: FrontRing<RxReq, RxRsp>,
    tx_ring: RingPage<'a>,
    rx_ring: RingPage<'a>,
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
    rx_chain: RxChain,
    /// Extra-info slots still to skip on the rx ring.
    rx_extras: bool,
    rx_frames: VecDeque<Vec<u8>>,
    scratch: Vec<u8>,
    stats: NetStats,
    connected: bool,
}

impl<'a> Netfront<'a> {
    /// Connects `device/vif/<index>` with the default [`NetConfig`].
    pub async fn connect<T: Transport>(
        xs: &Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
    ) -> Result<Netfront<'a>, NetError> {
        Self::connect_with(xs, events, grants, index, NetConfig::default()).await
    }

    /// Connects `device/vif/<index>` with buffers sized by `config`.
    pub async fn connect_with<T: Transport>(
        xs: &Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
        config: NetConfig,
    ) -> Result<Netfront<'a>, NetError> {
        config.validate()?;
        let dev = Frontend::find(xs, "vif", index).await?;
        let mac_path = format!("{}/mac", dev.node());
        let mac_text = dev
            .value("mac")
            .await?
            .ok_or(XenbusError::Missing(mac_path))?;
        let mac = parse_mac(&mac_text).ok_or(NetError::BadMac(mac_text))?;

        // The backend publishes its features before it reaches InitWait.
        dev.switch_state(XenbusState::Initialising).await?;
        dev.wait_backend(|s| matches!(s, XenbusState::InitWait | XenbusState::Connected))
            .await?;
        if !dev.backend_feature("feature-rx-copy").await? {
            return Err(NetError::NoRxCopy);
        }
        let sg = config.sg && dev.backend_feature("feature-sg").await?;
        let mut mtu = match dev.backend_value("mtu").await? {
            None => DEFAULT_MTU,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|m| (MIN_MTU..=MAX_FRAME_LEN - ETH_HLEN).contains(m))
                .ok_or(NetError::BadMtu(v))?,
        };
        if !sg {
            // Without scatter-gather a frame must fit one page.
            mtu = mtu.min(PAGE_SIZE - ETH_HLEN);
        }

        let backend_id = dev.backend_id();
        let tx_ring = RingPage::new(grants, backend_id)?;
        let rx_ring = RingPage::new(grants, backend_id)?;
        // SAFETY: each ring page is a page of ours that lives in `self` (and is leaked rather
        // than freed while the backend may still map it); we only touch it through the ring.
        let (tx_shared, rx_shared) = unsafe {
            (
                SharedRing::<TxReq, TxRsp>::new(tx_ring.ptr(), PAGE_SIZE)?,
                SharedRing::<RxReq, RxRsp>::new(rx_ring.ptr(), PAGE_SIZE)?,
            )
        };
        let tx_pool = GrantPool::new(grants, backend_id, config.tx_buffers, true)?;
        let rx_pool = GrantPool::new(grants, backend_id, config.rx_buffers, false)?;
        let port = events.alloc_unbound(backend_id)?;
        let mut tx_slots = Vec::new();
        tx_slots.resize_with(TX_RING_SIZE, || None);
        let mut rx_slots = Vec::new();
        rx_slots.resize_with(RX_RING_SIZE, || None);
        let mut nf = Netfront {
            events,
            index,
            backend_id,
            mac,
            mtu,
            sg,
            port,
            config,
            tx: FrontRing::init(tx_shared),
            rx: FrontRing::init(rx_shared),
            tx_ring,
            rx_ring,
            tx_pool,
            rx_pool,
            tx_slots,
            tx_free_ids: (0..TX_RING_SIZE as u16).rev().collect(),
            tx_held: Vec::new(),
            tx_batching: false,
            tx_unpublished: false,
            rx_slots,
            rx_chain: RxChain::default(),
            rx_extras: false,
            rx_frames: VecDeque::new(),
            scratch: Vec::new(),
            stats: NetStats::default(),
            connected: false,
        };
        // Post every receive buffer before the backend looks at the ring.
        nf.refill_rx(false);

        let (tx_ref, rx_ref) = (nf.tx_ring.gref, nf.rx_ring.gref);
        // Linux's netback connects only when we say Connected (it ignores Initialised).
        dev.connect_with(Handshake::ConnectedFirst, |tx, node| async move {
            tx.write(&format!("{node}/tx-ring-ref"), format!("{tx_ref}"))
                .await?;
            tx.write(&format!("{node}/rx-ring-ref"), format!("{rx_ref}"))
                .await?;
            tx.write(&format!("{node}/event-channel"), format!("{port}"))
                .await?;
            tx.write(&format!("{node}/request-rx-copy"), "1").await?;
            tx.write(&format!("{node}/feature-rx-notify"), "1").await?;
            tx.write(&format!("{node}/feature-sg"), if sg { "1" } else { "0" })
                .await?;
            // smoltcp checks every checksum: ask for complete ones.
            tx.write(&format!("{node}/feature-no-csum-offload"), "1")
                .await?;
            tx.write(&format!("{node}/feature-gso-tcpv4"), "0").await
        })
        .await?;
        nf.connected = true;
        // Tell the backend about the buffers we posted.
        nf.events.send(nf.port)?;
        Ok(nf)
    }

    /// Closes the device through xenbus (`Closing`, wait for the backend, `Closed`). The
    /// rings stay allocated until the value is dropped.
    pub async fn disconnect<T: Transport>(&mut self, xs: &Xenstore<T>) -> Result<(), NetError> {
        let dev = Frontend::find(xs, "vif", self.index).await?;
        self.connected = false;
        dev.close().await?;
        Ok(())
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
    pub fn config(&self) -> NetConfig {
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
        // Nothing may wait unpublished while the caller sleeps.
        self.flush_tx();
        let mut work = !self.rx_frames.is_empty();
        loop {
            work |= self.reclaim_tx();
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

    /// Whether a frame of `len` bytes can be queued now (after reclaiming tx responses).
    pub fn can_send(&mut self, len: usize) -> bool {
        self.reclaim_tx();
        let pages = len.div_ceil(PAGE_SIZE).max(1);
        self.connected
            && self.tx.error().is_none()
            && self.tx.free_requests() as usize >= pages
            && self.tx_free_ids.len() >= pages
            && self.tx_pool.available() >= pages
    }

    /// Sends one Ethernet frame (copied into granted pages).
    ///
    /// # Errors
    /// [`NetError::FrameTooLarge`] (counted in `tx_too_big`) for an empty frame or one longer
    /// than [`max_frame_len`](Self::max_frame_len); [`NetError::Busy`] when no slot or page
    /// is free (nothing is counted: retry later); [`NetError::Ring`] if the backend broke the
    /// tx ring; [`NetError::NotConnected`] after [`disconnect`](Self::disconnect).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.check_len(frame.len())?;
        if !self.connected {
            return Err(NetError::NotConnected);
        }
        if let Some(e) = self.tx.error() {
            return Err(NetError::Ring(e));
        }
        if !self.can_send(frame.len()) {
            return Err(NetError::Busy);
        }
        self.queue_frame(frame.len(), |page, off| {
            let chunk = &frame[off..frame.len().min(off + PAGE_SIZE)];
            // SAFETY: `page` is a whole page of ours, free in the pool (no request refers to
            // it), and `chunk` is at most a page long.
            unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), page, chunk.len()) };
        });
        Ok(())
    }

    fn check_len(&mut self, len: usize) -> Result<(), NetError> {
        let max = self.max_frame_len().min(MAX_FRAME_LEN);
        if len == 0 || len > max || (!self.sg && len > PAGE_SIZE) {
            self.stats.tx_too_big += 1;
            return Err(NetError::FrameTooLarge(len));
        }
        Ok(())
    }

    /// Puts a `len`-byte frame on the tx ring, one page per [`PAGE_SIZE`] bytes; `fill`
    /// writes the bytes at frame offset `off` into each page. The caller checked
    /// [`can_send`](Self::can_send) and the length.
    fn queue_frame(&mut self, len: usize, mut fill: impl FnMut(*mut u8, usize)) {
        let pages = len.div_ceil(PAGE_SIZE);
        for i in 0..pages {
            let (Some(page), Some(id)) = (self.tx_pool.take(), self.tx_free_ids.pop()) else {
                // can_send said there was room; nothing was lent out since.
                unreachable!("netfront: tx resources vanished");
            };
            let off = i * PAGE_SIZE;
            let chunk = (len - off).min(PAGE_SIZE);
            fill(page.as_ptr(), off);
            let req = NetifTxRequest {
                gref: page.gref(),
                offset: 0,
                flags: if i + 1 < pages { NETTXF_more_data } else { 0 },
                id,
                // The first slot carries the whole frame's size, the others their own.
                size: if i == 0 { len as u16 } else { chunk as u16 },
            };
            self.tx_slots[id as usize] = Some(page);
            if self.tx.push_request(TxReq(req)).is_err() {
                unreachable!("netfront: tx ring full after can_send");
            }
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        self.tx_unpublished = true;
        if !self.tx_batching {
            self.flush_tx();
        }
    }

    /// With batching on, frames sent are only written to the ring; the backend sees them (and
    /// gets at most one notification for all of them) at the next [`flush_tx`](Self::flush_tx)
    /// or [`has_work`](Self::has_work). A network stack that sends several frames per poll
    /// turns this on and flushes after each poll. Off by default: each frame is published
    /// (and the backend notified if it asked) as it is sent.
    pub fn set_tx_batching(&mut self, on: bool) {
        self.tx_batching = on;
        if !on {
            self.flush_tx();
        }
    }

    /// Publishes the tx requests written since the last flush, and notifies the backend if
    /// it asked to be (Xen's "push requests and check notify").
    pub fn flush_tx(&mut self) {
        if !self.tx_unpublished {
            return;
        }
        self.tx_unpublished = false;
        if self.tx.push_requests_and_check_notify() {
            let _ = self.events.send(self.port);
        }
    }

    /// Takes tx responses off the ring and returns their pages to the pool (a page the
    /// backend still maps is held back until it is unmapped).
    fn reclaim_tx(&mut self) -> bool {
        let mut progress = false;
        if !self.tx_held.is_empty() {
            let grants = self.tx_ring.grants;
            let (free, held): (Vec<_>, Vec<_>) = core::mem::take(&mut self.tx_held)
                .into_iter()
                .partition(|p| !grants.is_mapped(p.gref()));
            self.tx_held = held;
            progress |= !free.is_empty();
            for p in free {
                self.tx_pool.give_back(p);
            }
        }
        loop {
            let had_error = self.tx.error().is_some();
            match self.tx.poll_response() {
                Ok(None) => break,
                Ok(Some(TxRsp(rsp))) => {
                    progress = true;
                    let id = rsp.id as usize;
                    match self.tx_slots.get_mut(id).and_then(Option::take) {
                        None => self.stats.tx_bad_id += 1,
                        Some(page) => {
                            if self.tx_ring.grants.is_mapped(page.gref()) {
                                // Answered but still mapped: the backend may still read it.
                                self.stats.tx_still_mapped += 1;
                                self.tx_held.push(page);
                            } else {
                                self.tx_pool.give_back(page);
                            }
                            self.tx_free_ids.push(id as u16);
                            match rsp.status {
                                NETIF_RSP_OKAY => {}
                                NETIF_RSP_ERROR | NETIF_RSP_DROPPED => self.stats.tx_errors += 1,
                                _ => self.stats.tx_bad_status += 1,
                            }
                        }
                    }
                }
                Err(e) => {
                    self.count_ring_error("tx", had_error, e);
                    break;
                }
            }
        }
        progress
    }

    /// Takes rx responses off the ring (while the frame queue has room), assembles frames and
    /// reposts the buffers.
    fn poll_rx(&mut self) -> bool {
        let mut progress = false;
        while self.rx_frames.len() < self.config.rx_queue {
            let had_error = self.rx.error().is_some();
            let idx = self.rx.rsp_cons();
            match self.rx.poll_response() {
                Ok(None) => break,
                Ok(Some(RxRsp(rsp))) => {
                    progress = true;
                    self.rx_slot(idx, rsp);
                }
                Err(e) => {
                    self.count_ring_error("rx", had_error, e);
                    break;
                }
            }
        }
        if progress {
            self.refill_rx(true);
        }
        progress
    }

    /// Handles the response in rx ring slot `idx`.
    fn rx_slot(&mut self, idx: u32, rsp: NetifRxResponse) {
        let slot = idx as usize % RX_RING_SIZE;
        // Whatever the response says, the backend is done with the buffer of this slot.
        let Some(page) = self.rx_slots[slot].take() else {
            // Every published request has its page; a response can only answer one.
            self.stats.ring_errors += 1;
            return;
        };
        if self.rx_extras {
            // An extra-info slot: `type` and `flags` are its first two bytes.
            let [_ty, flags] = rsp.id.to_le_bytes();
            self.rx_extras = flags & XEN_NETIF_EXTRA_FLAG_MORE != 0;
            self.stats.rx_extra_info += 1;
            self.rx_pool.give_back(page);
            return;
        }
        let chain = &mut self.rx_chain;
        chain.slots = chain.slots.saturating_add(1);
        let size = rsp.status as usize;
        let bad = if rsp.id as usize != slot {
            Some(DropReason::BadId)
        } else if rsp.status < 0 {
            Some(DropReason::BadStatus)
        } else if rsp.flags & !KNOWN_RX_FLAGS != 0 {
            Some(DropReason::BadFlags)
        } else if rsp.offset as usize + size > PAGE_SIZE {
            Some(DropReason::BadSize)
        } else if chain.slots > MAX_RX_SLOTS || chain.data.len() + size > MAX_FRAME_LEN {
            Some(DropReason::TooLong)
        } else {
            None
        };
        match (chain.drop, bad) {
            (None, Some(reason)) => {
                chain.drop = Some(reason);
                chain.data = Vec::new();
                let s = &mut self.stats;
                match reason {
                    DropReason::BadId => s.rx_bad_id += 1,
                    DropReason::BadStatus => s.rx_bad_status += 1,
                    DropReason::BadSize => s.rx_bad_size += 1,
                    DropReason::BadFlags => s.rx_bad_flags += 1,
                    DropReason::TooLong => s.rx_too_long += 1,
                }
            }
            (None, None) => {
                let start = chain.data.len();
                chain.data.resize(start + size, 0);
                // SAFETY: offset + size <= PAGE_SIZE was checked; the page is ours and the
                // backend is done with it (it answered the request); the destination has
                // `size` bytes.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        page.as_ptr().add(rsp.offset as usize),
                        chain.data.as_mut_ptr().add(start),
                        size,
                    )
                };
            }
            (Some(_), _) => {}
        }
        self.rx_pool.give_back(page);
        if rsp.flags & NETRXF_extra_info != 0 {
            self.rx_extras = true;
        }
        if rsp.flags & NETRXF_more_data == 0 {
            let chain = core::mem::take(&mut self.rx_chain);
            if chain.drop.is_none() {
                if chain.data.is_empty() {
                    self.stats.rx_bad_size += 1;
                } else {
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += chain.data.len() as u64;
                    self.rx_frames.push_back(chain.data);
                }
            }
        }
    }

    /// Posts free receive pages to the backend.
    fn refill_rx(&mut self, notify: bool) {
        if self.rx.error().is_some() {
            return;
        }
        let mut pushed = false;
        while self.rx.free_requests() > 0 {
            let idx = self.rx.req_prod_pvt();
            let slot = idx as usize % RX_RING_SIZE;
            if self.rx_slots[slot].is_some() {
                // Cannot happen: the request this slot held was answered and consumed.
                break;
            }
            let Some(page) = self.rx_pool.take() else {
                break;
            };
            let req = NetifRxRequest {
                id: slot as u16,
                pad: 0,
                gref: page.gref(),
            };
            if self.rx.push_request(RxReq(req)).is_err() {
                self.rx_pool.give_back(page);
                break;
            }
            self.rx_slots[slot] = Some(page);
            pushed = true;
        }
        // Publish (always), notify (if the backend asked and we are connected).
        if pushed && self.rx.push_requests_and_check_notify() && notify {
            let _ = self.events.send(self.port);
        }
    }
}

impl<'a> RingPage<'a> {
    fn new(grants: &'a GrantTable, backend: DomId) -> Result<RingPage<'a>, NetError> {
        let page = Page::new().ok_or(NetError::NoMemory)?;
        let gref = grants.grant_page(backend, page.as_non_null(), false)?;
        Ok(RingPage {
            grants,
            page: Some(page),
            gref,
        })
    }

    fn ptr(&self) -> NonNull<u8> {
        match &self.page {
            Some(p) => p.as_non_null(),
            None => NonNull::dangling(),
        }
    }
}

impl Drop for RingPage<'_> {
    fn drop(&mut self) {
        if let Some(page) = self.page.take() {
            if self.grants.end_access(self.gref).is_err() {
                // The backend still maps it: it must never return to the allocator.
                core::mem::forget(page);
            }
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
            .field("port", &self.port)
            .field("connected", &self.connected)
            .field("rx_error", &self.rx.error())
            .field("tx_error", &self.tx.error())
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
        // The ring pages end their grants when the fields drop.
        let _ = self.events.close(self.port);
    }
}
