//! How much of the heap the network may take: its pools are sized from the domain's memory, so
//! a small domain (`memory=4`, the domain builder's floor) serves with fewer connections
//! instead of running out of heap.
//!
//! The rule, with `H` the bytes the heap got at boot (`BootInfo::heap_bytes`):
//!
//! - The vif's pages (netfront's receive and transmit buffers, one page each) take at most
//!   `H / 8`. The configuration asked for is kept when it fits; otherwise both counts shrink in
//!   the same proportion (receive at least [`MIN_RX_BUFFERS`], transmit at least
//!   [`MIN_TX_BUFFERS`]), and the receive queue with them.
//! - A listener at its worst takes at most `3 H / 4`: its sockets (the listening one, the
//!   accept queue, the half-open handshakes, the accepted streams and the orphans all full),
//!   each with its two buffers and [`SOCKET_OVERHEAD`] bytes of state, plus what the app
//!   declared it holds beside them ([`ListenConfig::app_bytes_per_connection`] for each
//!   accepted stream, [`ListenConfig::app_bytes_shared`] once). A [`ListenConfig`] that fits
//!   is kept; otherwise its counts and its shared app bytes shrink in the same proportion
//!   (each count at least 1, half-open at least [`MIN_HALF_OPEN`]). Buffer sizes and the
//!   per-connection app bytes are never changed: they bound what one request can do, which
//!   the app chose.
//!
//! The remaining eighth is for everything else (the app's own allocations, smoltcp's tables,
//! xenstore, the executor). With `memory=16` (the http example's) nothing shrinks. On the host
//! the heap is the process's: nothing is shrunk.

use super::{ListenConfig, NetfrontConfig};

/// Bytes of one socket beyond its buffers (smoltcp's socket and its storage slot, the
/// listener's bookkeeping), rounded up.
pub const SOCKET_OVERHEAD: usize = 2048;
/// The fewest receive pages a shrunk vif posts.
pub const MIN_RX_BUFFERS: usize = 16;
/// The fewest transmit pages a shrunk vif has.
pub const MIN_TX_BUFFERS: usize = 8;
/// The fewest half-open handshakes a shrunk listener keeps (a few clients connecting at once).
pub const MIN_HALF_OPEN: usize = 4;

const PAGE_SIZE: usize = 4096;

/// The heap's size at boot, or `None` on the host.
pub(crate) fn heap_bytes() -> Option<usize> {
    #[cfg(target_os = "none")]
    {
        Some(crate::boot_info().heap_bytes)
    }
    #[cfg(not(target_os = "none"))]
    {
        None
    }
}

/// The default vif configuration, fitted to this domain's heap.
pub(crate) fn netfront() -> NetfrontConfig {
    netfront_config(NetfrontConfig::default(), heap_bytes())
}

/// `wanted`, fitted to this domain's heap.
pub(crate) fn listener(wanted: ListenConfig) -> ListenConfig {
    listen_config(wanted, heap_bytes())
}

/// `n * num / den`, at least `min`, never more than `n`.
fn scale(n: usize, num: usize, den: usize, min: usize) -> usize {
    let scaled = (n as u128 * num as u128 / den.max(1) as u128) as usize;
    scaled.max(min).min(n)
}

/// `wanted`, shrunk to fit the vif's share of a heap of `heap` bytes (see the module).
pub fn netfront_config(wanted: NetfrontConfig, heap: Option<usize>) -> NetfrontConfig {
    let Some(heap) = heap else { return wanted };
    let pages = wanted.rx_buffers + wanted.tx_buffers;
    let allowed = heap / 8 / PAGE_SIZE;
    if pages <= allowed {
        return wanted;
    }
    let c = NetfrontConfig {
        rx_buffers: scale(wanted.rx_buffers, allowed, pages, MIN_RX_BUFFERS),
        tx_buffers: scale(wanted.tx_buffers, allowed, pages, MIN_TX_BUFFERS),
        rx_queue: scale(wanted.rx_queue, allowed, pages, MIN_RX_BUFFERS),
        ..wanted
    };
    log::info!(
        "net: memory budget: heap {} KiB: vif buffers rx {} tx {} (asked {} {}), rx queue {}",
        heap / 1024,
        c.rx_buffers,
        c.tx_buffers,
        wanted.rx_buffers,
        wanted.tx_buffers,
        c.rx_queue
    );
    c
}

/// Sockets a listener with `c` may hold at once.
fn sockets(c: &ListenConfig) -> usize {
    1 + c.backlog + c.max_half_open + c.max_connections + c.max_orphans
}

/// Heap bytes a listener with `c` may hold at its worst: its sockets and the app's declared
/// bytes.
fn worst_case(c: &ListenConfig) -> usize {
    let per_socket = c.rx_buffer + c.tx_buffer + SOCKET_OVERHEAD;
    sockets(c) * per_socket + c.max_connections * c.app_bytes_per_connection + c.app_bytes_shared
}

