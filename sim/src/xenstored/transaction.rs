//! Transactions: snapshots, id allocation, commits and their conflict detection.

use super::tree::Store;
use super::{ConnId, Xenstored};
use xenia_xen::xenstore::wire::XsErrno;

#[derive(Debug)]
pub(super) struct Tx {
    pub(super) store: Store,
    pub(super) start_gen: u64,
}

impl Xenstored {
    /// Makes the next `n` transaction commits fail with `EAGAIN`, conflict or not.
    pub fn force_commit_conflicts(&mut self, n: u32) {
        self.forced_conflicts = n;
    }

    /// Transactions committed successfully so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Commits refused with `EAGAIN` so far (forced ones included).
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// Open transactions of a connection.
    pub fn open_transactions(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.txs.len())
    }

    pub(super) fn alloc_tx_id(&mut self) -> u32 {
        loop {
            let id = self.next_tx;
            self.next_tx = self.next_tx.wrapping_add(1);
            if id != 0 && !self.conns.values().any(|c| c.txs.contains_key(&id)) {
                return id;
            }
        }
    }

    pub(super) fn changed_since(&self, path: &str, since: u64) -> bool {
        self.main.nodes.get(path).is_some_and(|n| n.gen > since)
            || self.tombstones.get(path).is_some_and(|&g| g > since)
    }

    pub(super) fn commit(&mut self, tx: Tx) -> Result<(), XsErrno> {
        if self.forced_conflicts > 0 {
            self.forced_conflicts -= 1;
            self.conflicts += 1;
            return Err(XsErrno::EAGAIN);
        }
        if tx
            .store
            .accessed
            .iter()
            .any(|p| self.changed_since(p, tx.start_gen))
        {
            self.conflicts += 1;
            return Err(XsErrno::EAGAIN);
        }
        self.commits += 1;
        let Store {
            mut nodes,
            written,
            changes,
            ..
        } = tx.store;
        if written.is_empty() && changes.is_empty() {
            return Ok(());
        }
        self.gen += 1;
        let gen = self.gen;
        for p in written {
            match nodes.remove(&p) {
                Some(mut n) => {
                    n.gen = gen;
                    self.main.nodes.insert(p, n);
                }
                None => {
                    self.main.nodes.remove(&p);
                    self.tombstones.insert(p, gen);
                }
            }
        }
        for ch in changes {
            self.fire(&ch);
        }
        Ok(())
    }

    /// Drops removal records no open transaction can need.
    pub(super) fn prune_tombstones(&mut self) {
        let oldest = self
            .conns
            .values()
            .flat_map(|c| c.txs.values().map(|t| t.start_gen))
            .min();
        match oldest {
            None => self.tombstones.clear(),
            Some(g) => self.tombstones.retain(|_, &mut t| t > g),
        }
    }
}
