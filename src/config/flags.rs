//! The flag table: every flag etcd 3.4.23 accepts (and Keelson's own), with the kind of value
//! it takes, its default as `--help` shows it, its usage line, and, for the few that cannot
//! apply to Keelson, why it is ignored; and the `ETCD_*` variable of each flag.
//!
//! Owns: which flags exist and how their values are spelled. Never: parses values or decides
//! what a flag does.

use super::ENV_PREFIX;

/// How a flag's value is parsed. Booleans matter to the syntax: they never consume the next
/// argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Bool,
    /// Go's `uint` (64 bits): `flag.UintVar`, `Uint64Var`.
    Uint,
    /// etcd's `flags.Uint32Value`, which reports `strconv`'s own errors.
    Uint32,
    /// Go's `int` and `int64`.
    Int,
    GoDuration,
    /// etcd's `UniqueURLs`: a comma-separated URL list; an empty value keeps the list as it was.
    Urls,
    /// `--cors`: a URL list where `*` (allow every origin) is also accepted.
    UrlsOrAny,
    /// etcd's `UniqueStringsValue`: a comma-separated set, kept sorted.
    UniqueStrings,
    /// etcd's `StringsValue`: a comma-separated list in the order given.
    Strings,
    /// etcd's `SelectiveStringValue`: one of the listed words.
    Choice(&'static [&'static str]),
    /// A flag etcd dropped long ago and still swallows with a warning (`IgnoredFlag`): boolean
    /// syntax, any value.
    Retired,
    CoreList,
    Core,
}

#[derive(Clone, Copy)]
pub(super) struct FlagSpec {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// As shown by `--help`.
    pub(super) default: &'static str,
    pub(super) usage: &'static str,
    /// The `--help` section it is listed under.
    pub(super) section: &'static str,
    /// Set when Keelson accepts the flag only so that etcd's command lines work: what is
    /// ignored and why, logged once at startup when the flag is set to anything but its default.
    pub(super) ignored: Option<&'static str>,
}

const MEMBER: &str = "Member";
const CLUSTERING: &str = "Clustering";
const SECURITY: &str = "Security";
const AUTH: &str = "Auth";
const MONITORING: &str = "Profiling and Monitoring";
const LOGGING: &str = "Logging";
const V2_PROXY: &str = "v2 Proxy (ignored: Keelson is always a member)";
const EXPERIMENTAL: &str = "Experimental feature";
const UNSAFE: &str = "Unsafe feature";
const DEPRECATED: &str = "To be deprecated";
const KEELSON: &str = "Keelson extensions";

const NO_V2: &str = "Keelson serves only the v3 API";
const NO_PROXY: &str = "Keelson runs only as a cluster member, never as etcd's v2 proxy";
const NO_BBOLT: &str = "Keelson's B+tree is not bbolt; it commits every apply batch and syncs \
                        in the background every 100 ms";

const fn flag(
    section: &'static str,
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
        section,
        ignored: None,
    }
}

const fn ignored(
    section: &'static str,
    name: &'static str,
    kind: Kind,
    default: &'static str,
    usage: &'static str,
    why: &'static str,
) -> FlagSpec {
    FlagSpec {
        ignored: Some(why),
        ..flag(section, name, kind, default, usage)
    }
}

