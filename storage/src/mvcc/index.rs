//! The key index: every key's history, ordered by key, in memory (etcd's `treeIndex`).
//!
//! Ranges resolve here to the revisions to read from the key tree. The index is rebuilt from the
//! key tree at open, so it is never written to disk itself.
//!
//! Memory: each key is one heap allocation holding its length, its bytes and its encoded history
//! (`key_index`'s "Encoded form"), kept in a `BTreeSet` ordered by the key bytes. A change to a
//! key's history re-encodes it into a new allocation that replaces the old one in place.

use super::key_index::{self, KeyAt, KeyIndex, Reader};
use super::revision::Revision;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

/// Which keys a request covers, decoded from etcd's `key`/`range_end` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRange<'a> {
    /// `range_end` empty: just `key`.
    Single(&'a [u8]),
    /// `[start, end)`; `end: None` is etcd's `range_end = "\0"` (every key from `start` on).
    Span {
        start: &'a [u8],
        end: Option<&'a [u8]>,
    },
}

impl<'a> KeyRange<'a> {
    /// Decodes etcd's convention: empty `range_end` is one key, `"\0"` is "from key on".
    pub fn from_request(key: &'a [u8], range_end: &'a [u8]) -> KeyRange<'a> {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::Span {
                start: key,
                end: None,
            },
            end => KeyRange::Span {
                start: key,
                end: Some(end),
            },
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match *self {
            KeyRange::Single(single) => key == single,
            KeyRange::Span { start, end } => key >= start && end.is_none_or(|end| key < end),
        }
    }

    fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::Span { start, end: None } => Some((Bound::Included(start), Bound::Unbounded)),
            // An inverted span is empty; BTreeMap::range would panic on it.
            KeyRange::Span {
                start,
                end: Some(end),
            } if end <= start => None,
            KeyRange::Span {
                start,
                end: Some(end),
            } => Some((Bound::Included(start), Bound::Excluded(end))),
        }
    }
}

/// A non-empty key range as `BTreeSet::range` takes it.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// One key as a range at some revision found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundKey<'a> {
    pub key: &'a [u8],
    pub at: KeyAt,
}

/// An encoded history longer than this is kept in the working form instead: about ten
/// revisions of one generation. Below it, re-encoding a key's history on each change costs
/// little; above it, a hot key (one updated many times between compactions) would pay for its
/// whole history on every put and every read of its newest revision.
const COMPACT_HISTORY_BYTES_MAX: usize = 64;

/// One key and its history, in one of two forms chosen by the history's encoded size.
enum Entry {
    /// `varint key length | key | encoded history` in one allocation: nearly every key.
    Compact(Box<[u8]>),
    /// A long history in the working form: a put appends, a read of the newest revision looks
    /// at the end.
    Expanded(Box<Expanded>),
}

struct Expanded {
    key: Box<[u8]>,
    history: KeyIndex,
}

impl Entry {
    /// The compact form, with the history written by `history`; returns it with the length of
    /// the encoded history.
    fn build(key: &[u8], history: impl FnOnce(&mut Vec<u8>)) -> (Entry, usize) {
        let mut bytes = Vec::with_capacity(key.len() + 24);
        key_index::put_len(&mut bytes, key.len());
        bytes.extend_from_slice(key);
        let start = bytes.len();
        history(&mut bytes);
        let history_len = bytes.len() - start;
        (Entry::Compact(bytes.into_boxed_slice()), history_len)
    }

    /// The entry for `key` with `history`, in the form its size calls for.
    fn new(key: &[u8], history: KeyIndex) -> Entry {
        let (entry, history_len) = Entry::build(key, |out| history.encode_into(out));
        if history_len <= COMPACT_HISTORY_BYTES_MAX {
            return entry;
        }
        Entry::Expanded(Box::new(Expanded {
            key: key.into(),
            history,
        }))
    }

