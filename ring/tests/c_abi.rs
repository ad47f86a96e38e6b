//! Checks against Xen's own C headers: a small C program is compiled with `cc` against
//! /usr/include/xen/io/{ring,xs_wire,console}.h and its answers (ring sizes, entry layouts,
//! notification and final-check decisions of the macros, struct offsets) are compared with
//! this crate's.
//!
//! Skipped, with a message, if there is no C compiler. Fails if the Xen headers are missing
//! (install `libxen-dev`).

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Area;
use xenia_ring::{
    console, ring_bytes, ring_size, xenstore, FrontRing, RingMessage, SharedRing, RING_HEADER_SIZE,
};

const HEADER_DIR: &str = "/usr/include/xen/io";

/// Entry type pairs, as C declarations and as Rust types (see `rust_layout`).
const TYPES: &[(&str, &str, &str)] = &[
    ("b1", "struct { uint8_t v[1]; }", "struct { uint8_t v[1]; }"),
    (
        "w3",
        "struct { uint32_t v[3]; }",
        "struct { uint64_t v[1]; }",
    ),
    (
        "blk",
        "struct { uint8_t v[112]; }",
        "struct { uint64_t v[2]; }",
    ),
    (
        "tx",
        "struct { uint16_t v[6]; }",
        "struct { uint16_t v[4]; }",
    ),
    (
        "q5",
        "struct { uint64_t v[5]; }",
        "struct { uint32_t v[1]; }",
    ),
    (
        "b36",
        "struct { uint8_t v[36]; }",
        "struct { uint8_t v[1]; }",
    ),
    (
        "huge",
        "struct { uint8_t v[4033]; }",
        "struct { uint8_t v[1]; }",
    ),
];

/// (ENTRY_SIZE, ENTRIES_OFFSET, size_for(order 0..=4)) of the Rust type pair named `name`.
fn rust_layout(name: &str) -> (usize, usize, Vec<u32>) {
    fn of<Req: RingMessage, Rsp: RingMessage>() -> (usize, usize, Vec<u32>) {
        (
            SharedRing::<Req, Rsp>::ENTRY_SIZE,
            SharedRing::<Req, Rsp>::ENTRIES_OFFSET,
            (0..=4)
                .map(|o| SharedRing::<Req, Rsp>::size_for(ring_bytes(o)))
                .collect(),
        )
    }
    match name {
        "b1" => of::<[u8; 1], [u8; 1]>(),
        "w3" => of::<[u32; 3], [u64; 1]>(),
        "blk" => of::<[u8; 112], [u64; 2]>(),
        "tx" => of::<[u16; 6], [u16; 4]>(),
        "q5" => of::<[u64; 5], [u32; 1]>(),
        "b36" => of::<[u8; 36], [u8; 1]>(),
        "huge" => of::<[u8; 4033], [u8; 1]>(),
        _ => unreachable!(),
    }
}

