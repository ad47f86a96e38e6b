//! Connecting: negotiation with the backend through xenbus, and setting up the rings.

use crate::assemble::Assembler;
use crate::{
    parse_mac, NetStats, Netfront, NetfrontConfig, NetfrontError, DEFAULT_MTU, ETH_HLEN,
    MAX_FRAME_LEN, MAX_GSO_FRAME, MAX_RX_SLOTS, MIN_MTU, RX_RING_SIZE, TX_RING_SIZE,
};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xenia_ring::{FrontRing, SharedRing};
use xenia_xen::abi::netif_wire::{RxRequestSlot, RxResponseSlot, TxRequestSlot, TxResponseSlot};
use xenia_xen::abi::XenbusState;
use xenia_xen::events::EventChannels;
use xenia_xen::grant::{GrantPool, GrantTable, GrantedRing};
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenbus::{Feature, Frontend, Handshake, XenbusError};
use xenia_xen::xenstore::{Transport, Xenstore};

impl<'a> Netfront<'a> {
    /// Connects `device/vif/<index>` with the default [`NetfrontConfig`].
    pub async fn connect<T: Transport>(
        xs: &Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
    ) -> Result<Netfront<'a>, NetfrontError> {
        Self::connect_with(xs, events, grants, index, NetfrontConfig::default()).await
    }

    /// Connects `device/vif/<index>` with buffers sized by `config`.
    pub async fn connect_with<T: Transport>(
        xs: &Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
        config: NetfrontConfig,
    ) -> Result<Netfront<'a>, NetfrontError> {
        config.validate()?;
        let dev = Frontend::find(xs, "vif", index).await?;
        let mac_path = format!("{}/mac", dev.node());
        let mac_text = dev
            .value("mac")
            .await?
            .ok_or(XenbusError::Missing(mac_path))?;
        let mac = parse_mac(&mac_text).ok_or(NetfrontError::BadMac(mac_text))?;

        // The backend publishes its features before it reaches InitWait.
        dev.switch_state(XenbusState::Initialising).await?;
        dev.wait_backend(|s| matches!(s, XenbusState::InitWait | XenbusState::Connected))
            .await?;
        // "1" is on, anything else off; a value other than "0" or "1" is counted.
        let mut bad_features = 0;
        let rx_copy = dev.backend_feature_value("feature-rx-copy").await?;
        let sg_offered = dev.backend_feature_value("feature-sg").await?;
        let gso_offered = dev.backend_feature_value("feature-gso-tcpv4").await?;
        for f in [rx_copy, sg_offered, gso_offered] {
            bad_features += u64::from(f == Feature::Invalid);
        }
        if !rx_copy.enabled() {
            return Err(NetfrontError::NoRxCopy);
        }
        let sg = config.sg && sg_offered.enabled();
        // A GSO super-frame spans pages: TSO needs scatter-gather too, and tx pages for one
        // whole super-frame (smoltcp asks for a token only when that much is free).
        let gso_tx = sg
            && config.gso
            && gso_offered.enabled()
            && config.tx_buffers >= MAX_GSO_FRAME.div_ceil(PAGE_SIZE);
        // Large receive: netback needs ⌈len/4096⌉ + 1 posted buffers for a GSO frame.
        let gso_rx = sg && config.gso && config.rx_buffers > MAX_RX_SLOTS;
        let mut mtu = match dev.backend_value("mtu").await? {
            None => DEFAULT_MTU,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|m| (MIN_MTU..=MAX_FRAME_LEN - ETH_HLEN).contains(m))
                .ok_or(NetfrontError::BadMtu(v))?,
        };
        if !sg {
            // Without scatter-gather a frame must fit one page.
            mtu = mtu.min(PAGE_SIZE - ETH_HLEN);
        }

        let backend_id = dev.backend_id();
        let tx_ring = GrantedRing::new(grants, backend_id, 0)?;
        let rx_ring = GrantedRing::new(grants, backend_id, 0)?;
        // SAFETY: each ring area is memory of ours that lives in `self` (and is leaked rather
        // than freed while the backend may still map it); we only touch it through the ring.
        let (tx_shared, rx_shared) = unsafe {
            (
                SharedRing::<TxRequestSlot, TxResponseSlot>::new(
                    tx_ring.as_non_null(),
                    tx_ring.len(),
                )?,
                SharedRing::<RxRequestSlot, RxResponseSlot>::new(
                    rx_ring.as_non_null(),
                    rx_ring.len(),
                )?,
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
            gso_tx,
            port,
            config,
            grants,
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
            // No frame exceeds the MTU, but with large receive a GSO frame may be 64 KiB.
            rx_assembler: Assembler::with_gso(
                mtu + ETH_HLEN,
                if gso_rx {
                    MAX_FRAME_LEN
                } else {
                    mtu + ETH_HLEN
                },
            ),
            rx_frames: VecDeque::new(),
            scratch: Vec::new(),
            stats: NetStats {
                bad_features,
                ..NetStats::default()
            },
            connected: false,
            broken: None,
        };
        // Post every receive buffer before the backend looks at the ring.
        nf.refill_rx(false);

        let (tx_ref, rx_ref) = (nf.tx_ring.grefs()[0], nf.rx_ring.grefs()[0]);
        // Linux's netback connects only when we say Connected (it ignores Initialised).
        dev.connect_with(Handshake::ConnectedFirst, |tx, node| async move {
            let flag = |on: bool| String::from(if on { "1" } else { "0" });
            let keys: [(&str, Option<String>); 8] = [
                ("tx-ring-ref", Some(format!("{tx_ref}"))),
                ("rx-ring-ref", Some(format!("{rx_ref}"))),
                ("event-channel", Some(format!("{port}"))),
                ("request-rx-copy", Some(flag(true))),
                ("feature-rx-notify", Some(flag(true))),
                ("feature-sg", Some(flag(sg))),
                // With large receive we complete partial checksums (NETRXF_csum_blank)
                // ourselves; without, ask for complete ones (this would also turn GSO off).
                ("feature-no-csum-offload", (!gso_rx).then(|| flag(true))),
                ("feature-gso-tcpv4", Some(flag(gso_rx))),
            ];
            // One await in a loop rather than one per key: the handshake's state machine
            // carries one inlined write instead of eight.
            for (key, value) in keys {
                if let Some(value) = value {
                    tx.write(&format!("{node}/{key}"), value).await?;
                }
            }
            Ok(())
        })
        .await?;
        nf.connected = true;
        // Tell the backend about the buffers we posted.
        nf.events.send(nf.port)?;
        Ok(nf)
    }

    /// Closes the device through xenbus (`Closing`, wait for the backend, `Closed`). The
    /// rings stay allocated until the value is dropped.
    pub async fn disconnect<T: Transport>(
        &mut self,
        xs: &Xenstore<T>,
    ) -> Result<(), NetfrontError> {
        let dev = Frontend::find(xs, "vif", self.index).await?;
        self.connected = false;
        dev.close().await?;
        Ok(())
    }
}
