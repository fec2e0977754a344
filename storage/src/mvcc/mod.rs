//! Multi-version concurrency control with etcd's semantics, on top of the B+tree.
//!
//! - [`revision`]: the `(main, sub)` revision and its on-disk key form.
//! - [`key_index`]: one key's generations of revisions (etcd's `keyIndex`).
//! - [`index`]: the in-memory, ordered index of all keys (etcd's `treeIndex`).
//! - [`kv`]: the record stored under each revision (etcd's `mvccpb.KeyValue` wire form).
//! - [`hash`]: etcd's HashKV checksum over the key tree.
//! - [`store`]: the store itself: views for readers, the write transaction, compaction.

pub mod hash;
pub mod index;
pub mod key_index;
pub mod kv;
pub mod revision;
pub mod store;

pub use index::{FoundKey, Index, KeyRange};
pub use key_index::{KeyAt, KeyIndex};
pub use revision::Revision;
pub use store::{Change, CompactionJob, RangeOptions, RangeResult, Store, StoreWrite, View};
