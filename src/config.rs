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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

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
/// Prefix of the environment variables that mirror the flags.
pub const ENV_PREFIX: &str = "ETCD_";

/// How a flag's value is parsed. Booleans matter to the syntax: they never consume the next
/// argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Uint,
    Int,
    GoDuration,
    Urls,
    ClusterState,
    CoreList,
    Core,
}

struct FlagSpec {
    name: &'static str,
    kind: Kind,
    /// As shown by `--help`.
    default: &'static str,
    usage: &'static str,
}

const fn flag(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    usage: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        default,
        usage,
    }
}

/// Every flag Keelson accepts, in help-text order. `help` is not here: like Go's `flag` package,
/// `-h`/`-help` are recognised only because no flag claims them.
const FLAGS: &[FlagSpec] = &[
    flag(
        "name",
        Kind::Str,
        "default",
        "Human-readable name for this member.",
    ),
    flag(
        "data-dir",
        Kind::Str,
        "${name}.etcd",
        "Path to the data directory.",
    ),
    flag(
        "wal-dir",
        Kind::Str,
        "",
        "Path to the dedicated wal directory.",
    ),
    flag(
        "snapshot-count",
        Kind::Uint,
        "100000",
        "Number of committed transactions to trigger a snapshot to disk.",
    ),
    flag(
        "heartbeat-interval",
        Kind::Uint,
        "100",
        "Time (in milliseconds) of a heartbeat interval.",
    ),
    flag(
        "election-timeout",
        Kind::Uint,
        "1000",
        "Time (in milliseconds) for an election to timeout.",
    ),
    flag(
        "listen-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of URLs to listen on for peer traffic.",
    ),
    flag(
        "listen-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of URLs to listen on for client traffic.",
    ),
    flag(
        "listen-metrics-urls",
        Kind::Urls,
        "",
        "List of URLs to listen on for the metrics and health endpoints.",
    ),
    flag(
        "max-wals",
        Kind::Uint,
        "5",
        "Maximum number of wal files to retain (0 is unlimited).",
    ),
    flag(
        "quota-backend-bytes",
        Kind::Int,
        "0",
        "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
    ),
    flag(
        "max-txn-ops",
        Kind::Uint,
        "128",
        "Maximum number of operations permitted in a transaction.",
    ),
    flag(
        "max-request-bytes",
        Kind::Uint,
        "1572864",
        "Maximum client request size in bytes the server will accept.",
    ),
    flag(
        "initial-advertise-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster.",
    ),
    flag(
        "initial-cluster",
        Kind::Str,
        "default=http://localhost:2380",
        "Initial cluster configuration for bootstrapping.",
    ),
    flag(
        "initial-cluster-state",
        Kind::ClusterState,
        "new",
        "Initial cluster state ('new' or 'existing').",
    ),
    flag(
        "initial-cluster-token",
        Kind::Str,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during bootstrap.",
    ),
    flag(
        "advertise-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of this member's client URLs to advertise to the public.",
    ),
    flag(
        "auto-compaction-retention",
        Kind::Str,
        "0",
        "Auto compaction retention length. 0 means disable auto compaction.",
    ),
    flag(
        "auto-compaction-mode",
        Kind::Str,
        "periodic",
        "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.",
    ),
    flag(
        "enable-pprof",
        Kind::Bool,
        "false",
        "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"",
    ),
    flag(
        "log-level",
        Kind::Str,
        "info",
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
    ),
    flag(
        "experimental-watch-progress-notify-interval",
        Kind::GoDuration,
        "10m",
        "Duration of periodical watch progress notification.",
    ),
    flag(
        "grpc-cores",
        Kind::CoreList,
        "",
        "Keelson extension: CPU cores for the gRPC threads, as a list such as '0-3,6' (default: every core but the node's).",
    ),
    flag(
        "node-core",
        Kind::Core,
        "",
        "Keelson extension: CPU core for the consensus and storage thread (default: the last core).",
    ),
    flag(
        "busy-poll",
        Kind::GoDuration,
        "250us",
        "Keelson extension: how long the consensus and storage thread, and a gRPC thread awaiting its answer, busy-poll before sleeping; 0 sleeps at once.",
    ),
    flag(
        "version",
        Kind::Bool,
        "false",
        "Print the version and exit.",
    ),
];

/// Flags that the environment cannot set: they are handled before etcd reads the environment.
const NOT_FROM_ENV: &[&str] = &["version"];

/// URL scheme accepted by etcd for client and peer URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    Http,
    Https,
    Unix,
    Unixs,
}

impl Scheme {
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Unix => "unix",
            Scheme::Unixs => "unixs",
        }
    }

    /// Whether the listener speaks TLS.
    pub const fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Unixs)
    }
}

/// A client or peer URL: `scheme://host:port`, no path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Url {
    pub scheme: Scheme,
    /// Host name or IP address, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
}

