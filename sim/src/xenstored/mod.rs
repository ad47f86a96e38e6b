//! A simulated xenstored that speaks xs_wire (host only).
//!
//! One [`Xenstored`] holds the tree: nodes with a value and permissions, addressed by absolute
//! path. Clients are connections ([`ConnId`]) with a domain id: wire connections exchange
//! xs_wire bytes ([`Xenstored::feed`], [`Xenstored::take_output`]); local connections (for the
//! simulated backends) call [`Xenstored::request`] and collect watch events with
//! [`Xenstored::take_events`]. The dom0 helpers ([`Xenstored::write`], [`Xenstored::read`], ...)
//! change the tree directly as domain 0 and fire watches like any other change.
//!
//! Semantics follow Xen's `docs/misc/xenstore.txt`:
//! - permissions: the first entry names the owner (full access) and the access of unlisted
//!   domains; later entries grant per-domain access; domain 0 bypasses all checks. New nodes
//!   inherit their parent's permissions, with the creating domain as owner unless it is dom0;
//! - relative paths are resolved against `/local/domain/<domid>`;
//! - watches fire once on registration, then on changes of their path or below (and on removal
//!   of a parent, reporting the watched path), only for domains allowed to read the node;
//!   events for relative watches carry relative paths;
//! - transactions work on a snapshot; a commit fails with `EAGAIN` when a node the transaction
//!   read or wrote (or whose children it listed or changed) was changed since it started.
//!   [`Xenstored::force_commit_conflicts`] makes the next commits fail regardless, for tests.
//!
//! Not simulated: quotas (except a cap on watches and transactions per connection),
//! `DIRECTORY_PART`, `CONTROL`, `SET_TARGET`, `RESUME` (they answer `ENOSYS`).
//!
//! Modules (private): `tree` (nodes, views, path resolution), `perms` (permission checks),
//! `transaction`, `watch`, `conn` (connections, framing, output), `request` (request
//! handling), `dom0` (the dom0 helpers) and `transport` ([`DirectTransport`]).

use conn::Conn;
use std::collections::{BTreeMap, BTreeSet};
use tree::Node;
use tree::Store;
use xenia_xen::xenstore::wire::{Access, Perm};

mod conn;
mod dom0;
mod error;
mod perms;
mod request;
mod transaction;
mod transport;
mod tree;
mod watch;

#[cfg(test)]
mod tests;

pub use error::XenstoredError;
pub use transport::DirectTransport;

/// Most watches one connection may register.
pub const MAX_WATCHES_PER_CONN: usize = 128;
/// Most transactions one connection may have open.
pub const MAX_TRANSACTIONS_PER_CONN: usize = 16;

/// A connection to the simulated daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// The simulated daemon. See the [module documentation](self).
#[derive(Debug)]
pub struct Xenstored {
    main: Store,
    gen: u64,
    /// Generation at which a path was last removed (for conflict detection).
    tombstones: BTreeMap<String, u64>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    next_tx: u32,
    forced_conflicts: u32,
    introduced: BTreeSet<u16>,
    notify: BTreeSet<ConnId>,
    commits: u64,
    conflicts: u64,
    /// Initial watch events waiting for their WATCH reply to be queued first.
    pending_initial: Vec<(ConnId, String, String)>,
}

impl Default for Xenstored {
    fn default() -> Self {
        Xenstored::new()
    }
}

impl Xenstored {
    /// A daemon with `/`, `/local` and `/local/domain`, owned by dom0 and private.
    pub fn new() -> Xenstored {
        let mut main = Store::default();
        for p in ["/", "/local", "/local/domain"] {
            main.nodes.insert(
                p.to_string(),
                Node {
                    value: Vec::new(),
                    perms: vec![Perm::new(0, Access::None)],
                    gen: 0,
                },
            );
        }
        Xenstored {
            main,
            gen: 0,
            tombstones: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            next_tx: 1,
            forced_conflicts: 0,
            introduced: BTreeSet::new(),
            notify: BTreeSet::new(),
            commits: 0,
            conflicts: 0,
            pending_initial: Vec::new(),
        }
    }

    /// Creates the home of domain `domid` (`/local/domain/<domid>`, owned by it, private to
    /// it), marks it introduced and fires `@introduceDomain` — what the toolstack does when it
    /// builds a domain.
    pub fn add_domain(&mut self, domid: u16) {
        let home = format!("/local/domain/{domid}");
        let _ = self.mkdir(&home);
        let _ = self.set_perms(&home, &[Perm::new(domid, Access::None)]);
        self.introduced.insert(domid);
        self.fire_special("@introduceDomain");
    }
}
