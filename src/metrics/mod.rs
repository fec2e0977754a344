//! etcd's Prometheus metrics: the same family names, types, labels and histogram buckets as
//! etcd 3.4.23, so etcd's Grafana dashboard and alerting rules work unchanged. Counters and
//! histograms are prometheus-client's atomics, created once at startup; the hot path only adds
//! to them (no lock, no allocation, no label lookup). Gauges that mirror state (leader, sizes,
//! revisions, watchers, `process_*`) are read when `/metrics` is scraped.
//!
//! - [`grpc`]: the `grpc_server_*` families, counted by a tower layer on the gRPC server.
//! - [`process`]: `process_*` from `/proc/self`.
//! - [`exposition`]: prometheus-client's OpenMetrics text turned into etcd's text format.
//!
//! Adding a family: a field below, its registration in [`Metrics::new`] with etcd's name, help
//! and buckets, and the place that counts it. The `etcd_network_peer_*` families belong with the
//! peer transport and register the same way.
//!
//! Owns: every metric Keelson exports. Never: decides anything from a metric.

pub mod exposition;
pub mod grpc;
pub mod process;

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A gauge of one label whose value is always 1 (`etcd_server_id{server_id="..."}`).
type InfoGauge = Family<Vec<(&'static str, String)>, Gauge>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// `etcd_server_*`.
pub struct ServerMetrics {
    pub has_leader: Gauge,
    pub is_leader: Gauge,
    pub is_learner: Gauge,
    pub leader_changes_seen: Counter,
    pub proposals_committed: Gauge,
    pub proposals_applied: Gauge,
    pub proposals_pending: Gauge,
    pub proposals_failed: Counter,
    pub slow_apply_total: Counter,
    pub slow_read_indexes: Counter,
    pub read_indexes_failed: Counter,
    pub heartbeat_send_failures: Counter,
    pub health_success: Counter,
    pub health_failures: Counter,
    pub learner_promote_successes: Counter,
    pub snapshot_apply_in_progress: Gauge,
    pub quota_backend_bytes: Gauge,
    /// `etcd_server_client_requests_total{type, client_api_version}`.
    pub client_requests: Family<Vec<(&'static str, String)>, Counter>,
    id: InfoGauge,
    version: InfoGauge,
    go_version: InfoGauge,
    cluster_version: InfoGauge,
}

/// `etcd_disk_*`.
pub struct DiskMetrics {
    pub wal_fsync_seconds: Histogram,
    pub wal_write_bytes: Gauge,
    pub backend_commit_seconds: Histogram,
    pub backend_defrag_seconds: Histogram,
    pub backend_snapshot_seconds: Histogram,
    pub defrag_inflight: Gauge,
}

/// `etcd_mvcc_*` and `etcd_debugging_mvcc_*`.
pub struct MvccMetrics {
    pub put: Counter,
    pub delete: Counter,
    pub range: Counter,
    pub txn: Counter,
    pub hash_seconds: Histogram,
    pub hash_rev_seconds: Histogram,
    pub db_total_size: Gauge,
    pub db_size_in_use: Gauge,
    pub open_read_transactions: Gauge,
    pub debugging_put: Counter,
    pub debugging_delete: Counter,
    pub debugging_range: Counter,
    pub debugging_txn: Counter,
    pub keys: Gauge,
    pub current_revision: Gauge,
    pub compact_revision: Gauge,
    pub debugging_db_total_size: Gauge,
    pub total_put_size: Gauge,
    pub events: Counter,
    pub pending_events: Gauge,
    pub watch_streams: Gauge,
    pub watchers: Gauge,
    pub slow_watchers: Gauge,
    pub compaction_keys: Counter,
    pub compaction_pause_ms: Histogram,
    pub compaction_total_ms: Histogram,
    pub index_compaction_pause_ms: Histogram,
}

/// `etcd_debugging_lease_*` and `etcd_debugging_server_lease_expired_total`.
pub struct LeaseMetrics {
    pub granted: Counter,
    pub revoked: Counter,
    pub renewed: Counter,
    pub ttl_seconds: Histogram,
    pub expired: Counter,
}

/// `process_*`, set at each scrape.
struct ProcessMetrics {
    cpu_seconds: FloatCounter,
    resident_memory_bytes: Gauge,
    virtual_memory_bytes: Gauge,
    virtual_memory_max_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time_seconds: FloatGauge,
}

/// Every family, registered once.
pub struct Metrics {
    registry: Registry,
    pub server: ServerMetrics,
    pub disk: DiskMetrics,
    pub mvcc: MvccMetrics,
    pub lease: LeaseMetrics,
    pub grpc: grpc::GrpcMetrics,
    process: ProcessMetrics,
}

/// etcd's duration buckets for disk operations: 1 ms doubling to 8 s.
fn disk_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        macro_rules! reg {
            ($name:expr, $help:expr, $metric:expr) => {{
                let metric = $metric;
                registry.register($name, $help, metric.clone());
                metric
            }};
        }
        let server = ServerMetrics {
            has_leader: reg!(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not",
                Gauge::default()
            ),
            is_leader: reg!(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise",
                Gauge::default()
            ),
            is_learner: reg!(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise",
                Gauge::default()
            ),
            leader_changes_seen: reg!(
                "etcd_server_leader_changes_seen",
                "The number of leader changes seen",
                Counter::default()
            ),
            proposals_committed: reg!(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed",
                Gauge::default()
            ),
            proposals_applied: reg!(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied",
                Gauge::default()
            ),
            proposals_pending: reg!(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit",
                Gauge::default()
            ),
            proposals_failed: reg!(
                "etcd_server_proposals_failed",
                "The total number of failed proposals seen",
                Counter::default()
            ),
            slow_apply_total: reg!(
                "etcd_server_slow_apply",
                "The total number of slow apply requests (likely overloaded from slow disk)",
                Counter::default()
            ),
            slow_read_indexes: reg!(
                "etcd_server_slow_read_indexes",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests",
                Counter::default()
            ),
            read_indexes_failed: reg!(
                "etcd_server_read_indexes_failed",
                "The total number of failed read indexes seen",
                Counter::default()
            ),
            heartbeat_send_failures: reg!(
                "etcd_server_heartbeat_send_failures",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk)",
                Counter::default()
            ),
            health_success: reg!(
                "etcd_server_health_success",
                "The total number of successful health checks",
                Counter::default()
            ),
            health_failures: reg!(
                "etcd_server_health_failures",
                "The total number of failed health checks",
                Counter::default()
            ),
            learner_promote_successes: reg!(
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader",
                Counter::default()
            ),
            snapshot_apply_in_progress: reg!(
                "etcd_server_snapshot_apply_in_progress_total",
                "1 if the server is applying the incoming snapshot. 0 if none",
                Gauge::default()
            ),
            quota_backend_bytes: reg!(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes",
                Gauge::default()
            ),
            client_requests: reg!(
                "etcd_server_client_requests",
                "The total number of client requests per client version",
                Family::default()
            ),
            id: reg!(
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID",
                InfoGauge::default()
            ),
            version: reg!(
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version",
                InfoGauge::default()
            ),
            go_version: reg!(
                "etcd_server_go_version",
                "Which Go version server is running with. 1 for 'server_go_version' label with current version",
                InfoGauge::default()
            ),
            cluster_version: reg!(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                InfoGauge::default()
            ),
        };
        let disk = DiskMetrics {
            wal_fsync_seconds: reg!(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL",
                disk_seconds()
            ),
            wal_write_bytes: reg!(
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL",
                Gauge::default()
            ),
            backend_commit_seconds: reg!(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend",
                disk_seconds()
            ),
            backend_defrag_seconds: reg!(
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation",
                Histogram::new(exponential_buckets(0.1, 2.0, 13))
            ),
            backend_snapshot_seconds: reg!(
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots",
                Histogram::new(exponential_buckets(0.01, 2.0, 17))
            ),
            defrag_inflight: reg!(
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not",
                Gauge::default()
            ),
        };
        let mvcc = MvccMetrics {
            put: reg!(
                "etcd_mvcc_put",
                "Total number of puts seen by this member",
                Counter::default()
            ),
            delete: reg!(
                "etcd_mvcc_delete",
                "Total number of deletes seen by this member",
                Counter::default()
            ),
            range: reg!(
                "etcd_mvcc_range",
                "Total number of ranges seen by this member",
                Counter::default()
            ),
            txn: reg!(
                "etcd_mvcc_txn",
                "Total number of txns seen by this member",
                Counter::default()
            ),
            hash_seconds: reg!(
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation",
                Histogram::new(exponential_buckets(0.01, 2.0, 15))
            ),
            hash_rev_seconds: reg!(
                "etcd_mvcc_hash_rev_duration_seconds",
                "The latency distribution of storage hash by revision operation",
                Histogram::new(exponential_buckets(0.01, 2.0, 15))
            ),
            db_total_size: reg!(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes",
                Gauge::default()
            ),
            db_size_in_use: reg!(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes",
                Gauge::default()
            ),
            open_read_transactions: reg!(
                "etcd_mvcc_db_open_read_transactions",
                "The number of currently open read transactions",
                Gauge::default()
            ),
            debugging_put: reg!(
                "etcd_debugging_mvcc_put",
                "Total number of puts seen by this member",
                Counter::default()
            ),
            debugging_delete: reg!(
                "etcd_debugging_mvcc_delete",
                "Total number of deletes seen by this member",
                Counter::default()
            ),
            debugging_range: reg!(
                "etcd_debugging_mvcc_range",
                "Total number of ranges seen by this member",
                Counter::default()
            ),
            debugging_txn: reg!(
                "etcd_debugging_mvcc_txn",
                "Total number of txns seen by this member",
                Counter::default()
            ),
            keys: reg!(
                "etcd_debugging_mvcc_keys_total",
                "Total number of keys",
                Gauge::default()
            ),
            current_revision: reg!(
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store",
                Gauge::default()
            ),
            compact_revision: reg!(
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store",
                Gauge::default()
            ),
            debugging_db_total_size: reg!(
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes",
                Gauge::default()
            ),
            total_put_size: reg!(
                "etcd_debugging_mvcc_total_put_size_in_bytes",
                "The total size of put kv pairs seen by this member",
                Gauge::default()
            ),
            events: reg!(
                "etcd_debugging_mvcc_events",
                "Total number of events sent by this member",
                Counter::default()
            ),
            pending_events: reg!(
                "etcd_debugging_mvcc_pending_events_total",
                "Total number of pending events to be sent",
                Gauge::default()
            ),
            watch_streams: reg!(
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams",
                Gauge::default()
            ),
            watchers: reg!(
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers",
                Gauge::default()
            ),
            slow_watchers: reg!(
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers",
                Gauge::default()
            ),
            compaction_keys: reg!(
                "etcd_debugging_mvcc_db_compaction_keys",
                "Total number of db keys compacted",
                Counter::default()
            ),
            compaction_pause_ms: reg!(
                "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                "Bucketed histogram of db compaction pause duration",
                Histogram::new(exponential_buckets(1.0, 2.0, 13))
            ),
            compaction_total_ms: reg!(
                "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                "Bucketed histogram of db compaction total duration",
                Histogram::new(exponential_buckets(100.0, 2.0, 14))
            ),
            index_compaction_pause_ms: reg!(
                "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
                "Bucketed histogram of index compaction pause duration",
                Histogram::new(exponential_buckets(0.5, 2.0, 14))
            ),
        };
        let lease = LeaseMetrics {
            granted: reg!(
                "etcd_debugging_lease_granted",
                "The total number of granted leases",
                Counter::default()
            ),
            revoked: reg!(
                "etcd_debugging_lease_revoked",
                "The total number of revoked leases",
                Counter::default()
            ),
            renewed: reg!(
                "etcd_debugging_lease_renewed",
                "The number of renewed leases seen by the leader",
                Counter::default()
            ),
            ttl_seconds: reg!(
                "etcd_debugging_lease_ttl_total",
                "Bucketed histogram of lease TTLs",
                Histogram::new(exponential_buckets(1.0, 2.0, 24))
            ),
            expired: reg!(
                "etcd_debugging_server_lease_expired",
                "The total number of expired leases",
                Counter::default()
            ),
        };
        let grpc = grpc::GrpcMetrics::register(&mut registry);
        let process = ProcessMetrics {
            cpu_seconds: reg!(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                FloatCounter::default()
            ),
            resident_memory_bytes: reg!(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Gauge::default()
            ),
            virtual_memory_bytes: reg!(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Gauge::default()
            ),
            virtual_memory_max_bytes: reg!(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes",
                Gauge::default()
            ),
            open_fds: reg!(
                "process_open_fds",
                "Number of open file descriptors",
                Gauge::default()
            ),
            max_fds: reg!(
                "process_max_fds",
                "Maximum number of open file descriptors",
                Gauge::default()
            ),
            start_time_seconds: reg!(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                FloatGauge::default()
            ),
        };
        Metrics {
            registry,
            server,
            disk,
            mvcc,
            lease,
            grpc,
            process,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// `--metrics extensive`, fixed before the metrics are first used.
static EXTENSIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Chooses etcd's `--metrics` level; call once at startup, before anything counts.
pub fn configure(level: crate::config::MetricsLevel) {
    let _ = EXTENSIVE.set(level == crate::config::MetricsLevel::Extensive);
}

fn extensive() -> bool {
    EXTENSIVE.get().copied().unwrap_or(false)
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// `etcd_server_*`.
pub fn server() -> &'static ServerMetrics {
    &METRICS.server
}

/// `etcd_mvcc_*`.
pub fn mvcc() -> &'static MvccMetrics {
    &METRICS.mvcc
}

/// `etcd_debugging_lease_*`.
pub fn lease() -> &'static LeaseMetrics {
    &METRICS.lease
}

