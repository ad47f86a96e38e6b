//! A secondary PV console (`device/console/<n>`, n ≥ 1): the same ring page as console 0, but
//! found through xenbus, shared by a grant rather than given in start_info, and served by the
//! toolstack's console backend (QEMU's for xl `channel`s), which gives it a pty in dom0.

use alloc::format;
use alloc::string::ToString;
use xenia_xen::console::{Console, ConsoleError};
use xenia_xen::events::EventError;
use xenia_xen::grant::{GrantError, GrantedRing};
use xenia_xen::xenbus::{Frontend, XenbusError};

/// Why a secondary console could not be attached.
#[derive(Debug)]
pub enum AttachError {
    /// Xenstore or the xenbus handshake failed (no such device, or the backend closed).
    Xenbus(XenbusError),
    /// No grant table, or granting the ring page failed.
    Grant(Option<GrantError>),
    /// No event channels, or allocating the port failed.
    Event(Option<EventError>),
    /// The ring page was unusable.
    Console(ConsoleError),
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttachError::Xenbus(e) => write!(f, "console: {e}"),
            AttachError::Grant(Some(e)) => write!(f, "console: granting the ring failed: {e}"),
            AttachError::Grant(None) => f.write_str("console: no grant table"),
            AttachError::Event(Some(e)) => write!(f, "console: event channel: {e}"),
            AttachError::Event(None) => f.write_str("console: no event channels"),
            AttachError::Console(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for AttachError {}

impl From<XenbusError> for AttachError {
    fn from(e: XenbusError) -> Self {
        AttachError::Xenbus(e)
    }
}

/// Connects the guest's console `index` (≥ 1): grants a ring page and an event channel to the
/// backend, publishes `ring-ref` and `port`, and waits for the backend to connect. The ring
/// stays granted for the rest of the guest's life.
pub async fn attach(index: u32) -> Result<Console, AttachError> {
    let xs = crate::services::xenstore_if_up()
        .ok_or(AttachError::Xenbus(XenbusError::Missing("xenstore".into())))?;
    let dev = Frontend::find(xs, "console", index).await?;
    let grants = crate::services::grant_table().ok_or(AttachError::Grant(None))?;
    let ring =
        GrantedRing::new(grants, dev.backend_id(), 0).map_err(|e| AttachError::Grant(Some(e)))?;
    let events = crate::services::events().ok_or(AttachError::Event(None))?;
    let port = events
        .alloc_unbound(dev.backend_id())
        .map_err(|e| AttachError::Event(Some(e)))?;
    let gref = ring.grefs()[0].to_string();
    let port_str = port.to_string();
    dev.connect(|tx, node| {
        let (gref, port_str) = (gref.clone(), port_str.clone());
        async move {
            tx.write(&format!("{node}/ring-ref"), &gref).await?;
            tx.write(&format!("{node}/port"), &port_str).await
        }
    })
    .await?;
    // SAFETY: the ring page is ours, granted to the backend only, and stays allocated: the
    // GrantedRing is forgotten below, so the page is never freed.
    let con = unsafe { Console::new(ring.as_non_null(), port) }.map_err(AttachError::Console)?;
    core::mem::forget(ring);
    Ok(con)
}
