//! etcd's `HashKV`: a CRC-32C of the key tree's records up to a revision, as etcd's
//! `store.HashByRev` computes it, so members (and Keelson beside etcd) can compare their data.
//!
//! The hash covers the tree name `key`, then, in key order, every record's revision key and
//! value with a main revision at or below the requested one; of the records at or below the
//! compaction, only those compaction at the requested revision would keep (skipping nothing when
//! that set is empty, as etcd does). Records are etcd's own bytes (see [`super::kv`] and
//! [`super::revision`]), so the same history hashes the same in both.

use super::revision::Revision;
use crate::schema;
use std::collections::HashSet;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd's hash uses.
pub struct Crc32c {
    state: u32,
}

const CASTAGNOLI: u32 = 0x82F6_3B78;

/// The byte-at-a-time table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CASTAGNOLI
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

impl Default for Crc32c {
    fn default() -> Crc32c {
        Crc32c { state: !0 }
    }
}

impl Crc32c {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.state;
        for &byte in bytes {
            crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    pub fn finish(&self) -> u32 {
        !self.state
    }
}

/// Hashes the key tree's records, fed in key order as `(revision key, value)`.
pub struct KvHasher<'k> {
    crc: Crc32c,
    rev: i64,
    compact_rev: i64,
    keep: &'k HashSet<Revision>,
}

impl<'k> KvHasher<'k> {
    /// A hash up to `rev`, with `compact_rev` the store's compaction and `keep` the revisions
    /// compaction at `rev` keeps.
    pub fn new(rev: i64, compact_rev: i64, keep: &'k HashSet<Revision>) -> KvHasher<'k> {
        let mut crc = Crc32c::default();
        crc.update(schema::TREE_KEY);
        KvHasher {
            crc,
            rev,
            compact_rev,
            keep,
        }
    }

    pub fn record(&mut self, key: &[u8], value: &[u8]) {
        let Some((record_rev, _)) = Revision::from_key(key) else {
            return;
        };
        if record_rev.main > self.rev {
            return;
        }
        if record_rev.main <= self.compact_rev
            && !self.keep.is_empty()
            && !self.keep.contains(&record_rev)
        {
            return;
        }
        self.crc.update(key);
        self.crc.update(value);
    }

    pub fn finish(&self) -> u32 {
        self.crc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The standard check value and RFC 3720's test vectors.
        let crc = |bytes: &[u8]| {
            let mut crc = Crc32c::default();
            crc.update(bytes);
            crc.finish()
        };
        assert_eq!(crc(b"123456789"), 0xE306_9283);
        assert_eq!(crc(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc(&[0xFFu8; 32]), 0x62A8_AB43);
        let mut split = Crc32c::default();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.finish(), 0xE306_9283);
    }

    #[test]
    fn records_above_the_revision_or_compacted_away_are_left_out() {
        let key = |main: i64| Revision::new(main, 0).to_bytes().to_vec();
        let records = [
            (key(2), b"a".to_vec()),
            (key(3), b"b".to_vec()),
            (key(5), b"c".to_vec()),
        ];
        let hash = |rev, compact, keep: &[i64]| {
            let keep: HashSet<Revision> = keep.iter().map(|&m| Revision::new(m, 0)).collect();
            let mut hasher = KvHasher::new(rev, compact, &keep);
            for (key, value) in &records {
                hasher.record(key, value);
            }
            hasher.finish()
        };
        let only = |picked: &[usize]| {
            let mut crc = Crc32c::default();
            crc.update(schema::TREE_KEY);
            for &i in picked {
                crc.update(&records[i].0);
                crc.update(&records[i].1);
            }
            crc.finish()
        };
        assert_eq!(hash(5, 0, &[]), only(&[0, 1, 2]));
        assert_eq!(hash(4, 0, &[]), only(&[0, 1]));
        // At or below the compaction only kept records count; an empty keep set skips nothing.
        assert_eq!(hash(5, 3, &[3, 5]), only(&[1, 2]));
        assert_eq!(hash(5, 3, &[]), only(&[0, 1, 2]));
    }
}
