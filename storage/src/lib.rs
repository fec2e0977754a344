//! Keelson's storage engines.
//!
//! - [`io`]: the I/O boundary. Every byte the engines read or write crosses one of its traits, so
//!   tests can swap the real file for an in-memory device that loses unsynced writes, tears them,
//!   fails an operation on a countdown, or flips a bit.
//! - [`btree`]: the copy-on-write, memory-mapped B+tree that holds applied state (Keelson's bbolt).
//! - [`wal`]: the write-ahead log every change is made durable in before it is acknowledged.
//! - [`mvcc`]: etcd's multi-version key space (revisions, key index, compaction) on the B+tree.
//! - [`schema`]: every on-disk name.
//!
//! Storage code never reaches past [`io`] to the operating system.

pub mod btree;
pub mod io;
pub mod mvcc;
pub mod schema;
pub mod wal;