/// `etcd_disk_*`.
pub fn disk() -> &'static DiskMetrics {
    &METRICS.disk
}

/// Counts one put of `bytes` (key and value) in etcd's put families.
pub fn count_put(bytes: usize) {
    let mvcc = mvcc();
    mvcc.put.inc();
    mvcc.debugging_put.inc();
    mvcc.total_put_size
        .inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// Counts one delete-range.
pub fn count_delete() {
    mvcc().delete.inc();
    mvcc().debugging_delete.inc();
}

/// Counts one range (a Range call or a range inside a txn).
pub fn count_range() {
    mvcc().range.inc();
    mvcc().debugging_range.inc();
}

/// Counts one transaction.
pub fn count_txn() {
    mvcc().txn.inc();
    mvcc().debugging_txn.inc();
}

/// One proposal in `etcd_server_proposals_pending` while it lives.
#[derive(Debug)]
pub struct PendingProposal(());

impl PendingProposal {
    pub fn start() -> PendingProposal {
        server().proposals_pending.inc();
        PendingProposal(())
    }
}

impl Drop for PendingProposal {
    fn drop(&mut self) {
        server().proposals_pending.dec();
    }
}

/// What a scrape reads from the running server, beside the counters.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub member_id: u64,
    pub leader: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub keys: u64,
    pub current_revision: i64,
    pub compact_revision: i64,
    pub watch_streams: u64,
    pub watchers: u64,
    pub slow_watchers: u64,
    pub pending_events: u64,
    pub server_version: &'static str,
    pub cluster_version: &'static str,
}

