//! Request handling: typed requests applied to the tree or a transaction, reply payloads.

use super::transaction::Tx;
use super::tree::{resolve, Store};
use super::{ConnId, Xenstored, MAX_TRANSACTIONS_PER_CONN};
use std::fmt::Write as _;
use xenia_xen::xenstore::wire::{MsgType, Request, XsErrno, XENSTORE_PAYLOAD_MAX};

pub(super) fn ok_payload() -> Vec<u8> {
    b"OK\0".to_vec()
}

pub(super) fn str_payload(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Xenstored {
    /// Handles a typed request for `conn` in transaction `tx_id` (0: none). Returns the reply
    /// payload. Watch events go to the connections' outputs or event queues.
    pub fn request(
        &mut self,
        conn: ConnId,
        tx_id: u32,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, XsErrno> {
        let r = self.request_inner(conn, tx_id, req).map(|(_, p)| p);
        self.flush_pending_initial(conn);
        r
    }

    pub(super) fn request_inner(
        &mut self,
        conn: ConnId,
        tx_id: u32,
        req: &Request<'_>,
    ) -> Result<(MsgType, Vec<u8>), XsErrno> {
        let domid = self.conns.get(&conn).ok_or(XsErrno::EIO)?.domid;
        let t = req.msg_type();
        let payload = match req {
            Request::Read(_)
            | Request::Write(..)
            | Request::Mkdir(_)
            | Request::Rm(_)
            | Request::Directory(_)
            | Request::GetPerms(_)
            | Request::SetPerms(..) => self.store_op(conn, domid, tx_id, req)?,
            Request::Watch(p, token) => {
                self.add_watch(conn, domid, p, token)?;
                ok_payload()
            }
            Request::Unwatch(p, token) => {
                let abs = if p.starts_with('@') {
                    p.to_string()
                } else {
                    resolve(domid, p)?
                };
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                let i = c
                    .watches
                    .iter()
                    .position(|w| w.abs == abs && w.token == *token)
                    .ok_or(XsErrno::ENOENT)?;
                c.watches.remove(i);
                ok_payload()
            }
            Request::TransactionStart => {
                if tx_id != 0 {
                    return Err(XsErrno::EINVAL);
                }
                let snapshot = Store {
                    nodes: self.main.nodes.clone(),
                    ..Store::default()
                };
                let id = self.alloc_tx_id();
                let start_gen = self.gen;
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                if c.txs.len() >= MAX_TRANSACTIONS_PER_CONN {
                    return Err(XsErrno::ENOSPC);
                }
                c.txs.insert(
                    id,
                    Tx {
                        store: snapshot,
                        start_gen,
                    },
                );
                str_payload(&id.to_string())
            }
            Request::TransactionEnd(commit) => {
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                let tx = c.txs.remove(&tx_id).ok_or(XsErrno::ENOENT)?;
                let r = if *commit { self.commit(tx) } else { Ok(()) };
                self.prune_tombstones();
                r?;
                ok_payload()
            }
            Request::GetDomainPath(d) => str_payload(&self.get_domain_path(*d)),
            Request::IsDomainIntroduced(d) => {
                if self.introduced.contains(d) {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                }
            }
            Request::Introduce(d, _mfn, _port) => {
                if domid != 0 {
                    return Err(XsErrno::EACCES);
                }
                if *d == 0 {
                    return Err(XsErrno::EINVAL);
                }
                self.introduced.insert(*d);
                self.fire_special("@introduceDomain");
                ok_payload()
            }
            Request::Release(d) => {
                if domid != 0 {
                    return Err(XsErrno::EACCES);
                }
                if !self.introduced.contains(d) {
                    return Err(XsErrno::ENOENT);
                }
                self.release_domain(*d);
                ok_payload()
            }
            Request::ResetWatches => {
                let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
                c.watches.clear();
                c.txs.clear();
                self.prune_tombstones();
                ok_payload()
            }
            Request::Resume(_) | Request::SetTarget(..) => return Err(XsErrno::ENOSYS),
        };
        Ok((t, payload))
    }

    pub(super) fn store_op(
        &mut self,
        conn: ConnId,
        domid: u16,
        tx_id: u32,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, XsErrno> {
        if tx_id == 0 {
            let r = Self::apply(&mut self.main, domid, req);
            self.finish_main_op();
            return r;
        }
        let c = self.conns.get_mut(&conn).ok_or(XsErrno::EIO)?;
        let tx = c.txs.get_mut(&tx_id).ok_or(XsErrno::ENOENT)?;
        Self::apply(&mut tx.store, domid, req)
    }

    pub(super) fn apply(
        store: &mut Store,
        domid: u16,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, XsErrno> {
        match req {
            Request::Read(p) => store.read(domid, &resolve(domid, p)?),
            Request::Write(p, v) => {
                if p.len() + 1 + v.len() > XENSTORE_PAYLOAD_MAX {
                    return Err(XsErrno::E2BIG);
                }
                store.write(domid, &resolve(domid, p)?, v)?;
                Ok(ok_payload())
            }
            Request::Mkdir(p) => {
                store.mkdir(domid, &resolve(domid, p)?)?;
                Ok(ok_payload())
            }
            Request::Rm(p) => {
                store.rm(domid, &resolve(domid, p)?)?;
                Ok(ok_payload())
            }
            Request::Directory(p) => {
                let names = store.directory(domid, &resolve(domid, p)?)?;
                let mut v = Vec::new();
                for n in names {
                    v.extend_from_slice(n.as_bytes());
                    v.push(0);
                }
                if v.len() > XENSTORE_PAYLOAD_MAX {
                    return Err(XsErrno::E2BIG);
                }
                Ok(v)
            }
            Request::GetPerms(p) => {
                let perms = store.get_perms(domid, &resolve(domid, p)?)?;
                let mut s = String::new();
                for perm in perms {
                    let _ = write!(s, "{perm}\0");
                }
                Ok(s.into_bytes())
            }
            Request::SetPerms(p, perms) => {
                store.set_perms(domid, &resolve(domid, p)?, perms)?;
                Ok(ok_payload())
            }
            _ => Err(XsErrno::EINVAL),
        }
    }

    /// After an operation on the live tree: stamp generations, record removals, fire watches.
    pub(super) fn finish_main_op(&mut self) {
        let (written, changes) = self.main.take_log();
        if written.is_empty() && changes.is_empty() {
            return;
        }
        self.gen += 1;
        let gen = self.gen;
        for p in written {
            match self.main.nodes.get_mut(&p) {
                Some(n) => n.gen = gen,
                None => {
                    self.tombstones.insert(p, gen);
                }
            }
        }
        for ch in changes {
            self.fire(&ch);
        }
    }
}
