//! The on-disk format: a superblock, then a log of checksummed, chained records.
//!
//! All integers are little endian. Byte offsets are from the start of the disk.
//!
//! **Superblock** (bytes 0..36 of sector 0; the rest of the first [`LOG_START`] bytes is unused):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic [`SUPER_MAGIC`] |
//! | 8..12 | format version ([`VERSION`]) |
//! | 12..16 | sector size the store was made with |
//! | 16..24 | store id (chosen at format time) |
//! | 24..32 | log start in bytes ([`LOG_START`]) |
//! | 32..36 | CRC-32 of bytes 0..32 |
//!
//! **Record** (starts on a sector boundary, padded with zeros to whole sectors; a sector that
//! holds an acknowledged record is never written again):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic [`RECORD_MAGIC`] |
//! | 4 | kind: 1 = put, 2 = delete (tombstone) |
//! | 5..8 | zero |
//! | 8..16 | sequence number (1 for the first record, then +1 each) |
//! | 16..20 | key length (1 ..= [`MAX_KEY`]) |
//! | 20..24 | value length (0 ..= [`MAX_VALUE`]; 0 for a tombstone) |
//! | 24..28 | chain: the previous record's header CRC (the superblock's CRC for the first) |
//! | 28..32 | CRC-32 of key ‖ value |
//! | 32..36 | header CRC: CRC-32 of bytes 0..32 |
//! | 36.. | key, then value |
//!
//! Recovery reads records from [`LOG_START`] while each one is intact: magic, header CRC,
//! the expected sequence number, the chain value, lengths in range, the record within the disk,
//! and the data CRC. The first record that fails any check ends the log: a torn or corrupt
//! tail is ignored, and the next record is written over it. The sequence number and chain
//! mean a stale record left beyond the end (from an earlier, overwritten tail) is never taken
//! for part of the log.

use alloc::vec::Vec;

/// Superblock magic.
pub const SUPER_MAGIC: [u8; 8] = *b"XENIAKV\x01";
/// Record magic.
pub const RECORD_MAGIC: [u8; 4] = *b"XKVR";
/// Format version.
pub const VERSION: u32 = 1;
/// Where the log starts (bytes; a multiple of every supported sector size).
pub const LOG_START: u64 = 4096;
/// Bytes of a record header.
pub const HEADER_LEN: usize = 36;
/// Bytes of the superblock.
pub const SUPER_LEN: usize = 36;
/// Longest key in bytes.
pub const MAX_KEY: usize = 512;
/// Largest value in bytes (1 MiB).
pub const MAX_VALUE: usize = 1 << 20;

/// A record's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sets a key.
    Put = 1,
    /// Deletes a key (a tombstone).
    Delete = 2,
}

