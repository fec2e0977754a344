//! The history of one key: its generations of revisions, exactly as etcd's `keyIndex` keeps them.
//!
//! A generation runs from the put that creates a key to the delete that ends it (the tombstone is
//! the generation's last revision); the next put starts a new generation. The last generation is
//! the current one and is empty while the key is deleted. Versions count puts within a generation.
//!
//! Example: put a@1, put a@2, delete a@3, put a@4 gives generations `{1, 2, 3(tombstone)}` and
//! `{4}`; at revision 2 the key has version 2 and create revision 1; at 3 it does not exist.
//!
//! [`KeyIndex`] is the working form. The index keeps each key's history in a compact encoded form
//! instead (see "Encoded form" below): a million keys of one revision each would otherwise cost
//! three heap allocations apiece. Reads answer from the encoded bytes without decoding them.

use super::revision::Revision;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of revisions ever added to this generation, including compacted ones, so the
    /// version of its newest revision stays right after compaction drops older ones.
    pub version: i64,
    /// The revision that created the key in this generation.
    pub created: Revision,
    /// Revisions still held, oldest first; for an ended generation the last one is its tombstone.
    pub revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the newest revision with `main <= at_rev`.
    fn newest_at(&self, at_rev: i64) -> Option<usize> {
        self.revs.iter().rposition(|rev| rev.main <= at_rev)
    }
}

/// What a key looks like at one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    /// The newest revision of any change to the key, tombstones included.
    modified: Revision,
    generations: Vec<Generation>,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }
}

impl KeyIndex {
    /// A key restored from its newest surviving record (after a restart, possibly after
    /// compaction dropped its older revisions).
    pub fn restored(created: Revision, modified: Revision, version: i64) -> KeyIndex {
        KeyIndex {
            modified,
            generations: vec![Generation {
                version,
                created,
                revs: vec![modified],
            }],
        }
    }

    pub fn modified(&self) -> Revision {
        self.modified
    }

    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// True when the key has no history left at all: compaction may then drop it.
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// True while the key exists (its current generation has revisions).
    pub fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.is_empty())
    }

    /// Records a put at `rev`, which must be newer than every change recorded so far.
    pub fn put(&mut self, rev: Revision) {
        assert!(
            rev > self.modified,
            "revision {rev:?} is not newer than {:?}",
            self.modified
        );
        let generation = self
            .generations
            .last_mut()
            .expect("a key index always has a generation");
        if generation.is_empty() {
            generation.created = rev;
        }
        generation.revs.push(rev);
        generation.version += 1;
        self.modified = rev;
    }

    /// Records a delete at `rev`. Returns false (and changes nothing) if the key does not exist.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if !self.is_live() {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// The generation holding the key at `at_rev`, or `None` if the key did not exist then.
    fn generation_at(&self, at_rev: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (index, generation) in self.generations.iter().enumerate().rev() {
            let Some(first) = generation.revs.first() else {
                continue;
            };
            if index != last {
                // An ended generation: at or after its tombstone the key is gone, and older
                // generations cannot be alive at a later revision either.
                let tombstone = generation.revs.last().expect("non-empty");
                if tombstone.main <= at_rev {
                    return None;
                }
            }
            if first.main <= at_rev {
                return Some(generation);
            }
        }
        None
    }

    /// The key at `at_rev`, if it existed then.
    pub fn get(&self, at_rev: i64) -> Option<KeyAt> {
        let generation = self.generation_at(at_rev)?;
        let index = generation.newest_at(at_rev)?;
        let newer = (generation.revs.len() - index - 1) as i64;
        Some(KeyAt {
            modified: generation.revs[index],
            created: generation.created,
            version: generation.version - newer,
        })
    }

    /// Revisions newer than or equal to `since_main`, oldest first, keeping only the last sub
    /// revision of each main revision (one txn can change a key only once, so this is a
    /// safeguard that mirrors etcd).
    pub fn since(&self, since_main: i64) -> Vec<Revision> {
        let mut out: Vec<Revision> = Vec::new();
        for rev in self.generations.iter().flat_map(|g| g.revs.iter()) {
            if rev.main < since_main {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.main == rev.main => *last = *rev,
                _ => out.push(*rev),
            }
        }
        out
    }

    /// Finds where compaction at `at_rev` cuts: the generation that still matters and, within it,
    /// the newest revision at or below `at_rev` (which is kept, so reads at `at_rev` still work).
    fn compaction_cut(&self, at_rev: i64) -> (usize, Option<usize>) {
        let mut generation_index = 0;
        // Generations that ended at or before `at_rev` are wholly history.
        while generation_index < self.generations.len() - 1 {
            let generation = &self.generations[generation_index];
            let tombstone = generation
                .revs
                .last()
                .expect("ended generations are non-empty");
            if tombstone.main > at_rev {
                break;
            }
            generation_index += 1;
        }
        (
            generation_index,
            self.generations[generation_index].newest_at(at_rev),
        )
    }

    /// Which revision compaction at `at_rev` keeps for this key, if any: the newest one at or
    /// below `at_rev`, unless that one is a tombstone (a deleted key keeps nothing).
    pub fn kept_at(&self, at_rev: i64) -> Option<Revision> {
        let (generation_index, rev_index) = self.compaction_cut(at_rev);
        let generation = &self.generations[generation_index];
        let rev_index = rev_index?;
        let is_tombstone = rev_index == generation.revs.len() - 1
            && generation_index != self.generations.len() - 1;
        (!is_tombstone).then(|| generation.revs[rev_index])
    }

    /// Drops every revision at or below `at_rev` except the newest one of the live generation,
    /// and whole generations that ended at or below it. Returns the revision kept, if any.
    pub fn compact(&mut self, at_rev: i64) -> Option<Revision> {
        let kept = self.kept_at(at_rev);
        let (mut generation_index, rev_index) = self.compaction_cut(at_rev);
        let last = self.generations.len() - 1;
        let generation = &mut self.generations[generation_index];
        if !generation.is_empty() {
            if let Some(rev_index) = rev_index {
                generation.revs.drain(..rev_index);
            }
            // A generation reduced to its tombstone is gone entirely.
            if generation.revs.len() == 1
                && generation_index != last
                && generation.revs[0].main <= at_rev
            {
                generation_index += 1;
            }
        }
        self.generations.drain(..generation_index);
        kept
    }
}

