//! The in-memory index (key → where its latest record is) and the memory it may use.
//!
//! The index is the only part of the store whose memory grows with the data: one entry a live
//! key. Its size is accounted with [`entry_bytes`], a declared upper bound on what one entry
//! costs the heap (the key's own allocation, plus its share of the hash table, counted for the
//! moment the table grows, when the old and the new table are both allocated). The store checks
//! the sum against [`Options::index_budget`](crate::Options::index_budget):
//! - a put that would add a key past the budget fails with
//!   [`KvError::IndexFull`](crate::KvError::IndexFull) before anything is written;
//! - a replay that would pass it (the disk was filled by a domain given a larger budget) stops
//!   with [`KvError::IndexBudget`](crate::KvError::IndexBudget) instead of running out of memory.
//!
//! [`worst_case_bytes`] gives the most a disk of a given size can ever need, so an app can size
//! the budget (or the domain) to never see [`KvError::IndexFull`](crate::KvError::IndexFull).

use crate::format::{record_len, HEADER_LEN, MAX_KEY};
use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use hashbrown::HashMap;

/// Where a key's latest value lives: enough to read the record back and recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    /// Byte offset of the record.
    pub offset: u64,
    /// Its sequence number.
    pub seq: u64,
    /// Its header CRC (covers every header field).
    pub head_crc: u32,
    /// Its value length.
    pub val_len: u32,
}

/// Bytes of one hash-table slot (key handle and [`Loc`]) plus its control byte.
const SLOT_BYTES: usize = core::mem::size_of::<(Box<[u8]>, Loc)>() + 1;

/// Heap bytes one index entry with a key of `key_len` bytes may use, at most.
///
/// The key's allocation is counted rounded up to 16 bytes plus 16 of allocator overhead. The
/// table's share is 3.5 slots: a table is at most 7/8 full and doubles when it is, and while it
/// doubles the old one (n slots) and the new one (2n) are both allocated: 3n slots for 7n/8
/// entries.
pub const fn entry_bytes(key_len: usize) -> usize {
    key_len.div_ceil(16) * 16 + 16 + SLOT_BYTES * 7 / 2
}

/// The most index memory a store on a disk of `disk_bytes` bytes with `sector_size`-byte
/// sectors can ever need: the disk filled with the records whose keys cost the most index
/// memory per byte of disk.
pub fn worst_case_bytes(disk_bytes: u64, sector_size: u32) -> u64 {
    let log = disk_bytes.saturating_sub(crate::format::LOG_START);
    // Per record size (whole sectors), the longest key that fits costs the most; check each
    // record size a key can need (keys are at most MAX_KEY bytes).
    let mut worst = 0u64;
    let ss = u64::from(sector_size);
    let max_sectors = record_len(MAX_KEY, 0, sector_size) / ss;
    for sectors in 1..=max_sectors {
        let room = (sectors * ss) as usize - HEADER_LEN;
        let key = room.min(MAX_KEY);
        let records = log / (sectors * ss);
        worst = worst.max(records * entry_bytes(key) as u64);
    }
    worst
}

/// The index: live keys and the bytes they account for.
pub(crate) struct Index {
    map: HashMap<Box<[u8]>, Loc>,
    bytes: usize,
    budget: usize,
}

/// Adding a key would pass the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget;

impl Index {
    /// An empty index that may account for `budget` bytes.
    pub fn new(budget: usize) -> Index {
        Index {
            map: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// Whether a key of `key_len` bytes, absent now, could be added.
    pub fn has_room_for(&self, key: &[u8]) -> bool {
        self.map.contains_key(key) || self.bytes + entry_bytes(key.len()) <= self.budget
    }

    /// Sets `key`'s location (replacing it costs nothing more).
    pub fn insert(&mut self, key: &[u8], loc: Loc) -> Result<(), OverBudget> {
        if let Some(l) = self.map.get_mut(key) {
            *l = loc;
            return Ok(());
        }
        if !self.has_room_for(key) {
            return Err(OverBudget);
        }
        self.bytes += entry_bytes(key.len());
        self.map.insert(key.into(), loc);
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &[u8]) {
        if self.map.remove(key).is_some() {
            self.bytes -= entry_bytes(key.len());
        }
    }

    /// `key`'s location.
    pub fn get(&self, key: &[u8]) -> Option<Loc> {
        self.map.get(key).copied()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes accounted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Every key (a copy of each; memory grows with the store).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.map.keys().map(|k| k.to_vec()).collect()
    }

    /// Up to `limit` keys greater than `after` (all keys when `None`), in byte order, and
    /// whether more follow. Memory: `limit` keys, whatever the size of the store.
    pub fn page(&self, after: Option<&[u8]>, limit: usize) -> (Vec<Vec<u8>>, bool) {
        // A max-heap of the `limit` smallest candidates seen so far.
        let mut best: BinaryHeap<&[u8]> = BinaryHeap::with_capacity(limit.saturating_add(1));
        let mut more = false;
        for k in self.map.keys() {
            let k: &[u8] = k;
            if after.is_some_and(|a| k <= a) {
                continue;
            }
            if best.len() < limit {
                best.push(k);
            } else if best.peek().is_some_and(|&top| k < top) {
                best.pop();
                best.push(k);
                more = true;
            } else {
                more = true;
            }
        }
        let page = best
            .into_sorted_vec()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        (page, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(offset: u64) -> Loc {
        Loc {
            offset,
            seq: offset,
            head_crc: 0,
            val_len: 0,
        }
    }

    #[test]
    fn budget_counts_new_keys_only() {
        let per = entry_bytes(3);
        let mut ix = Index::new(2 * per);
        ix.insert(b"aaa", loc(1)).unwrap();
        ix.insert(b"bbb", loc(2)).unwrap();
        assert_eq!(ix.insert(b"ccc", loc(3)), Err(OverBudget));
        // Replacing an existing key needs no room.
        ix.insert(b"aaa", loc(4)).unwrap();
        assert_eq!(ix.get(b"aaa"), Some(loc(4)));
        ix.remove(b"bbb");
        ix.remove(b"bbb");
        assert_eq!(ix.bytes(), per);
        ix.insert(b"ccc", loc(5)).unwrap();
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn pages_walk_every_key_once_in_order() {
        let mut ix = Index::new(usize::MAX);
        let mut want: Vec<Vec<u8>> = (0..257u32)
            .map(|i| alloc::format!("k{:05}", (i * 7919) % 1000).into_bytes())
            .collect();
        for (i, k) in want.iter().enumerate() {
            ix.insert(k, loc(i as u64)).unwrap();
        }
        want.sort();
        want.dedup();
        for limit in [1, 2, 10, 256, 257, 1000] {
            let mut got = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let (page, more) = ix.page(after.as_deref(), limit);
                assert!(page.len() <= limit);
                got.extend(page.iter().cloned());
                if !more {
                    break;
                }
                after = page.last().cloned();
            }
            assert_eq!(got, want, "limit {limit}");
        }
        assert_eq!(ix.page(None, 0), (Vec::new(), true));
        assert_eq!(Index::new(0).page(None, 5), (Vec::new(), false));
    }

    #[test]
    fn worst_case_grows_with_the_disk() {
        let small = worst_case_bytes(1 << 20, 512);
        let big = worst_case_bytes(64 << 20, 512);
        assert!(small > 0 && big > 60 * small);
        // A 64 MiB disk of one-sector records: about 131k keys.
        let one_sector = ((64u64 << 20) - 4096) / 512;
        assert!(big >= one_sector * entry_bytes(1) as u64);
    }
}
