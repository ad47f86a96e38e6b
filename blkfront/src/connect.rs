//! Finding and connecting a vbd: ring setup, the xenbus handshake, the disk's properties.

use crate::slots::{Inner, Slot, SlotState};
use crate::{
    vdev_from_name, Blkfront, BlkfrontConfig, BlkfrontError, DiskInfo, Features, Stats,
    MAX_RING_PAGE_ORDER, SEGS_PER_INDIRECT_PAGE,
};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use xenia_ring::{FrontRing, SharedRing};
use xenia_xen::abi::blkif_wire::{RequestSlot, ResponseSlot};
use xenia_xen::abi::{
    XenbusState, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    VDISK_READONLY,
};
use xenia_xen::events::EventChannels;
use xenia_xen::grant::{GrantPool, GrantTable, GrantedRing};
use xenia_xen::memory::PAGE_SIZE;
use xenia_xen::xenbus::{self, Feature, Frontend};
use xenia_xen::xenstore::{Transport, Xenstore};

fn parse<N: core::str::FromStr>(key: &'static str, v: &str) -> Result<N, BlkfrontError> {
    v.trim()
        .parse()
        .map_err(|_| BlkfrontError::BadInfo(key, v.into()))
}

async fn read_opt<T: Transport>(
    xs: &Xenstore<T>,
    path: &str,
) -> Result<Option<String>, BlkfrontError> {
    match xs.read_optional(path).await {
        Ok(v) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
        Err(e) => Err(BlkfrontError::Xenbus(e.into())),
    }
}

impl<'a, T: Transport> Blkfront<'a, T> {
    /// Finds the index (`device/vbd/<index>`) of the disk called `name` (`xvda`, ...): the
    /// device whose index or `virtual-device` is the name's number, or whose backend's `dev`
    /// is the name.
    pub async fn find(xs: &'a Xenstore<T>, name: &str) -> Result<u32, BlkfrontError> {
        let vdev = vdev_from_name(name);
        let ids = xenbus::devices(xs, "vbd").await?;
        if let Some(v) = vdev.filter(|v| ids.contains(v)) {
            return Ok(v);
        }
        for &i in &ids {
            let node = format!("device/vbd/{i}");
            if let Some(v) = read_opt(xs, &format!("{node}/virtual-device")).await? {
                if vdev.is_some() && v.trim().parse::<u32>().ok() == vdev {
                    return Ok(i);
                }
            }
            if let Some(be) = read_opt(xs, &format!("{node}/backend")).await? {
                if read_opt(xs, &format!("{be}/dev")).await?.as_deref() == Some(name) {
                    return Ok(i);
                }
            }
        }
        Err(BlkfrontError::NoSuchDevice(name.into()))
    }

    /// Connects to device `device/vbd/<index>` with the default [`BlkfrontConfig`].
    pub async fn connect(
        xs: &'a Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
    ) -> Result<Self, BlkfrontError> {
        Self::connect_with(xs, events, grants, index, BlkfrontConfig::default()).await
    }

    /// Connects to device `device/vbd/<index>`: shares the ring and event channel through the
    /// xenbus handshake, then reads and validates the disk's properties.
    pub async fn connect_with(
        xs: &'a Xenstore<T>,
        events: &'a EventChannels,
        grants: &'a GrantTable,
        index: u32,
        config: BlkfrontConfig,
    ) -> Result<Self, BlkfrontError> {
        let dev = Frontend::find(xs, "vbd", index).await?;
        let backend = dev.backend_id();
        // The backend publishes max-ring-page-order before InitWait.
        dev.wait_backend(|s| matches!(s, XenbusState::InitWait | XenbusState::Connected))
            .await?;
        let max_order: u32 = match dev.backend_value("max-ring-page-order").await? {
            None => 0,
            Some(v) => parse("max-ring-page-order", &v)?,
        };
        let order = max_order
            .min(config.max_ring_page_order)
            .min(MAX_RING_PAGE_ORDER);
        // Dropped on any error below: its grants end (or its pages are leaked if the backend
        // already maps them).
        let area = GrantedRing::new(grants, backend, order)?;
        // SAFETY: the area is ours, page-aligned, `area.len()` bytes, and lives in
        // `ring_area` for as long as the ring (it is leaked if the backend keeps it mapped).
        let shared =
            unsafe { SharedRing::<RequestSlot, ResponseSlot>::new(area.as_non_null(), area.len()) }
                .map_err(BlkfrontError::Ring)?;
        let ring = FrontRing::init(shared);
        let port = events.alloc_unbound(backend)?;
        let pool = match GrantPool::new(
            grants,
            backend,
            config.pool_pages.max(BLKIF_MAX_SEGMENTS_PER_REQUEST),
            false,
        ) {
            Ok(p) => p,
            Err(e) => {
                let _ = events.close(port);
                return Err(e.into());
            }
        };
        let size = ring.size() as usize;
        let mut front = Blkfront {
            dev,
            events,
            port,
            epoch: events.epoch(),
            ring_area: area,
            handle: index as u16,
            segs_per_request: BLKIF_MAX_SEGMENTS_PER_REQUEST,
            config,
            info: DiskInfo {
                sectors: 0,
                sector_size: 512,
                physical_sector_size: 512,
                info: 0,
                read_only: true,
            },
            features: Features::default(),
            inner: RefCell::new(Inner {
                ring,
                pool,
                slots: (0..size)
                    .map(|_| Slot {
                        gen: 0,
                        op: 0,
                        indirect: false,
                        state: SlotState::Free,
                        pages: Vec::new(),
                        waker: None,
                    })
                    .collect(),
                free_slots: (0..size).rev().collect(),
                waiters: Vec::new(),
                broken: None,
                stats: Stats::default(),
            }),
        };
        // On error from here on, dropping `front` ends the grants and closes the port.
        let grefs = front.ring_area.grefs().to_vec();
        front
            .dev
            .connect(|tx, node| {
                let grefs = grefs.clone();
                async move {
                    if grefs.len() == 1 {
                        tx.write(&format!("{node}/ring-ref"), format!("{}", grefs[0]))
                            .await?;
                    } else {
                        tx.write(&format!("{node}/ring-page-order"), format!("{order}"))
                            .await?;
                        // The older name of the same thing, for backends that read it.
                        tx.write(
                            &format!("{node}/num-ring-pages"),
                            format!("{}", grefs.len()),
                        )
                        .await?;
                        for (i, g) in grefs.iter().enumerate() {
                            tx.write(&format!("{node}/ring-ref{i}"), format!("{g}"))
                                .await?;
                        }
                    }
                    tx.write(&format!("{node}/event-channel"), format!("{port}"))
                        .await?;
                    // Our data pages are granted once, writable, and reused: the backend may
                    // keep them mapped (blkif.h's persistent grants).
                    tx.write(&format!("{node}/feature-persistent"), "1").await?;
                    tx.write(&format!("{node}/protocol"), "x86_64-abi").await
                }
            })
            .await?;
        front.read_info().await?;
        Ok(front)
    }

