//! Permission checks: who may read or write a node.

use xenia_xen::xenstore::wire::Perm;

pub(super) fn can(perms: &[Perm], domid: u16, want_write: bool) -> bool {
    if domid == 0 {
        return true;
    }
    let Some(first) = perms.first() else {
        return false;
    };
    if first.domid == domid {
        return true;
    }
    let access = perms[1..]
        .iter()
        .find(|p| p.domid == domid)
        .map_or(first.access, |p| p.access);
    if want_write {
        access.can_write()
    } else {
        access.can_read()
    }
}