fn as_gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Sets the state gauges from `scrape` and `/proc/self`, and returns the text `/metrics`
/// answers, in etcd's format.
pub fn render(scrape: &Scrape) -> String {
    let m = get();
    let s = &m.server;
    s.has_leader.set(i64::from(scrape.leader != 0));
    s.is_leader.set(i64::from(
        scrape.leader != 0 && scrape.leader == scrape.member_id,
    ));
    s.proposals_committed.set(as_gauge(scrape.raft_index));
    s.proposals_applied.set(as_gauge(scrape.raft_applied_index));
    let single = |family: &InfoGauge, label: &'static str, value: String| {
        family.clear();
        family.get_or_create(&vec![(label, value)]).set(1);
    };
    single(&s.id, "server_id", format!("{:x}", scrape.member_id));
    single(
        &s.version,
        "server_version",
        scrape.server_version.to_string(),
    );
    single(
        &s.go_version,
        "server_go_version",
        "none (Rust)".to_string(),
    );
    single(
        &s.cluster_version,
        "cluster_version",
        scrape.cluster_version.to_string(),
    );
    let mvcc = &m.mvcc;
    mvcc.db_total_size.set(as_gauge(scrape.db_size));
    mvcc.debugging_db_total_size.set(as_gauge(scrape.db_size));
    mvcc.db_size_in_use.set(as_gauge(scrape.db_size_in_use));
    mvcc.keys.set(as_gauge(scrape.keys));
    mvcc.current_revision.set(scrape.current_revision);
    mvcc.compact_revision.set(scrape.compact_revision);
    mvcc.watch_streams.set(as_gauge(scrape.watch_streams));
    mvcc.watchers.set(as_gauge(scrape.watchers));
    mvcc.slow_watchers.set(as_gauge(scrape.slow_watchers));
    mvcc.pending_events.set(as_gauge(scrape.pending_events));
    let stats = process::read();
    let p = &m.process;
    let cpu_now = stats.cpu_seconds - p.cpu_seconds.get();
    if cpu_now > 0.0 {
        p.cpu_seconds.inc_by(cpu_now);
    }
    p.resident_memory_bytes
        .set(as_gauge(stats.resident_memory_bytes));
    p.virtual_memory_bytes
        .set(as_gauge(stats.virtual_memory_bytes));
    p.virtual_memory_max_bytes
        .set(stats.virtual_memory_max_bytes.map_or(-1, as_gauge));
    p.open_fds.set(as_gauge(stats.open_fds));
    p.max_fds.set(stats.max_fds.map_or(-1, as_gauge));
    p.start_time_seconds.set(stats.start_time_seconds);
    let mut open_metrics = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut open_metrics, &m.registry);
    exposition::to_prometheus_text(&open_metrics)
}
