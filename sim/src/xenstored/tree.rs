//! The tree: nodes, the view operations work on (the live tree or a transaction's
//! snapshot), path resolution and the changes to report to watches.

use super::perms::can;
use std::collections::{BTreeMap, BTreeSet};
use xenia_xen::xenstore::wire::{self, Perm, XsErrno};

#[derive(Clone, Debug)]
pub(super) struct Node {
    pub(super) value: Vec<u8>,
    pub(super) perms: Vec<Perm>,
    /// Generation of the last change to this node or its set of children.
    pub(super) gen: u64,
}

/// A change to report to watches.
#[derive(Clone, Debug)]
pub(super) struct Change {
    pub(super) path: String,
    /// The node and everything below were removed.
    pub(super) recursive: bool,
    /// The node's permissions (before removal, for a removal). Empty for special events.
    pub(super) perms: Vec<Perm>,
}

/// A view of the tree that operations work on: the live tree, or a transaction's snapshot.
#[derive(Clone, Debug, Default)]
pub(super) struct Store {
    pub(super) nodes: BTreeMap<String, Node>,
    /// Paths read or written (conflict detection).
    pub(super) accessed: BTreeSet<String>,
    /// Paths created, changed or removed (including parents whose children changed).
    pub(super) written: BTreeSet<String>,
    /// Watch events, in order.
    pub(super) changes: Vec<Change>,
}

pub(super) fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// Whether `path` is `ancestor` or below it.
pub(super) fn is_child(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

pub(super) fn child_prefix(path: &str) -> String {
    if path == "/" {
        String::from("/")
    } else {
        let mut s = String::from(path);
        s.push('/');
        s
    }
}

impl Store {
    pub(super) fn touch(&mut self, path: &str) {
        self.accessed.insert(path.to_string());
        self.written.insert(path.to_string());
    }

    pub(super) fn get(
        &mut self,
        domid: u16,
        path: &str,
        write: bool,
    ) -> Result<&mut Node, XsErrno> {
        self.accessed.insert(path.to_string());
        let node = self.nodes.get_mut(path).ok_or(XsErrno::ENOENT)?;
        if !can(&node.perms, domid, write) {
            return Err(XsErrno::EACCES);
        }
        Ok(node)
    }

    pub(super) fn children(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k[prefix.len()..].to_string())
            .collect()
    }

    pub(super) fn descendants(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(super) fn read(&mut self, domid: u16, path: &str) -> Result<Vec<u8>, XsErrno> {
        Ok(self.get(domid, path, false)?.value.clone())
    }

    /// Creates `path` and missing parents (empty values) if needed; returns whether it existed.
    pub(super) fn create(&mut self, domid: u16, path: &str) -> Result<bool, XsErrno> {
        if self.nodes.contains_key(path) {
            self.get(domid, path, true)?;
            return Ok(true);
        }
        // Find the deepest existing ancestor; it must be writable.
        let mut missing = vec![path.to_string()];
        let mut anc = parent_of(path).ok_or(XsErrno::EINVAL)?;
        while !self.nodes.contains_key(anc) {
            missing.push(anc.to_string());
            anc = parent_of(anc).ok_or(XsErrno::ENOENT)?;
        }
        let mut perms = self.get(domid, anc, true)?.perms.clone();
        if domid != 0 {
            if let Some(first) = perms.first_mut() {
                first.domid = domid;
            }
        }
        self.touch(anc);
        for p in missing.iter().rev() {
            self.nodes.insert(
                p.clone(),
                Node {
                    value: Vec::new(),
                    perms: perms.clone(),
                    gen: 0,
                },
            );
            self.touch(p);
        }
        Ok(false)
    }

    pub(super) fn write(&mut self, domid: u16, path: &str, value: &[u8]) -> Result<(), XsErrno> {
        self.create(domid, path)?;
        self.touch(path);
        let node = self.nodes.get_mut(path).ok_or(XsErrno::EIO)?;
        node.value = value.to_vec();
        let perms = node.perms.clone();
        self.changes.push(Change {
            path: path.to_string(),
            recursive: false,
            perms,
        });
        Ok(())
    }

    pub(super) fn mkdir(&mut self, domid: u16, path: &str) -> Result<(), XsErrno> {
        if !self.create(domid, path)? {
            let perms = self
                .nodes
                .get(path)
                .map(|n| n.perms.clone())
                .unwrap_or_default();
            self.changes.push(Change {
                path: path.to_string(),
                recursive: false,
                perms,
            });
        }
        Ok(())
    }

    pub(super) fn rm(&mut self, domid: u16, path: &str) -> Result<(), XsErrno> {
        let parent = parent_of(path).ok_or(XsErrno::EINVAL)?;
        if !self.nodes.contains_key(path) {
            self.accessed.insert(path.to_string());
            self.accessed.insert(parent.to_string());
            return if self.nodes.contains_key(parent) {
                Ok(())
            } else {
                Err(XsErrno::ENOENT)
            };
        }
        let perms = self.get(domid, path, true)?.perms.clone();
        for d in self.descendants(path) {
            self.nodes.remove(&d);
            self.touch(&d);
        }
        self.nodes.remove(path);
        self.touch(path);
        self.touch(parent);
        self.changes.push(Change {
            path: path.to_string(),
            recursive: true,
            perms,
        });
        Ok(())
    }

    pub(super) fn directory(&mut self, domid: u16, path: &str) -> Result<Vec<String>, XsErrno> {
        self.get(domid, path, false)?;
        Ok(self.children(path))
    }

    pub(super) fn get_perms(&mut self, domid: u16, path: &str) -> Result<Vec<Perm>, XsErrno> {
        Ok(self.get(domid, path, false)?.perms.clone())
    }

    pub(super) fn set_perms(
        &mut self,
        domid: u16,
        path: &str,
        perms: &[Perm],
    ) -> Result<(), XsErrno> {
        if perms.is_empty() {
            return Err(XsErrno::EINVAL);
        }
        let node = self.get(domid, path, true)?;
        if domid != 0 {
            // Only the owner may change permissions, and it may not give the node away.
            if node.perms.first().map(|p| p.domid) != Some(domid) {
                return Err(XsErrno::EACCES);
            }
            if perms[0].domid != domid {
                return Err(XsErrno::EPERM);
            }
        }
        node.perms = perms.to_vec();
        self.touch(path);
        self.changes.push(Change {
            path: path.to_string(),
            recursive: false,
            perms: perms.to_vec(),
        });
        Ok(())
    }

    pub(super) fn take_log(&mut self) -> (BTreeSet<String>, Vec<Change>) {
        self.accessed.clear();
        (
            std::mem::take(&mut self.written),
            std::mem::take(&mut self.changes),
        )
    }
}

pub(super) fn resolve(domid: u16, path: &str) -> Result<String, XsErrno> {
    wire::validate_path(path).map_err(|_| XsErrno::EINVAL)?;
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let abs = format!("/local/domain/{domid}/{path}");
    if abs.len() > wire::XENSTORE_ABS_PATH_MAX {
        return Err(XsErrno::EINVAL);
    }
    Ok(abs)
}
