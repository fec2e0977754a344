//! The server's startup configuration: etcd 3.4's command-line flags and `ETCD_*` environment
//! variables, parsed and validated the way etcd 3.4.23 does it, with its defaults and messages.
//!
//! What follows etcd (observed against etcd 3.4.23 and its `etcdmain`/`embed`/`pkg/flags`):
//!
//! * Flag syntax is Go's `flag` package: `-f`, `--f`, `-f=v`, `--f v`; a boolean takes no separate
//!   argument (`--b`, `--b=false`); `--` ends the flags; parsing stops at the first non-flag, and
//!   any leftover argument is an error (`'x' is not a valid flag`). A repeated flag keeps its last
//!   value. `-h`/`--help` stop parsing and ask for the help text.
//! * Every flag `--some-flag` can come from `ETCD_SOME_FLAG`. An empty variable counts as unset.
//!   A flag given on the command line while its variable is also present (even empty) is a fatal
//!   error, not an override: etcd refuses to guess which one was meant.
//! * Flag-syntax errors (etcd exits 2 and prints the usage) come first, then leftover arguments,
//!   then `--version`, then environment variables, then the checks of `embed.Config.Validate`,
//!   then the values parsed when the server starts (compaction retention, initial cluster).
//!
//! Deliberate differences: `--log-level` with an unknown level is an error here (etcd panics);
//! `--auto-compaction-retention` in revision mode must be a plain number (etcd would read `1h` as
//! 3.6e12 revisions); URLs must have a numeric port and no query or fragment; the advertise URLs
//! are not rewritten to the machine's hostname when listening on 0.0.0.0.
//!
//! `--grpc-cores` and `--node-core` are Keelson extensions (CPU placement); etcd has no such flags.
//!
//! Owns: the `Config` the server starts from, its defaults and the order of the steps above.
//! The steps live beside it: `flags` (the flag table), `command_line` (Go's flag syntax and the
//! environment), `go_syntax` (Go's value parsers), `urls`, `values` (retention, CPU lists),
//! `validate` (etcd's checks) and `error`. Never: starts anything or reads files.

mod auth;
mod command_line;
mod error;
mod flags;
mod go_syntax;
mod logging;
mod security;
#[cfg(test)]
mod tests;
mod urls;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::time::Duration;

pub use auth::{AuthToken, JwtOptions};
use command_line::{Gathered, Value, apply_env, parse_args};
pub use error::{ConfigError, ConfigErrorKind};
use flags::FLAGS;
pub use flags::env_var_name;
pub use logging::{LogOutput, Logger};
pub use security::{CipherSuite, TlsFlags};
use urls::parse_initial_cluster;
pub use urls::{Scheme, Url};
use values::parse_retention;