    /// A key restored from its newest record (see [`KeyIndex::restored`]): always short.
    fn restored(key: &[u8], created: Revision, modified: Revision, version: i64) -> Entry {
        Entry::build(key, |out| {
            key_index::encode_restored(out, created, modified, version)
        })
        .0
    }

    /// The key and, for the compact form, the encoded history.
    fn compact_parts(bytes: &[u8]) -> (&[u8], &[u8]) {
        let mut reader = Reader::new(bytes);
        let len = reader.varint() as usize;
        reader.rest().split_at(len)
    }

    fn key(&self) -> &[u8] {
        match self {
            Entry::Compact(bytes) => Entry::compact_parts(bytes).0,
            Entry::Expanded(expanded) => &expanded.key,
        }
    }

    fn get(&self, at_rev: i64) -> Option<KeyAt> {
        match self {
            Entry::Compact(bytes) => key_index::get_encoded(Entry::compact_parts(bytes).1, at_rev),
            Entry::Expanded(expanded) => expanded.history.get(at_rev),
        }
    }

    /// The history in the working form.
    fn history(&self) -> KeyIndex {
        match self {
            Entry::Compact(bytes) => KeyIndex::decode(Entry::compact_parts(bytes).1),
            Entry::Expanded(expanded) => expanded.history.clone(),
        }
    }

    /// Applies `change` to the history; a long history changes in place, a short one is
    /// re-encoded (and may grow into the expanded form).
    fn change<R>(self, change: impl FnOnce(&mut KeyIndex) -> R) -> (Entry, R) {
        match self {
            Entry::Expanded(mut expanded) => {
                let result = change(&mut expanded.history);
                (Entry::Expanded(expanded), result)
            }
            Entry::Compact(bytes) => {
                let (key, encoded) = Entry::compact_parts(&bytes);
                let mut history = KeyIndex::decode(encoded);
                let result = change(&mut history);
                (Entry::new(key, history), result)
            }
        }
    }

    /// Compacts the history at `at_rev` (see [`KeyIndex::compact`]): the entry, unless no
    /// history is left, in the form its new size calls for, and the revision kept.
    fn compacted(self, at_rev: i64) -> (Option<Entry>, Option<Revision>) {
        let (key, mut history) = match self {
            Entry::Compact(bytes) => {
                let (key, encoded) = Entry::compact_parts(&bytes);
                // One revision in one generation, nearly every key: compaction changes nothing.
                if let Some(rev) = key_index::single_revision(encoded) {
                    return (
                        Some(Entry::Compact(bytes)),
                        (rev.main <= at_rev).then_some(rev),
                    );
                }
                (key.into(), KeyIndex::decode(encoded))
            }
            Entry::Expanded(expanded) => (expanded.key, expanded.history),
        };
        let kept = history.compact(at_rev);
        (
            (!history.is_empty()).then(|| Entry::new(&key, history)),
            kept,
        )
    }
}

// Entries compare by key alone, and borrow as their key, so the set is searched with `&[u8]`.
impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        self.key().cmp(other.key())
    }
}

/// Builds an index from keys in ascending order, as the store's open does: each key is added
/// once with its whole history, and the set is built in one pass instead of by searching inserts.
pub struct SortedBuilder {
    entries: Vec<Entry>,
}

impl SortedBuilder {
    /// Adds `key`, which must sort after every key added before.
    pub fn push(&mut self, key: &[u8], history: KeyIndex) {
        self.push_entry(Entry::new(key, history));
    }

    /// Adds `key` as restored from its newest record (see [`KeyIndex::restored`]).
    pub fn push_restored(
        &mut self,
        key: &[u8],
        created: Revision,
        modified: Revision,
        version: i64,
    ) {
        self.push_entry(Entry::restored(key, created, modified, version));
    }

    fn push_entry(&mut self, entry: Entry) {
        assert!(
            self.entries.last().is_none_or(|last| *last < entry),
            "keys must be pushed in ascending order"
        );
        self.entries.push(entry);
    }