    async fn read_info(&mut self) -> Result<(), BlkfrontError> {
        let dev = &self.dev;
        let req = |k: &'static str| async move {
            dev.backend_value(k)
                .await?
                .ok_or_else(|| BlkfrontError::BadInfo(k, String::new()))
        };
        let sectors: u64 = parse("sectors", &req("sectors").await?)?;
        let ss_text = req("sector-size").await?;
        let sector_size: u32 = parse("sector-size", &ss_text)?;
        if !sector_size.is_power_of_two() || !(512..=PAGE_SIZE as u32).contains(&sector_size) {
            return Err(BlkfrontError::BadInfo("sector-size", ss_text));
        }
        // The size in bytes must fit in 64 bits (so every wire sector number does).
        if sectors.checked_mul(u64::from(sector_size)).is_none() {
            return Err(BlkfrontError::BadInfo("sectors", format!("{sectors}")));
        }
        let physical_sector_size = match dev.backend_value("physical-sector-size").await? {
            None => sector_size,
            Some(v) => {
                let p: u32 = parse("physical-sector-size", &v)?;
                if p == 0 || !p.is_multiple_of(sector_size) {
                    return Err(BlkfrontError::BadInfo("physical-sector-size", v));
                }
                p
            }
        };
        let info: u32 = match dev.backend_value("info").await? {
            None => 0,
            Some(v) => parse("info", &v)?,
        };
        let mode_ro = dev.backend_value("mode").await?.as_deref() == Some("r");
        let num = |k: &'static str, default: u32| async move {
            match dev.backend_value(k).await? {
                None => Ok::<u32, BlkfrontError>(default),
                Some(v) => parse(k, &v),
            }
        };
        // "1" is on, anything else off; a value other than "0" or "1" is counted.
        let bad_features = core::cell::Cell::new(0u64);
        let flag = |k: &'static str| {
            let bad_features = &bad_features;
            async move {
                let f = dev.backend_feature_value(k).await?;
                if f == Feature::Invalid {
                    bad_features.set(bad_features.get() + 1);
                }
                Ok::<bool, BlkfrontError>(f.enabled())
            }
        };
        let features = Features {
            flush_cache: flag("feature-flush-cache").await?,
            barrier: flag("feature-barrier").await?,
            discard: flag("feature-discard").await?,
            discard_granularity: num("discard-granularity", sector_size).await?,
            discard_alignment: num("discard-alignment", 0).await?,
            discard_secure: flag("discard-secure").await?,
            persistent: flag("feature-persistent").await?,
            max_indirect_segments: num("feature-max-indirect-segments", 0).await?,
            max_ring_page_order: num("max-ring-page-order", 0).await?,
        };
        self.info = DiskInfo {
            sectors,
            sector_size,
            physical_sector_size,
            info,
            read_only: info & VDISK_READONLY != 0 || mode_ro,
        };
        self.features = features;
        self.inner.get_mut().stats.bad_features = bad_features.get();
        // Indirect requests: as many segments as both sides allow and the pool can hold
        // together with their indirect pages.
        let pool = self.inner.get_mut().pool.total();
        let max_ind = SEGS_PER_INDIRECT_PAGE * BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST;
        let segs = (features.max_indirect_segments as usize)
            .min(self.config.max_indirect_segments as usize)
            .min(max_ind)
            .min(pool.saturating_sub(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST));
        if segs > BLKIF_MAX_SEGMENTS_PER_REQUEST {
            self.segs_per_request = segs;
        }
        Ok(())
    }
}
