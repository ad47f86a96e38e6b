//! Event channels, grant tables and time against the simulated host.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use xenia_sim::gnttab::GrantMapError;
use xenia_sim::{Guest, Sim, DOM0};
use xenia_xen::events::EventChannels;
use xenia_xen::grant::{GrantError, GrantPool, GrantTable, Page};

struct CountWaker(AtomicUsize);
impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn setup() -> (Sim, &'static EventChannels) {
    let g = Guest::new();
    (g.sim, g.ev)
}

#[test]
fn interdomain_channel_carries_events_both_ways() {
    let (sim, ev) = setup();
    let port = ev.alloc_unbound(DOM0).unwrap();
    let dom0_port = sim.with_host(|h| h.dom0_bind(port)).unwrap();

    // Guest → dom0.
    ev.send(port).unwrap();
    assert!(sim.with_host(|h| h.dom0_take_event(dom0_port)));
    assert!(!sim.with_host(|h| h.dom0_take_event(dom0_port)));

    // Dom0 → guest wakes the task waiting on the port, exactly once.
    let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(ev.poll_port(port, &mut cx), Poll::Pending);
    sim.with_host(|h| h.dom0_send(dom0_port));
    assert_eq!(ev.scan(), 1);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(ev.poll_port(port, &mut cx), Poll::Ready(()));
    assert_eq!(ev.poll_port(port, &mut cx), Poll::Pending);
    assert_eq!(ev.scan(), 0);
}

#[test]
fn masked_port_stays_pending_until_unmasked() {
    let (sim, ev) = setup();
    let port = ev.alloc_unbound(DOM0).unwrap();
    let dom0_port = sim.with_host(|h| h.dom0_bind(port)).unwrap();
    ev.mask(port).unwrap();
    assert!(ev.is_masked(port));
    sim.with_host(|h| h.dom0_send(dom0_port));
    assert_eq!(ev.scan(), 0, "a masked port must not fire");
    ev.unmask(port).unwrap();
    assert!(!ev.is_masked(port));
    assert_eq!(ev.scan(), 1);
    assert!(ev.take_fired(port));
}

#[test]
fn close_and_bad_ports_are_errors() {
    let (_sim, ev) = setup();
    let port = ev.alloc_unbound(DOM0).unwrap();
    ev.close(port).unwrap();
    assert!(ev.close(port).is_err(), "closing twice must fail");
    assert!(ev.adopt(0).is_err());
    assert!(ev.adopt(4096).is_err());
    assert!(ev.mask(5000).is_err());
    assert!(ev.send(4000).is_err(), "sending on an unbound port fails");
}

#[test]
fn block_with_deadline_advances_simulated_time() {
    let (sim, ev) = setup();
    let t0 = sim.now_ns();
    ev.block(t0 + 5_000_000).unwrap();
    assert_eq!(sim.now_ns(), t0 + 5_000_000);
    // SAFETY: the simulator's shared_info page is live.
    let now = unsafe { xenia_xen::time::system_time_ns(sim.guest_boot().shared_info) };
    assert_eq!(now, t0 + 5_000_000);
}

