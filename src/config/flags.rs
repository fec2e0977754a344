//! The flag table: every flag Keelson accepts, with the kind of value it takes, its default as
//! `--help` shows it and its usage line; and the `ETCD_*` variable of each flag.
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
    Uint,
    Int,
    GoDuration,
    Urls,
    ClusterState,
    CoreList,
    Core,
}

pub(super) struct FlagSpec {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// As shown by `--help`.
    pub(super) default: &'static str,
    pub(super) usage: &'static str,
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
pub(super) const FLAGS: &[FlagSpec] = &[
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
pub(super) const NOT_FROM_ENV: &[&str] = &["version"];

pub(super) fn spec(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|f| f.name == name)
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
    }
}
