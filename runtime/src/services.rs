//! The Xen services every guest has: event channels, xenstore, the grant table, and the
//! watch on `control/shutdown` that makes `xl shutdown` / `xl reboot` / `xl save` work.

use core::ptr::NonNull;
use xenia_xen::events::EventChannels;
use xenia_xen::grant::GrantTable;
use xenia_xen::xenstore::{RingTransport, Xenstore};

static EVENTS: spin::Once<EventChannels> = spin::Once::new();
static XENSTORE: spin::Once<Xenstore<RingTransport>> = spin::Once::new();
static GRANTS: spin::Once<Option<GrantTable>> = spin::Once::new();

/// The domain's event channels (after boot).
pub fn events() -> Option<&'static EventChannels> {
    EVENTS.get()
}

/// Sets up event channels and the xenstore client. Called once at boot.
///
/// # Safety
/// The shared_info page must be set ([`crate::shared_info::set`]) and `store_page` must be the
/// xenstore ring page, both valid for the rest of the program; call once.
pub(crate) unsafe fn init(console_port: Option<u32>, store_page: usize, store_port: u32) {
    let Some(shared) = crate::shared_info::get() else {
        log::error!("services: no shared_info page, so no event channels or xenstore");
        return;
    };
    // SAFETY: shared_info is mapped for the guest's lifetime; this is the only instance.
    let ev = EVENTS.call_once(|| unsafe { EventChannels::new(shared) });
    if let Some(port) = console_port {
        let _ = ev.adopt(port);
    }
    if let Some(page) = NonNull::new(store_page as *mut u8) {
        // SAFETY: the xenstore page from start_info, used only by this transport.
        match unsafe { RingTransport::new(page, store_port, ev) } {
            Ok(t) => {
                XENSTORE.call_once(|| Xenstore::new(t));
            }
            Err(e) => log::error!("xenstore ring unusable: {e}"),
        }
    }
}

/// The xenstore client of this domain.
///
/// # Panics
/// If xenstore could not be set up at boot (the console said why).
pub fn xenstore() -> &'static Xenstore<RingTransport> {
    XENSTORE.get().expect("xenstore is not available")
}

/// The xenstore client, if xenstore came up at boot.
pub(crate) fn xenstore_if_up() -> Option<&'static Xenstore<RingTransport>> {
    XENSTORE.get()
}

/// The grant table if something has set it up already (without setting it up).
pub(crate) fn grant_table_if_set_up() -> Option<&'static GrantTable> {
    GRANTS.get().and_then(Option::as_ref)
}

/// The grant table (set up on first use).
pub fn grant_table() -> Option<&'static GrantTable> {
    GRANTS
        .call_once(|| match GrantTable::new(4) {
            Ok(t) => Some(t),
            Err(e) => {
                log::error!("grant table setup failed: {e}");
                None
            }
        })
        .as_ref()
}

/// Watches `control/shutdown` and acts on the toolstack's requests (poweroff, halt, reboot).
pub(crate) async fn shutdown_watcher() {
    let Some(xs) = XENSTORE.get() else {
        return;
    };
    // What we honour, like Linux (written again in a new domain after a restore).
    let advertise = || async {
        for (key, on) in [
            ("control/feature-poweroff", "1"),
            ("control/feature-reboot", "1"),
            ("control/feature-suspend", "1"),
        ] {
            let _ = xs.write(key, on).await;
        }
    };
    advertise().await;
    let mut watch = match xs.watch("control/shutdown", "xenia-shutdown").await {
        Ok(w) => w,
        Err(e) => {
            log::warn!("cannot watch control/shutdown: {e}");
            return;
        }
    };
    loop {
        let req = xs.read_string("control/shutdown").await.unwrap_or_default();
        let reason = match req.as_str() {
            "poweroff" | "halt" => Some(crate::ShutdownReason::Poweroff),
            "reboot" => Some(crate::ShutdownReason::Reboot),
            "" | "suspend" => None,
            other => {
                log::warn!("ignoring unsupported shutdown request {other:?}");
                None
            }
        };
        if req == "suspend" {
            // Acknowledge, then suspend: the toolstack waits for the domain to stop.
            let _ = xs.write("control/shutdown", "").await;
            log::info!("suspend requested by the toolstack");
            // Quiesce xenstore: let requests in flight get their replies (bounded), so none
            // is lost if the domain resumes elsewhere.
            let idle_by = crate::time::Instant::now() + core::time::Duration::from_secs(2);
            while xs.outstanding() > 0 && crate::time::Instant::now() < idle_by {
                crate::sleep(core::time::Duration::from_millis(1)).await;
            }
            match crate::lifecycle::suspend() {
                Ok(r) => {
                    log::info!("resumed: {r:?}");
                    if r == crate::lifecycle::Resumed::NewDomain {
                        advertise().await;
                    }
                }
                Err(e) => log::error!("{e}"),
            }
        }
        if let Some(r) = reason {
            // Acknowledge, as the toolstack expects, then go.
            let _ = xs.write("control/shutdown", "").await;
            crate::println!("xenia: {req} requested by the toolstack");
            crate::exit(r);
        }
        match watch.next_event().await {
            Some(Ok(_)) => {}
            _ => return,
        }
    }
}