/// Every flag Keelson accepts, in the order of etcd's `--help`. `help` is not here: like Go's
/// `flag` package, `-h`/`-help` are recognised only because no flag claims them.
pub(super) const FLAGS: &[FlagSpec] = &[
    flag(
        MEMBER,
        "config-file",
        Kind::Str,
        "",
        "Path to the server configuration file (etcd's YAML). Flags and environment variables are then ignored.",
    ),
    flag(
        MEMBER,
        "name",
        Kind::Str,
        "default",
        "Human-readable name for this member.",
    ),
    flag(
        MEMBER,
        "data-dir",
        Kind::Str,
        "${name}.etcd",
        "Path to the data directory.",
    ),
    flag(
        MEMBER,
        "wal-dir",
        Kind::Str,
        "",
        "Path to the dedicated wal directory.",
    ),
    flag(
        MEMBER,
        "snapshot-count",
        Kind::Uint,
        "100000",
        "Number of committed transactions to trigger a snapshot to disk.",
    ),
    flag(
        MEMBER,
        "heartbeat-interval",
        Kind::Uint,
        "100",
        "Time (in milliseconds) of a heartbeat interval.",
    ),
    flag(
        MEMBER,
        "election-timeout",
        Kind::Uint,
        "1000",
        "Time (in milliseconds) for an election to timeout.",
    ),
    flag(
        MEMBER,
        "initial-election-tick-advance",
        Kind::Bool,
        "true",
        "Whether to fast-forward initial election ticks on boot for faster election.",
    ),
    flag(
        MEMBER,
        "listen-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of URLs to listen on for peer traffic.",
    ),
    flag(
        MEMBER,
        "listen-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of URLs to listen on for client traffic.",
    ),
    ignored(
        MEMBER,
        "max-snapshots",
        Kind::Uint,
        "5",
        "Maximum number of snapshot files to retain (0 is unlimited).",
        "Keelson writes no snapshot files: its B+tree is the snapshot",
    ),
    flag(
        MEMBER,
        "max-wals",
        Kind::Uint,
        "5",
        "Maximum number of wal files to retain (0 is unlimited).",
    ),
    flag(
        MEMBER,
        "quota-backend-bytes",
        Kind::Int,
        "0",
        "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
    ),
    ignored(
        MEMBER,
        "backend-batch-interval",
        Kind::GoDuration,
        "",
        "BackendBatchInterval is the maximum time before commit the backend transaction.",
        NO_BBOLT,
    ),
    ignored(
        MEMBER,
        "backend-batch-limit",
        Kind::Int,
        "0",
        "BackendBatchLimit is the maximum operations before commit the backend transaction.",
        NO_BBOLT,
    ),
    flag(
        MEMBER,
        "max-txn-ops",
        Kind::Uint,
        "128",
        "Maximum number of operations permitted in a transaction.",
    ),
    flag(
        MEMBER,
        "max-request-bytes",
        Kind::Uint,
        "1572864",
        "Maximum client request size in bytes the server will accept.",
    ),
    flag(
        MEMBER,
        "max-concurrent-streams",
        Kind::Uint32,
        "math.MaxUint32",
        "Maximum concurrent streams that each client can open at a time.",
    ),
    ignored(
        MEMBER,
        "grpc-keepalive-min-time",
        Kind::GoDuration,
        "5s",
        "Minimum duration interval that a client should wait before pinging server.",
        "the HTTP/2 server under Keelson does not police the rate of client pings",
    ),
    flag(
        MEMBER,
        "grpc-keepalive-interval",
        Kind::GoDuration,
        "2h",
        "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
    ),
    flag(
        MEMBER,
        "grpc-keepalive-timeout",
        Kind::GoDuration,
        "20s",
        "Additional duration of wait before closing a non-responsive connection (0 to disable).",
    ),
    flag(
        CLUSTERING,
        "initial-advertise-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster.",
    ),
    flag(
        CLUSTERING,
        "initial-cluster",
        Kind::Str,
        "default=http://localhost:2380",
        "Initial cluster configuration for bootstrapping.",
    ),
    flag(
        CLUSTERING,
        "initial-cluster-state",
        Kind::Choice(&["new", "existing"]),
        "new",
        "Initial cluster state ('new' or 'existing').",
    ),
    flag(
        CLUSTERING,
        "initial-cluster-token",
        Kind::Str,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during bootstrap.",
    ),
    flag(
        CLUSTERING,
        "advertise-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of this member's client URLs to advertise to the public.",
    ),
    flag(
        CLUSTERING,
        "discovery",
        Kind::Str,
        "",
        "Discovery URL used to bootstrap the cluster.",
    ),
    flag(
        CLUSTERING,
        "discovery-fallback",
        Kind::Choice(&["proxy", "exit"]),
        "proxy",
        "Expected behavior ('exit' or 'proxy') when discovery services fails.",
    ),
    flag(
        CLUSTERING,
        "discovery-proxy",
        Kind::Str,
        "",
        "HTTP proxy to use for traffic to discovery service.",
    ),
    flag(
        CLUSTERING,
        "discovery-srv",
        Kind::Str,
        "",
        "DNS srv domain used to bootstrap the cluster.",
    ),
    flag(
        CLUSTERING,
        "discovery-srv-name",
        Kind::Str,
        "",
        "Suffix to the dns srv name queried when bootstrapping.",
    ),
    flag(
        CLUSTERING,
        "strict-reconfig-check",
        Kind::Bool,
        "true",
        "Reject reconfiguration requests that would cause quorum loss.",
    ),
    flag(
        CLUSTERING,
        "pre-vote",
        Kind::Bool,
        "false",
        "Enable to run an additional Raft election phase.",
    ),
    flag(
        CLUSTERING,
        "auto-compaction-retention",
        Kind::Str,
        "0",
        "Auto compaction retention length. 0 means disable auto compaction.",
    ),
    flag(
        CLUSTERING,
        "auto-compaction-mode",
        Kind::Str,
        "periodic",
        "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.",
    ),
    ignored(
        CLUSTERING,
        "enable-v2",
        Kind::Bool,
        "false",
        "Accept etcd V2 client requests.",
        NO_V2,
    ),
    flag(
        SECURITY,
        "cert-file",
        Kind::Str,
        "",
        "Path to the client server TLS cert file.",
    ),
    flag(
        SECURITY,
        "key-file",
        Kind::Str,
        "",
        "Path to the client server TLS key file.",
    ),
    flag(
        SECURITY,
        "client-cert-auth",
        Kind::Bool,
        "false",
        "Enable client cert authentication.",
    ),
    flag(
        SECURITY,
        "client-crl-file",
        Kind::Str,
        "",
        "Path to the client certificate revocation list file.",
    ),
    flag(
        SECURITY,
        "client-cert-allowed-hostname",
        Kind::Str,
        "",
        "Allowed TLS hostname for client cert authentication.",
    ),
    flag(
        SECURITY,
        "trusted-ca-file",
        Kind::Str,
        "",
        "Path to the client server TLS trusted CA cert file.",
    ),
    flag(
        SECURITY,
        "auto-tls",
        Kind::Bool,
        "false",
        "Client TLS using generated certificates.",
    ),
    flag(
        SECURITY,
        "peer-cert-file",
        Kind::Str,
        "",
        "Path to the peer server TLS cert file.",
    ),
    flag(
        SECURITY,
        "peer-key-file",
        Kind::Str,
        "",
        "Path to the peer server TLS key file.",
    ),
    flag(
        SECURITY,
        "peer-client-cert-auth",
        Kind::Bool,
        "false",
        "Enable peer client cert authentication.",
    ),
    flag(
        SECURITY,
        "peer-trusted-ca-file",
        Kind::Str,
        "",
        "Path to the peer server TLS trusted CA file.",
    ),
    flag(
        SECURITY,
        "peer-cert-allowed-cn",
        Kind::Str,
        "",
        "Required CN for client certs connecting to the peer endpoint.",
    ),
    flag(
        SECURITY,
        "peer-cert-allowed-hostname",
        Kind::Str,
        "",
        "Allowed TLS hostname for inter peer authentication.",
    ),
    flag(
        SECURITY,
        "peer-auto-tls",
        Kind::Bool,
        "false",
        "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.",
    ),
    flag(
        SECURITY,
        "peer-crl-file",
        Kind::Str,
        "",
        "Path to the peer certificate revocation list file.",
    ),
    flag(
        SECURITY,
        "cipher-suites",
        Kind::Strings,
        "",
        "Comma-separated list of supported TLS cipher suites between client/server and peers (empty: the TLS library's choice).",
    ),
    flag(
        SECURITY,
        "cors",
        Kind::UrlsOrAny,
        "*",
        "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).",
    ),
    flag(
        SECURITY,
        "host-whitelist",
        Kind::UniqueStrings,
        "*",
        "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).",
    ),
    flag(
        AUTH,
        "auth-token",
        Kind::Str,
        "simple",
        "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
    ),
    flag(
        AUTH,
        "bcrypt-cost",
        Kind::Uint,
        "10",
        "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.",
    ),
    flag(
        AUTH,
        "auth-token-ttl",
        Kind::Uint,
        "300",
        "Time (in seconds) of the auth-token-ttl.",
    ),
    ignored(
        MONITORING,
        "enable-pprof",
        Kind::Bool,
        "false",
        "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"",
        "pprof is the Go runtime's profiler, which Keelson does not have",
    ),
    flag(
        MONITORING,
        "metrics",
        Kind::Str,
        "basic",
        "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.",
    ),
    flag(
        MONITORING,
        "listen-metrics-urls",
        Kind::Urls,
        "",
        "List of URLs to listen on for the metrics and health endpoints.",
    ),
    flag(
        LOGGING,
        "logger",
        Kind::Str,
        "capnslog",
        "Specify 'zap' for structured logging (JSON lines) or 'capnslog' (text lines).",
    ),
    flag(
        LOGGING,
        "log-outputs",
        Kind::UniqueStrings,
        "default",
        "Specify 'stdout' or 'stderr', or list of comma separated output targets (file paths).",
    ),
    flag(
        LOGGING,
        "log-level",
        Kind::Str,
        "info",
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
    ),
    ignored(
        V2_PROXY,
        "proxy",
        Kind::Choice(&["off", "readonly", "on"]),
        "off",
        "Proxy mode setting ('off', 'readonly' or 'on').",
        NO_PROXY,
    ),
    ignored(
        V2_PROXY,
        "proxy-failure-wait",
        Kind::Uint,
        "5000",
        "Time (in milliseconds) an endpoint will be held in a failed state.",
        NO_PROXY,
    ),
    ignored(
        V2_PROXY,
        "proxy-refresh-interval",
        Kind::Uint,
        "30000",
        "Time (in milliseconds) of the endpoints refresh interval.",
        NO_PROXY,
    ),
    ignored(
        V2_PROXY,
        "proxy-dial-timeout",
        Kind::Uint,
        "1000",
        "Time (in milliseconds) for a dial to timeout.",
        NO_PROXY,
    ),
    ignored(
        V2_PROXY,
        "proxy-write-timeout",
        Kind::Uint,
        "5000",
        "Time (in milliseconds) for a write to timeout.",
        NO_PROXY,
    ),
    ignored(
        V2_PROXY,
        "proxy-read-timeout",
        Kind::Uint,
        "0",
        "Time (in milliseconds) for a read to timeout.",
        NO_PROXY,
    ),
    flag(
        EXPERIMENTAL,
        "experimental-initial-corrupt-check",
        Kind::Bool,
        "false",
        "Enable to check data corruption before serving any client/peer traffic.",
    ),
    flag(
        EXPERIMENTAL,
        "experimental-corrupt-check-time",
        Kind::GoDuration,
        "0s",
        "Duration of time between cluster corruption check passes.",
    ),
    ignored(
        EXPERIMENTAL,
        "experimental-enable-v2v3",
        Kind::Str,
        "",
        "Serve v2 requests through the v3 backend under a given prefix.",
        NO_V2,
    ),
    ignored(
        EXPERIMENTAL,
        "experimental-backend-bbolt-freelist-type",
        Kind::Str,
        "array",
        "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).",
        NO_BBOLT,
    ),
    flag(
        EXPERIMENTAL,
        "experimental-enable-lease-checkpoint",
        Kind::Bool,
        "false",
        "Enable the leader to checkpoint the remaining TTL of leases (Keelson always does).",
    ),
    flag(
        EXPERIMENTAL,
        "experimental-enable-lease-checkpoint-persist",
        Kind::Bool,
        "false",
        "Persist the checkpointed remaining TTL (Keelson always does); requires experimental-enable-lease-checkpoint.",
    ),
    flag(
        EXPERIMENTAL,
        "experimental-compaction-batch-limit",
        Kind::Int,
        "1000",
        "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.",
    ),
    flag(
        EXPERIMENTAL,
        "experimental-peer-skip-client-san-verification",
        Kind::Bool,
        "false",
        "Skip verification of SAN field in client certificate for peer connections.",
    ),
    flag(
        EXPERIMENTAL,
        "experimental-watch-progress-notify-interval",
        Kind::GoDuration,
        "10m",
        "Duration of periodical watch progress notification.",
    ),
    flag(
        EXPERIMENTAL,
        "experimental-warning-apply-duration",
        Kind::GoDuration,
        "100ms",
        "Warning is generated if requests take more than this duration.",
    ),
    flag(
        EXPERIMENTAL,
        "enable-grpc-gateway",
        Kind::Bool,
        "true",
        "Enable the gRPC gateway (etcd's JSON API under /v3/).",
    ),
    flag(
        UNSAFE,
        "force-new-cluster",
        Kind::Bool,
        "false",
        "Force to create a new one-member cluster.",
    ),
    ignored(
        UNSAFE,
        "unsafe-no-fsync",
        Kind::Bool,
        "false",
        "Disables fsync, unsafe, will cause data loss.",
        "Keelson acknowledges a write only after its fdatasync",
    ),
    flag(
        DEPRECATED,
        "debug",
        Kind::Bool,
        "false",
        "Enable debug-level logging. Use '--log-level=debug' instead.",
    ),
    ignored(
        DEPRECATED,
        "log-package-levels",
        Kind::Str,
        "",
        "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
        "capnslog's per-package levels have no counterpart; use --log-level",
    ),
    flag(
        DEPRECATED,
        "log-output",
        Kind::UniqueStrings,
        "default",
        "Use '--log-outputs'.",
    ),
    flag(
        KEELSON,
        "grpc-cores",
        Kind::CoreList,
        "",
        "CPU cores for the gRPC threads, as a list such as '0-3,6' (default: every core but the node's).",
    ),
    flag(
        KEELSON,
        "node-core",
        Kind::Core,
        "",
        "CPU core for the consensus and storage thread (default: the last core).",
    ),
    flag(
        KEELSON,
        "busy-poll",
        Kind::GoDuration,
        "250us",
        "How long the consensus and storage thread, and a gRPC thread awaiting its answer, busy-poll before sleeping; 0 sleeps at once.",
    ),
    flag(
        MEMBER,
        "version",
        Kind::Bool,
        "false",
        "Print the version and exit.",
    ),
];

