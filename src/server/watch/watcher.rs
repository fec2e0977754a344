//! One watcher's request: the key range it watches and the events it wants (etcd's `watcher`
//! fields plus the stream's per-watcher options), and turning store changes into etcd events.
//!
//! This module only decides what a watcher wants; it must never hold state about what was
//! delivered (the hub does) or read the store (history does).

use keelson_proto::etcdserverpb::WatchCreateRequest;
use keelson_proto::etcdserverpb::watch_create_request::FilterType;
use keelson_proto::mvccpb::{Event, KeyValue, event::EventType};
use keelson_storage::mvcc::Change;

/// What a watcher watches and how its events are shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    /// etcd's convention, already normalised: `None` one key, `Some(empty)` every key from `key`
    /// on, otherwise `[key, end)`.
    pub range_end: Option<Vec<u8>>,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
    pub fragment: bool,
}

impl WatchSpec {
    /// The spec of a create request, normalising `range_end` as etcd's `recvLoop` does.
    pub fn from_request(request: &WatchCreateRequest) -> WatchSpec {
        let range_end = match request.range_end.as_slice() {
            [] => None,
            [0] => Some(Vec::new()),
            end => Some(end.to_vec()),
        };
        let has = |f: FilterType| request.filters.contains(&(f as i32));
        WatchSpec {
            key: request.key.clone(),
            range_end,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
            prev_kv: request.prev_kv,
            progress_notify: request.progress_notify,
            fragment: request.fragment,
        }
    }

    /// etcd refuses a range whose end is not after its start (`ErrEmptyWatcherRange`).
    pub fn is_empty_range(&self) -> bool {
        matches!(&self.range_end, Some(end) if !end.is_empty() && end.as_slice() <= self.key.as_slice())
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.range_end {
            None => key == self.key.as_slice(),
            Some(end) if end.is_empty() => key >= self.key.as_slice(),
            Some(end) => key >= self.key.as_slice() && key < end.as_slice(),
        }
    }

    /// Whether this watcher receives `change` (range and filters; revisions are the hub's
    /// business).
    pub fn wants(&self, change: &Change) -> bool {
        match change {
            Change::Put(kv) => !self.no_put && self.contains(&kv.key),
            Change::Delete { key, .. } => !self.no_delete && self.contains(key),
        }
    }
}

/// The main revision a change was made at.
pub fn change_rev(change: &Change) -> i64 {
    match change {
        Change::Put(kv) => kv.mod_revision,
        Change::Delete { mod_revision, .. } => *mod_revision,
    }
}

/// etcd's event for a change: a PUT carries the whole new kv, a DELETE only the key and the
/// deleting revision as `mod_revision`. `prev_kv` is filled in later, by whoever sends it.
pub fn to_event(change: &Change) -> Event {
    match change {
        Change::Put(kv) => Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: kv.key.clone(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                value: kv.value.clone(),
                lease: kv.lease,
            }),
            prev_kv: None,
        },
        Change::Delete { key, mod_revision } => Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: key.clone(),
                mod_revision: *mod_revision,
                ..KeyValue::default()
            }),
            prev_kv: None,
        },
    }
}

/// The main revision an event was made at.
pub fn event_rev(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}
