//! Keelson's operator and benchmark tools.
//!
//! `keelson-bench` drives the etcd v3 gRPC API with etcd benchmark's
//! workloads and flag names, so one run measures Keelson or etcd alike, and
//! `compare` starts both and prints them side by side. The library is the
//! whole tool; the binary only parses arguments and prints.

pub mod args;
pub mod compare;
pub mod conn;
pub mod disk;
pub mod driver;
pub mod flags;
pub mod hist;
pub mod json;
pub mod keys;
pub mod procstat;
pub mod progress;
pub mod report;
pub mod rtt;
pub mod server;
pub mod workloads;
