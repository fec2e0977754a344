//! Why a configuration was rejected, with the exit status and usage etcd shows for it.
//!
//! Owns: the kinds of configuration error and etcd's wording around them (`error verifying
//! flags, ... See 'etcd --help'.`). Never: decides what is wrong with a value.

use std::fmt;

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
    pub(super) fn usage(message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Usage,
            message,
        }
    }

    /// A failed check that etcd reports as `error verifying flags, ... See 'etcd --help'.`
    pub(super) fn verify(reason: impl fmt::Display) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Invalid,
            message: format!("error verifying flags, {reason}. See 'etcd --help'."),
        }
    }

    /// A failure etcd reports bare, at startup rather than while checking flags.
    pub(super) fn fatal(message: String) -> ConfigError {
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
