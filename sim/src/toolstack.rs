//! What the toolstack (libxl) and a backend's probe write to xenstore when a device is added
//! to the guest: the frontend's nodes, owned by the guest and readable by dom0, and the
//! backend's nodes, owned by dom0 and readable by the guest.

use crate::xenstored::Xenstored;
use crate::{DOM0, GUEST_DOMID};
use std::format;
use std::string::String;
use xenia_xen::xenstore::{Access, Perm};

/// The frontend's and the backend's node (absolute paths) of device `index` of `class`
/// (`vif`, `vbd`, ...).
pub(crate) fn device_paths(class: &str, index: u32) -> (String, String) {
    (
        format!("/local/domain/{GUEST_DOMID}/device/{class}/{index}"),
        format!("/local/domain/{DOM0}/backend/{class}/{GUEST_DOMID}/{index}"),
    )
}

/// Writes `fe_nodes` under `fe` (guest-owned, dom0 may read) and then `be_nodes` under `be`
/// (dom0-owned, the guest may read), each node with its permissions, as libxl does.
pub(crate) fn write_device(
    x: &mut Xenstored,
    (fe, be): (&str, &str),
    fe_nodes: &[(&str, String)],
    be_nodes: &[(&str, String)],
) {
    let guest_owned = [
        Perm::new(GUEST_DOMID, Access::None),
        Perm::new(DOM0, Access::Read),
    ];
    let dom0_owned = [
        Perm::new(DOM0, Access::None),
        Perm::new(GUEST_DOMID, Access::Read),
    ];
    for (dir, nodes, perms) in [(fe, fe_nodes, &guest_owned), (be, be_nodes, &dom0_owned)] {
        for (k, v) in nodes {
            x.write(&format!("{dir}/{k}"), v).expect("toolstack write");
        }
        x.set_perms(dir, perms).expect("toolstack perms");
        for (k, _) in nodes {
            x.set_perms(&format!("{dir}/{k}"), perms)
                .expect("toolstack perms");
        }
    }
}