/// `--name`.
pub const NAME_DEFAULT: &str = "default";
/// `--listen-client-urls` and `--advertise-client-urls`.
pub const CLIENT_URL_DEFAULT: &str = "http://localhost:2379";
/// `--listen-peer-urls` and `--initial-advertise-peer-urls`.
pub const PEER_URL_DEFAULT: &str = "http://localhost:2380";
/// `--initial-cluster-state`.
pub const INITIAL_CLUSTER_STATE_DEFAULT: ClusterState = ClusterState::New;
/// `--initial-cluster-token`.
pub const INITIAL_CLUSTER_TOKEN_DEFAULT: &str = "etcd-cluster";
/// `--quota-backend-bytes 0` means this (2 GiB, etcd's `DefaultQuotaBytes`).
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;
/// etcd warns above this quota (8 GiB, `MaxQuotaBytes`) but accepts it.
pub const QUOTA_BACKEND_BYTES_MAX_RECOMMENDED: u64 = 8 * 1024 * 1024 * 1024;
/// `--max-request-bytes` (1.5 MiB).
pub const MAX_REQUEST_BYTES_DEFAULT: u64 = 1_572_864;
/// `--max-txn-ops`.
pub const MAX_TXN_OPS_DEFAULT: u64 = 128;
/// `--snapshot-count`.
pub const SNAPSHOT_COUNT_DEFAULT: u64 = 100_000;
/// `--heartbeat-interval`, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
/// `--election-timeout`, in milliseconds.
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 1000;
/// The election timeout must be at least this many heartbeats, so that a follower sees several
/// heartbeats before it gives up on the leader.
pub const ELECTION_TO_HEARTBEAT_MIN_RATIO: u64 = 5;
/// Upper bound on `--election-timeout`, in milliseconds (`maxElectionMs`).
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;
/// `--auto-compaction-retention`; zero disables auto compaction.
pub const AUTO_COMPACTION_RETENTION_DEFAULT: &str = "0";
/// `--log-level`.
pub const LOG_LEVEL_DEFAULT: LogLevel = LogLevel::Info;
/// `--max-wals`; zero keeps every file.
pub const MAX_WALS_DEFAULT: u64 = 5;
/// `--experimental-watch-progress-notify-interval` (10 minutes).
pub const WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT: Duration = Duration::from_secs(10 * 60);
/// Keelson extension `--busy-poll`: how long the node thread, and a gRPC thread waiting for the
/// node's answer, busy-poll before they sleep. About one fdatasync of an SSD plus a loopback
/// round trip, so a lone writer's WAL completions, its answer and its next request are caught
/// without a thread sleeping and being woken (tens to hundreds of µs each on virtual machines).
pub const BUSY_POLL_DEFAULT: Duration = Duration::from_micros(250);
/// `--grpc-keepalive-interval`.
pub const GRPC_KEEPALIVE_INTERVAL_DEFAULT: Duration = Duration::from_secs(2 * 60 * 60);
/// `--grpc-keepalive-timeout`.
pub const GRPC_KEEPALIVE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);
/// `--experimental-compaction-batch-limit`, in revisions.
pub const COMPACTION_BATCH_LIMIT_DEFAULT: u64 = 1000;
/// `--experimental-warning-apply-duration`.
pub const WARNING_APPLY_DURATION_DEFAULT: Duration = Duration::from_millis(100);
/// Prefix of the environment variables that mirror the flags.
pub const ENV_PREFIX: &str = "ETCD_";

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a cluster that already exists.
    Existing,
}

/// `--log-level`: the levels etcd 3.4 accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    DPanic,
    Panic,
    Fatal,
}

impl LogLevel {
    pub(super) fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "dpanic" => LogLevel::DPanic,
            "panic" => LogLevel::Panic,
            "fatal" => LogLevel::Fatal,
            _ => return None,
        })
    }
}

/// `--auto-compaction-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionMode {
    Periodic,
    Revision,
}