impl Url {
    /// Parses one URL with the checks and messages of etcd's `types.NewURLs`.
    pub fn parse(input: &str) -> Result<Url, String> {
        let input = input.trim();
        let bad_scheme = || format!("URL scheme must be http, https, unix, or unixs: {input}");
        let (scheme, rest) = input.split_once("://").ok_or_else(bad_scheme)?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "unix" => Scheme::Unix,
            "unixs" => Scheme::Unixs,
            _ => return Err(bad_scheme()),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let bad_host = || format!("URL address does not have the form \"host:port\": {input}");
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (host, tail) = after.split_once(']').ok_or_else(bad_host)?;
            (host, tail.strip_prefix(':').ok_or_else(bad_host)?)
        } else {
            let (host, port) = authority.rsplit_once(':').ok_or_else(bad_host)?;
            if host.contains(':') {
                return Err(bad_host());
            }
            (host, port)
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_host());
        }
        let port = port.parse::<u16>().map_err(|_| bad_host())?;
        if !path.is_empty() {
            return Err(format!("URL must not contain a path: {input}"));
        }
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
        })
    }

    /// Parses a comma-separated list, sorted by its string form as etcd sorts it.
    pub fn parse_list(input: &str) -> Result<Vec<Url>, String> {
        if input.is_empty() {
            return Err("no valid URLs given".to_string());
        }
        let mut urls = input
            .split(',')
            .map(Url::parse)
            .collect::<Result<Vec<_>, _>>()?;
        urls.sort_by_cached_key(|u| u.to_string());
        Ok(urls)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.scheme.as_str(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

fn join_urls(urls: &[Url]) -> String {
    urls.iter()
        .map(Url::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

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
    fn parse(s: &str) -> Option<LogLevel> {
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

/// Whether a [`ConfigError`] is a command-line syntax error or a rejected configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// Rejected by the flag parser: etcd prints the message and the usage, and exits with 2.
    Usage,
    /// Rejected after parsing: etcd exits with 1.
    Invalid,
}

/// Why the configuration was rejected. `Display` is the line etcd prints (without its log
/// prefix), e.g. `flag provided but not defined: -no-such-flag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    message: String,
}

impl ConfigError {
    fn usage(message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Usage,
            message,
        }
    }

    /// A failed check that etcd reports as `error verifying flags, ... See 'etcd --help'.`
    fn verify(reason: impl fmt::Display) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Invalid,
            message: format!("error verifying flags, {reason}. See 'etcd --help'."),
        }
    }

    /// A failure etcd reports bare, at startup rather than while checking flags.
    fn fatal(message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Invalid,
            message,
        }
    }

    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The exit status etcd uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ConfigErrorKind::Usage => 2,
            ConfigErrorKind::Invalid => 1,
        }
    }

    /// Whether etcd follows the message with its usage text.
    pub fn shows_usage(&self) -> bool {
        self.kind == ConfigErrorKind::Usage
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

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
}

/// A value as parsed from a flag or an environment variable.
#[derive(Clone, Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Uint(u64),
    Int(i64),
    Duration(Duration),
    Urls(Vec<Url>),
    ClusterState(ClusterState),
    Cores(Vec<usize>),
}

/// Parses a flag value; the error is the reason etcd puts after `invalid value "...": `.
fn parse_value(kind: Kind, raw: &str) -> Result<Value, String> {
    const PARSE_ERROR: &str = "parse error";
    Ok(match kind {
        Kind::Str => Value::Str(raw.to_string()),
        Kind::Bool => Value::Bool(parse_go_bool(raw).ok_or(PARSE_ERROR)?),
        Kind::Uint => Value::Uint(parse_go_uint(raw)?),
        Kind::Int => Value::Int(parse_go_int(raw)?),
        Kind::GoDuration => match parse_go_duration(raw) {
            Ok((false, d)) => Value::Duration(d),
            _ => return Err(PARSE_ERROR.to_string()),
        },
        Kind::Urls => Value::Urls(Url::parse_list(raw)?),
        Kind::ClusterState => Value::ClusterState(match raw {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            _ => return Err("invalid value".to_string()),
        }),
        Kind::CoreList => Value::Cores(parse_core_list(raw)?),
        Kind::Core => Value::Cores(vec![
            raw.parse::<usize>()
                .map_err(|_| format!("invalid CPU number {raw:?}"))?,
        ]),
    })
}

fn spec(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|f| f.name == name)
}