fn c_program() -> String {
    let mut c = String::from(
        r#"#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
/* Barriers for the legacy interface version the headers default to. */
#define mb() __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()
#include <xen/io/ring.h>
#include <xen/io/xs_wire.h>
#include <xen/io/console.h>
"#,
    );
    for (name, req, rsp) in TYPES {
        writeln!(c, "typedef {req} {name}_req_t;").unwrap();
        writeln!(c, "typedef {rsp} {name}_rsp_t;").unwrap();
        writeln!(c, "DEFINE_RING_TYPES({name}, {name}_req_t, {name}_rsp_t);").unwrap();
    }
    c.push_str(
        r#"
typedef struct { uint32_t id; uint32_t op; uint64_t arg; } t_req_t;
typedef struct { uint32_t id; int32_t status; } t_rsp_t;
DEFINE_RING_TYPES(t, t_req_t, t_rsp_t);
static union { t_sring_t s; unsigned char page[4096]; } shared;

int main(void) {
    char cmd;
    unsigned int a, b, c;
"#,
    );
    for (name, _, _) in TYPES {
        write!(
            c,
            "    printf(\"layout {name} %zu %zu\", sizeof(union {name}_sring_entry), offsetof(struct {name}_sring, ring));\n\
             \x20   for (int o = 0; o <= 4; o++) printf(\" %u\", (unsigned)__CONST_RING_SIZE({name}, 4096UL << o));\n\
             \x20   printf(\"\\n\");\n"
        )
        .unwrap();
    }
    c.push_str(
        r#"
    printf("xs %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
        offsetof(struct xenstore_domain_interface, req),
        offsetof(struct xenstore_domain_interface, rsp),
        offsetof(struct xenstore_domain_interface, req_cons),
        offsetof(struct xenstore_domain_interface, req_prod),
        offsetof(struct xenstore_domain_interface, rsp_cons),
        offsetof(struct xenstore_domain_interface, rsp_prod),
        offsetof(struct xenstore_domain_interface, server_features),
        offsetof(struct xenstore_domain_interface, connection),
        offsetof(struct xenstore_domain_interface, error),
        sizeof(struct xenstore_domain_interface));
    printf("cons %zu %zu %zu %zu %zu %zu %zu\n",
        offsetof(struct xencons_interface, in),
        offsetof(struct xencons_interface, out),
        offsetof(struct xencons_interface, in_cons),
        offsetof(struct xencons_interface, in_prod),
        offsetof(struct xencons_interface, out_cons),
        offsetof(struct xencons_interface, out_prod),
        sizeof(struct xencons_interface));
    fflush(stdout);

    /* Decisions of the macros, for inputs read from stdin:
     *   N old new event         -> RING_PUSH_REQUESTS_AND_CHECK_NOTIFY
     *   F rsp_prod rsp_cons 0   -> RING_FINAL_CHECK_FOR_RESPONSES (work, rsp_event)
     *   B req_prod req_cons 0   -> RING_FINAL_CHECK_FOR_REQUESTS  (work, req_event)
     */
    while (scanf(" %c %u %u %u", &cmd, &a, &b, &c) == 4) {
        t_front_ring_t f;
        t_back_ring_t k;
        int r;
        SHARED_RING_INIT(&shared.s);
        switch (cmd) {
        case 'N':
            FRONT_RING_ATTACH(&f, &shared.s, a, sizeof(shared));
            shared.s.req_prod = a;
            f.req_prod_pvt = b;
            shared.s.req_event = c;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&f, r);
            printf("%d\n", r ? 1 : 0);
            break;
        case 'F':
            FRONT_RING_ATTACH(&f, &shared.s, b, sizeof(shared));
            shared.s.rsp_prod = a;
            shared.s.rsp_event = 0x5555;
            RING_FINAL_CHECK_FOR_RESPONSES(&f, r);
            printf("%d %u\n", r ? 1 : 0, shared.s.rsp_event);
            break;
        case 'B':
            BACK_RING_ATTACH(&k, &shared.s, b, sizeof(shared));
            shared.s.req_prod = a;
            shared.s.req_event = 0x5555;
            RING_FINAL_CHECK_FOR_REQUESTS(&k, r);
            printf("%d %u\n", r ? 1 : 0, shared.s.req_event);
            break;
        default:
            return 2;
        }
    }
    return 0;
}
"#,
    );
    c
}

