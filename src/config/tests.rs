//! Helpers shared by the configuration's tests, and the tests of the whole configuration
//! (defaults, levels, sizes).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::*;

pub(super) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

pub(super) fn parse(list: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args_and_env(args(list), no_env)
}

pub(super) fn parse_env(list: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_args_and_env(args(list), move |k| vars.get(k).cloned())
}

pub(super) fn err(list: &[&str]) -> String {
    parse(list).unwrap_err().to_string()
}

pub(super) fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn defaults() {
    let c = parse(&[]).unwrap();
    assert!(!c.help && !c.version);
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, "default.etcd");
    assert_eq!(c.wal_dir, None);
    assert_eq!(c.listen_client_urls, vec![url("http://localhost:2379")]);
    assert_eq!(c.advertise_client_urls, vec![url("http://localhost:2379")]);
    assert_eq!(c.listen_peer_urls, vec![url("http://localhost:2380")]);
    assert_eq!(
        c.initial_advertise_peer_urls,
        vec![url("http://localhost:2380")]
    );
    assert_eq!(
        c.initial_cluster,
        BTreeMap::from([("default".to_string(), vec![url("http://localhost:2380")])])
    );
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(c.quota_backend_bytes, Some(2 * 1024 * 1024 * 1024));
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.snapshot_count, 100_000);
    assert_eq!(c.heartbeat_interval, Duration::from_millis(100));
    assert_eq!(c.election_timeout, Duration::from_millis(1000));
    assert_eq!(c.auto_compaction_mode, CompactionMode::Periodic);
    assert_eq!(c.auto_compaction_retention, "0");
    assert_eq!(c.auto_compaction, AutoCompaction::Disabled);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.max_wals, 5);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(600));
    assert!(!c.enable_pprof);
    assert!(c.grpc_cores.is_empty());
    assert_eq!(c.node_core, None);
    assert_eq!(c.busy_poll, BUSY_POLL_DEFAULT);
    c.verify_bootstrap().unwrap();
}

#[test]
fn log_level() {
    assert_eq!(
        parse(&["--log-level", "debug"]).unwrap().log_level,
        LogLevel::Debug
    );
    assert_eq!(err(&["--log-level", "bad"]), "unknown level \"bad\"");
}

#[test]
fn sizes_and_counts() {
    let c = parse(&[
        "--quota-backend-bytes",
        "8589934592",
        "--max-request-bytes",
        "10485760",
        "--max-txn-ops",
        "1024",
        "--snapshot-count",
        "5000",
        "--max-wals",
        "0",
    ])
    .unwrap();
    assert_eq!(
        c.quota_backend_bytes,
        Some(QUOTA_BACKEND_BYTES_MAX_RECOMMENDED)
    );
    assert_eq!(c.max_request_bytes, 10_485_760);
    assert_eq!(c.max_txn_ops, 1024);
    assert_eq!(c.snapshot_count, 5000);
    assert_eq!(c.max_wals, 0);
    assert_eq!(
        parse(&["--quota-backend-bytes", "0"])
            .unwrap()
            .quota_backend_bytes,
        Some(QUOTA_BACKEND_BYTES_DEFAULT)
    );
}