/// The resolved auto-compaction policy (mode and retention together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention `0`: never compact automatically.
    Disabled,
    /// Keep this much history, compacting periodically.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// The server configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `-h`/`--help` was given: print [`Config::help_text`] and exit 0. Parsing stopped there, so
    /// the other fields are unspecified.
    pub help: bool,
    /// `--version` was given: print the version and exit 0. The environment was not read and
    /// nothing was validated, so the other fields are unspecified.
    pub version: bool,

    pub name: String,
    /// `--data-dir`, defaulting to `<name>.etcd`.
    pub data_dir: String,
    /// `--wal-dir`; `None` keeps the WAL inside the data directory.
    pub wal_dir: Option<String>,
    pub listen_client_urls: Vec<Url>,
    /// `--listen-metrics-urls`: extra listeners serving only `/health` and `/metrics`.
    pub listen_metrics_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>,
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--initial-cluster`: member name to its peer URLs. By default `<name>=<advertise peer URLs>`.
    pub initial_cluster: BTreeMap<String, Vec<Url>>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    /// Backend size that raises the NOSPACE alarm; `0` on the command line means
    /// [`QUOTA_BACKEND_BYTES_DEFAULT`]. `None`: a negative value was given, which disables the
    /// quota.
    pub quota_backend_bytes: Option<u64>,
    pub max_request_bytes: u64,
    pub max_txn_ops: u64,
    pub snapshot_count: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub auto_compaction_mode: CompactionMode,
    /// `--auto-compaction-retention` as given.
    pub auto_compaction_retention: String,
    /// Mode and retention resolved.
    pub auto_compaction: AutoCompaction,
    pub log_level: LogLevel,
    pub max_wals: u64,
    pub watch_progress_notify_interval: Duration,
    pub enable_pprof: bool,
    /// Keelson extension `--grpc-cores`: cores to pin the gRPC threads to; empty: every core
    /// but the node's.
    pub grpc_cores: Vec<usize>,
    /// Keelson extension `--node-core`: core to pin the consensus and storage thread to; `None`:
    /// the last core.
    pub node_core: Option<usize>,
    /// Keelson extension `--busy-poll`: busy-polling before the node thread, or a gRPC thread
    /// awaiting it, sleeps.
    pub busy_poll: Duration,

    /// `--initial-election-tick-advance`: start a fresh member with its election ticks nearly
    /// elapsed, so a cluster elects its first leader sooner.
    pub initial_election_tick_advance: bool,
    /// `--pre-vote`: Raft's pre-vote phase.
    pub pre_vote: bool,
    /// `--strict-reconfig-check`: refuse member changes that would lose quorum.
    pub strict_reconfig_check: bool,
    /// `--force-new-cluster`: restart as a one-member cluster, dropping the other members.
    pub force_new_cluster: bool,
    /// `--discovery*`: bootstrapping through a discovery service instead of `--initial-cluster`.
    pub discovery: Discovery,
    /// `--max-concurrent-streams`: HTTP/2 streams one client connection may open at once.
    pub max_concurrent_streams: u32,
    /// `--grpc-keepalive-interval`: ping an idle client connection this often; zero: never.
    pub grpc_keepalive_interval: Duration,
    /// `--grpc-keepalive-timeout`: close a connection whose ping goes unanswered this long.
    pub grpc_keepalive_timeout: Duration,
    /// `--enable-grpc-gateway`: serve etcd's JSON API under `/v3/`.
    pub enable_grpc_gateway: bool,
    /// `--cert-file`, `--key-file`, `--client-cert-auth`, `--trusted-ca-file`,
    /// `--client-crl-file`, `--client-cert-allowed-hostname`, `--auto-tls`.
    pub client_tls: TlsFlags,
    /// The `--peer-*` TLS flags and `--experimental-peer-skip-client-san-verification`.
    pub peer_tls: TlsFlags,
    /// `--cipher-suites`, in the order given; empty: the TLS library's choice.
    pub cipher_suites: Vec<CipherSuite>,
    /// `--cors`: allowed origins; `*` allows every origin.
    pub cors: Vec<String>,
    /// `--host-whitelist`: accepted `Host` headers on plain HTTP; `*` accepts any.
    pub host_whitelist: Vec<String>,
    /// `--auth-token`.
    pub auth_token: AuthToken,
    /// `--bcrypt-cost`, already moved into bcrypt's range as etcd does.
    pub bcrypt_cost: u64,
    /// `--auth-token-ttl`: lifetime of a simple token.
    pub auth_token_ttl: Duration,
    /// `--metrics extensive` adds the gRPC handling-time histogram.
    pub metrics: MetricsLevel,
    /// `--logger`.
    pub logger: Logger,
    /// `--log-outputs` (or the deprecated `--log-output`), resolved.
    pub log_outputs: Vec<LogOutput>,
    /// `--experimental-initial-corrupt-check`: compare hashes with the peers before serving.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time`: compare hashes with the peers this often; zero:
    /// never.
    pub corrupt_check_interval: Duration,
    /// `--experimental-enable-lease-checkpoint` and `...-persist`; Keelson always checkpoints
    /// and persists, so these only pass etcd's check that persist needs checkpoints.
    pub lease_checkpoint: bool,
    pub lease_checkpoint_persist: bool,
    /// `--experimental-compaction-batch-limit`: revisions deleted per compaction step.
    pub compaction_batch_limit: u64,
    /// `--experimental-warning-apply-duration`: an apply slower than this logs a warning.
    pub warning_apply_duration: Duration,
    /// Lines to log at startup, once the logger is up: the flags accepted but ignored and
    /// etcd's deprecation notices.
    pub warnings: Vec<String>,
}

/// `--discovery`, `--discovery-fallback`, `--discovery-proxy`, `--discovery-srv`,
/// `--discovery-srv-name`. Empty strings are unset, as in etcd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    pub url: Option<String>,
    /// `--discovery-fallback exit`: give up when the discovery service refuses; `proxy` (the
    /// default) would run as a v2 proxy, which Keelson cannot, so it exits too.
    pub fallback_exit: bool,
    pub proxy: Option<String>,
    pub srv: Option<String>,
    pub srv_name: Option<String>,
}