/// Compile the program; `None` if there is no C compiler.
fn compile(dir: &Path) -> Option<PathBuf> {
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no C compiler (`cc`) found, cannot check against Xen's C headers");
        return None;
    }
    assert!(
        Path::new(HEADER_DIR).join("ring.h").exists(),
        "{HEADER_DIR}/ring.h not found: install the Xen headers (Debian: libxen-dev)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join("ring_abi.c");
    let exe = dir.join("ring_abi");
    std::fs::write(&src, c_program()).unwrap();
    let out = Command::new("cc")
        .args(["-std=gnu11", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

/// A deterministic pseudo-random generator for the macro inputs.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
    /// Mostly values near 0 and near the 32-bit wrap, some anywhere.
    fn index(&mut self) -> u32 {
        match self.next() % 3 {
            0 => self.next() % 300,
            1 => u32::MAX - self.next() % 300,
            _ => self.next(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Req {
    id: u32,
    op: u32,
    arg: u64,
}
// SAFETY: repr(C), integers only, no padding.
unsafe impl RingMessage for Req {}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Rsp {
    id: u32,
    status: i32,
}
// SAFETY: repr(C), integers only, no padding.
unsafe impl RingMessage for Rsp {}
type Shared = SharedRing<Req, Rsp>;

fn shared(area: &Area) -> Shared {
    // SAFETY: the area outlives the ring, accessed only via rings and raw accessors.
    unsafe { Shared::new(area.ptr(), area.len()) }.unwrap()
}

#[test]
fn matches_xen_c_headers() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xenia-ring-c-abi");
    let Some(exe) = compile(&dir) else { return };

    // Inputs for the macro decisions.
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let size = Shared::size_for(4096);
    let mut input = String::new();
    let mut cases = Vec::new();
    for _ in 0..3000 {
        let old = rng.index();
        let n = rng.next() % (size + 1);
        let event = match rng.next() % 3 {
            0 => old.wrapping_add(rng.next() % (size + 10)),
            1 => old.wrapping_sub(rng.next() % 10),
            _ => rng.next(),
        };
        cases.push(('N', old, old.wrapping_add(n), event));
    }
    for kind in ['F', 'B'] {
        for _ in 0..1000 {
            let cons = rng.index();
            let avail = match rng.next() % 2 {
                0 => 0,
                _ => rng.next() % (size + 1),
            };
            cases.push((kind, cons.wrapping_add(avail), cons, 0));
        }
    }
    for (k, a, b, c) in &cases {
        writeln!(input, "{k} {a} {b} {c}").unwrap();
    }

    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the C program failed: {:?}",
        out.status
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();

    // Layouts and ring sizes.
    for (name, _, _) in TYPES {
        let line = lines.next().unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&f[..2], &["layout", name], "{line}");
        let c: Vec<usize> = f[2..].iter().map(|v| v.parse().unwrap()).collect();
        let (entry, offset, sizes) = rust_layout(name);
        assert_eq!(entry, c[0], "{name}: sizeof(union entry)");
        assert_eq!(offset, c[1], "{name}: offsetof(sring, ring)");
        assert_eq!(offset, RING_HEADER_SIZE);
        for order in 0..=4u32 {
            let c_size = c[2 + order as usize] as u32;
            assert_eq!(
                ring_size(ring_bytes(order), c[0]),
                c_size,
                "{name}: ring_size(order {order}) vs __CONST_RING_SIZE"
            );
            assert_eq!(
                sizes[order as usize], c_size,
                "{name}: size_for(order {order})"
            );
        }
        eprintln!("{line}");
    }

    // Page layouts.
    let xs: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        xs,
        [
            xenstore::REQ_OFFSET,
            xenstore::RSP_OFFSET,
            xenstore::REQ_CONS_OFFSET,
            xenstore::REQ_PROD_OFFSET,
            xenstore::RSP_CONS_OFFSET,
            xenstore::RSP_PROD_OFFSET,
            xenstore::SERVER_FEATURES_OFFSET,
            xenstore::CONNECTION_OFFSET,
            xenstore::ERROR_OFFSET,
            xenstore::INTERFACE_SIZE,
        ]
    );
    let cons: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        cons,
        [
            console::IN_OFFSET,
            console::OUT_OFFSET,
            console::IN_CONS_OFFSET,
            console::IN_PROD_OFFSET,
            console::OUT_CONS_OFFSET,
            console::OUT_PROD_OFFSET,
            console::INTERFACE_SIZE,
        ]
    );

    // Macro decisions, replayed on real rings.
    let area = Area::pages(0);
    let mut notifies = 0;
    for (k, a, b, c) in &cases {
        let line = lines.next().expect("missing output line");
        let mut s = shared(&area);
        s.init();
        match k {
            'N' => {
                let (old, new, event) = (*a, *b, *c);
                let mut front = FrontRing::attach(s, old);
                area.write_u32(Shared::REQ_PROD_OFFSET, old);
                for i in 0..new.wrapping_sub(old) {
                    front
                        .push_request(Req {
                            id: i,
                            op: 0,
                            arg: 0,
                        })
                        .unwrap();
                }
                area.write_u32(Shared::REQ_EVENT_OFFSET, event);
                let notify = front.push_requests_and_check_notify();
                notifies += usize::from(notify);
                let c_notify = line == "1";
                assert_eq!(
                    notify, c_notify,
                    "notify(old {old}, new {new}, event {event})"
                );
            }
            'F' => {
                let (prod, cons) = (*a, *b);
                // A frontend with enough published requests for `prod - cons` responses.
                let mut front = FrontRing::attach(s, cons);
                for i in 0..prod.wrapping_sub(cons) {
                    front
                        .push_request(Req {
                            id: i,
                            op: 0,
                            arg: 0,
                        })
                        .unwrap();
                }
                front.push_requests();
                area.write_u32(Shared::RSP_PROD_OFFSET, prod);
                area.write_u32(Shared::RSP_EVENT_OFFSET, 0x5555);
                let work = front.final_check_for_responses().unwrap();
                let got = format!(
                    "{} {}",
                    u8::from(work),
                    area.read_u32(Shared::RSP_EVENT_OFFSET)
                );
                assert_eq!(
                    got, line,
                    "final check for responses (prod {prod}, cons {cons})"
                );
            }
            'B' => {
                let (prod, cons) = (*a, *b);
                let mut back = xenia_ring::BackRing::attach(s, cons);
                area.write_u32(Shared::REQ_PROD_OFFSET, prod);
                area.write_u32(Shared::REQ_EVENT_OFFSET, 0x5555);
                let work = back.final_check_for_requests().unwrap();
                let got = format!(
                    "{} {}",
                    u8::from(work),
                    area.read_u32(Shared::REQ_EVENT_OFFSET)
                );
                assert_eq!(
                    got, line,
                    "final check for requests (prod {prod}, cons {cons})"
                );
            }
            _ => unreachable!(),
        }
    }
    assert!(lines.next().is_none());
    // Both outcomes occurred.
    assert!(
        notifies > 100 && notifies < 2900,
        "{notifies} notifications"
    );
}
