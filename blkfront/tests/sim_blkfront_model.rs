//! Random concurrent workloads against a model of the disk: rounds of non-overlapping reads,
//! writes and discards in flight together, with responses in order or reversed, across ring
//! sizes, indirect or direct requests and pool sizes.

use std::future::Future;
use std::pin::Pin;
use xenia_blkfront::{Blkfront, BlkfrontConfig, BlkfrontError};
use xenia_sim::blkback::{Blkback, VbdConfig};
use xenia_sim::{block_on, join_all, Guest, Sim};
use xenia_xen::grant::GrantTable;

type BoxFut<'a> = Pin<Box<dyn Future<Output = Result<Option<Vec<u8>>, BlkfrontError>> + 'a>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Read,
    Write,
    Discard,
}

fn run(seed: u64, vbd: VbdConfig, config: BlkfrontConfig) {
    let Guest { sim, ev, xs, .. } = Guest::new();
    let grants: &'static GrantTable = Box::leak(Box::new(GrantTable::new(1).unwrap()));
    let sectors = vbd.sectors;
    let back = Blkback::add(&sim, vbd);
    let front = block_on(ev, Blkfront::connect_with(xs, ev, grants, 51712, config)).unwrap();
    let free_grants = grants.free_entries();
    let mut model = vec![0u8; sectors as usize * 512];
    let mut rng = Rng(seed | 1);
    for round in 0..60 {
        back.state().faults.reverse = rng.below(2) == 0;
        let mut taken: Vec<(u64, u64)> = Vec::new();
        let mut ops: Vec<(Op, u64, u64, Vec<u8>)> = Vec::new();
        for _ in 0..1 + rng.below(16) {
            let len = 1 + match rng.below(4) {
                0 => rng.below(8),
                1 => rng.below(100),
                _ => rng.below(600),
            };
            let start = rng.below(sectors - len + 1);
            if taken.iter().any(|&(s, l)| start < s + l && s < start + len) {
                continue;
            }
            taken.push((start, len));
            let op = match rng.below(10) {
                0 => Op::Discard,
                1..=4 => Op::Read,
                _ => Op::Write,
            };
            let data: Vec<u8> = match op {
                Op::Write => (0..len * 512).map(|_| rng.next() as u8).collect(),
                _ => Vec::new(),
            };
            ops.push((op, start, len, data));
        }
        let results = block_on(ev, {
            let front = &front;
            let futs: Vec<BoxFut<'_>> = ops
                .iter()
                .map(|(op, start, len, data)| -> BoxFut<'_> {
                    let (op, start, len) = (*op, *start, *len);
                    Box::pin(async move {
                        match op {
                            Op::Read => {
                                let mut buf = vec![0; len as usize * 512];
                                front.read(start, &mut buf).await.map(|_| Some(buf))
                            }
                            Op::Write => front.write(start, data).await.map(|_| None),
                            Op::Discard => front.discard(start, len).await.map(|_| None),
                        }
                    })
                })
                .collect();
            join_all(futs)
        });
        for ((op, start, len, data), r) in ops.iter().zip(results) {
            let range = *start as usize * 512..(*start + *len) as usize * 512;
            match (op, r) {
                (Op::Read, Ok(Some(buf))) => {
                    assert!(
                        buf == model[range],
                        "seed {seed} round {round}: read {start}+{len}"
                    )
                }
                (Op::Write, Ok(None)) => model[range].copy_from_slice(data),
                (Op::Discard, Ok(None)) => model[range].fill(0),
                (op, r) => panic!("seed {seed} round {round}: {op:?} {start}+{len}: {r:?}"),
            }
        }
        assert_eq!(front.in_flight(), 0);
        assert_eq!(grants.free_entries(), free_grants, "no grant per request");
    }
    assert!(
        back.state().disk == model,
        "seed {seed}: the disk matches the model"
    );
    let (total, free) = front.pool_pages();
    assert_eq!(total, free);
    assert_eq!(front.stats().bad_responses, 0);
    Sim::uninstall();
}

#[test]
fn random_concurrent_workloads_match_a_model() {
    for seed in 1..=6u64 {
        let indirect = seed % 2 == 0;
        let vbd = VbdConfig {
            sectors: 8192,
            max_indirect_segments: if indirect { 256 } else { 0 },
            max_ring_page_order: if seed % 3 == 0 { 2 } else { 0 },
            ..Default::default()
        };
        let config = BlkfrontConfig {
            pool_pages: if seed > 3 {
                40
            } else {
                BlkfrontConfig::default().pool_pages
            },
            max_ring_page_order: 2,
            ..Default::default()
        };
        run(seed * 0x1234_5678_9abc, vbd, config);
    }
}
