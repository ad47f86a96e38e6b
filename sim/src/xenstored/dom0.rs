//! Dom0 helpers: what the toolstack and the simulated backends do to the tree directly.

use super::tree::resolve;
use super::Xenstored;
use xenia_xen::xenstore::wire::{Perm, XsErrno};

impl Xenstored {
    /// Writes `value` at absolute `path` as dom0, creating parents; fires watches.
    pub fn write(&mut self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.write(0, &path, value.as_ref());
        self.finish_main_op();
        r
    }

    /// Reads the value at absolute `path` as dom0.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.read(0, &path);
        self.finish_main_op();
        r
    }

    /// Reads the value at `path` as UTF-8 (`EINVAL` if it is not).
    pub fn read_string(&mut self, path: &str) -> Result<String, XsErrno> {
        String::from_utf8(self.read(path)?).map_err(|_| XsErrno::EINVAL)
    }

    /// Whether `path` exists.
    pub fn exists(&self, path: &str) -> bool {
        self.main.nodes.contains_key(path)
    }

    /// Creates `path` as dom0 if missing; fires watches if created.
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.mkdir(0, &path);
        self.finish_main_op();
        r
    }

    /// Removes `path` and its descendants as dom0; fires watches.
    pub fn rm(&mut self, path: &str) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.rm(0, &path);
        self.finish_main_op();
        r
    }

    /// Lists the children of `path`.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.directory(0, &path);
        self.finish_main_op();
        r
    }

    /// The permissions of `path`.
    pub fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.get_perms(0, &path);
        self.finish_main_op();
        r
    }

    /// Sets the permissions of `path` as dom0; fires watches.
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsErrno> {
        let path = resolve(0, path)?;
        let r = self.main.set_perms(0, &path, perms);
        self.finish_main_op();
        r
    }

    /// `/local/domain/<domid>`.
    pub fn get_domain_path(&self, domid: u16) -> String {
        format!("/local/domain/{domid}")
    }

    /// Releases domain `domid` (as dom0's `RELEASE`): fires `@releaseDomain`.
    pub fn release_domain(&mut self, domid: u16) {
        self.introduced.remove(&domid);
        self.fire_special("@releaseDomain");
    }
}
