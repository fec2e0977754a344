//! The command line: global options, one option struct per workload, and
//! the `compare` subcommand.
//!
//! Flag names and defaults follow etcd's `benchmark` tool wherever it has the
//! same knob, so a command that works there works here. Global flags may
//! appear before or after the workload name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::flags::FlagSet;
use crate::keys;

/// etcd benchmark's default endpoint.
const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
/// Upper bound on one workload's wall time, so a stalled server cannot hang a run.
const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// How long compare waits for a server to answer its first Range.
const DEFAULT_START_TIMEOUT_SECS: u64 = 30;
/// fdatasync calls used to measure the disk floor.
const DEFAULT_FSYNC_SAMPLES: usize = 1000;
/// A/B/A/B by default: two rounds each, interleaved, so drift hits both.
const DEFAULT_ROUNDS: u32 = 2;

/// Workloads compare runs when no `--workload` is given. They run in this
/// order, so the range workloads read keys the put workload wrote.
pub const DEFAULT_COMPARE_WORKLOADS: &[&str] = &[
    "put --clients 16 --total 10000 --key-space-size 10000 --sequential-keys --val-size 256",
    "range 00000000 --consistency s --clients 16 --total 10000",
    "range 00000000 --consistency l --clients 16 --total 10000",
    "txn-put --clients 16 --total 5000 --txn-ops 4 --key-space-size 10000 --val-size 256",
    "lease-keepalive --clients 16 --total 10000",
    "watch-latency --clients 16 --total 200 --put-rate 100",
];

/// `compare --suite full`: every workload the team's performance page reports,
/// at the sizes it reports them.
pub const FULL_SUITE: &[&str] = &[
    "put --clients 1 --conns 1 --total 2000 --key-size 8 --val-size 256 --key-space-size 100000 --sequential-keys",
    "put --clients 16 --conns 4 --total 20000 --key-size 8 --val-size 256 --key-space-size 100000 --sequential-keys",
    "put --clients 256 --conns 32 --total 20000 --key-size 8 --val-size 256 --key-space-size 100000 --sequential-keys",
    "put --clients 1000 --conns 100 --total 20000 --key-size 8 --val-size 256 --key-space-size 100000 --sequential-keys",
    "range 00000000 --consistency s --clients 16 --conns 4 --total 20000",
    "range 00000000 --consistency l --clients 16 --conns 4 --total 20000",
    "range 00000000 00000100 --consistency s --clients 16 --conns 4 --total 10000",
    "range 00000000 00000100 --consistency l --clients 16 --conns 4 --total 10000",
    "txn-put --clients 16 --conns 4 --total 10000 --txn-ops 4 --key-size 8 --val-size 256 --key-space-size 100000",
    "lease-keepalive --clients 100 --conns 10 --total 50000",
    "watch --streams 10 --watch-per-stream 100 --put-total 1000 --clients 10 --conns 10",
    "watch-latency --total 200 --put-rate 100 --clients 1000 --conns 10",
];

/// `compare --suite million --rounds 1`: one million 32-byte keys with 256-byte
/// values, after which compare reports memory, data size and restart time.
pub const MILLION_SUITE: &[&str] = &[
    "put --clients 256 --conns 32 --total 1000000 --key-size 32 --val-size 256 --key-space-size 1000000 --sequential-keys --timeout 900",
];

/// The workload list a `--suite` name stands for.
fn suite(name: &str) -> Result<&'static [&'static str], String> {
    match name {
        "standard" => Ok(DEFAULT_COMPARE_WORKLOADS),
        "full" => Ok(FULL_SUITE),
        "million" => Ok(MILLION_SUITE),
        other => Err(format!(
            "unknown --suite {other:?} (standard, full or million)"
        )),
    }
}

pub const USAGE: &str = "\
keelson-bench: load generator for the etcd v3 gRPC API (etcd or Keelson)

usage:
  keelson-bench [global flags] WORKLOAD [workload flags]
  keelson-bench compare [compare flags] [global flags] [--workload 'WORKLOAD FLAGS']...
  keelson-bench fsync-floor [--dir DIR] [--fsync-samples N] [--json]