/// Flags etcd dropped in earlier versions and still accepts, warning that each is ignored
/// (etcd's `ignored` list; `test.*` are Go's coverage flags).
pub(super) const RETIRED: &[&str] = &[
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
    "test.coverprofile",
    "test.outputdir",
];

/// A retired flag as a table entry, so the parser treats every flag alike.
const fn retired(name: &'static str) -> FlagSpec {
    flag(DEPRECATED, name, Kind::Retired, "", "")
}

/// Flags that the environment cannot set: they are handled before etcd reads the environment.
pub(super) const NOT_FROM_ENV: &[&str] = &["version", "config-file"];

/// The flag named `name`, including the retired ones.
pub(super) fn spec(name: &str) -> Option<FlagSpec> {
    if let Some(spec) = FLAGS.iter().find(|f| f.name == name) {
        return Some(*spec);
    }
    RETIRED.iter().find(|r| **r == name).map(|r| retired(r))
}

/// `--some-flag` → `ETCD_SOME_FLAG`.
pub fn env_var_name(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::{parse, parse_env};

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
        for r in RETIRED {
            assert!(!help.contains(&format!("--{r} ")), "{r}");
        }
    }

    #[test]
    fn names_are_unique_and_retired_ones_apart() {
        for (i, f) in FLAGS.iter().enumerate() {
            assert!(
                FLAGS[i + 1..].iter().all(|g| g.name != f.name),
                "{} twice",
                f.name
            );
            assert!(!RETIRED.contains(&f.name), "{}", f.name);
        }
        assert_eq!(spec("vv").map(|s| s.kind), Some(Kind::Retired));
        assert_eq!(
            env_var_name("experimental-initial-corrupt-check"),
            "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK"
        );
    }
}
