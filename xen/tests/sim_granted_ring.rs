//! `GrantedRing` against the simulated host: set up, torn down, and leaked (never freed) while
//! the backend still maps a page.

use xenia_sim::{Guest, Sim, DOM0};
use xenia_xen::grant::{GrantError, GrantTable, GrantedRing};
use xenia_xen::memory::PAGE_SIZE;

fn setup() -> Sim {
    Guest::new().sim
}

#[test]
fn ring_pages_are_zeroed_granted_and_shared() {
    let sim = setup();
    let table = GrantTable::new(1).unwrap();
    let free = table.free_entries();
    let ring = GrantedRing::new(&table, DOM0, 2).unwrap();
    assert_eq!(ring.order(), 2);
    assert_eq!(ring.len(), 4 * PAGE_SIZE);
    assert_eq!(ring.grefs().len(), 4);
    assert_eq!(table.free_entries(), free - 4);
    assert_eq!(ring.as_ptr() as usize % PAGE_SIZE, 0, "page-aligned");
    // SAFETY: the ring's area is ours, 4 pages long.
    let area = unsafe { std::slice::from_raw_parts(ring.as_ptr(), ring.len()) };
    assert!(area.iter().all(|&b| b == 0), "zeroed");
    // The backend maps page 3 writable and sees what the guest writes there.
    let g = ring.grefs()[3];
    let p = sim.with_host(|h| h.grants.map(DOM0, g, true)).unwrap();
    // SAFETY: page 3 of the ring is ours.
    unsafe { ring.as_ptr().add(3 * PAGE_SIZE).write(0x5a) };
    // SAFETY: the mapping points at the live granted page.
    assert_eq!(unsafe { p.read() }, 0x5a);
    assert!(table.is_mapped(g));
    // Not mapped by another domain.
    assert!(sim
        .with_host(|h| h.grants.map(7, ring.grefs()[0], false))
        .is_err());
    sim.with_host(|h| h.grants.unmap(g));
    assert!(ring.teardown(), "nothing mapped: freed");
    assert_eq!(table.free_entries(), free, "every grant ended");
    assert_eq!(table.leaked_pages(), 0);
}

#[test]
fn drop_ends_the_grants() {
    let _sim = setup();
    let table = GrantTable::new(1).unwrap();
    let free = table.free_entries();
    let ring = GrantedRing::new(&table, DOM0, 0).unwrap();
    let g = ring.grefs()[0];
    drop(ring);
    assert_eq!(table.free_entries(), free);
    assert_eq!(
        table.end_access(g),
        Err(GrantError::BadRef(g)),
        "already ended"
    );
    assert_eq!(table.leaked_pages(), 0);
}

#[test]
fn a_page_still_mapped_is_leaked_not_freed() {
    let sim = setup();
    let table = GrantTable::new(1).unwrap();
    let free = table.free_entries();
    let ring = GrantedRing::new(&table, DOM0, 1).unwrap();
    let [g0, g1] = [ring.grefs()[0], ring.grefs()[1]];
    let p = sim.with_host(|h| h.grants.map(DOM0, g1, true)).unwrap();
    assert!(!ring.teardown(), "page 1 is still mapped");
    assert_eq!(table.leaked_pages(), 2, "the whole area is leaked");
    // The unmapped page's grant ended; the mapped one's could not.
    assert_eq!(table.end_access(g0), Err(GrantError::BadRef(g0)));
    assert!(table.is_mapped(g1));
    assert_eq!(table.free_entries(), free - 1);
    // The backend can still write into the page: it was not given back to the allocator.
    // SAFETY: the mapping points at the leaked, still live page.
    unsafe { p.write(0xa5) };
    sim.with_host(|h| h.grants.unmap(g1));
    table.end_access(g1).unwrap();
    assert_eq!(table.free_entries(), free);
}

#[test]
fn setup_failing_halfway_undoes_the_grants() {
    let _sim = setup();
    let table = GrantTable::new(1).unwrap();
    assert!(GrantedRing::new(&table, DOM0, GrantedRing::MAX_ORDER + 1).is_err());
    // Fill the table (it grows to the simulator's limit), then free 3 entries: a ring of 4
    // pages gets 3 grants and fails on the 4th.
    let page = xenia_xen::grant::Page::new().unwrap();
    let mut taken = Vec::new();
    loop {
        match table.grant_page(DOM0, page.as_non_null(), true) {
            Ok(g) => taken.push(g),
            Err(e) => {
                assert_eq!(e, GrantError::Exhausted);
                break;
            }
        }
    }
    for g in taken.drain(..3) {
        table.end_access(g).unwrap();
    }
    assert_eq!(table.free_entries(), 3);
    assert_eq!(
        GrantedRing::new(&table, DOM0, 2).unwrap_err(),
        GrantError::Exhausted
    );
    assert_eq!(table.free_entries(), 3, "the 3 grants made were ended");
    assert_eq!(table.leaked_pages(), 0, "and the area freed");
    for g in taken {
        table.end_access(g).unwrap();
    }
}
