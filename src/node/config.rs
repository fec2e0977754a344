//! The node's settings, taken from the server's flags.
//!
//! Owns: the translation of etcd's flags into what the node thread needs (ticks, dirs, sizes,
//! placement). Never: validates flags (`crate::config` does) or reads the environment.

use crate::config::Config;
use std::path::PathBuf;
use std::time::Duration;

/// Requests waiting in the node's inbox; senders wait (backpressure) once it is full.
pub const INBOX_REQUESTS_MAX: usize = 4096;
/// How often the background thread makes the B+tree durable.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// etcd's `ReqTimeout` before the election timeouts are added.
pub const REQUEST_TIMEOUT_BASE: Duration = Duration::from_secs(5);

/// etcd's `ReqTimeout`: 5 s plus two election timeouts.
pub fn request_timeout(election_timeout: Duration) -> Duration {
    REQUEST_TIMEOUT_BASE + 2 * election_timeout
}

/// What the node needs from the server configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// Where the WAL segments live (`<data dir>/member/wal` unless `--wal-dir`).
    pub wal_dir: PathBuf,
    /// Advertised peer URLs (they determine the member id on first start).
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub initial_cluster_token: String,
    /// `--initial-cluster`: every member of a new cluster, by name, with its peer URLs. Read
    /// only when the data dir is empty; empty means this member alone.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// How long a proposal or a read barrier may wait before it fails with "request timed
    /// out" (etcd's `ReqTimeout`: 5 s plus two election timeouts).
    pub request_timeout: Duration,
    /// etcd's `--snapshot-count`. Kept for the cluster work (snapshots sent to followers); WAL
    /// segments are released as the B+tree becomes durable, which bounds the log sooner.
    pub snapshot_count: u64,
    /// One Raft tick (`--heartbeat-interval`).
    pub tick_interval: Duration,
    /// Ticks without a leader before an election (`--election-timeout` / heartbeat).
    pub election_ticks: usize,
    /// WAL segments kept when releasing (`--max-wals`; 0 keeps every one).
    pub max_wals: usize,
    /// Core the node thread is pinned to; `None`: not pinned.
    pub node_core: Option<usize>,
    /// How long the node thread busy-polls for work before it sleeps (glommio's
    /// `spin_before_park`); zero sleeps at once.
    pub busy_poll: Duration,
    /// How often the B+tree is made durable in the background.
    pub sync_interval: Duration,
    /// Size of each WAL segment.
    pub wal_segment_bytes: u64,
    /// Requests in the inbox before senders wait.
    pub inbox_requests_max: usize,
    /// Route raft-rs's log to stderr at this level; `None` drops it.
    pub raft_log_level: Option<slog::Level>,
}

impl NodeConfig {
    /// The node configuration of a parsed server configuration. The node core defaults to the
    /// last core of the machine, leaving the others to gRPC.
    pub fn from_config(config: &Config) -> NodeConfig {
        let data_dir = PathBuf::from(&config.data_dir);
        let wal_dir = match &config.wal_dir {
            Some(dir) => PathBuf::from(dir),
            None => data_dir.join(keelson_storage::schema::WAL_DIR),
        };
        let heartbeat_ms = config.heartbeat_interval.as_millis().max(1);
        let election_ticks = (config.election_timeout.as_millis() / heartbeat_ms).max(2) as usize;
        let max_wals = if config.max_wals == 0 {
            usize::MAX
        } else {
            config.max_wals as usize
        };
        let last_core = std::thread::available_parallelism()
            .map(|n| n.get() - 1)
            .unwrap_or(0);
        let raft_log_level = match config.log_level {
            crate::config::LogLevel::Debug => Some(slog::Level::Debug),
            crate::config::LogLevel::Info => Some(slog::Level::Info),
            crate::config::LogLevel::Warn => Some(slog::Level::Warning),
            _ => Some(slog::Level::Error),
        };
        NodeConfig {
            name: config.name.clone(),
            data_dir,
            wal_dir,
            peer_urls: config
                .initial_advertise_peer_urls
                .iter()
                .map(|u| u.to_string())
                .collect(),
            client_urls: config
                .advertise_client_urls
                .iter()
                .map(|u| u.to_string())
                .collect(),
            initial_cluster_token: config.initial_cluster_token.clone(),
            initial_cluster: config
                .initial_cluster
                .iter()
                .map(|(name, urls)| (name.clone(), urls.iter().map(|u| u.to_string()).collect()))
                .collect(),
            request_timeout: request_timeout(config.election_timeout),
            snapshot_count: config.snapshot_count,
            tick_interval: config.heartbeat_interval,
            election_ticks,
            max_wals,
            node_core: Some(config.node_core.unwrap_or(last_core)),
            busy_poll: config.busy_poll,
            sync_interval: SYNC_INTERVAL,
            wal_segment_bytes: keelson_storage::wal::SEGMENT_BYTES_DEFAULT,
            inbox_requests_max: INBOX_REQUESTS_MAX,
            raft_log_level,
        }
    }

    /// A configuration for a node in `data_dir` with etcd's defaults, unpinned and quiet.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> NodeConfig {
        let data_dir = data_dir.into();
        NodeConfig {
            name: crate::config::NAME_DEFAULT.to_string(),
            wal_dir: data_dir.join(keelson_storage::schema::WAL_DIR),
            data_dir,
            peer_urls: vec![crate::config::PEER_URL_DEFAULT.to_string()],
            client_urls: vec![crate::config::CLIENT_URL_DEFAULT.to_string()],
            initial_cluster_token: crate::config::INITIAL_CLUSTER_TOKEN_DEFAULT.to_string(),
            initial_cluster: Vec::new(),
            request_timeout: request_timeout(Duration::from_millis(
                crate::config::ELECTION_TIMEOUT_MS_DEFAULT,
            )),
            snapshot_count: crate::config::SNAPSHOT_COUNT_DEFAULT,
            tick_interval: Duration::from_millis(crate::config::HEARTBEAT_INTERVAL_MS_DEFAULT),
            election_ticks: (crate::config::ELECTION_TIMEOUT_MS_DEFAULT
                / crate::config::HEARTBEAT_INTERVAL_MS_DEFAULT)
                as usize,
            max_wals: crate::config::MAX_WALS_DEFAULT as usize,
            node_core: None,
            busy_poll: Duration::ZERO,
            sync_interval: SYNC_INTERVAL,
            wal_segment_bytes: keelson_storage::wal::SEGMENT_BYTES_DEFAULT,
            inbox_requests_max: INBOX_REQUESTS_MAX,
            raft_log_level: None,
        }
    }
}