global flags:
  --endpoints A,B   gRPC endpoints (default 127.0.0.1:2379)
  --conns N         gRPC channels (HTTP/2 connections) (default 1)
  --clients N       concurrent clients spread over the channels (default 1)
  --timeout SECS    wall-time bound of one workload (default 300)
  --json            print results as JSON lines

workloads:
  put               --key-size 8 --val-size 8 --total 10000 --key-space-size 1 --sequential-keys --rate 0
  range KEY [END]   --consistency l|s --limit 0 --keys-only --count-only --total 10000 --rate 0
  txn-put           --txn-ops 1 --key-size 8 --val-size 8 --total 10000 --key-space-size 1 --rate 0
  txn-mixed         --rw-ratio 1 --consistency l|s --limit 1000 --end-key '' --key-size 8 --val-size 8
                    --total 10000 --key-space-size 1 --rate 0
  watch             --streams 10 --watch-per-stream 100 --put-rate 0 --put-total 1000 --key-size 32
                    --val-size 32 --key-space-size 1 --sequential-keys
  watch-latency     --total 10000 --put-rate 100 --key-size 32 --val-size 32
  lease-keepalive   --total 10000

compare flags:
  --keelson PATH    Keelson binary (default: keelson next to this binary)
  --etcd PATH       etcd binary (default: etcd on PATH)
  --data-root DIR   parent of the fresh data dirs (default: a new dir under ./target)
  --rounds N        A/B rounds per workload (default 2)
  --start-timeout SECS  wait for a server's first answer (default 30)
  --fsync-samples N     4 KiB write+fdatasync samples for the disk floor (default 1000)
  --keep-data       keep the data dirs afterwards
  --suite NAME      run a named workload list before any --workload: standard (the
                    default when no --workload is given), full (every workload the
                    performance page reports) or million (1M keys of 32+256 bytes; use
                    --rounds 1, as each round writes them all again)

fsync-floor: 4 KiB write + fdatasync latency in DIR (default ./target, else .)

Keys are the decimal key index zero-padded to --key-size bytes (00000042). In
range KEY/END, \\0 stands for a NUL byte: `range 0 '\\0'` reads every key >= 0.
";

/// Options every workload shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub timeout: Duration,
    pub json: bool,
}

/// Read consistency of a range: etcd's `l` (linearizable) or `s` (serializable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Linearizable,
    Serializable,
}

impl Consistency {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "l" => Ok(Consistency::Linearizable),
            "s" => Ok(Consistency::Serializable),
            _ => Err(format!("--consistency must be l or s, not {s:?}")),
        }
    }

    pub fn letter(self) -> char {
        match self {
            Consistency::Linearizable => 'l',
            Consistency::Serializable => 's',
        }
    }
}

