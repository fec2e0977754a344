//! The command line and the environment read as etcd reads them: Go's `flag` package syntax
//! (`-f`, `--f`, `-f=v`, `--f v`, booleans without a separate value, `--` ending the flags) and
//! etcd's `flags.SetFlagsFromEnv` for the `ETCD_*` variables.
//!
//! Owns: gathering each flag's typed value and whether it was set. Never: checks values against
//! each other (validation) or applies derived defaults.

use std::collections::HashMap;
use std::time::Duration;

use super::ClusterState;
use super::error::ConfigError;
use super::flags::{FLAGS, Kind, NOT_FROM_ENV, env_var_name, spec};
use super::go_syntax::{parse_go_bool, parse_go_duration, parse_go_int, parse_go_uint};
use super::urls::Url;
use super::values::parse_core_list;

/// A value as parsed from a flag or an environment variable.
#[derive(Clone, Debug)]
pub(super) enum Value {
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
pub(super) fn parse_value(kind: Kind, raw: &str) -> Result<Value, String> {
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

/// Values gathered from the command line and the environment, before they become a [`Config`].
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) values: HashMap<&'static str, Value>,
    /// Flags set explicitly, on the command line or through the environment.
    pub(super) set: Vec<&'static str>,
    pub(super) positional: Vec<String>,
    pub(super) help: bool,
}

impl Gathered {
    pub(super) fn put(&mut self, name: &'static str, value: Value) {
        self.values.insert(name, value);
        if !self.set.contains(&name) {
            self.set.push(name);
        }
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