impl Discovery {
    /// Whether any discovery method is configured.
    pub fn is_set(&self) -> bool {
        self.url.is_some() || self.srv.is_some() || self.srv_name.is_some()
    }
}

/// `--metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsLevel {
    Basic,
    /// Adds `grpc_server_handling_seconds`.
    Extensive,
}

impl Config {
    /// Builds the configuration from the command-line arguments (without the program name, i.e.
    /// `std::env::args().skip(1)`) and an environment lookup (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_args_and_env(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut g = Gathered::default();
        parse_args(args.into_iter().collect(), &mut g)?;
        if g.help {
            return Ok(Config {
                help: true,
                ..Config::from_gathered(&Gathered::default())
            });
        }
        if let Some(arg) = g.positional.first() {
            return Err(ConfigError::verify(format_args!(
                "'{arg}' is not a valid flag"
            )));
        }
        if matches!(g.value("version"), Some(Value::Bool(true))) {
            return Ok(Config {
                version: true,
                ..Config::from_gathered(&Gathered::default())
            });
        }
        let config_file = g
            .non_empty("config-file")
            .or_else(|| env(&env_var_name("config-file")).filter(|v| !v.is_empty()));
        if let Some(path) = config_file {
            return Err(ConfigError::fatal(format!(
                "keelson: --config-file {path}: configuration files are not supported yet; \
                 give the settings as flags or ETCD_* variables"
            )));
        }
        apply_env(&env, &mut g)?;

        let mut cfg = Config::from_gathered(&g);
        // etcd drops the default advertise URL when only the listen URL was set, so that it
        // never advertises a localhost address it does not listen on.
        if g.is_set("listen-client-urls") && !g.is_set("advertise-client-urls") {
            cfg.advertise_client_urls.clear();
        }
        // Discovery replaces the default initial cluster rather than conflicting with it.
        let default_cluster = format!("{NAME_DEFAULT}={PEER_URL_DEFAULT}");
        let mut initial_cluster = g
            .str("initial-cluster")
            .unwrap_or(&default_cluster)
            .to_string();
        if cfg.discovery.is_set() && !g.is_set("initial-cluster") {
            initial_cluster.clear();
        }

        // etcd's `setupLogging`, the first of its checks.
        let log_level = g.str("log-level").unwrap_or("info");
        let logging = logging::setup(
            g.str("logger").unwrap_or("capnslog"),
            &g.strings("log-output", &[logging::LOG_OUTPUT_DEFAULT]),
            &g.strings("log-outputs", &[logging::LOG_OUTPUT_DEFAULT]),
            g.bool("debug", false),
            log_level,
        )
        .map_err(ConfigError::verify)?;
        cfg.log_level = LogLevel::parse(log_level)
            .ok_or_else(|| ConfigError::fatal(format!("unknown level {log_level:?}")))?;
        if g.bool("debug", false) && logging.logger == Logger::Capnslog {
            cfg.log_level = LogLevel::Debug;
        }
        cfg.logger = logging.logger;
        cfg.log_outputs = logging.outputs;
        cfg.warnings = logging.warnings;
        cfg.warnings.extend(g.ignored.iter().cloned());

        let mode = g.str("auto-compaction-mode").unwrap_or("periodic");
        cfg.validate(mode, !initial_cluster.is_empty())?;
        cfg.auto_compaction_mode = match mode {
            "revision" => CompactionMode::Revision,
            _ => CompactionMode::Periodic,
        };

