//! The command line and the environment read as etcd reads them: Go's `flag` package syntax
//! (`-f`, `--f`, `-f=v`, `--f v`, booleans without a separate value, `--` ending the flags) and
//! etcd's `flags.SetFlagsFromEnv` for the `ETCD_*` variables.
//!
//! Owns: gathering each flag's typed value and whether it was set. Never: checks values against
//! each other (validation) or applies derived defaults.

use std::collections::HashMap;
use std::time::Duration;

use super::error::ConfigError;
use super::flags::{FLAGS, FlagSpec, Kind, NOT_FROM_ENV, RETIRED, env_var_name, spec};
use super::go_syntax::{
    parse_go_bool, parse_go_duration, parse_go_int, parse_go_uint, parse_go_uint32,
};
use super::urls::Url;
use super::values::parse_core_list;

/// A value as parsed from a flag or an environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Str(String),
    Bool(bool),
    Uint(u64),
    Int(i64),
    Duration(Duration),
    Urls(Vec<Url>),
    Strings(Vec<String>),
    Cores(Vec<usize>),
}

impl Value {
    /// Whether this is the value a flag has when nobody sets it: its table default, or the
    /// zero of its kind where the table shows none.
    fn is_default_of(&self, kind: Kind, default: &str) -> bool {
        if let Ok(Some(d)) = parse_value(kind, default) {
            return d == *self;
        }
        match self {
            Value::Str(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Uint(n) => *n == 0,
            Value::Int(n) => *n == 0,
            Value::Duration(d) => d.is_zero(),
            Value::Urls(v) => v.is_empty(),
            Value::Strings(v) => v.is_empty(),
            Value::Cores(v) => v.is_empty(),
        }
    }
}

/// Parses a flag value; the error is the reason etcd puts after `invalid value "...": `.
/// `None`: the flag counts as set but keeps the value it had (an empty URL list, a retired
/// flag).
pub(super) fn parse_value(kind: Kind, raw: &str) -> Result<Option<Value>, String> {
    const PARSE_ERROR: &str = "parse error";
    let comma_list = || raw.split(',').map(str::to_string);
    Ok(Some(match kind {
        Kind::Str => Value::Str(raw.to_string()),
        Kind::Bool => Value::Bool(parse_go_bool(raw).ok_or(PARSE_ERROR)?),
        Kind::Uint => Value::Uint(parse_go_uint(raw)?),
        Kind::Uint32 => Value::Uint(parse_go_uint32(raw)?),
        Kind::Int => Value::Int(parse_go_int(raw)?),
        Kind::GoDuration => match parse_go_duration(raw) {
            Ok((false, d)) => Value::Duration(d),
            _ => return Err(PARSE_ERROR.to_string()),
        },
        Kind::Urls if raw.is_empty() => return Ok(None),
        Kind::Urls => Value::Urls(Url::parse_list(raw)?),
        Kind::UrlsOrAny if raw == "*" => Value::Strings(vec!["*".to_string()]),
        Kind::UrlsOrAny => {
            let mut urls: Vec<String> = Url::parse_list(raw)?.iter().map(Url::to_string).collect();
            urls.dedup();
            Value::Strings(urls)
        }
        Kind::UniqueStrings => {
            let mut set: Vec<String> = comma_list().collect();
            set.sort();
            set.dedup();
            Value::Strings(set)
        }
        Kind::Strings => Value::Strings(comma_list().collect()),
        Kind::Choice(words) if words.contains(&raw) => Value::Str(raw.to_string()),
        Kind::Choice(_) => return Err("invalid value".to_string()),
        Kind::Retired => return Ok(None),
        Kind::CoreList => Value::Cores(parse_core_list(raw)?),
        Kind::Core => Value::Cores(vec![
            raw.parse::<usize>()
                .map_err(|_| format!("invalid CPU number {raw:?}"))?,
        ]),
    }))
}

/// Values gathered from the command line and the environment, before they become a [`Config`].
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) values: HashMap<&'static str, Value>,
    /// Flags set explicitly, on the command line or through the environment.
    pub(super) set: Vec<&'static str>,
    pub(super) positional: Vec<String>,
    pub(super) help: bool,
    /// One line for each flag that is accepted but ignored, in the order they were given.
    pub(super) ignored: Vec<String>,
}

