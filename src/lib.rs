//! The Keelson server: an etcd v3 compatible key-value server, as a library the `keelson` binary
//! wires together.
//!
//! - [`config`]: etcd's flags and `ETCD_*` variables, parsed and checked as etcd does.
//! - [`errors`]: every etcd error's gRPC code and message.
//! - [`raft`]: raft-rs as a pure state machine, and etcd's member and cluster ids.
//! - [`node`]: the node thread (Raft, WAL, apply loop) and its handle.
//! - [`server`]: etcd's apply and range semantics, leases, watches, alarms.
//! - [`api`]: the gRPC services, the plain-HTTP endpoints and the listeners.
//! - [`compactor`]: the auto-compaction schedule.
//! - [`log`]: the logger, in etcd's zap or capnslog format.
//! - [`metrics`]: etcd's Prometheus metric families.
//! - [`allocator`]: the memory allocator's setting.

pub mod allocator;
pub mod api;
pub mod compactor;
pub mod config;
pub mod errors;
pub mod log;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod raft;
pub mod server;