#[test]
fn grants_map_with_the_right_permissions_and_refuse_to_end_while_mapped() {
    let (sim, _ev) = setup();
    let table = GrantTable::new(1).unwrap();
    let page = Page::new().unwrap();
    // SAFETY: the page is ours and live.
    unsafe { page.as_ptr().write(0x5a) };
    let ro = table.grant_page(DOM0, page.as_non_null(), true).unwrap();
    let rw = table.grant_page(DOM0, page.as_non_null(), false).unwrap();
    assert!(ro >= 8, "reserved entries are never handed out");

    // A read-only grant cannot be mapped for writing, nor by another domain.
    assert_eq!(
        sim.with_host(|h| h.grants.map(DOM0, ro, true)),
        Err(GrantMapError::PermissionDenied(ro))
    );
    assert_eq!(
        sim.with_host(|h| h.grants.map(7, ro, false)),
        Err(GrantMapError::PermissionDenied(ro))
    );
    let p = sim.with_host(|h| h.grants.map(DOM0, ro, false)).unwrap();
    // SAFETY: the mapping points at the live granted page.
    let seen = unsafe { p.read() };
    assert_eq!(seen, 0x5a, "the backend sees the guest's page");

    // While mapped, ending access is refused and the entry stays granted.
    assert_eq!(table.end_access(ro), Err(GrantError::InUse(ro)));
    sim.with_host(|h| h.grants.unmap(ro));
    table.end_access(ro).unwrap();
    assert_eq!(
        sim.with_host(|h| h.grants.map(DOM0, ro, false)),
        Err(GrantMapError::PermissionDenied(ro))
    );
    assert_eq!(
        table.end_access(ro),
        Err(GrantError::BadRef(ro)),
        "ending twice is an error"
    );

    let w = sim.with_host(|h| h.grants.map(DOM0, rw, true)).unwrap();
    // SAFETY: the mapping points at the live granted page.
    unsafe { w.write(0xa5) };
    // SAFETY: the page is ours and live.
    assert_eq!(unsafe { page.as_ptr().read() }, 0xa5);
    sim.with_host(|h| h.grants.unmap(rw));
    table.end_access(rw).unwrap();
    assert_eq!(
        sim.with_host(|h| h.grants.map(DOM0, 100_000, false)),
        Err(GrantMapError::BadRef(100_000))
    );
}

#[test]
fn grant_table_grows_and_pool_reuses_pages() {
    let (sim, _ev) = setup();
    let table = GrantTable::new(1).unwrap();
    let before = table.free_entries();
    assert_eq!(before, 512 - 8);
    let mut pool = GrantPool::new(&table, DOM0, before + 10, false).unwrap();
    assert_eq!(pool.total(), before + 10, "the table grew a frame");
    assert_eq!(sim.with_host(|h| h.grants.nr_frames()), 2);
    let a = pool.take().unwrap();
    let gref = a.gref();
    sim.with_host(|h| h.grants.map(DOM0, gref, true)).unwrap();
    pool.give_back(a);
    // The mapped page cannot be released; the rest can.
    assert_eq!(pool.release(), Err(1));
    sim.with_host(|h| h.grants.unmap(gref));
    assert_eq!(pool.release(), Ok(()));
    assert_eq!(pool.total(), 0);
}

#[test]
fn port_states_show_pending_masked_fired_and_the_waiter() {
    let (sim, ev) = setup();
    let port = ev.alloc_unbound(DOM0).unwrap();
    let dom0_port = sim.with_host(|h| h.dom0_bind(port)).unwrap();
    let state = |ev: &EventChannels| {
        ev.port_states()
            .unwrap()
            .into_iter()
            .find(|p| p.port == port)
            .unwrap()
    };
    let s = state(ev);
    assert!(!s.pending && !s.masked && !s.fired && s.waiter.is_none());

    let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    assert_eq!(
        ev.poll_port(port, &mut Context::from_waker(&waker)),
        Poll::Pending
    );
    let s = state(ev);
    assert!(s.waiter.is_some_and(|w| w.will_wake(&waker)), "the waiter");

    ev.mask(port).unwrap();
    sim.with_host(|h| h.dom0_send(dom0_port));
    let s = state(ev);
    assert!(s.pending && s.masked && !s.fired, "masked and pending");
    ev.unmask(port).unwrap();
    assert_eq!(ev.scan(), 1);
    let s = state(ev);
    assert!(
        !s.pending && !s.masked && s.fired && s.waiter.is_none(),
        "fired, waiter woken"
    );
    assert!(ev.take_fired(port));
}

#[test]
fn grant_usage_counts_granted_entries() {
    let (_sim, _ev) = setup();
    let table = GrantTable::new(1).unwrap();
    let (entries, before) = table.usage().unwrap();
    assert_eq!(
        entries,
        table.free_entries() + before + 8,
        "8 entries are Xen's"
    );
    let page = Page::new().unwrap();
    let r = table.grant_page(DOM0, page.as_non_null(), true).unwrap();
    assert_eq!(table.usage(), Some((entries, before + 1)));
    table.end_access(r).unwrap();
    assert_eq!(table.usage(), Some((entries, before)));
}