/// How keys of a write workload are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGen {
    pub key_size: usize,
    pub key_space_size: u64,
    pub sequential: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PutOpts {
    pub keys: KeyGen,
    pub val_size: usize,
    pub total: u64,
    /// Requests per second over all clients; 0 is unpaced.
    pub rate: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RangeOpts {
    pub key: Vec<u8>,
    pub end: Vec<u8>,
    pub consistency: Consistency,
    pub limit: i64,
    pub keys_only: bool,
    pub count_only: bool,
    pub total: u64,
    pub rate: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TxnPutOpts {
    pub keys: KeyGen,
    pub val_size: usize,
    pub txn_ops: u64,
    pub total: u64,
    pub rate: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TxnMixedOpts {
    pub keys: KeyGen,
    pub val_size: usize,
    /// Reads per write.
    pub rw_ratio: f64,
    pub consistency: Consistency,
    pub limit: i64,
    pub end_key: Vec<u8>,
    pub total: u64,
    pub rate: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchOpts {
    pub streams: u64,
    pub watch_per_stream: u64,
    pub put_rate: u64,
    pub put_total: u64,
    pub keys: KeyGen,
    pub val_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchLatencyOpts {
    pub total: u64,
    pub put_rate: u64,
    pub key_size: usize,
    pub val_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseKeepaliveOpts {
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Put(PutOpts),
    Range(RangeOpts),
    TxnPut(TxnPutOpts),
    TxnMixed(TxnMixedOpts),
    Watch(WatchOpts),
    WatchLatency(WatchLatencyOpts),
    LeaseKeepalive(LeaseKeepaliveOpts),
}

impl Workload {
    /// A short label for reports, e.g. `range-s` or `put`.
    pub fn label(&self) -> String {
        match self {
            Workload::Put(_) => "put".into(),
            Workload::Range(r) => format!("range-{}", r.consistency.letter()),
            Workload::TxnPut(_) => "txn-put".into(),
            Workload::TxnMixed(_) => "txn-mixed".into(),
            Workload::Watch(_) => "watch".into(),
            Workload::WatchLatency(_) => "watch-latency".into(),
            Workload::LeaseKeepalive(_) => "lease-keepalive".into(),
        }
    }
}

/// One workload run against given endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub global: Global,
    pub workload: Workload,
    /// The workload's own arguments as typed, for reports.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompareSpec {
    pub keelson: Option<PathBuf>,
    pub etcd: PathBuf,
    pub data_root: Option<PathBuf>,
    pub rounds: u32,
    pub start_timeout: Duration,
    pub fsync_samples: usize,
    pub keep_data: bool,
    pub json: bool,
    /// Endpoints are filled in per server; the rest is as parsed.
    pub workloads: Vec<RunSpec>,
}

/// The disk floor alone, measured in `dir`.
#[derive(Debug, Clone, PartialEq)]
pub struct FsyncFloorSpec {
    pub dir: PathBuf,
    pub samples: usize,
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunSpec),
    Compare(CompareSpec),
    FsyncFloor(FsyncFloorSpec),
    Help,
}

/// Parses a full command line (without the program name).
pub fn parse<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut flags = FlagSet::parse(args.clone())?;
    if flags.take_bool("help")? {
        return Ok(Command::Help);
    }
    match flags.next_positional().as_deref() {
        None => Err("no workload given (try --help)".into()),
        Some("compare") => parse_compare(flags, &args).map(Command::Compare),
        Some("fsync-floor") => parse_fsync_floor(flags).map(Command::FsyncFloor),
        Some(name) => parse_run(name, flags, args.join(" ")).map(Command::Run),
    }
}

fn parse_global(flags: &mut FlagSet) -> Result<Global, String> {
    let endpoints: Vec<String> = flags
        .take_str("endpoints")
        .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    if endpoints.is_empty() {
        return Err("--endpoints is empty".into());
    }
    let global = Global {
        endpoints,
        conns: flags.take("conns", 1)?,
        clients: flags.take("clients", 1)?,
        timeout: Duration::from_secs(flags.take("timeout", DEFAULT_TIMEOUT_SECS)?),
        json: flags.take_bool("json")?,
    };
    if global.conns == 0 || global.clients == 0 {
        return Err("--conns and --clients must be at least 1".into());
    }
    Ok(global)
}

fn parse_run(name: &str, mut flags: FlagSet, command: String) -> Result<RunSpec, String> {
    let global = parse_global(&mut flags)?;
    let workload = parse_workload(name, &mut flags)?;
    flags.finish(name)?;
    Ok(RunSpec {
        global,
        workload,
        command,
    })
}

fn key_gen(
    flags: &mut FlagSet,
    default_key_size: usize,
    sequential: bool,
) -> Result<KeyGen, String> {
    let keys = KeyGen {
        key_size: flags.take("key-size", default_key_size)?,
        key_space_size: flags.take("key-space-size", 1)?,
        sequential: sequential && flags.take_bool("sequential-keys")?,
    };
    if keys.key_space_size == 0 {
        return Err("--key-space-size must be at least 1".into());
    }
    let needed = keys::digits(keys.key_space_size - 1);
    if keys.key_size < needed {
        return Err(format!(
            "--key-size {} is too small for --key-space-size {}: keys need {needed} digits",
            keys.key_size, keys.key_space_size
        ));
    }
    Ok(keys)
}

fn at_least_one(value: u64, name: &str) -> Result<u64, String> {
    if value == 0 {
        Err(format!("--{name} must be at least 1"))
    } else {
        Ok(value)
    }
}

fn parse_workload(name: &str, f: &mut FlagSet) -> Result<Workload, String> {
    Ok(match name {
        "put" => Workload::Put(PutOpts {
            keys: key_gen(f, 8, true)?,
            val_size: f.take("val-size", 8)?,
            total: at_least_one(f.take("total", 10_000)?, "total")?,
            rate: f.take("rate", 0)?,
        }),
        "range" => {
            let key = f
                .next_positional()
                .ok_or("range needs a KEY (usage: range KEY [END])")?;
            let end = f.next_positional().unwrap_or_default();
            Workload::Range(RangeOpts {
                key: keys::unescape(&key),
                end: keys::unescape(&end),
                consistency: Consistency::parse(&f.take("consistency", "l".to_string())?)?,
                limit: f.take("limit", 0)?,
                keys_only: f.take_bool("keys-only")?,
                count_only: f.take_bool("count-only")?,
                total: at_least_one(f.take("total", 10_000)?, "total")?,
                rate: f.take("rate", 0)?,
            })
        }
        "txn-put" => {
            let keys = key_gen(f, 8, false)?;
            let txn_ops = at_least_one(f.take("txn-ops", 1)?, "txn-ops")?;
            // etcd rejects a txn that writes one key twice.
            if txn_ops > keys.key_space_size {
                return Err(format!(
                    "--txn-ops {txn_ops} exceeds --key-space-size {}: a txn may not write a key twice",
                    keys.key_space_size
                ));
            }
            Workload::TxnPut(TxnPutOpts {
                keys,
                val_size: f.take("val-size", 8)?,
                txn_ops,
                total: at_least_one(f.take("total", 10_000)?, "total")?,
                rate: f.take("rate", 0)?,
            })
        }
        "txn-mixed" => {
            let rw_ratio: f64 = f.take("rw-ratio", 1.0)?;
            if !(rw_ratio.is_finite() && rw_ratio >= 0.0) {
                return Err("--rw-ratio must be a non-negative number".into());
            }
            Workload::TxnMixed(TxnMixedOpts {
                keys: key_gen(f, 8, false)?,
                val_size: f.take("val-size", 8)?,
                rw_ratio,
                consistency: Consistency::parse(&f.take("consistency", "l".to_string())?)?,
                limit: f.take("limit", 1000)?,
                end_key: keys::unescape(&f.take_str("end-key").unwrap_or_default()),
                total: at_least_one(f.take("total", 10_000)?, "total")?,
                rate: f.take("rate", 0)?,
            })
        }
        "watch" => {
            let opts = WatchOpts {
                streams: at_least_one(f.take("streams", 10)?, "streams")?,
                watch_per_stream: at_least_one(
                    f.take("watch-per-stream", 100)?,
                    "watch-per-stream",
                )?,
                put_rate: f.take("put-rate", 0)?,
                put_total: at_least_one(f.take("put-total", 1000)?, "put-total")?,
                keys: key_gen(f, 32, true)?,
                val_size: f.take("val-size", 32)?,
            };
            check_seq_fits(opts.val_size, opts.put_total)?;
            Workload::Watch(opts)
        }
        "watch-latency" => {
            let opts = WatchLatencyOpts {
                total: at_least_one(f.take("total", 10_000)?, "total")?,
                put_rate: f.take("put-rate", 100)?,
                key_size: f.take("key-size", 32)?,
                val_size: f.take("val-size", 32)?,
            };
            check_seq_fits(opts.val_size, opts.total)?;
            if opts.key_size == 0 {
                return Err("--key-size must be at least 1".into());
            }
            Workload::WatchLatency(opts)
        }
        "lease-keepalive" => Workload::LeaseKeepalive(LeaseKeepaliveOpts {
            total: at_least_one(f.take("total", 10_000)?, "total")?,
        }),
        other => return Err(format!("unknown workload {other:?} (try --help)")),
    })
}

/// Watch workloads carry the put's sequence number in the value, so the
/// value must have room for its digits.
fn check_seq_fits(val_size: usize, puts: u64) -> Result<(), String> {
    let needed = keys::digits(puts);
    if val_size < needed {
        return Err(format!(
            "--val-size {val_size} is too small for {puts} puts: values carry a {needed}-digit sequence number"
        ));
    }
    Ok(())
}

fn parse_compare(mut f: FlagSet, args: &[String]) -> Result<CompareSpec, String> {
    let keelson = f.take_str("keelson").map(PathBuf::from);
    let etcd = PathBuf::from(f.take_str("etcd").unwrap_or_else(|| "etcd".into()));
    let data_root = f.take_str("data-root").map(PathBuf::from);
    let rounds: u32 = f.take("rounds", DEFAULT_ROUNDS)?;
    if rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let start_timeout = Duration::from_secs(f.take("start-timeout", DEFAULT_START_TIMEOUT_SECS)?);
    let fsync_samples = f.take("fsync-samples", DEFAULT_FSYNC_SAMPLES)?;
    let keep_data = f.take_bool("keep-data")?;
    let suite_name = f.take_str("suite");
    let specs = f.take_all("workload");
    // Global flags given to compare are defaults for every workload; flags
    // inside a --workload string come later and so override them.
    let shared = shared_global_tokens(args);
    let json = f.take_bool("json")?;
    if f.take_str("endpoints").is_some() {
        return Err("compare chooses the endpoints itself; --endpoints is not allowed".into());
    }
    parse_global(&mut f)?;
    f.finish("compare")?;

    let specs: Vec<String> = match suite_name {
        Some(name) => suite(&name)?
            .iter()
            .map(|s| s.to_string())
            .chain(specs)
            .collect(),
        None if specs.is_empty() => DEFAULT_COMPARE_WORKLOADS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        None => specs,
    };
    let mut workloads = Vec::new();
    for spec in &specs {
        let mut tokens = shared.clone();
        tokens.extend(spec.split_whitespace().map(String::from));
        let mut wf = FlagSet::parse(tokens)?;
        let name = wf
            .next_positional()
            .ok_or_else(|| format!("--workload {spec:?} names no workload"))?;
        if wf.take_str("endpoints").is_some() {
            return Err(format!(
                "--workload {spec:?}: compare chooses the endpoints itself"
            ));
        }
        let run =
            parse_run(&name, wf, spec.clone()).map_err(|e| format!("--workload {spec:?}: {e}"))?;
        workloads.push(run);
    }
    Ok(CompareSpec {
        keelson,
        etcd,
        data_root,
        rounds,
        start_timeout,
        fsync_samples,
        keep_data,
        json,
        workloads,
    })
}

fn parse_fsync_floor(mut f: FlagSet) -> Result<FsyncFloorSpec, String> {
    // ./target by default: the build's own disk, where compare puts its data.
    let default_dir = if Path::new("target").is_dir() {
        "target"
    } else {
        "."
    };
    let spec = FsyncFloorSpec {
        dir: PathBuf::from(f.take_str("dir").unwrap_or_else(|| default_dir.into())),
        samples: f.take("fsync-samples", DEFAULT_FSYNC_SAMPLES)?,
        json: f.take_bool("json")?,
    };
    f.finish("fsync-floor")?;
    Ok(spec)
}

/// The global flags (`--conns`, `--clients`, `--timeout`) as they appeared on
/// the compare command line, in both `--x v` and `--x=v` forms.
fn shared_global_tokens(args: &[String]) -> Vec<String> {
    const SHARED: &[&str] = &["conns", "clients", "timeout"];
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let name = body.split_once('=').map_or(body, |(n, _)| n);
            if SHARED.contains(&name) {
                out.push(a.clone());
                if !body.contains('=') && i + 1 < args.len() {
                    out.push(args[i + 1].clone());
                    i += 1;
                }
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunSpec {
        match parse(args.iter().copied()).unwrap() {
            Command::Run(r) => r,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn put_flags_and_globals_in_any_position() {
        let r = run(&[
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2",
            "put",
            "--clients=4",
            "--conns",
            "2",
            "--key-size",
            "10",
            "--val-size",
            "100",
            "--total",
            "200",
            "--key-space-size",
            "1000",
            "--sequential-keys",
            "--rate",
            "50",
        ]);
        assert_eq!(r.global.endpoints, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!((r.global.conns, r.global.clients), (2, 4));
        assert_eq!(
            r.workload,
            Workload::Put(PutOpts {
                keys: KeyGen {
                    key_size: 10,
                    key_space_size: 1000,
                    sequential: true
                },
                val_size: 100,
                total: 200,
                rate: 50,
            })
        );
    }

    #[test]
    fn defaults_match_etcd_benchmark() {
        let r = run(&["put"]);
        assert_eq!(r.global.endpoints, vec![DEFAULT_ENDPOINT]);
        assert_eq!((r.global.conns, r.global.clients), (1, 1));
        let Workload::Put(p) = r.workload else {
            panic!()
        };
        assert_eq!((p.keys.key_size, p.val_size, p.total), (8, 8, 10_000));
        assert_eq!(
            (p.keys.key_space_size, p.keys.sequential, p.rate),
            (1, false, 0)
        );
    }

    #[test]
    fn range_positionals_and_flags() {
        let r = run(&[
            "range",
            "a",
            "z",
            "--consistency",
            "s",
            "--limit",
            "3",
            "--keys-only",
        ]);
        let Workload::Range(o) = r.workload else {
            panic!()
        };
        assert_eq!((o.key.as_slice(), o.end.as_slice()), (&b"a"[..], &b"z"[..]));
        assert_eq!(o.consistency, Consistency::Serializable);
        assert_eq!((o.limit, o.keys_only, o.count_only), (3, true, false));
        let r = run(&["range", "k", "--count-only"]);
        let Workload::Range(o) = r.workload else {
            panic!()
        };
        assert!(o.end.is_empty() && o.count_only);
        assert_eq!(o.consistency, Consistency::Linearizable);
        assert!(parse(["range"]).is_err());
        assert!(parse(["range", "a", "b", "c"]).is_err());
        assert!(parse(["range", "a", "--consistency", "x"]).is_err());
    }

    #[test]
    fn txn_workloads() {
        let r = run(&["txn-put", "--txn-ops", "4", "--key-space-size", "100"]);
        let Workload::TxnPut(o) = r.workload else {
            panic!()
        };
        assert_eq!((o.txn_ops, o.keys.key_space_size), (4, 100));
        assert!(
            parse(["txn-put", "--txn-ops", "4"]).is_err(),
            "ops > key space"
        );
        let r = run(&["txn-mixed", "--rw-ratio", "3.5", "--consistency", "s"]);
        let Workload::TxnMixed(o) = r.workload else {
            panic!()
        };
        assert_eq!((o.rw_ratio, o.limit), (3.5, 1000));
        assert_eq!(o.consistency, Consistency::Serializable);
    }

    #[test]
    fn watch_workloads() {
        let r = run(&[
            "watch",
            "--streams",
            "2",
            "--watch-per-stream",
            "3",
            "--put-rate",
            "9",
        ]);
        let Workload::Watch(o) = r.workload else {
            panic!()
        };
        assert_eq!(
            (o.streams, o.watch_per_stream, o.put_rate, o.put_total),
            (2, 3, 9, 1000)
        );
        let r = run(&["watch-latency", "--total", "5", "--put-rate", "10"]);
        let Workload::WatchLatency(o) = r.workload else {
            panic!()
        };
        assert_eq!(
            (o.total, o.put_rate, o.key_size, o.val_size),
            (5, 10, 32, 32)
        );
        assert!(parse(["watch-latency", "--total", "1000", "--val-size", "2"]).is_err());
        let r = run(&["lease-keepalive", "--total", "77"]);
        assert_eq!(
            r.workload,
            Workload::LeaseKeepalive(LeaseKeepaliveOpts { total: 77 })
        );
    }

    #[test]
    fn unknown_flags_and_workloads_fail() {
        let err = parse(["put", "--consistency", "s"]).unwrap_err();
        assert!(err.contains("--consistency"), "{err}");
        let err = parse(["lease-keepalive", "--txn-ops", "2"]).unwrap_err();
        assert!(err.contains("--txn-ops"), "{err}");
        assert!(parse(["frobnicate"]).unwrap_err().contains("frobnicate"));
        assert!(parse(["put", "--clients", "0"]).is_err());
        assert!(parse(["put", "--key-space-size", "1000", "--key-size", "2"]).is_err());
        assert!(parse(Vec::<String>::new()).is_err());
        assert_eq!(parse(["--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn compare_shares_globals_and_lets_workloads_override() {
        let cmd = parse([
            "compare",
            "--keelson",
            "/x/keelson",
            "--rounds",
            "3",
            "--clients",
            "8",
            "--workload",
            "put --total 100",
            "--workload",
            "range foo --consistency s --clients 2",
        ])
        .unwrap();
        let Command::Compare(c) = cmd else { panic!() };
        assert_eq!(
            c.keelson.as_deref(),
            Some(std::path::Path::new("/x/keelson"))
        );
        assert_eq!(c.etcd, PathBuf::from("etcd"));
        assert_eq!(c.rounds, 3);
        assert_eq!(c.workloads.len(), 2);
        assert_eq!(c.workloads[0].global.clients, 8);
        assert_eq!(c.workloads[1].global.clients, 2);
        assert_eq!(c.workloads[1].workload.label(), "range-s");
        assert!(parse(["compare", "--workload", "put --bogus 1"]).is_err());
        assert!(parse(["compare", "--workload", "put --endpoints x:1"]).is_err());
        assert!(parse(["compare", "--frob"]).is_err());
    }

    #[test]
    fn fsync_floor_flags() {
        let cmd = parse(["fsync-floor", "--dir", "/d", "--fsync-samples", "9"]).unwrap();
        assert_eq!(
            cmd,
            Command::FsyncFloor(FsyncFloorSpec {
                dir: PathBuf::from("/d"),
                samples: 9,
                json: false
            })
        );
        assert!(parse(["fsync-floor", "--clients", "2"]).is_err());
    }

    #[test]
    fn compare_defaults_parse() {
        let Command::Compare(c) = parse(["compare"]).unwrap() else {
            panic!()
        };
        assert_eq!(c.workloads.len(), DEFAULT_COMPARE_WORKLOADS.len());
        assert_eq!(c.rounds, DEFAULT_ROUNDS);
        assert!(c.keelson.is_none() && c.data_root.is_none() && !c.keep_data);
    }

    #[test]
    fn compare_suites_parse_and_precede_extra_workloads() {
        for (name, list) in [
            ("standard", DEFAULT_COMPARE_WORKLOADS),
            ("full", FULL_SUITE),
            ("million", MILLION_SUITE),
        ] {
            let Command::Compare(c) = parse(["compare", "--suite", name]).unwrap() else {
                panic!()
            };
            assert_eq!(c.workloads.len(), list.len(), "{name}");
        }
        let Command::Compare(c) =
            parse(["compare", "--suite", "full", "--workload", "put --total 7"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.workloads.len(), FULL_SUITE.len() + 1);
        assert_eq!(c.workloads.last().unwrap().global.clients, 1);
        let err = parse(["compare", "--suite", "nope"]).unwrap_err();
        assert!(err.contains("unknown --suite"), "{err}");
    }
}
