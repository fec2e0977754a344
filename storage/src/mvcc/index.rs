//! The key index: every key's [`KeyIndex`], ordered by key, in memory (etcd's `treeIndex`).
//!
//! Ranges resolve here to the revisions to read from the key tree. The index is rebuilt from the
//! key tree at open, so it is never written to disk itself.

use super::key_index::{KeyAt, KeyIndex};
use super::revision::Revision;
use std::collections::BTreeMap;
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

/// A non-empty key range as `BTreeMap::range` takes it.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// One key as a range at some revision found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundKey<'a> {
    pub key: &'a [u8],
    pub at: KeyAt,
}

pub struct Index {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
    /// The revision of the last compaction applied; the index cannot answer below it.
    compacted_rev: i64,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            keys: BTreeMap::new(),
            compacted_rev: -1,
        }
    }
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    pub fn compacted_rev(&self) -> i64 {
        self.compacted_rev
    }

    /// Number of keys with any history in the index (live or not).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.keys.get_mut(key) {
            Some(index) => index.put(rev),
            None => {
                let mut index = KeyIndex::default();
                index.put(rev);
                self.keys.insert(key.to_vec(), index);
            }
        }
    }

    /// Records a delete; false if the key did not exist.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys
            .get_mut(key)
            .is_some_and(|index| index.tombstone(rev))
    }

    /// Restores a key from its newest record, as read back at open.
    pub fn restore(&mut self, key: &[u8], created: Revision, modified: Revision, version: i64) {
        self.keys
            .insert(key.to_vec(), KeyIndex::restored(created, modified, version));
    }

    pub fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.keys.get(key)
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
        for (key, index) in self.keys.range::<[u8], _>(bounds) {
            if let Some(at) = index.get(at_rev)
                && !visit(FoundKey { key, at })
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

    /// Compacts every key at `at_rev`, dropping keys with no history left. Returns the revisions
    /// that must survive in the key tree: for every key, the newest revision at or below `at_rev`
    /// unless that is a tombstone.
    pub fn compact(&mut self, at_rev: i64) -> std::collections::HashSet<Revision> {
        let mut kept = std::collections::HashSet::new();
        self.compacted_rev = self.compacted_rev.max(at_rev);
        self.keys.retain(|_, index| {
            if let Some(rev) = index.compact(at_rev) {
                kept.insert(rev);
            }
            !index.is_empty()
        });
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

    #[test]
    fn compaction_returns_the_revisions_to_keep() {
        let mut index = Index::new();
        index.put(b"a", rev(1));
        index.put(b"a", rev(2));
        index.put(b"b", rev(3));
        index.tombstone(b"b", rev(4));
        index.put(b"c", rev(5));
        let kept = index.compact(4);
        assert_eq!(kept, [rev(2)].into_iter().collect());
        // b is gone entirely; a and c remain.
        assert_eq!(index.key_count(), 2);
        assert_eq!(index.get(b"a", 4).map(|k| k.modified), Some(rev(2)));
    }
}