    pub fn finish(self) -> Index {
        Index {
            // From sorted input the set is built bottom-up with full nodes.
            keys: self.entries.into_iter().collect(),
            compacted_rev: -1,
        }
    }
}

pub struct Index {
    keys: BTreeSet<Entry>,
    /// The revision of the last compaction applied; the index cannot answer below it.
    compacted_rev: i64,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            keys: BTreeSet::new(),
            compacted_rev: -1,
        }
    }
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// An empty builder for an index whose keys arrive in order.
    pub fn sorted_builder(capacity: usize) -> SortedBuilder {
        SortedBuilder {
            entries: Vec::with_capacity(capacity),
        }
    }

    pub fn compacted_rev(&self) -> i64 {
        self.compacted_rev
    }

    /// Number of keys with any history in the index (live or not).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) {
        let entry = match self.keys.take(key) {
            Some(entry) => entry.change(|history| history.put(rev)).0,
            None => {
                let mut history = KeyIndex::default();
                history.put(rev);
                Entry::new(key, history)
            }
        };
        self.keys.insert(entry);
    }

    /// Records a delete; false if the key did not exist.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        let Some(entry) = self.keys.take(key) else {
            return false;
        };
        let (entry, deleted) = entry.change(|history| history.tombstone(rev));
        self.keys.insert(entry);
        deleted
    }

    /// Restores a key from its newest record, as read back at open.
    pub fn restore(&mut self, key: &[u8], created: Revision, modified: Revision, version: i64) {
        self.keys
            .replace(Entry::restored(key, created, modified, version));
    }

    /// True if the key has any history in the index.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains(key)
    }

    /// The key's history, decoded.
    pub fn key_index(&self, key: &[u8]) -> Option<KeyIndex> {
        self.keys.get(key).map(Entry::history)
    }

    pub fn get(&self, key: &[u8], at_rev: i64) -> Option<KeyAt> {
        self.keys.get(key)?.get(at_rev)
    }

    /// Calls `visit` for each key of `range` that existed at `at_rev`, in key order, until it
    /// returns false.
    pub fn visit_at<'s>(
        &'s self,
        range: KeyRange<'_>,
        at_rev: i64,
        mut visit: impl FnMut(FoundKey<'s>) -> bool,
    ) {
        let Some(bounds) = range.bounds() else { return };
        for entry in self.keys.range::<[u8], _>(bounds) {
            if let Some(at) = entry.get(at_rev)
                && !visit(FoundKey {
                    key: entry.key(),
                    at,
                })
            {
                return;
            }
        }
    }

    /// Keys of `range` that existed at `at_rev`: up to `limit` of them (0 = no limit), and how
    /// many there were in all.
    pub fn range_at(
        &self,
        range: KeyRange<'_>,
        at_rev: i64,
        limit: usize,
    ) -> (Vec<FoundKey<'_>>, usize) {
        let mut found = Vec::new();
        let mut total = 0;
        self.visit_at(range, at_rev, |key| {
            total += 1;
            if limit == 0 || found.len() < limit {
                found.push(key);
            }
            true
        });
        (found, total)
    }

    /// The revisions compaction at `at_rev` would keep (etcd's `treeIndex.Keep`), changing
    /// nothing: for every key, the newest revision at or below `at_rev` unless that is a
    /// tombstone.
    pub fn keep(&self, at_rev: i64) -> HashSet<Revision> {
        self.keys
            .iter()
            .filter_map(|entry| match entry {
                Entry::Compact(bytes) => {
                    let encoded = Entry::compact_parts(bytes).1;
                    match key_index::single_revision(encoded) {
                        Some(rev) => (rev.main <= at_rev).then_some(rev),
                        None => KeyIndex::decode(encoded).kept_at(at_rev),
                    }
                }
                Entry::Expanded(expanded) => expanded.history.kept_at(at_rev),
            })
            .collect()
    }

    /// Compacts every key at `at_rev`, dropping keys with no history left. Returns the revisions
    /// that must survive in the key tree: for every key, the newest revision at or below `at_rev`
    /// unless that is a tombstone.
    pub fn compact(&mut self, at_rev: i64) -> HashSet<Revision> {
        let mut kept = HashSet::new();
        self.compacted_rev = self.compacted_rev.max(at_rev);
        let keys = std::mem::take(&mut self.keys);
        // Rebuilt in key order, so the new set is built bottom-up; keys whose history compaction
        // leaves alone keep their allocation.
        self.keys = keys
            .into_iter()
            .filter_map(|entry| {
                let (entry, rev) = entry.compacted(at_rev);
                kept.extend(rev);
                entry
            })
            .collect();
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn keys(found: &[FoundKey<'_>]) -> Vec<Vec<u8>> {
        found.iter().map(|f| f.key.to_vec()).collect()
    }

    #[test]
    fn key_ranges_follow_etcd_conventions() {
        assert_eq!(KeyRange::from_request(b"a", b""), KeyRange::Single(b"a"));
        assert_eq!(
            KeyRange::from_request(b"a", b"\0"),
            KeyRange::Span {
                start: b"a",
                end: None
            }
        );
        let prefix = KeyRange::from_request(b"a", b"b");
        assert!(prefix.contains(b"a") && prefix.contains(b"a\xff") && !prefix.contains(b"b"));
        assert!(KeyRange::from_request(b"b", b"a").bounds().is_none());
    }

    #[test]
    fn ranges_see_the_keys_alive_at_a_revision() {
        let mut index = Index::new();
        index.put(b"a", rev(1));
        index.put(b"b", rev(2));
        index.put(b"c", rev(3));
        assert!(index.tombstone(b"b", rev(4)));
        index.put(b"a", rev(5));
        let all = KeyRange::from_request(b"\0", b"\0");
        let (found, total) = index.range_at(all, 5, 0);
        assert_eq!(
            (keys(&found), total),
            (vec![b"a".to_vec(), b"c".to_vec()], 2)
        );
        assert_eq!(found[0].at.version, 2);
        let (found, total) = index.range_at(all, 3, 2);
        assert_eq!(
            (keys(&found), total),
            (vec![b"a".to_vec(), b"b".to_vec()], 3)
        );
        assert_eq!(found[0].at.modified, rev(1));
        let (found, _) = index.range_at(KeyRange::from_request(b"b", b"c"), 3, 0);
        assert_eq!(keys(&found), vec![b"b".to_vec()]);
        assert!(!index.tombstone(b"b", rev(6)));
        assert!(!index.tombstone(b"zz", rev(6)));
    }

    /// a put at 1 and 2, b put at 3 and deleted at 4, c put at 5.
    fn small_history() -> Index {
        let mut index = Index::new();
        index.put(b"a", rev(1));
        index.put(b"a", rev(2));
        index.put(b"b", rev(3));
        index.tombstone(b"b", rev(4));
        index.put(b"c", rev(5));
        index
    }

    #[test]
    fn keep_names_what_compaction_would_keep_without_compacting() {
        let mut index = small_history();
        for main in 6..40 {
            index.put(b"hot", rev(main));
        }
        for at in 0..42 {
            let keep = index.keep(at);
            let mut copy = Index::new();
            for key in [&b"a"[..], b"b", b"c", b"hot"] {
                if let Some(history) = index.key_index(key) {
                    copy.keys.insert(Entry::new(key, history));
                }
            }
            assert_eq!(keep, copy.compact(at), "at {at}");
            assert_eq!(index.key_count(), 4, "keep changes nothing");
        }
    }

    #[test]
    fn compaction_returns_the_revisions_to_keep() {
        let mut index = small_history();
        let kept = index.compact(4);
        assert_eq!(kept, [rev(2)].into_iter().collect());
        // b is gone entirely; a and c remain.
        assert_eq!(index.key_count(), 2);
        assert_eq!(index.get(b"a", 4).map(|k| k.modified), Some(rev(2)));
    }
    #[test]
    fn a_sorted_build_equals_one_made_by_inserts() {
        let mut inserted = Index::new();
        inserted.restore(b"a", rev(1), rev(3), 2);
        inserted.put(b"b", rev(2));
        inserted.put(b"b", rev(4));
        assert!(inserted.tombstone(b"b", rev(5)));
        inserted.restore(b"c", rev(6), rev(6), 1);
        let mut builder = Index::sorted_builder(3);
        builder.push_restored(b"a", rev(1), rev(3), 2);
        builder.push(b"b", inserted.key_index(b"b").expect("b is indexed"));
        builder.push_restored(b"c", rev(6), rev(6), 1);
        let built = builder.finish();
        assert_eq!(built.key_count(), 3);
        for key in [&b"a"[..], b"b", b"c", b"d"] {
            assert_eq!(built.key_index(key), inserted.key_index(key));
            for at in 0..8 {
                assert_eq!(built.get(key, at), inserted.get(key, at));
            }
        }
        let all = KeyRange::from_request(b"\0", b"\0");
        assert_eq!(built.range_at(all, 4, 0), inserted.range_at(all, 4, 0));
        // b is deleted at 5 and c created at 6.
        assert_eq!(built.range_at(all, 5, 0).1, 1);
        assert_eq!(built.range_at(all, 6, 0).1, 2);
    }

    fn is_expanded(index: &Index, key: &[u8]) -> bool {
        matches!(index.keys.get(key), Some(Entry::Expanded(_)))
    }

    /// A key changed hundreds of times moves to the expanded form, which must answer exactly as
    /// the history it holds, across deletes, compactions and its return to the compact form.
    #[test]
    fn a_hot_key_is_expanded_and_answers_like_its_history() {
        let mut index = Index::new();
        let mut reference = KeyIndex::default();
        index.put(b"cold", rev(1));
        let check = |index: &Index, reference: &KeyIndex, last: i64| {
            assert_eq!(index.key_index(b"hot").as_ref(), Some(reference));
            for at in (0..=last + 1).step_by(7).chain([last, last + 1]) {
                assert_eq!(index.get(b"hot", at), reference.get(at), "at {at}");
            }
        };
        for main in 2..=400 {
            if main % 50 == 0 {
                assert!(index.tombstone(b"hot", rev(main)));
                assert!(reference.tombstone(rev(main)));
            } else {
                index.put(b"hot", rev(main));
                reference.put(rev(main));
            }
            if main % 37 == 0 {
                check(&index, &reference, main);
            }
        }
        assert!(is_expanded(&index, b"hot"));
        assert!(!is_expanded(&index, b"cold"));
        check(&index, &reference, 400);
        let all = KeyRange::from_request(b"\0", b"\0");
        assert_eq!(index.range_at(all, 399, 0).1, 2);
        assert_eq!(index.range_at(all, 400, 0).1, 1, "deleted at 400");

        let kept = index.compact(220);
        assert_eq!(reference.compact(220), Some(rev(220)));
        assert_eq!(kept, [rev(1), rev(220)].into_iter().collect());
        assert!(is_expanded(&index, b"hot"), "180 revisions left");
        check(&index, &reference, 400);

        // Put after the delete at 400, then compact past everything but that put.
        index.put(b"hot", rev(401));
        reference.put(rev(401));
        index.compact(401);
        reference.compact(401);
        assert!(!is_expanded(&index, b"hot"), "one revision left");
        check(&index, &reference, 401);
        assert!(!index.tombstone(b"gone", rev(402)));
    }

    #[test]
    #[should_panic(expected = "ascending order")]
    fn a_sorted_build_refuses_keys_out_of_order() {
        let mut builder = Index::sorted_builder(2);
        builder.push_restored(b"b", rev(1), rev(1), 1);
        builder.push_restored(b"a", rev(2), rev(2), 1);
    }
}
