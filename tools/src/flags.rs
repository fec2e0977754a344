//! A small `--flag value` tokenizer shared by every subcommand.
//!
//! Flags are collected first and then claimed by name by whoever knows them
//! (global options, one workload, compare). Anything left unclaimed is an
//! error, so a misspelt flag never silently falls back to a default.

use std::collections::VecDeque;
use std::str::FromStr;

/// Flags that take no value: `--json` means `--json=true`.
const BOOL_FLAGS: &[&str] = &[
    "sequential-keys",
    "keys-only",
    "count-only",
    "json",
    "keep-data",
    "help",
];

/// Flags and positional arguments of one command line, not yet interpreted.
#[derive(Debug, Default)]
pub struct FlagSet {
    /// In command-line order; a later occurrence of a flag overrides an earlier one.
    flags: Vec<(String, String)>,
    positionals: VecDeque<String>,
}

impl FlagSet {
    /// Splits `args` into flags and positionals. Accepts `--name value`,
    /// `--name=value`, and bare boolean flags; `--` ends flag parsing.
    pub fn parse<I, S>(args: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut set = FlagSet::default();
        let mut tokens = args.into_iter().map(Into::into);
        while let Some(token) = tokens.next() {
            if token == "--" {
                set.positionals.extend(tokens.by_ref());
                break;
            }
            if token == "-h" {
                set.flags.push(("help".into(), "true".into()));
                continue;
            }
            let Some(body) = token.strip_prefix("--") else {
                set.positionals.push_back(token);
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if name.is_empty() {
                return Err(format!("malformed flag {token:?}"));
            }
            let value = match inline {
                Some(v) => v,
                None if BOOL_FLAGS.contains(&name.as_str()) => "true".into(),
                None => tokens
                    .next()
                    .ok_or_else(|| format!("flag --{name} needs a value"))?,
            };
            set.flags.push((name, value));
        }
        Ok(set)
    }

    /// Removes and returns the next positional argument.
    pub fn next_positional(&mut self) -> Option<String> {
        self.positionals.pop_front()
    }

    /// Removes every occurrence of `name`, returning the last value.
    pub fn take_str(&mut self, name: &str) -> Option<String> {
        self.take_all(name).pop()
    }

    /// Removes every occurrence of `name`, returning all values in order.
    pub fn take_all(&mut self, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        self.flags.retain(|(n, v)| {
            if n == name {
                values.push(v.clone());
                false
            } else {
                true
            }
        });
        values
    }

    /// Removes `name` and parses its value, or returns `default` when absent.
    pub fn take<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take_str(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("invalid value {v:?} for --{name}")),
        }
    }

    /// Removes a boolean flag; absent means false.
    pub fn take_bool(&mut self, name: &str) -> Result<bool, String> {
        match self.take_str(name).as_deref() {
            None => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(format!("invalid value {v:?} for --{name}")),
        }
    }

    /// Fails on any flag or positional nobody claimed; `context` names the
    /// command for the message.
    pub fn finish(self, context: &str) -> Result<(), String> {
        if let Some((name, _)) = self.flags.first() {
            return Err(format!("unknown flag --{name} for {context}"));
        }
        if let Some(p) = self.positionals.front() {
            return Err(format!("unexpected argument {p:?} for {context}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_flags_and_positionals() {
        let mut f = FlagSet::parse([
            "range",
            "--limit=5",
            "key",
            "--keys-only",
            "--total",
            "7",
            "--",
            "--not-a-flag",
        ])
        .unwrap();
        assert_eq!(f.next_positional().as_deref(), Some("range"));
        assert_eq!(f.take("limit", 0u64).unwrap(), 5);
        assert!(f.take_bool("keys-only").unwrap());
        assert!(!f.take_bool("count-only").unwrap());
        assert_eq!(f.take("total", 0u64).unwrap(), 7);
        assert_eq!(f.next_positional().as_deref(), Some("key"));
        assert_eq!(f.next_positional().as_deref(), Some("--not-a-flag"));
        f.finish("range").unwrap();
    }

    #[test]
    fn last_occurrence_wins_and_leftovers_fail() {
        let mut f = FlagSet::parse(["--clients", "1", "--clients=9", "--bogus", "x"]).unwrap();
        assert_eq!(f.take("clients", 0usize).unwrap(), 9);
        let err = f.finish("put").unwrap_err();
        assert!(err.contains("--bogus"), "{err}");
    }

    #[test]
    fn missing_and_bad_values() {
        assert!(FlagSet::parse(["--total"]).is_err());
        let mut f = FlagSet::parse(["--total", "lots"]).unwrap();
        assert!(f.take("total", 0u64).is_err());
    }
}
