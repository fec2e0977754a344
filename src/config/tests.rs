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

#[test]
fn ignored_flags_warn_once_and_only_when_set_away_from_their_default() {
    let c = parse(&[
        "--enable-v2",
        "--proxy",
        "on",
        "--enable-v2=true",
        "--max-snapshots=5",
    ])
    .unwrap();
    assert_eq!(
        c.warnings,
        vec![
            "ignoring --enable-v2: Keelson serves only the v3 API".to_string(),
            "ignoring --proxy: Keelson runs only as a cluster member, never as etcd's v2 proxy"
                .to_string(),
        ]
    );
    assert!(
        parse(&["--enable-v2=false", "--proxy=off"])
            .unwrap()
            .warnings
            .is_empty()
    );
    // etcd's retired flags take boolean syntax and any value.
    let c = parse_env(&["--v=3", "-vv"], &[("ETCD_FORCE", "1")]).unwrap();
    assert_eq!(
        c.warnings,
        vec![
            "flag \"-v\" is no longer supported - ignoring.".to_string(),
            "flag \"-vv\" is no longer supported - ignoring.".to_string(),
            "flag \"-force\" is no longer supported - ignoring.".to_string(),
        ]
    );
    assert_eq!(
        err(&["--v", "3"]),
        "error verifying flags, '3' is not a valid flag. See 'etcd --help'."
    );
}

#[test]
fn cluster_and_server_flags() {
    let c = parse(&[
        "--strict-reconfig-check=false",
        "--pre-vote",
        "--initial-election-tick-advance=false",
        "--force-new-cluster",
        "--max-concurrent-streams",
        "100",
        "--grpc-keepalive-interval",
        "30s",
        "--grpc-keepalive-timeout=5s",
        "--experimental-initial-corrupt-check",
        "--experimental-corrupt-check-time",
        "1m",
        "--experimental-compaction-batch-limit",
        "500",
        "--experimental-warning-apply-duration",
        "250ms",
        "--metrics",
        "extensive",
        "--enable-grpc-gateway=false",
        "--host-whitelist",
        "b.example,a.example,b.example",
        "--cors",
        "http://a.example:80",
    ])
    .unwrap();
    assert!(!c.strict_reconfig_check && c.pre_vote && c.force_new_cluster);
    assert!(!c.initial_election_tick_advance);
    assert_eq!(c.max_concurrent_streams, 100);
    assert_eq!(c.grpc_keepalive_interval, Duration::from_secs(30));
    assert_eq!(c.grpc_keepalive_timeout, Duration::from_secs(5));
    assert!(c.initial_corrupt_check);
    assert_eq!(c.corrupt_check_interval, Duration::from_secs(60));
    assert_eq!(c.compaction_batch_limit, 500);
    assert_eq!(c.warning_apply_duration, Duration::from_millis(250));
    assert_eq!(c.metrics, MetricsLevel::Extensive);
    assert!(!c.enable_grpc_gateway);
    assert_eq!(c.host_whitelist, vec!["a.example", "b.example"]);
    assert_eq!(c.cors, vec!["http://a.example:80"]);
    assert_eq!(parse(&["--cors", "*"]).unwrap().cors, vec!["*"]);
    assert_eq!(
        err(&["--max-concurrent-streams", "abc"]),
        "invalid value \"abc\" for flag -max-concurrent-streams: strconv.ParseUint: parsing \"abc\": invalid syntax"
    );
    assert_eq!(
        err(&["--proxy", "bad"]),
        "invalid value \"bad\" for flag -proxy: invalid value"
    );
    assert_eq!(
        err(&["--cors", "foo"]),
        "invalid value \"foo\" for flag -cors: URL scheme must be http, https, unix, or unixs: foo"
    );
    // An empty URL list keeps the default, as etcd's UniqueURLs does.
    let c = parse(&[
        "--listen-client-urls=",
        "--advertise-client-urls=http://127.0.0.1:2379",
    ])
    .unwrap();
    assert_eq!(c.listen_client_urls, vec![url("http://localhost:2379")]);
}

#[test]
fn bootstrap_methods_and_lease_checkpoints() {
    let conflict = "error verifying flags, multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\". See 'etcd --help'.";
    assert_eq!(
        err(&[
            "--discovery-srv",
            "x.example",
            "--initial-cluster",
            "a=http://1.1.1.1:2380"
        ]),
        conflict
    );
    assert_eq!(
        err(&[
            "--discovery",
            "http://d.example/t",
            "--discovery-srv",
            "x.example"
        ]),
        conflict
    );
    let c = parse(&[
        "--discovery",
        "http://d.example/t",
        "--discovery-fallback",
        "exit",
    ])
    .unwrap();
    assert_eq!(c.discovery.url.as_deref(), Some("http://d.example/t"));
    assert!(c.discovery.fallback_exit);
    assert!(
        c.initial_cluster.is_empty(),
        "discovery replaces the default cluster"
    );
    assert_eq!(
        err(&["--experimental-enable-lease-checkpoint-persist"]),
        "error verifying flags, setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint. See 'etcd --help'."
    );
    parse(&[
        "--experimental-enable-lease-checkpoint",
        "--experimental-enable-lease-checkpoint-persist",
    ])
    .unwrap();
}
