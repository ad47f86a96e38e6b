//! Nested-Xen scenarios of the net area (they run in the same boot as the others; see
//! `scenarios()` in nested.rs). Tests here use `super::session()` and the helpers there.

use xenia_tests::session::Scenario;

/// This area's scenarios.
pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
