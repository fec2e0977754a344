//! Reading a watcher's past from the store: the events of a key range from a revision on, in
//! revision order (etcd's `watchableStore.syncWatchers` reading the key bucket by revision).
//!
//! The key tree is keyed by revision, so one ordered scan from `(from_rev, 0)` yields every
//! change in order; tombstones are marked in the key. This module only reads a [`View`]; it must
//! never write, and never return part of a revision (a batch ends on a revision boundary).

use keelson_proto::mvccpb::Event;
use keelson_storage::mvcc::kv::decode;
use keelson_storage::mvcc::{Change, KeyRange, RangeOptions, Revision, Store, View};
use keelson_storage::schema;

use super::watcher::{WatchSpec, to_event};

/// Revisions read per catch-up batch, so one slow watcher's catch-up never holds a huge
/// response in memory (etcd's `watchBatchMaxRevs`).
pub const HISTORY_BATCH_REVS: usize = 1000;

/// Events read from the store for one watcher.
#[derive(Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// Every revision up to and including this one has been read (and filtered).
    pub read_to: i64,
}

/// Why the history could not be read.
#[derive(Debug)]
pub enum HistoryError {
    /// `from_rev` is below the compaction: the watcher must be canceled with this revision.
    Compacted(i64),
    /// The store is broken; the stream ends with this message.
    Store(String),
}

/// The events `spec` wants from `from_rev` to the view's revision, at most
/// [`HISTORY_BATCH_REVS`] revisions of them.
pub fn read(view: &View, spec: &WatchSpec, from_rev: i64) -> Result<History, HistoryError> {
    // etcd: a watcher whose minimum revision is below the compact revision is compacted; the
    // compact revision itself is still readable.
    if from_rev < view.compact_rev() {
        return Err(HistoryError::Compacted(view.compact_rev()));
    }
    let mut history = History {
        events: Vec::new(),
        read_to: view.rev(),
    };
    if from_rev > view.rev() {
        return Ok(history);
    }
    let start = Revision::new(from_rev, 0).to_bytes();
    let range = view
        .txn()
        .range(schema::TREE_KEY, start.as_slice()..)
        .map_err(|e| HistoryError::Store(e.to_string()))?;
    let mut revs_seen = 0usize;
    let mut last_main = 0i64;
    for entry in range {
        let (key, value) = entry.map_err(|e| HistoryError::Store(e.to_string()))?;
        let (rev, tombstone) = Revision::from_key(key)
            .ok_or_else(|| HistoryError::Store("key tree: a key that is not a revision".into()))?;
        if rev.main > view.rev() {
            break;
        }
        if rev.main != last_main {
            if revs_seen == HISTORY_BATCH_REVS {
                history.read_to = last_main;
                return Ok(history);
            }
            revs_seen += 1;
            last_main = rev.main;
        }
        let kv = decode(value).map_err(|e| HistoryError::Store(e.to_string()))?;
        let change = if tombstone {
            Change::Delete {
                key: kv.key.to_vec(),
                mod_revision: rev.main,
            }
        } else {
            Change::Put(kv.to_owned())
        };
        if spec.wants(&change) {
            history.events.push(to_event(&change));
        }
    }
    Ok(history)
}

/// The key's value just before `event` (etcd's prev_kv: the key at `mod_revision - 1`). `None`
/// for a creation, or if that revision has been compacted away.
pub fn prev_kv(
    store: &Store,
    view: &View,
    event: &Event,
) -> Option<keelson_proto::mvccpb::KeyValue> {
    let kv = event.kv.as_ref()?;
    let is_create =
        event.r#type == keelson_proto::mvccpb::event::EventType::Put as i32 && kv.version == 1;
    if is_create {
        return None;
    }
    let options = RangeOptions {
        limit: 1,
        rev: kv.mod_revision - 1,
        count_only: false,
    };
    let found = match store.range(view, KeyRange::Single(&kv.key), options) {
        Ok(found) => found,
        // A compaction reached the index after the view was taken: ask a fresh view.
        Err(keelson_storage::mvcc::store::Error::StaleView) => {
            let fresh = store.view();
            let found = store
                .range(&fresh, KeyRange::Single(&kv.key), options)
                .ok()?;
            return found.kvs.first().map(|p| to_proto_kv(p));
        }
        Err(_) => return None,
    };
    found.kvs.first().map(|p| to_proto_kv(p))
}

fn to_proto_kv(kv: &keelson_storage::mvcc::kv::KeyValueRef<'_>) -> keelson_proto::mvccpb::KeyValue {
    keelson_proto::mvccpb::KeyValue {
        key: kv.key.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.to_vec(),
        lease: kv.lease,
    }
}