impl Gathered {
    /// Records a flag's parsed value (`None`: set, value unchanged) and, for a flag Keelson
    /// ignores, the warning to log.
    fn put(&mut self, spec: &FlagSpec, value: Option<Value>) {
        let name = spec.name;
        let warning = match (&value, spec.kind, spec.ignored) {
            (_, Kind::Retired, _) => Some(format!(
                "flag \"-{name}\" is no longer supported - ignoring."
            )),
            (Some(v), _, Some(why)) if !v.is_default_of(spec.kind, spec.default) => {
                Some(format!("ignoring --{name}: {why}"))
            }
            _ => None,
        };
        if let Some(warning) = warning.filter(|w| !self.ignored.contains(w)) {
            self.ignored.push(warning);
        }
        if let Some(value) = value {
            self.values.insert(name, value);
        }
        if !self.set.contains(&name) {
            self.set.push(name);
        }
    }

    pub(super) fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub(super) fn bool(&self, name: &str, default: bool) -> bool {
        match self.values.get(name) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    }

    pub(super) fn int(&self, name: &str, default: i64) -> i64 {
        match self.values.get(name) {
            Some(Value::Int(v)) => *v,
            _ => default,
        }
    }

    pub(super) fn duration(&self, name: &str, default: Duration) -> Duration {
        match self.values.get(name) {
            Some(Value::Duration(d)) => *d,
            _ => default,
        }
    }

    pub(super) fn strings(&self, name: &str, default: &[&str]) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::Strings(v)) => v.clone(),
            _ => default.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A string flag, `None` when empty: etcd's way of leaving a path or name unset.
    pub(super) fn non_empty(&self, name: &str) -> Option<String> {
        self.str(name).filter(|s| !s.is_empty()).map(str::to_string)
    }

    pub(super) fn is_set(&self, name: &str) -> bool {
        self.set.contains(&name)
    }

    pub(super) fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub(super) fn uint(&self, name: &str, default: u64) -> u64 {
        match self.values.get(name) {
            Some(Value::Uint(v)) => *v,
            _ => default,
        }
    }

    pub(super) fn urls(&self, name: &str, default: &str) -> Vec<Url> {
        match self.values.get(name) {
            Some(Value::Urls(v)) => v.clone(),
            _ => Url::parse_list(default).unwrap_or_default(),
        }
    }

    pub(super) fn cores(&self, name: &str) -> Vec<usize> {
        match self.values.get(name) {
            Some(Value::Cores(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

/// Go's `flag.FlagSet.Parse`: stops at the first non-flag argument or after `--`.
pub(super) fn parse_args(args: Vec<String>, out: &mut Gathered) -> Result<(), ConfigError> {
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
        if spec.kind == Kind::Retired {
            out.put(&spec, None);
            continue;
        }
        if spec.kind == Kind::Bool {
            let value = match inline {
                None => true,
                Some(v) => parse_go_bool(&v).ok_or_else(|| {
                    ConfigError::usage(format!(
                        "invalid boolean value {v:?} for -{name}: parse error"
                    ))
                })?,
            };
            out.put(&spec, Some(Value::Bool(value)));
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
        out.put(&spec, value);
    }
    out.positional.extend(iter);
    Ok(())
}

/// etcd's `flags.SetFlagsFromEnv`: fills flags not given on the command line.
pub(super) fn apply_env(
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut Gathered,
) -> Result<(), ConfigError> {
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
    let retired = RETIRED.iter().filter_map(|name| spec(name));
    for spec in FLAGS.iter().copied().chain(retired) {
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
        out.put(&spec, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::env_var_name;
    use crate::config::tests::{err, parse, parse_env};
    use std::time::Duration;

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
}