        // Derived defaults and the values etcd parses when the server starts, in its order.
        if cfg.name != NAME_DEFAULT && initial_cluster == default_cluster {
            initial_cluster = cfg
                .initial_advertise_peer_urls
                .iter()
                .map(|u| format!("{}={u}", cfg.name))
                .collect::<Vec<_>>()
                .join(",");
        }
        if cfg.data_dir.is_empty() {
            cfg.data_dir = format!("{}.etcd", cfg.name);
        }
        cfg.cipher_suites = security::cipher_suites(&g.strings("cipher-suites", &[]))
            .map_err(ConfigError::fatal)?;
        cfg.initial_cluster = parse_initial_cluster(&initial_cluster)
            .map_err(|e| ConfigError::fatal(format!("error setting up initial cluster: {e}")))?;
        cfg.auto_compaction =
            parse_retention(cfg.auto_compaction_mode, &cfg.auto_compaction_retention).map_err(
                |e| ConfigError::fatal(format!("error parsing CompactionRetention: {e}")),
            )?;
        cfg.auth_token = AuthToken::parse(g.str("auth-token").unwrap_or("simple"))
            .map_err(|_| ConfigError::fatal(auth::INVALID_AUTH_OPTIONS.to_string()))?;
        let (bcrypt_cost, warning) =
            auth::bcrypt_cost(g.uint("bcrypt-cost", auth::BCRYPT_COST_DEFAULT));
        cfg.bcrypt_cost = bcrypt_cost;
        cfg.warnings.extend(warning);
        Ok(cfg)
    }

    /// Typed fields from the gathered values, defaults elsewhere; nothing checked yet.
    fn from_gathered(g: &Gathered) -> Config {
        let name = g.str("name").unwrap_or(NAME_DEFAULT).to_string();
        let quota_backend_bytes = match g.value("quota-backend-bytes") {
            Some(Value::Int(q)) if *q < 0 => None,
            Some(Value::Int(q)) if *q > 0 => Some(q.unsigned_abs()),
            _ => Some(QUOTA_BACKEND_BYTES_DEFAULT),
        };
        let tls = |prefix: &str| TlsFlags {
            cert_file: g.non_empty(&format!("{prefix}cert-file")),
            key_file: g.non_empty(&format!("{prefix}key-file")),
            client_cert_auth: g.bool(&format!("{prefix}client-cert-auth"), false),
            trusted_ca_file: g.non_empty(&format!("{prefix}trusted-ca-file")),
            auto_tls: g.bool(&format!("{prefix}auto-tls"), false),
            ..TlsFlags::default()
        };
        Config {
            help: false,
            version: false,
            data_dir: g.str("data-dir").unwrap_or("").to_string(),
            wal_dir: g.non_empty("wal-dir"),
            listen_client_urls: g.urls("listen-client-urls", CLIENT_URL_DEFAULT),
            listen_metrics_urls: g.urls("listen-metrics-urls", ""),
            advertise_client_urls: g.urls("advertise-client-urls", CLIENT_URL_DEFAULT),
            listen_peer_urls: g.urls("listen-peer-urls", PEER_URL_DEFAULT),
            initial_advertise_peer_urls: g.urls("initial-advertise-peer-urls", PEER_URL_DEFAULT),
            initial_cluster: BTreeMap::new(),
            initial_cluster_state: match g.str("initial-cluster-state") {
                Some("existing") => ClusterState::Existing,
                Some(_) => ClusterState::New,
                None => INITIAL_CLUSTER_STATE_DEFAULT,
            },
            initial_cluster_token: g
                .str("initial-cluster-token")
                .unwrap_or(INITIAL_CLUSTER_TOKEN_DEFAULT)
                .to_string(),
            quota_backend_bytes,
            max_request_bytes: g.uint("max-request-bytes", MAX_REQUEST_BYTES_DEFAULT),
            max_txn_ops: g.uint("max-txn-ops", MAX_TXN_OPS_DEFAULT),
            snapshot_count: g.uint("snapshot-count", SNAPSHOT_COUNT_DEFAULT),
            heartbeat_interval: Duration::from_millis(
                g.uint("heartbeat-interval", HEARTBEAT_INTERVAL_MS_DEFAULT),
            ),
            election_timeout: Duration::from_millis(
                g.uint("election-timeout", ELECTION_TIMEOUT_MS_DEFAULT),
            ),
            auto_compaction_mode: CompactionMode::Periodic,
            auto_compaction_retention: g
                .str("auto-compaction-retention")
                .unwrap_or(AUTO_COMPACTION_RETENTION_DEFAULT)
                .to_string(),
            auto_compaction: AutoCompaction::Disabled,
            log_level: LOG_LEVEL_DEFAULT,
            max_wals: g.uint("max-wals", MAX_WALS_DEFAULT),
            watch_progress_notify_interval: g.duration(
                "experimental-watch-progress-notify-interval",
                WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT,
            ),
            enable_pprof: g.bool("enable-pprof", false),
            grpc_cores: g.cores("grpc-cores"),
            node_core: g.cores("node-core").first().copied(),
            busy_poll: g.duration("busy-poll", BUSY_POLL_DEFAULT),
            initial_election_tick_advance: g.bool("initial-election-tick-advance", true),
            pre_vote: g.bool("pre-vote", false),
            strict_reconfig_check: g.bool("strict-reconfig-check", true),
            force_new_cluster: g.bool("force-new-cluster", false),
            discovery: Discovery {
                url: g.non_empty("discovery"),
                fallback_exit: g.str("discovery-fallback") == Some("exit"),
                proxy: g.non_empty("discovery-proxy"),
                srv: g.non_empty("discovery-srv"),
                srv_name: g.non_empty("discovery-srv-name"),
            },
            max_concurrent_streams: u32::try_from(
                g.uint("max-concurrent-streams", u64::from(u32::MAX)),
            )
            .unwrap_or(u32::MAX),
            grpc_keepalive_interval: g
                .duration("grpc-keepalive-interval", GRPC_KEEPALIVE_INTERVAL_DEFAULT),
            grpc_keepalive_timeout: g
                .duration("grpc-keepalive-timeout", GRPC_KEEPALIVE_TIMEOUT_DEFAULT),
            enable_grpc_gateway: g.bool("enable-grpc-gateway", true),
            client_tls: TlsFlags {
                crl_file: g.non_empty("client-crl-file"),
                allowed_hostname: g.non_empty("client-cert-allowed-hostname"),
                ..tls("")
            },
            peer_tls: TlsFlags {
                crl_file: g.non_empty("peer-crl-file"),
                allowed_hostname: g.non_empty("peer-cert-allowed-hostname"),
                allowed_cn: g.non_empty("peer-cert-allowed-cn"),
                skip_client_san_verification: g
                    .bool("experimental-peer-skip-client-san-verification", false),
                ..tls("peer-")
            },
            cipher_suites: Vec::new(),
            cors: g.strings("cors", &["*"]),
            host_whitelist: g.strings("host-whitelist", &["*"]),
            auth_token: AuthToken::Simple,
            bcrypt_cost: auth::BCRYPT_COST_DEFAULT,
            auth_token_ttl: Duration::from_secs(
                g.uint("auth-token-ttl", auth::AUTH_TOKEN_TTL_SECONDS_DEFAULT),
            ),
            metrics: match g.str("metrics") {
                Some("extensive") => MetricsLevel::Extensive,
                _ => MetricsLevel::Basic,
            },
            logger: Logger::Capnslog,
            log_outputs: vec![LogOutput::Stderr],
            initial_corrupt_check: g.bool("experimental-initial-corrupt-check", false),
            corrupt_check_interval: g.duration("experimental-corrupt-check-time", Duration::ZERO),
            lease_checkpoint: g.bool("experimental-enable-lease-checkpoint", false),
            lease_checkpoint_persist: g.bool("experimental-enable-lease-checkpoint-persist", false),
            // etcd's mvcc takes a limit of zero or less as its default.
            compaction_batch_limit: match g.int("experimental-compaction-batch-limit", 0) {
                n if n > 0 => n.unsigned_abs(),
                _ => COMPACTION_BATCH_LIMIT_DEFAULT,
            },
            warning_apply_duration: g.duration(
                "experimental-warning-apply-duration",
                WARNING_APPLY_DURATION_DEFAULT,
            ),
            warnings: Vec::new(),
            name,
        }
    }

    /// The `--help` text: etcd's layout and sections, listing every flag.
    pub fn help_text() -> String {
        let mut out = String::from(
            "Usage:\n\n  keelson [flags]\n    Start a Keelson server.\n\n  keelson --version\n    \
             Show the version of Keelson.\n\n  keelson -h | --help\n    Show the help information \
             about Keelson.\n\nEach flag can also be set with ETCD_<FLAG_NAME_IN_UPPER_SNAKE_CASE>; \
             setting both is an error.\n",
        );
        let mut sections: Vec<&str> = Vec::new();
        for f in FLAGS {
            if !sections.contains(&f.section) {
                sections.push(f.section);
            }
        }
        for section in sections {
            out.push_str(&format!("\n{section}:\n"));
            for f in FLAGS.iter().filter(|f| f.section == section) {
                out.push_str(&format!(
                    "  --{} '{}'\n    {}\n",
                    f.name, f.default, f.usage
                ));
            }
        }
        out
    }
}