// Encoded form: unsigned LEB128 varints, signed values zigzag-encoded first.
//
//   generation count (>= 1)
//   per generation: version, created.main, created.sub, revision count, then each revision's
//                   main and sub
//
// `modified` is not stored: in every state a key can be in while it is in the index, it is the
// newest revision of the newest non-empty generation (`put` sets both; compaction never drops
// that revision without dropping the whole key). A key of one generation with one revision, the
// common case, takes about a dozen bytes.

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_signed(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_revision(out: &mut Vec<u8>, rev: Revision) {
    put_signed(out, rev.main);
    put_signed(out, rev.sub);
}

/// Reads an encoded history front to back. The bytes are only ever produced by this module, so
/// running out of them is a bug, not bad input: it panics.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let (&byte, rest) = self.bytes.split_first().expect("a complete varint");
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return value;
            }
            shift += 7;
        }
    }

    fn signed(&mut self) -> i64 {
        let raw = self.varint();
        ((raw >> 1) as i64) ^ -((raw & 1) as i64)
    }

    fn revision(&mut self) -> Revision {
        let main = self.signed();
        let sub = self.signed();
        Revision::new(main, sub)
    }
}

pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    put_varint(out, len as u64);
}

/// Appends the encoded history of a key restored from its newest record
/// (`KeyIndex::restored(created, modified, version)`) without building it.
pub(crate) fn encode_restored(
    out: &mut Vec<u8>,
    created: Revision,
    modified: Revision,
    version: i64,
) {
    put_varint(out, 1);
    put_signed(out, version);
    put_revision(out, created);
    put_varint(out, 1);
    put_revision(out, modified);
}

/// [`KeyIndex::get`] on the encoded form, without decoding it.
pub(crate) fn get_encoded(bytes: &[u8], at_rev: i64) -> Option<KeyAt> {
    let mut reader = Reader::new(bytes);
    let generations = reader.varint();
    let mut found = None;
    for generation in 0..generations {
        let version = reader.signed();
        let created = reader.revision();
        let count = reader.varint();
        if count == 0 {
            // Only the current generation can be empty, and it is the last one.
            continue;
        }
        let mut first = None;
        let mut newest = None;
        let mut last = Revision::default();
        for position in 0..count {
            let rev = reader.revision();
            first.get_or_insert(rev);
            if rev.main <= at_rev {
                newest = Some((position, rev));
            }
            last = rev;
        }
        // Generations are in revision order: one that begins after `at_rev` and every later one
        // cannot hold the key at `at_rev`.
        let Some((position, modified)) = newest else {
            break;
        };
        let ended = generation + 1 < generations;
        // The newest generation begun at or before `at_rev` decides: if it ended at or before
        // `at_rev`, the key did not exist then.
        found = if ended && last.main <= at_rev {
            None
        } else {
            Some(KeyAt {
                modified,
                created,
                version: version - (count - position - 1) as i64,
            })
        };
    }
    found
}

