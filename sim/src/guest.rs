//! The fixture that boots a guest on a fresh simulator: its event channels, xenstore client and
//! grant table, as a driver finds them after boot, plus the executor loop the tests run
//! futures with.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::pin;
use std::ptr::NonNull;
use std::string::String;
use std::task::{Context, Poll, Waker};
use xenia_xen::events::EventChannels;
use xenia_xen::grant::GrantTable;
use xenia_xen::xenstore::{RingTransport, Xenstore};

use crate::{GuestBoot, Sim};

/// A guest booted on its own simulated host (installed on this thread).
pub struct Guest {
    /// The simulated host.
    pub sim: Sim,
    /// What the guest found at boot (pages and ports).
    pub boot: GuestBoot,
    /// The guest's event channels.
    pub ev: &'static EventChannels,
    /// The guest's xenstore client, on the xenstore ring.
    pub xs: &'static Xenstore<RingTransport>,
    grants: OnceCell<&'static GrantTable>,
}

impl Default for Guest {
    fn default() -> Self {
        Self::new()
    }
}

impl Guest {
    /// A new simulated host with one guest: installs the simulator on this thread and sets up
    /// the guest's event channels (on its shared_info page) and xenstore client (on its ring).
    ///
    /// The guest's objects are leaked (`'static`, as the runtime's are): one guest per test.
    pub fn new() -> Guest {
        let sim = Sim::new();
        sim.install();
        let boot = sim.guest_boot();
        // SAFETY: the simulator's shared_info page lives as long as the simulated host, which
        // the returned Guest keeps (and the leaked value never outlives the test's use of it);
        // this is the only EventChannels on this simulator.
        let ev: &'static EventChannels = Box::leak(Box::new(unsafe {
            EventChannels::new(boot.shared_info.cast())
        }));
        let page = NonNull::new(boot.store_page).expect("xenstore page");
        // SAFETY: the xenstore ring page lives as long as the simulated host; this is its only
        // transport.
        let t = unsafe { RingTransport::new(page, boot.store_port, ev) }.expect("xenstore ring");
        Guest {
            sim,
            boot,
            ev,
            xs: Box::leak(Box::new(Xenstore::new(t))),
            grants: OnceCell::new(),
        }
    }

    /// The guest's grant table (one frame, set up on first use).
    pub fn grants(&self) -> &'static GrantTable {
        self.grants
            .get_or_init(|| Box::leak(Box::new(GrantTable::new(1).expect("grant table"))))
    }

    /// Runs `fut` to completion as the guest's executor would (see [`block_on`]).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        block_on(self.ev, fut)
    }

    /// Lets the simulated dom0 work (as it would while the guest runs).
    pub fn run(&self) {
        self.sim.run();
    }

    /// Reads a node of the simulated xenstore as dom0.
    pub fn xs_read(&self, path: &str) -> Option<String> {
        self.sim.xenstored().borrow_mut().read_string(path).ok()
    }
}

/// Runs a future as the guest's executor would: poll, deliver events, block in the
/// (simulated) hypervisor when nothing fired.
///
/// # Panics
/// If the future is not done after a million rounds.
pub fn block_on<F: Future>(ev: &EventChannels, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        if ev.scan() == 0 {
            ev.block(0).expect("block");
        }
    }
    panic!("future did not complete");
}

/// Polls every future on each poll until all are done, and returns their outputs in order (a
/// minimal `join_all` for driver tests: unlike `futures`' version it never skips a future whose
/// waker did not fire, so a driver that forgets to wake is still driven, as by [`block_on`]).
pub async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<core::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    core::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(out.iter_mut().map(|o| o.take().expect("output")).collect())
        }
    })
    .await
}