/// The superblock's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Sector size the store was made with.
    pub sector_size: u32,
    /// The store's id.
    pub store_id: u64,
    /// Start of the log in bytes.
    pub log_start: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Superblock {
    /// Encodes the superblock (36 bytes).
    pub fn encode(&self) -> [u8; SUPER_LEN] {
        let mut b = [0u8; SUPER_LEN];
        b[0..8].copy_from_slice(&SUPER_MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.sector_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.store_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.log_start.to_le_bytes());
        let crc = crc32fast::hash(&b[0..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a superblock: `None` unless magic, version and CRC are right.
    pub fn decode(b: &[u8]) -> Option<Superblock> {
        if b.len() < SUPER_LEN || b[0..8] != SUPER_MAGIC || u32_at(b, 8) != VERSION {
            return None;
        }
        if crc32fast::hash(&b[0..32]) != u32_at(b, 32) {
            return None;
        }
        Some(Superblock {
            sector_size: u32_at(b, 12),
            store_id: u64_at(b, 16),
            log_start: u64_at(b, 24),
        })
    }

    /// The chain value the first record carries.
    pub fn chain_seed(&self) -> u32 {
        crc32fast::hash(&self.encode())
    }
}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Put or delete.
    pub kind: Kind,
    /// Sequence number.
    pub seq: u64,
    /// Key length.
    pub key_len: u32,
    /// Value length.
    pub val_len: u32,
    /// The previous record's header CRC.
    pub prev: u32,
    /// CRC-32 of key ‖ value.
    pub data_crc: u32,
    /// CRC-32 of the header's first 32 bytes.
    pub head_crc: u32,
}

impl Header {
    /// Bytes of the record on disk: header, key and value rounded up to whole sectors.
    pub fn record_len(&self, sector_size: u32) -> u64 {
        record_len(self.key_len as usize, self.val_len as usize, sector_size)
    }

    /// Decodes and checks a header (magic, header CRC, kind, length limits). The sequence
    /// number and chain are the caller's to check.
    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN || b[0..4] != RECORD_MAGIC || b[5..8] != [0, 0, 0] {
            return None;
        }
        let head_crc = u32_at(b, 32);
        if crc32fast::hash(&b[0..32]) != head_crc {
            return None;
        }
        let kind = match b[4] {
            1 => Kind::Put,
            2 => Kind::Delete,
            _ => return None,
        };
        let key_len = u32_at(b, 16);
        let val_len = u32_at(b, 20);
        if key_len == 0
            || key_len as usize > MAX_KEY
            || val_len as usize > MAX_VALUE
            || (kind == Kind::Delete && val_len != 0)
        {
            return None;
        }
        Some(Header {
            kind,
            seq: u64_at(b, 8),
            key_len,
            val_len,
            prev: u32_at(b, 24),
            data_crc: u32_at(b, 28),
            head_crc,
        })
    }
}

/// Bytes on disk of a record with these lengths.
pub fn record_len(key_len: usize, val_len: usize, sector_size: u32) -> u64 {
    let raw = (HEADER_LEN + key_len + val_len) as u64;
    raw.div_ceil(u64::from(sector_size)) * u64::from(sector_size)
}

/// Encodes a whole record, padded to sectors; returns it and its header.
pub fn encode_record(
    kind: Kind,
    seq: u64,
    prev: u32,
    key: &[u8],
    value: &[u8],
    sector_size: u32,
) -> (Vec<u8>, Header) {
    let len = record_len(key.len(), value.len(), sector_size) as usize;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&RECORD_MAGIC);
    b.extend_from_slice(&[kind as u8, 0, 0, 0]);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&(key.len() as u32).to_le_bytes());
    b.extend_from_slice(&(value.len() as u32).to_le_bytes());
    b.extend_from_slice(&prev.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(value);
    let data_crc = h.finalize();
    b.extend_from_slice(&data_crc.to_le_bytes());
    let head_crc = crc32fast::hash(&b[0..32]);
    b.extend_from_slice(&head_crc.to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(value);
    b.resize(len, 0);
    let header = Header {
        kind,
        seq,
        key_len: key.len() as u32,
        val_len: value.len() as u32,
        prev,
        data_crc,
        head_crc,
    };
    (b, header)
}

/// Whether `body` (key ‖ value, as the header's lengths say) matches the header's data CRC.
pub fn data_ok(header: &Header, body: &[u8]) -> bool {
    let n = header.key_len as usize + header.val_len as usize;
    body.len() >= n && crc32fast::hash(&body[..n]) == header.data_crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_every_bit_flip_is_caught() {
        let (rec, h) = encode_record(Kind::Put, 7, 0xdead_beef, b"key", b"value!", 512);
        assert_eq!(rec.len(), 512);
        let d = Header::decode(&rec).unwrap();
        assert_eq!(d, h);
        assert_eq!(
            (d.seq, d.key_len, d.val_len, d.prev),
            (7, 3, 6, 0xdead_beef)
        );
        assert!(data_ok(&d, &rec[HEADER_LEN..]));
        for bit in 0..(HEADER_LEN + 9) * 8 {
            let mut r = rec.clone();
            r[bit / 8] ^= 1 << (bit % 8);
            let ok = Header::decode(&r).is_some_and(|h2| h2 == h && data_ok(&h2, &r[HEADER_LEN..]));
            assert!(!ok, "bit {bit} flip not detected");
        }
    }

    #[test]
    fn superblock_round_trip() {
        let s = Superblock {
            sector_size: 4096,
            store_id: 42,
            log_start: LOG_START,
        };
        assert_eq!(Superblock::decode(&s.encode()), Some(s));
        let mut b = s.encode();
        b[17] ^= 1;
        assert_eq!(Superblock::decode(&b), None);
        assert_eq!(Superblock::decode(&[0u8; 36]), None);
    }

    #[test]
    fn lengths() {
        assert_eq!(record_len(1, 0, 512), 512);
        assert_eq!(record_len(1, 476, 512), 1024);
        assert_eq!(record_len(1, 475, 512), 512);
        assert_eq!(record_len(4, MAX_VALUE, 4096), (MAX_VALUE as u64) + 4096);
    }
}