/// `wanted`, shrunk to fit the listeners' share of a heap of `heap` bytes (see the module).
pub fn listen_config(wanted: ListenConfig, heap: Option<usize>) -> ListenConfig {
    let Some(heap) = heap else { return wanted };
    let share = heap / 4 * 3;
    let need = worst_case(&wanted);
    if need <= share {
        return wanted;
    }
    // The listening socket itself is not scaled.
    let fixed = wanted.rx_buffer + wanted.tx_buffer + SOCKET_OVERHEAD;
    let (num, den) = (share.saturating_sub(fixed), need - fixed);
    let c = ListenConfig {
        backlog: scale(wanted.backlog, num, den, 1),
        max_half_open: scale(wanted.max_half_open, num, den, MIN_HALF_OPEN),
        max_connections: scale(wanted.max_connections, num, den, 1),
        max_orphans: scale(wanted.max_orphans, num, den, 1),
        app_bytes_shared: scale(wanted.app_bytes_shared, num, den, 0),
        ..wanted
    };
    log::info!(
        "net: memory budget: heap {} KiB: listener connections {} backlog {} half-open {} \
         orphans {} app shared {} KiB (asked {} {} {} {} {} KiB)",
        heap / 1024,
        c.max_connections,
        c.backlog,
        c.max_half_open,
        c.max_orphans,
        c.app_bytes_shared / 1024,
        wanted.max_connections,
        wanted.backlog,
        wanted.max_half_open,
        wanted.max_orphans,
        wanted.app_bytes_shared / 1024
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// The http example's listener (examples/http/src/lib.rs).
    fn http() -> ListenConfig {
        ListenConfig {
            backlog: 64,
            max_connections: 256,
            rx_buffer: 8 * 1024,
            tx_buffer: 8 * 1024,
            ..ListenConfig::default()
        }
    }

    #[test]
    fn host_and_large_heaps_keep_the_configuration() {
        let d = NetfrontConfig::default();
        assert_eq!(netfront_config(d, None), d);
        assert_eq!(netfront_config(d, Some(15 * MIB)), d);
        assert_eq!(listen_config(http(), None), http());
        // memory=16 leaves the http example's heap at about 15 MiB.
        assert_eq!(listen_config(http(), Some(15 * MIB)), http());
    }

    #[test]
    fn a_small_heap_shrinks_the_vif_within_its_share() {
        let heap = 3 * MIB;
        let c = netfront_config(NetfrontConfig::default(), Some(heap));
        assert!(
            (c.rx_buffers + c.tx_buffers) * PAGE_SIZE <= heap / 8,
            "{c:?}"
        );
        assert!(c.rx_buffers >= MIN_RX_BUFFERS && c.tx_buffers >= MIN_TX_BUFFERS);
        assert!(c.rx_buffers > c.tx_buffers, "the 2:1 ratio is kept: {c:?}");
        assert!(c.rx_queue >= 1 && c.rx_queue < NetfrontConfig::default().rx_queue);
        // A tiny heap still gets the minimum.
        let t = netfront_config(NetfrontConfig::default(), Some(64 * 1024));
        assert_eq!(
            (t.rx_buffers, t.tx_buffers),
            (MIN_RX_BUFFERS, MIN_TX_BUFFERS)
        );
    }

    #[test]
    fn a_small_heap_shrinks_the_listener_within_its_share() {
        let heap = 3 * MIB;
        let w = http();
        let c = listen_config(w, Some(heap));
        let per = w.rx_buffer + w.tx_buffer + SOCKET_OVERHEAD;
        assert!(sockets(&c) * per <= heap / 4 * 3, "{c:?}");
        assert_eq!(worst_case(&c), sockets(&c) * per);
        assert!(c.max_connections >= 1 && c.max_connections < w.max_connections);
        assert!(c.max_half_open >= MIN_HALF_OPEN && c.backlog >= 1 && c.max_orphans >= 1);
        assert_eq!((c.rx_buffer, c.tx_buffer), (w.rx_buffer, w.tx_buffer));
        assert_eq!(c.half_open_timeout, w.half_open_timeout);
        // Never grown.
        let small = ListenConfig {
            backlog: 1,
            max_half_open: 1,
            max_connections: 1,
            max_orphans: 1,
            ..ListenConfig::default()
        };
        assert_eq!(listen_config(small, Some(heap)), small);
    }

    /// The http example's listener with xenia-http's declared bytes: 8 KiB heads, 1 MiB of
    /// bodies.
    fn http_server() -> ListenConfig {
        ListenConfig {
            app_bytes_per_connection: 8 * 1024,
            app_bytes_shared: MIB,
            ..http()
        }
    }

    #[test]
    fn the_apps_declared_bytes_count_and_shrink_with_the_listener() {
        // memory=16: nothing shrinks (the 256-connection bench needs all 256).
        assert_eq!(listen_config(http_server(), Some(15 * MIB)), http_server());
        // memory=4 (a heap of about 3 MiB): the sockets, the heads and the bodies together fit
        // the share; before the app's bytes counted, heads and bodies could take 1.5 MiB more.
        let heap = 3 * MIB;
        let w = http_server();
        let c = listen_config(w, Some(heap));
        assert!(worst_case(&c) <= heap / 4 * 3, "{c:?}");
        assert!(
            c.app_bytes_shared > 0 && c.app_bytes_shared < w.app_bytes_shared,
            "{c:?}"
        );
        assert_eq!(c.app_bytes_per_connection, w.app_bytes_per_connection);
        let without_app = listen_config(http(), Some(heap));
        assert!(
            c.max_connections < without_app.max_connections,
            "{c:?} {without_app:?}"
        );
        // A declaration that alone exceeds the share leaves the minimum counts and no more
        // shared bytes than the share.
        let huge = ListenConfig {
            app_bytes_shared: 64 * MIB,
            ..http()
        };
        let h = listen_config(huge, Some(heap));
        assert!(h.app_bytes_shared <= heap / 4 * 3, "{h:?}");
        assert!(h.max_connections >= 1, "{h:?}");
    }
}