/// `--some-flag` → `ETCD_SOME_FLAG`.
pub fn env_var_name(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// Values gathered from the command line and the environment, before they become a [`Config`].
#[derive(Default)]
struct Gathered {
    values: HashMap<&'static str, Value>,
    /// Flags set explicitly, on the command line or through the environment.
    set: Vec<&'static str>,
    positional: Vec<String>,
    help: bool,
}

impl Gathered {
    fn put(&mut self, name: &'static str, value: Value) {
        self.values.insert(name, value);
        if !self.set.contains(&name) {
            self.set.push(name);
        }
    }

    fn is_set(&self, name: &str) -> bool {
        self.set.contains(&name)
    }

    fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn uint(&self, name: &str, default: u64) -> u64 {
        match self.values.get(name) {
            Some(Value::Uint(v)) => *v,
            _ => default,
        }
    }

    fn urls(&self, name: &str, default: &str) -> Vec<Url> {
        match self.values.get(name) {
            Some(Value::Urls(v)) => v.clone(),
            _ => Url::parse_list(default).unwrap_or_default(),
        }
    }

    fn cores(&self, name: &str) -> Vec<usize> {
        match self.values.get(name) {
            Some(Value::Cores(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

/// Go's `flag.FlagSet.Parse`: stops at the first non-flag argument or after `--`.
fn parse_args(args: Vec<String>, out: &mut Gathered) -> Result<(), ConfigError> {
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        if arg.len() < 2 || !arg.starts_with('-') {
            out.positional.push(arg);
            break;
        }
        let body = match arg.strip_prefix("--") {
            Some("") => break,
            Some(body) => body,
            None => &arg[1..],
        };
        if body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(spec) = spec(name) else {
            if name == "h" || name == "help" {
                out.help = true;
                return Ok(());
            }
            return Err(ConfigError::usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        if spec.kind == Kind::Bool {
            let value = match inline {
                None => true,
                Some(v) => parse_go_bool(&v).ok_or_else(|| {
                    ConfigError::usage(format!(
                        "invalid boolean value {v:?} for -{name}: parse error"
                    ))
                })?,
            };
            out.put(spec.name, Value::Bool(value));
            continue;
        }
        let raw = match inline.or_else(|| iter.next()) {
            Some(v) => v,
            None => {
                return Err(ConfigError::usage(format!(
                    "flag needs an argument: -{name}"
                )));
            }
        };
        let value = parse_value(spec.kind, &raw).map_err(|reason| {
            ConfigError::usage(format!("invalid value {raw:?} for flag -{name}: {reason}"))
        })?;
        out.put(spec.name, value);
    }
    out.positional.extend(iter);
    Ok(())
}

/// etcd's `flags.SetFlagsFromEnv`: fills flags not given on the command line.
fn apply_env(env: &dyn Fn(&str) -> Option<String>, out: &mut Gathered) -> Result<(), ConfigError> {
    let from_cli = out.set.clone();
    // A variable shadowed by a flag is fatal before any variable's value is looked at.
    for name in &from_cli {
        let key = env_var_name(name);
        if env(&key).is_some() {
            return Err(ConfigError::fatal(format!(
                "conflicting environment variable {key:?} is shadowed by corresponding \
                 command-line flag (either unset environment variable or disable flag)"
            )));
        }
    }
    for spec in FLAGS {
        if from_cli.contains(&spec.name) || NOT_FROM_ENV.contains(&spec.name) {
            continue;
        }
        let key = env_var_name(spec.name);
        let Some(raw) = env(&key).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = parse_value(spec.kind, &raw).map_err(|reason| {
            ConfigError::verify(format_args!("invalid value {raw:?} for {key}: {reason}"))
        })?;
        out.put(spec.name, value);
    }
    Ok(())
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
        if matches!(g.values.get("version"), Some(Value::Bool(true))) {
            return Ok(Config {
                version: true,
                ..Config::from_gathered(&Gathered::default())
            });
        }
        apply_env(&env, &mut g)?;

        let mut cfg = Config::from_gathered(&g);
        let log_level = g.str("log-level").unwrap_or("info");
        cfg.log_level = LogLevel::parse(log_level)
            .ok_or_else(|| ConfigError::fatal(format!("unknown level {log_level:?}")))?;
        // etcd drops the default advertise URL when only the listen URL was set, so that it
        // never advertises a localhost address it does not listen on.
        if g.is_set("listen-client-urls") && !g.is_set("advertise-client-urls") {
            cfg.advertise_client_urls.clear();
        }
        let mode = g.str("auto-compaction-mode").unwrap_or("periodic");
        cfg.validate(mode)?;
        cfg.auto_compaction_mode = match mode {
            "revision" => CompactionMode::Revision,
            _ => CompactionMode::Periodic,
        };

        // Derived defaults, as etcd applies them after validation.
        let default_cluster = format!("{NAME_DEFAULT}={PEER_URL_DEFAULT}");
        let mut initial_cluster = g
            .str("initial-cluster")
            .unwrap_or(&default_cluster)
            .to_string();
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

        cfg.auto_compaction =
            parse_retention(cfg.auto_compaction_mode, &cfg.auto_compaction_retention).map_err(
                |e| ConfigError::fatal(format!("error parsing CompactionRetention: {e}")),
            )?;
        cfg.initial_cluster = parse_initial_cluster(&initial_cluster)
            .map_err(|e| ConfigError::fatal(format!("error setting up initial cluster: {e}")))?;
        Ok(cfg)
    }

    /// Typed fields from the gathered values, defaults elsewhere; nothing checked yet.
    fn from_gathered(g: &Gathered) -> Config {
        let name = g.str("name").unwrap_or(NAME_DEFAULT).to_string();
        let quota_backend_bytes = match g.values.get("quota-backend-bytes") {
            Some(Value::Int(q)) if *q < 0 => None,
            Some(Value::Int(q)) if *q > 0 => Some(q.unsigned_abs()),
            _ => Some(QUOTA_BACKEND_BYTES_DEFAULT),
        };
        Config {
            help: false,
            version: false,
            data_dir: g.str("data-dir").unwrap_or("").to_string(),
            wal_dir: g
                .str("wal-dir")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            listen_client_urls: g.urls("listen-client-urls", CLIENT_URL_DEFAULT),
            listen_metrics_urls: g.urls("listen-metrics-urls", ""),
            advertise_client_urls: g.urls("advertise-client-urls", CLIENT_URL_DEFAULT),
            listen_peer_urls: g.urls("listen-peer-urls", PEER_URL_DEFAULT),
            initial_advertise_peer_urls: g.urls("initial-advertise-peer-urls", PEER_URL_DEFAULT),
            initial_cluster: BTreeMap::new(),
            initial_cluster_state: match g.values.get("initial-cluster-state") {
                Some(Value::ClusterState(s)) => *s,
                _ => INITIAL_CLUSTER_STATE_DEFAULT,
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
            watch_progress_notify_interval: match g
                .values
                .get("experimental-watch-progress-notify-interval")
            {
                Some(Value::Duration(d)) => *d,
                _ => WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT,
            },
            enable_pprof: matches!(g.values.get("enable-pprof"), Some(Value::Bool(true))),
            grpc_cores: g.cores("grpc-cores"),
            node_core: g.cores("node-core").first().copied(),
            busy_poll: match g.values.get("busy-poll") {
                Some(Value::Duration(d)) => *d,
                _ => BUSY_POLL_DEFAULT,
            },
            name,
        }
    }

    /// The checks of etcd's `embed.Config.Validate`, in its order.
    fn validate(&self, compaction_mode: &str) -> Result<(), ConfigError> {
        for url in self
            .listen_peer_urls
            .iter()
            .chain(&self.listen_client_urls)
            .chain(&self.listen_metrics_urls)
        {
            check_bind_url(url).map_err(ConfigError::verify)?;
        }
        for (flag, urls) in [
            (
                "initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
            ("advertise-client-urls", &self.advertise_client_urls),
        ] {
            if let Some(url) = urls.iter().find(|u| u.host.is_empty()) {
                return Err(ConfigError::verify(format_args!(
                    "--{flag} {:?} must be \"host:port\" (unexpected empty host ({url}))",
                    join_urls(urls)
                )));
            }
        }
        let heartbeat_ms = self.heartbeat_interval.as_millis();
        let election_ms = self.election_timeout.as_millis();
        if heartbeat_ms == 0 {
            return Err(ConfigError::verify(format_args!(
                "--heartbeat-interval must be >0 (set to {heartbeat_ms}ms)"
            )));
        }
        if election_ms == 0 {
            return Err(ConfigError::verify(format_args!(
                "--election-timeout must be >0 (set to {election_ms}ms)"
            )));
        }
        if u128::from(ELECTION_TO_HEARTBEAT_MIN_RATIO) * heartbeat_ms > election_ms {
            return Err(ConfigError::verify(format_args!(
                "--election-timeout[{election_ms}ms] should be at least as \
                 {ELECTION_TO_HEARTBEAT_MIN_RATIO} times as --heartbeat-interval[{heartbeat_ms}ms]"
            )));
        }
        if election_ms > u128::from(ELECTION_TIMEOUT_MS_MAX) {
            return Err(ConfigError::verify(format_args!(
                "--election-timeout[{election_ms}ms] is too long, and should be set less than \
                 {ELECTION_TIMEOUT_MS_MAX}ms"
            )));
        }
        if self.advertise_client_urls.is_empty() {
            return Err(ConfigError::verify(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly",
            ));
        }
        if compaction_mode != "periodic" && compaction_mode != "revision" {
            return Err(ConfigError::verify(format_args!(
                "unknown auto-compaction-mode {compaction_mode:?}"
            )));
        }
        Ok(())
    }

    /// The checks etcd makes when it bootstraps a member from an empty data directory (etcd's
    /// `VerifyBootstrap` for a new cluster, `VerifyJoinExisting` otherwise), except that URLs are
    /// compared as written rather than after DNS resolution.
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        let cluster_string = self
            .initial_cluster
            .iter()
            .flat_map(|(name, urls)| urls.iter().map(move |u| format!("{name}={u}")))
            .collect::<Vec<_>>()
            .join(",");
        let Some(local) = self.initial_cluster.get(&self.name) else {
            return Err(ConfigError::fatal(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        };
        let mut all: Vec<String> = self
            .initial_cluster
            .values()
            .flatten()
            .map(Url::to_string)
            .collect();
        all.sort();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::fatal(format!(
                "initial cluster {cluster_string} has duplicate url"
            )));
        }
        if self.initial_cluster_state == ClusterState::Existing {
            return Ok(());
        }
        let advertised: Vec<String> = self
            .initial_advertise_peer_urls
            .iter()
            .map(Url::to_string)
            .collect();
        let listed: Vec<String> = local.iter().map(Url::to_string).collect();
        if advertised == listed {
            return Ok(());
        }
        let detail = match advertised.iter().zip(&listed).find(|(a, b)| a != b) {
            Some((a, b)) if advertised.len() == listed.len() => {
                format!("resolved urls: {a:?} != {b:?}")
            }
            _ => format!(
                "len({}) != len({})",
                go_quote_list(&advertised),
                go_quote_list(&listed)
            ),
        };
        let missing: Vec<String> = listed
            .iter()
            .filter(|u| !advertised.contains(u))
            .map(|u| format!("{}={u}", self.name))
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::fatal(format!(
                "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({detail})",
                missing.join(","),
                advertised.join(",")
            )));
        }
        let own = advertised
            .iter()
            .map(|u| format!("{}={u}", self.name))
            .collect::<Vec<_>>()
            .join(",");
        let extra: Vec<&String> = advertised.iter().filter(|u| !listed.contains(u)).collect();
        Err(ConfigError::fatal(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={own}",
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )))
    }

    /// The `--help` text: etcd's layout, listing the flags Keelson implements.
    pub fn help_text() -> String {
        let mut out = String::from(
            "Usage:\n\n  keelson [flags]\n    Start a Keelson server.\n\n  keelson --version\n    \
             Show the version of Keelson.\n\n  keelson -h | --help\n    Show the help information \
             about Keelson.\n\nFlags (each can also be set with ETCD_<FLAG_NAME_IN_UPPER_SNAKE_CASE>; \
             setting both is an error):\n",
        );
        for f in FLAGS {
            out.push_str(&format!(
                "  --{} '{}'\n    {}\n",
                f.name, f.default, f.usage
            ));
        }
        out
    }
}

/// etcd's `checkBindURLs`: a listener needs an IP address (or `localhost`), not a host name.
fn check_bind_url(url: &Url) -> Result<(), String> {
    if matches!(url.scheme, Scheme::Unix | Scheme::Unixs) || url.host == "localhost" {
        return Ok(());
    }
    if url.host.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("expected IP in URL for binding ({url})"));
    }
    Ok(())
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// etcd's `types.NewURLsMap`: `name=url,name=url,...`; a name may repeat to list several URLs.
fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<Url>>, String> {
    let mut raw: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for entry in s.split(',').filter(|e| !e.is_empty()) {
        let (name, url) = entry.split_once('=').unwrap_or((entry, ""));
        raw.entry(name.to_string()).or_default().push(url);
    }
    raw.into_iter()
        .map(|(name, urls)| {
            let mut parsed = urls
                .into_iter()
                .map(Url::parse)
                .collect::<Result<Vec<_>, _>>()?;
            parsed.sort_by_cached_key(|u| u.to_string());
            Ok((name, parsed))
        })
        .collect()
}

/// etcd's `parseCompactionRetention`: a plain non-negative integer is hours (periodic) or a
/// revision count (revision); otherwise a Go duration.
fn parse_retention(mode: CompactionMode, retention: &str) -> Result<AutoCompaction, String> {
    let result = if let Ok(n) = retention.parse::<u64>() {
        match mode {
            _ if n == 0 => AutoCompaction::Disabled,
            CompactionMode::Revision => AutoCompaction::Revision(n),
            CompactionMode::Periodic => {
                let hours = n
                    .checked_mul(3600)
                    .ok_or_else(|| format!("retention {retention:?} is too long"))?;
                AutoCompaction::Periodic(Duration::from_secs(hours))
            }
        }
    } else {
        let (negative, d) = parse_go_duration(retention)?;
        if negative && !d.is_zero() {
            return Err(format!("negative retention {retention:?}"));
        }
        match mode {
            CompactionMode::Revision => {
                return Err(format!(
                    "revision mode needs a number of revisions, got {retention:?}"
                ));
            }
            _ if d.is_zero() => AutoCompaction::Disabled,
            CompactionMode::Periodic => AutoCompaction::Periodic(d),
        }
    };
    Ok(result)
}

/// A CPU list in the kernel's cpuset syntax: `0-3,6`. Empty means none.
fn parse_core_list(s: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("invalid CPU list {s:?}");
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse::<usize>().map_err(|_| bad())?,
                hi.parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let c = part.parse::<usize>().map_err(|_| bad())?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        for c in lo..=hi {
            if cores.contains(&c) {
                return Err(format!("CPU {c} listed twice in {s:?}"));
            }
            cores.push(c);
        }
    }
    Ok(cores)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` as the `flag` package reports it: base prefixes `0x`,
/// `0o`, `0b` and a leading `0` for octal, `_` between digits; no sign.
fn parse_go_uint(s: &str) -> Result<u64, String> {
    let (base, digits) = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, rest)
    } else if let Some(rest) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (2, rest)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let prefixed = digits.len() != s.len();
    let syntax = || "parse error".to_string();
    // Underscores only as separators: after a digit (or the base prefix) and before a digit.
    if digits.ends_with('_') || digits.contains("__") || (!prefixed && digits.starts_with('_')) {
        return Err(syntax());
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return Err(syntax());
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for c in cleaned.chars() {
        let d = c.to_digit(base).ok_or_else(syntax)?;
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        return Err("value out of range".to_string());
    }
    Ok(value)
}

/// Go's `strconv.ParseInt(s, 0, 64)`, with the `flag` package's messages.
fn parse_go_int(s: &str) -> Result<i64, String> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if unsigned.starts_with(['+', '-']) {
        return Err("parse error".to_string());
    }
    let magnitude = parse_go_uint(unsigned)?;
    let limit = if negative {
        1u64 << 63
    } else {
        (1u64 << 63) - 1
    };
    if magnitude > limit {
        return Err("value out of range".to_string());
    }
    Ok(if negative {
        0i64.wrapping_sub_unsigned(magnitude)
    } else {
        magnitude as i64
    })
}

/// Go's `time.ParseDuration`, returning (negative, magnitude) and Go's error messages.
fn parse_go_duration(s: &str) -> Result<(bool, Duration), String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok((negative, Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut nanos = int_value.checked_mul(unit_nanos).ok_or_else(invalid)?;
        // Fractions beyond nanosecond precision are truncated, as Go does.
        let mut scale = unit_nanos;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(invalid)?;
        // Go's durations are signed 64-bit nanoseconds.
        if total_nanos > i64::MAX as u128 + u128::from(negative) {
            return Err(invalid());
        }
        rest = after;
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| invalid())?;
    Ok((negative, Duration::from_nanos(nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(list: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args_and_env(args(list), no_env)
    }

    fn parse_env(list: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_args_and_env(args(list), move |k| vars.get(k).cloned())
    }

    fn err(list: &[&str]) -> String {
        parse(list).unwrap_err().to_string()
    }

    fn url(s: &str) -> Url {
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
    fn syntax_forms() {
        for form in [
            &["-name", "a"][..],
            &["--name", "a"],
            &["-name=a"],
            &["--name=a"],
        ] {
            assert_eq!(parse(form).unwrap().name, "a", "{form:?}");
        }
        // Booleans: bare means true, `=false` turns off, the last occurrence wins.
        assert!(parse(&["--enable-pprof"]).unwrap().enable_pprof);
        assert!(parse(&["-enable-pprof=true"]).unwrap().enable_pprof);
        assert!(
            !parse(&["--enable-pprof", "--enable-pprof=false"])
                .unwrap()
                .enable_pprof
        );
        assert!(parse(&["--enable-pprof=T"]).unwrap().enable_pprof);
        // A separate value after a boolean is a leftover argument, as in Go.
        assert_eq!(
            err(&["--enable-pprof", "false"]),
            "error verifying flags, 'false' is not a valid flag. See 'etcd --help'."
        );
        // A value may look like a flag; `=` inside a value is kept.
        assert_eq!(parse(&["--name", "-x"]).unwrap().name, "-x");
        assert_eq!(
            parse(&["--initial-cluster-token=a=b"])
                .unwrap()
                .initial_cluster_token,
            "a=b"
        );
        // Go's integer syntax.
        assert_eq!(parse(&["--max-txn-ops", "0x10"]).unwrap().max_txn_ops, 16);
        assert_eq!(parse(&["--max-txn-ops", "010"]).unwrap().max_txn_ops, 8);
        assert_eq!(
            parse(&["--snapshot-count", "1_000"])
                .unwrap()
                .snapshot_count,
            1000
        );
        // `--` ends the flags.
        assert_eq!(
            err(&["--", "--name", "x"]),
            "error verifying flags, '--name' is not a valid flag. See 'etcd --help'."
        );
    }

    #[test]
    fn help_and_version() {
        assert!(parse(&["-h"]).unwrap().help);
        assert!(parse(&["--help", "--no-such-flag"]).unwrap().help);
        assert!(parse(&["--version"]).unwrap().version);
        // --version is honoured before the environment is read.
        let c = parse_env(&["--version"], &[("ETCD_MAX_TXN_OPS", "abc")]).unwrap();
        assert!(c.version);
        let help = Config::help_text();
        for f in FLAGS {
            assert!(help.contains(&format!("--{} '", f.name)), "{}", f.name);
        }
        assert!(help.contains("--max-request-bytes '1572864'"));
    }

    #[test]
    fn flag_syntax_errors() {
        let e = parse(&["--no-such-flag"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "flag provided but not defined: -no-such-flag"
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.shows_usage());
        assert_eq!(
            err(&["-no-such-flag=1"]),
            "flag provided but not defined: -no-such-flag"
        );
        assert_eq!(err(&["--name"]), "flag needs an argument: -name");
        assert_eq!(err(&["---name", "x"]), "bad flag syntax: ---name");
        assert_eq!(
            err(&["--max-txn-ops", "abc"]),
            "invalid value \"abc\" for flag -max-txn-ops: parse error"
        );
        assert_eq!(
            err(&["--max-txn-ops", "-1"]),
            "invalid value \"-1\" for flag -max-txn-ops: parse error"
        );
        assert_eq!(
            err(&["--max-txn-ops", "99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -max-txn-ops: value out of range"
        );
        assert_eq!(
            err(&["--enable-pprof=maybe"]),
            "invalid boolean value \"maybe\" for -enable-pprof: parse error"
        );
        assert_eq!(
            err(&["--initial-cluster-state", "bad"]),
            "invalid value \"bad\" for flag -initial-cluster-state: invalid value"
        );
        assert_eq!(
            err(&["--experimental-watch-progress-notify-interval", "5"]),
            "invalid value \"5\" for flag -experimental-watch-progress-notify-interval: parse error"
        );
        // The first error wins, left to right.
        assert_eq!(
            err(&["--max-wals", "x", "--nope"]),
            "invalid value \"x\" for flag -max-wals: parse error"
        );
        let e = parse(&["stray"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error verifying flags, 'stray' is not a valid flag. See 'etcd --help'."
        );
        assert_eq!(e.exit_code(), 1);
        assert!(!e.shows_usage());
    }

    #[test]
    fn url_errors() {
        assert_eq!(
            err(&["--listen-client-urls", "foo"]),
            "invalid value \"foo\" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo"
        );
        assert_eq!(
            err(&["--listen-client-urls", "ftp://127.0.0.1:1"]),
            "invalid value \"ftp://127.0.0.1:1\" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://127.0.0.1:1"
        );
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1:1/x"]),
            "invalid value \"http://127.0.0.1:1/x\" for flag -listen-client-urls: URL must not contain a path: http://127.0.0.1:1/x"
        );
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1"]),
            "invalid value \"http://127.0.0.1\" for flag -listen-client-urls: URL address does not have the form \"host:port\": http://127.0.0.1"
        );
        assert_eq!(
            err(&[
                "--listen-client-urls",
                "http://example.com:2379",
                "--advertise-client-urls",
                "http://example.com:2379"
            ]),
            "error verifying flags, expected IP in URL for binding (http://example.com:2379). See 'etcd --help'."
        );
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1:2379"]),
            "error verifying flags, --advertise-client-urls is required when --listen-client-urls is set explicitly. See 'etcd --help'."
        );
        assert_eq!(
            err(&["--initial-advertise-peer-urls", "http://:2380"]),
            "error verifying flags, --initial-advertise-peer-urls \"http://:2380\" must be \"host:port\" (unexpected empty host (http://:2380)). See 'etcd --help'."
        );
    }

    #[test]
    fn urls_are_parsed_and_sorted() {
        let c = parse(&[
            "--listen-client-urls",
            "https://127.0.0.1:2479, http://[::1]:2379",
            "--advertise-client-urls",
            "http://node1.example:2379",
        ])
        .unwrap();
        assert_eq!(
            c.listen_client_urls,
            vec![
                Url {
                    scheme: Scheme::Http,
                    host: "::1".into(),
                    port: 2379
                },
                Url {
                    scheme: Scheme::Https,
                    host: "127.0.0.1".into(),
                    port: 2479
                },
            ]
        );
        assert_eq!(c.listen_client_urls[0].to_string(), "http://[::1]:2379");
        assert!(c.listen_client_urls[1].scheme.is_tls());
        assert_eq!(c.advertise_client_urls[0].host, "node1.example");
    }

    #[test]
    fn environment() {
        let c = parse_env(
            &[],
            &[
                ("ETCD_NAME", "n1"),
                ("ETCD_MAX_TXN_OPS", "256"),
                ("ETCD_ENABLE_PPROF", "1"),
                ("ETCD_HEARTBEAT_INTERVAL", "200"),
                ("ETCD_ELECTION_TIMEOUT", "2000"),
                ("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "1m30s"),
                ("ETCD_QUOTA_BACKEND_BYTES", "-1"),
                ("ETCD_WAL_DIR", ""),
            ],
        )
        .unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.data_dir, "n1.etcd");
        assert_eq!(c.max_txn_ops, 256);
        assert!(c.enable_pprof);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(c.election_timeout, Duration::from_secs(2));
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(90));
        assert_eq!(c.quota_backend_bytes, None);
        assert_eq!(c.wal_dir, None, "an empty variable counts as unset");
        assert_eq!(
            env_var_name("initial-advertise-peer-urls"),
            "ETCD_INITIAL_ADVERTISE_PEER_URLS"
        );

        // Listen URLs set through the environment count as set explicitly.
        assert_eq!(
            parse_env(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")])
                .unwrap_err()
                .to_string(),
            "error verifying flags, --advertise-client-urls is required when --listen-client-urls is set explicitly. See 'etcd --help'."
        );
        assert_eq!(
            parse_env(&[], &[("ETCD_MAX_TXN_OPS", "abc")])
                .unwrap_err()
                .to_string(),
            "error verifying flags, invalid value \"abc\" for ETCD_MAX_TXN_OPS: parse error. See 'etcd --help'."
        );
        assert_eq!(
            parse_env(&[], &[("ETCD_ENABLE_PPROF", "maybe")])
                .unwrap_err()
                .to_string(),
            "error verifying flags, invalid value \"maybe\" for ETCD_ENABLE_PPROF: parse error. See 'etcd --help'."
        );
    }

    #[test]
    fn flag_and_env_for_the_same_setting_conflict() {
        // etcd 3.4 does not let the flag override the variable: it refuses to start.
        let expected = "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)";
        let e = parse_env(&["--name", "bar"], &[("ETCD_NAME", "foo")]).unwrap_err();
        assert_eq!(e.to_string(), expected);
        assert_eq!(e.exit_code(), 1);
        // Even an empty variable conflicts.
        assert_eq!(
            parse_env(&["--name", "bar"], &[("ETCD_NAME", "")])
                .unwrap_err()
                .to_string(),
            expected
        );
        // Different settings combine.
        let c = parse_env(&["--name", "bar"], &[("ETCD_MAX_WALS", "0")]).unwrap();
        assert_eq!((c.name.as_str(), c.max_wals), ("bar", 0));
        // Flag-syntax errors are reported before the environment is read.
        assert_eq!(
            parse_env(&["--nope"], &[("ETCD_NAME", "foo")])
                .unwrap_err()
                .to_string(),
            "flag provided but not defined: -nope"
        );
    }

    #[test]
    fn timing_validation() {
        assert_eq!(
            err(&["--election-timeout", "400"]),
            "error verifying flags, --election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]. See 'etcd --help'."
        );
        parse(&["--election-timeout", "500"]).unwrap();
        assert_eq!(
            err(&["--heartbeat-interval", "0"]),
            "error verifying flags, --heartbeat-interval must be >0 (set to 0ms). See 'etcd --help'."
        );
        assert_eq!(
            err(&["--election-timeout", "0"]),
            "error verifying flags, --election-timeout must be >0 (set to 0ms). See 'etcd --help'."
        );
        assert_eq!(
            err(&[
                "--election-timeout",
                "60000",
                "--heartbeat-interval",
                "1000"
            ]),
            "error verifying flags, --election-timeout[60000ms] is too long, and should be set less than 50000ms. See 'etcd --help'."
        );
        parse(&[
            "--election-timeout",
            "50000",
            "--heartbeat-interval",
            "1000",
        ])
        .unwrap();
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
    fn auto_compaction() {
        let periodic =
            |r: &str| parse(&["--auto-compaction-retention", r]).map(|c| c.auto_compaction);
        assert_eq!(
            periodic("1").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            periodic("1h").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            periodic("30m").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            periodic("1.5h").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(5400))
        );
        assert_eq!(periodic("0").unwrap(), AutoCompaction::Disabled);
        assert_eq!(
            periodic("1x").unwrap_err().to_string(),
            "error parsing CompactionRetention: time: unknown unit \"x\" in duration \"1x\""
        );
        assert_eq!(
            periodic("-1").unwrap_err().to_string(),
            "error parsing CompactionRetention: time: missing unit in duration \"-1\""
        );
        let c = parse(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1000",
        ])
        .unwrap();
        assert_eq!(c.auto_compaction_mode, CompactionMode::Revision);
        assert_eq!(c.auto_compaction, AutoCompaction::Revision(1000));
        assert!(
            parse(&[
                "--auto-compaction-mode",
                "revision",
                "--auto-compaction-retention",
                "1h"
            ])
            .is_err()
        );
        assert_eq!(
            err(&["--auto-compaction-mode", "bad"]),
            "error verifying flags, unknown auto-compaction-mode \"bad\". See 'etcd --help'."
        );
    }

    #[test]
    fn initial_cluster_defaults_follow_the_name() {
        // Name only: initial cluster becomes <name>=<advertise peer URLs>, data dir <name>.etcd.
        let c = parse(&[
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
        ])
        .unwrap();
        assert_eq!(c.data_dir, "n1.etcd");
        assert_eq!(
            c.initial_cluster,
            BTreeMap::from([("n1".to_string(), vec![url("http://10.0.0.1:2380")])])
        );
        c.verify_bootstrap().unwrap();
        // The default name keeps the default cluster even if the peer URL changed, as in etcd,
        // which then refuses to bootstrap.
        let c = parse(&["--initial-advertise-peer-urls", "http://127.0.0.1:23803"]).unwrap();
        assert_eq!(
            c.verify_bootstrap().unwrap_err().to_string(),
            "--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:23803 (resolved urls: \"http://127.0.0.1:23803\" != \"http://localhost:2380\")"
        );
        // An explicit data dir and cluster are kept.
        let c = parse(&[
            "--name",
            "a",
            "--data-dir",
            "/var/lib/k",
            "--initial-cluster",
            "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
        ])
        .unwrap();
        assert_eq!(c.data_dir, "/var/lib/k");
        assert_eq!(c.initial_cluster.len(), 2);
        c.verify_bootstrap().unwrap();
    }

    #[test]
    fn bootstrap_checks() {
        let with = |extra: &[&str]| {
            let mut a = vec!["--initial-advertise-peer-urls", "http://127.0.0.1:23803"];
            a.extend_from_slice(extra);
            parse(&a)
        };
        assert_eq!(
            with(&["--initial-cluster", "other=http://127.0.0.1:23803"])
                .unwrap()
                .verify_bootstrap()
                .unwrap_err()
                .to_string(),
            "couldn't find local name \"default\" in the initial cluster configuration"
        );
        assert_eq!(
            with(&["--initial-cluster", "foo"]).unwrap_err().to_string(),
            "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: "
        );
        assert_eq!(
            with(&[
                "--initial-cluster",
                "default=http://127.0.0.1:23803,default=http://127.0.0.1:23804"
            ])
            .unwrap()
            .verify_bootstrap()
            .unwrap_err()
            .to_string(),
            "--initial-cluster has default=http://127.0.0.1:23804 but missing from --initial-advertise-peer-urls=http://127.0.0.1:23803 (len([\"http://127.0.0.1:23803\"]) != len([\"http://127.0.0.1:23803\" \"http://127.0.0.1:23804\"]))"
        );
        let c = parse(&[
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:23803,http://127.0.0.1:23805",
            "--initial-cluster",
            "default=http://127.0.0.1:23803",
        ])
        .unwrap();
        assert_eq!(
            c.verify_bootstrap().unwrap_err().to_string(),
            "--initial-advertise-peer-urls has http://127.0.0.1:23805 but missing from --initial-cluster=default=http://127.0.0.1:23803,default=http://127.0.0.1:23805"
        );
        assert_eq!(
            with(&[
                "--initial-cluster",
                "default=http://127.0.0.1:23803,b=http://127.0.0.1:23803"
            ])
            .unwrap()
            .verify_bootstrap()
            .unwrap_err()
            .to_string(),
            "initial cluster b=http://127.0.0.1:23803,default=http://127.0.0.1:23803 has duplicate url"
        );
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
    fn keelson_placement_flags() {
        let c = parse(&["--grpc-cores", "0-2,5", "--node-core", "3"]).unwrap();
        assert_eq!(c.grpc_cores, vec![0, 1, 2, 5]);
        assert_eq!(c.node_core, Some(3));
        let c = parse_env(&[], &[("ETCD_GRPC_CORES", "1")]).unwrap();
        assert_eq!(c.grpc_cores, vec![1]);
        assert_eq!(
            err(&["--grpc-cores", "3-1"]),
            "invalid value \"3-1\" for flag -grpc-cores: invalid CPU list \"3-1\""
        );
        assert!(parse(&["--grpc-cores", "1,1"]).is_err());
        assert_eq!(
            parse(&["--busy-poll", "0"]).unwrap().busy_poll,
            Duration::ZERO
        );
        let c = parse_env(&[], &[("ETCD_BUSY_POLL", "1.5ms")]).unwrap();
        assert_eq!(c.busy_poll, Duration::from_micros(1500));
        assert!(parse(&["--busy-poll", "-1ms"]).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Ok((false, Duration::ZERO)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Ok((false, Duration::from_millis(3_723_500)))
        );
        assert_eq!(
            parse_go_duration("100us"),
            Ok((false, Duration::from_micros(100)))
        );
        assert_eq!(
            parse_go_duration("1\u{b5}s"),
            Ok((false, Duration::from_micros(1)))
        );
        assert_eq!(
            parse_go_duration(".5s"),
            Ok((false, Duration::from_millis(500)))
        );
        assert_eq!(parse_go_duration("-3s"), Ok((true, Duration::from_secs(3))));
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".to_string())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err("time: invalid duration \"abc\"".to_string())
        );
        assert_eq!(
            parse_go_duration("1"),
            Err("time: missing unit in duration \"1\"".to_string())
        );
        assert_eq!(
            parse_go_duration("3000000h"),
            Err("time: invalid duration \"3000000h\"".to_string())
        );
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_go_uint("0"), Ok(0));
        assert_eq!(parse_go_uint("0b101"), Ok(5));
        assert_eq!(parse_go_uint("0x_ff"), Ok(255));
        assert_eq!(parse_go_uint("_1"), Err("parse error".to_string()));
        assert_eq!(parse_go_uint("1__0"), Err("parse error".to_string()));
        assert_eq!(parse_go_uint("09"), Err("parse error".to_string()));
        assert_eq!(parse_go_uint("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_go_uint("18446744073709551616"),
            Err("value out of range".to_string())
        );
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_go_int("+5"), Ok(5));
        assert_eq!(
            parse_go_int("9223372036854775808"),
            Err("value out of range".to_string())
        );
    }
}
