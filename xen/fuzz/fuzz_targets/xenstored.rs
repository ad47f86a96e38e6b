//! Arbitrary bytes from a guest to the simulated xenstored: no panic, and its output stays
//! well framed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenia_sim::xenstored::Xenstored;
use xenia_xen::xenstore::wire::FrameReader;

fuzz_target!(|data: &[u8]| {
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (*c as usize + 1, rest),
        None => return,
    };
    let mut x = Xenstored::new();
    x.add_domain(1);
    x.write("/local/domain/1/device/vif/0/state", "1").unwrap();
    let c = x.connect(1);
    let d0 = x.connect(0);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        // Every chunk also goes to a dom0 connection, so privileged paths are reached.
        let _ = x.feed(c, piece);
        let _ = x.feed(d0, piece);
        out.extend(x.take_output(c));
    }
    let mut r = FrameReader::new();
    r.push_all(&out, |_| {}).expect("the daemon frames its output");
    assert!(!r.is_mid_message());
});
