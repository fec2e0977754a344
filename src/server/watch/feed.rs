//! What a watch stream sends next: the hub's queued deliveries first, then one catch-up step of
//! a watcher that fell behind (read from the store), until nothing is pending.
//!
//! The gRPC stream task and the unit tests drive the same function, so the ordering rules are
//! tested where they are implemented. This module must never wait or write; it reads one
//! bounded batch of history per call.

use std::sync::Arc;

use keelson_storage::mvcc::Store;

use super::batch::EventBatch;
use super::history::{self, HistoryError};
use super::hub::{Delivery, WatchHub};

/// The next thing a stream must send.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// Events for one watcher, in revision order after everything sent to it before.
    Events(Delivery),
    /// The watcher wanted history below the compaction; it gets nothing more, and its id stays
    /// taken until the client cancels it (as in etcd 3.4).
    Compacted {
        watch_id: i64,
        compact_rev: i64,
        rev: i64,
    },
    /// The store could not be read; the stream must end.
    Broken(String),
}

/// The next output of `stream`, or `None` when it has nothing pending.
pub fn next(hub: &WatchHub, store: &Store, stream: u64) -> Option<Output> {
    loop {
        if let Some(delivery) = hub.pop(stream) {
            return Some(Output::Events(delivery));
        }
        let watcher = hub.first_unsynced(stream)?;
        let view = store.view();
        match history::read(&view, &watcher.spec, watcher.next_rev) {
            Ok(read) => {
                // The caller sends these before asking again, and anything the hub queues after
                // this resync is newer than `read_to`: order holds across the switch.
                hub.resync(stream, watcher.watch_id, read.read_to);
                if !read.events.is_empty() {
                    return Some(Output::Events(Delivery {
                        watch_id: watcher.watch_id,
                        rev: view.rev(),
                        batch: Arc::new(EventBatch::new(read.events)),
                    }));
                }
            }
            Err(HistoryError::Compacted(compact_rev)) => {
                hub.cancel_compacted(stream, watcher.watch_id);
                return Some(Output::Compacted {
                    watch_id: watcher.watch_id,
                    compact_rev,
                    rev: view.rev(),
                });
            }
            Err(HistoryError::Store(why)) => return Some(Output::Broken(why)),
        }
    }
}

/// Everything `stream` has queued, taken at once, or else what [`next`] gives (one catch-up
/// step); `out` stays empty when nothing is pending. The caller sends all of `out`, in order,
/// before asking again.
pub fn next_batch(hub: &WatchHub, store: &Store, stream: u64, out: &mut Vec<Output>) {
    let mut queued = Vec::new();
    hub.pop_all(stream, &mut queued);
    if queued.is_empty() {
        out.extend(next(hub, store, stream));
    } else {
        out.extend(queued.into_iter().map(Output::Events));
    }
}
