//! etcd's watch machinery below the gRPC layer (etcd 3.4 `mvcc/watchable_store.go`,
//! `watcher_group.go`): which watchers exist, which committed changes each one gets, and how a
//! watcher that fell behind catches up from the store without losing or repeating an event.
//!
//! - [`batch`]: events shared by the watchers handed the same ones, encoded once.
//! - [`watcher`]: a watcher's key range, filters and options; changes as etcd events.
//! - [`hub`]: the watchers of every stream and the node's one call per applied batch.
//! - [`history`]: events read back from the store by revision, and prev_kv lookups.
//! - [`feed`]: what a stream sends next (queued deliveries, then catch-up steps).
//!
//! Watch is not a write: nothing here goes through Raft, and nothing here may ever make the node
//! wait (the hub only queues; the gRPC tasks do the reading and sending).

pub mod batch;
pub mod feed;
pub mod history;
pub mod hub;
pub mod watcher;

#[cfg(test)]
mod tests;

pub use hub::{Delivery, StreamHandle, WatchHub};
pub use watcher::WatchSpec;