/// The revision compaction at `at_rev` keeps for a key whose encoded history is one generation
/// with one revision, the common case; `None` if the history is anything else. Compaction leaves
/// such a history unchanged.
pub(crate) fn single_revision(bytes: &[u8]) -> Option<Revision> {
    let mut reader = Reader::new(bytes);
    if reader.varint() != 1 {
        return None;
    }
    let _version = reader.signed();
    let _created = reader.revision();
    if reader.varint() != 1 {
        return None;
    }
    Some(reader.revision())
}

impl KeyIndex {
    /// Appends the encoded form of this history to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_varint(out, self.generations.len() as u64);
        for generation in &self.generations {
            put_signed(out, generation.version);
            put_revision(out, generation.created);
            put_varint(out, generation.revs.len() as u64);
            for &rev in &generation.revs {
                put_revision(out, rev);
            }
        }
    }

    /// The history encoded by [`KeyIndex::encode_into`].
    pub fn decode(bytes: &[u8]) -> KeyIndex {
        let mut reader = Reader::new(bytes);
        let count = reader.varint() as usize;
        let mut generations = Vec::with_capacity(count);
        for _ in 0..count {
            let version = reader.signed();
            let created = reader.revision();
            let revs = (0..reader.varint()).map(|_| reader.revision()).collect();
            generations.push(Generation {
                version,
                created,
                revs,
            });
        }
        let modified = generations
            .iter()
            .rev()
            .find_map(|g: &Generation| g.revs.last().copied())
            .unwrap_or_default();
        KeyIndex {
            modified,
            generations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put @2, @4, @6, delete @8, put @10, @12, delete @14, put @16: three generations, the same
    /// history etcd's own key index tests walk through.
    fn three_generations() -> KeyIndex {
        let mut index = KeyIndex::default();
        for main in [2, 4, 6] {
            index.put(rev(main));
        }
        assert!(index.tombstone(rev(8)));
        for main in [10, 12] {
            index.put(rev(main));
        }
        assert!(index.tombstone(rev(14)));
        index.put(rev(16));
        index
    }

    #[test]
    fn get_sees_versions_and_gaps() {
        let index = three_generations();
        assert_eq!(index.get(1), None);
        assert_eq!(
            index.get(2),
            Some(KeyAt {
                modified: rev(2),
                created: rev(2),
                version: 1
            })
        );
        assert_eq!(
            index.get(5),
            Some(KeyAt {
                modified: rev(4),
                created: rev(2),
                version: 2
            })
        );
        assert_eq!(
            index.get(7),
            Some(KeyAt {
                modified: rev(6),
                created: rev(2),
                version: 3
            })
        );
        // Deleted from its tombstone until the next put.
        assert_eq!(index.get(8), None);
        assert_eq!(index.get(9), None);
        assert_eq!(
            index.get(11),
            Some(KeyAt {
                modified: rev(10),
                created: rev(10),
                version: 1
            })
        );
        assert_eq!(
            index.get(13),
            Some(KeyAt {
                modified: rev(12),
                created: rev(10),
                version: 2
            })
        );
        assert_eq!(index.get(15), None);
        assert_eq!(
            index.get(100),
            Some(KeyAt {
                modified: rev(16),
                created: rev(16),
                version: 1
            })
        );
    }

    #[test]
    fn tombstone_of_a_deleted_key_is_refused() {
        let mut index = KeyIndex::default();
        assert!(!index.tombstone(rev(1)));
        index.put(rev(2));
        assert!(index.tombstone(rev(3)));
        assert!(!index.tombstone(rev(4)));
        assert_eq!(index.modified(), rev(3));
    }

    #[test]
    fn since_lists_revisions_from_a_point() {
        let index = three_generations();
        assert_eq!(index.since(9), vec![rev(10), rev(12), rev(14), rev(16)]);
        assert_eq!(index.since(17), vec![]);
        assert_eq!(index.since(0).len(), 8);
    }

    #[test]
    fn compaction_keeps_what_reads_at_the_compact_revision_need() {
        // For every compact revision, reads at or after it must answer as before compaction.
        let full = three_generations();
        for at in 1..=17 {
            let mut compacted = full.clone();
            let kept = compacted.compact(at);
            assert_eq!(kept, full.kept_at(at), "at {at}");
            for read_at in at..=18 {
                assert_eq!(
                    compacted.get(read_at),
                    full.get(read_at),
                    "compact {at}, read {read_at}"
                );
            }
            // Nothing at or below the compact revision survives except the kept revision.
            for generation in compacted.generations() {
                for r in &generation.revs {
                    assert!(r.main > at || Some(*r) == kept, "compact {at} left {r:?}");
                }
            }
        }
    }

    #[test]
    fn compaction_drops_ended_generations_and_tombstones() {
        let mut index = three_generations();
        // At 8 the first generation ends with its tombstone: nothing of it is kept.
        assert_eq!(index.compact(8), None);
        assert_eq!(index.generations().len(), 2);
        assert_eq!(index.generations()[0].revs, vec![rev(10), rev(12), rev(14)]);
        assert_eq!(index.compact(13), Some(rev(12)));
        assert_eq!(index.generations()[0].revs, vec![rev(12), rev(14)]);
        assert_eq!(index.compact(16), Some(rev(16)));
        assert_eq!(index.generations().len(), 1);
        assert_eq!(index.generations()[0].revs, vec![rev(16)]);
        assert_eq!(index.get(16).map(|k| k.version), Some(1));
    }

    #[test]
    fn a_deleted_key_compacts_to_empty() {
        let mut index = KeyIndex::default();
        index.put(rev(1));
        index.tombstone(rev(2));
        assert_eq!(index.compact(2), None);
        assert!(index.is_empty());
    }

    #[test]
    fn restored_key_keeps_its_version() {
        let mut index = KeyIndex::restored(rev(3), rev(9), 4);
        index.put(rev(11));
        assert_eq!(
            index.get(11),
            Some(KeyAt {
                modified: rev(11),
                created: rev(3),
                version: 5
            })
        );
        assert_eq!(
            index.get(10),
            Some(KeyAt {
                modified: rev(9),
                created: rev(3),
                version: 4
            })
        );
    }
    /// Every history a sequence of puts and deletes can leave, with compactions in between:
    /// the encoded form must decode back to the same history and answer every read the same.
    #[test]
    fn encoded_form_answers_like_the_history() {
        let mut histories = vec![three_generations(), KeyIndex::restored(rev(3), rev(9), 4)];
        // Puts (p), deletes (d) and sub revisions, over a few revisions.
        for ops in ["p", "pp", "pd", "pdp", "ppdpd", "pdpdpp", "ppp"] {
            let mut index = KeyIndex::default();
            for (step, op) in ops.chars().enumerate() {
                let at = Revision::new(step as i64 * 3 + 1, step as i64 % 2);
                match op {
                    'p' => index.put(at),
                    _ => assert!(index.tombstone(at)),
                }
            }
            histories.push(index);
        }
        let mut compacted = Vec::new();
        for history in &histories {
            for at in 0..20 {
                let mut copy = history.clone();
                copy.compact(at);
                if !copy.is_empty() {
                    compacted.push(copy);
                }
            }
        }
        histories.extend(compacted);
        // Large and negative numbers take every varint length.
        let mut big = KeyIndex::restored(Revision::new(1 << 40, 3), Revision::new(1 << 62, 1), -5);
        big.put(Revision::new(i64::MAX, i64::MAX));
        histories.push(big);
        for history in &histories {
            let mut bytes = Vec::new();
            history.encode_into(&mut bytes);
            assert_eq!(&KeyIndex::decode(&bytes), history);
            for at in -1..=20 {
                assert_eq!(
                    get_encoded(&bytes, at),
                    history.get(at),
                    "{history:?} at {at}"
                );
            }
            assert_eq!(get_encoded(&bytes, i64::MAX), history.get(i64::MAX));
            let single =
                history.generations().len() == 1 && history.generations()[0].revs.len() == 1;
            assert_eq!(
                single_revision(&bytes),
                single.then(|| history.generations()[0].revs[0])
            );
        }
        // The form a restored key is built in directly is the restored history's.
        let mut direct = Vec::new();
        encode_restored(&mut direct, rev(3), rev(9), 4);
        let mut built = Vec::new();
        KeyIndex::restored(rev(3), rev(9), 4).encode_into(&mut built);
        assert_eq!(direct, built);
    }
}
