//! Simulated event channels between the guest and dom0.

use std::collections::BTreeMap;
use xenia_xen::events::{DomId, Port, NR_PORTS};

/// State of one port in one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Allocated, waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote_port` of domain `remote`.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// Bound to a virtual IRQ.
    Virq(u32),
}

/// The ports of the simulated domains (the guest and dom0).
#[derive(Default, Debug)]
pub struct EvtchnTable {
    ports: BTreeMap<(DomId, Port), PortState>,
}

impl EvtchnTable {
    fn free_port(&self, dom: DomId) -> Option<Port> {
        (1..NR_PORTS).find(|p| !self.ports.contains_key(&(dom, *p)))
    }

    /// A port of `dom` that `remote` may bind.
    pub fn alloc_unbound(&mut self, dom: DomId, remote: DomId) -> Option<Port> {
        let p = self.free_port(dom)?;
        self.ports.insert((dom, p), PortState::Unbound { remote });
        Some(p)
    }

    /// Binds a new port of `dom` to `remote`'s unbound `remote_port` (which must allow `dom`).
    pub fn bind_interdomain(
        &mut self,
        dom: DomId,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, i32> {
        match self.ports.get(&(remote, remote_port)) {
            Some(PortState::Unbound { remote: allowed }) if *allowed == dom => {}
            _ => return Err(22),
        }
        let p = self.free_port(dom).ok_or(28)?;
        self.ports.insert(
            (dom, p),
            PortState::Interdomain {
                remote,
                remote_port,
            },
        );
        self.ports.insert(
            (remote, remote_port),
            PortState::Interdomain {
                remote: dom,
                remote_port: p,
            },
        );
        Ok(p)
    }

    /// Connects two new ports directly (what the toolstack does for xenstore and console).
    pub fn connect(&mut self, a: DomId, b: DomId) -> (Port, Port) {
        let pa = self.alloc_unbound(a, b).expect("free port");
        let pb = self.bind_interdomain(b, a, pa).expect("bind");
        (pa, pb)
    }

    /// Binds a VIRQ.
    pub fn bind_virq(&mut self, dom: DomId, virq: u32) -> Option<Port> {
        let p = self.free_port(dom)?;
        self.ports.insert((dom, p), PortState::Virq(virq));
        Some(p)
    }

    /// Closes a port; its peer (if any) becomes unbound again.
    pub fn close(&mut self, dom: DomId, port: Port) -> Result<(), i32> {
        match self.ports.remove(&(dom, port)) {
            None => Err(22),
            Some(PortState::Interdomain {
                remote,
                remote_port,
            }) => {
                self.ports
                    .insert((remote, remote_port), PortState::Unbound { remote: dom });
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    /// Closes every port of `dom` (what a domain's destruction does to its event channels).
    pub fn close_all(&mut self, dom: DomId) {
        let ports: std::vec::Vec<Port> = self
            .ports
            .keys()
            .filter(|(d, _)| *d == dom)
            .map(|(_, p)| *p)
            .collect();
        for p in ports {
            let _ = self.close(dom, p);
        }
    }

    /// The state of a port.
    pub fn get(&self, dom: DomId, port: Port) -> Option<PortState> {
        self.ports.get(&(dom, port)).copied()
    }

    /// Where an event sent on `dom`'s `port` arrives.
    pub fn peer(&self, dom: DomId, port: Port) -> Option<(DomId, Port)> {
        match self.get(dom, port)? {
            PortState::Interdomain {
                remote,
                remote_port,
            } => Some((remote, remote_port)),
            _ => None,
        }
    }
}
