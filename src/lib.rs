//! The Keelson server: an etcd v3 compatible key-value server. This crate holds the parts shared
//! by the server binary: its startup configuration ([`config`]) and the etcd v3 API errors it
//! returns ([`errors`]).

pub mod allocator;
pub mod api;
pub mod compactor;
pub mod config;
pub mod errors;
pub mod log;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod server;
