//! The process's logger: `tracing` events written as etcd 3.4 writes its logs, zap's JSON lines
//! (`--logger zap`) or capnslog's text lines (the default), to `--log-outputs`, at
//! `--log-level`. raft-rs's slog output arrives here too (`crate::raft::tracing_logger`).
//!
//! What is logged follows etcd: startup and member information, leader changes (raft-rs),
//! compactions, alarms, slow applies ([`slow`]), shutdown. Field names are written as etcd
//! spells them: a field `local_member_id` becomes `local-member-id`.
//!
//! Owns: the subscriber, the outputs and the line format ([`format`]). Never: logs a line per
//! request on the hot path; blocks a caller on anything but its own line's write.

pub mod format;
pub mod slow;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::config::{Config, LogLevel, LogOutput, Logger};
use format::{FieldValue, Record};

/// Where lines go.
enum Output {
    Stderr,
    Stdout,
    File(File),
}

impl Output {
    fn write_line(&mut self, line: &[u8]) {
        // A log line that cannot be written has nowhere else to go.
        let _ = match self {
            Output::Stderr => std::io::stderr().lock().write_all(line),
            Output::Stdout => std::io::stdout().lock().write_all(line),
            Output::File(file) => file.write_all(line),
        };
    }
}

/// The layer that formats and writes every event that passes the level filter.
struct EtcdLines {
    logger: Logger,
    outputs: Mutex<Vec<Output>>,
}

impl<S: Subscriber> Layer<S> for EtcdLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = Record {
            caller: short_caller(meta.file(), meta.line()),
            package: package(meta.target()),
            ..Record::default()
        };
        event.record(&mut Fields(&mut record));
        let level = *meta.level();
        let now = SystemTime::now();
        let line = match self.logger {
            Logger::Zap => format::zap_line(now, level, &record),
            Logger::Capnslog => format::capnslog_line(now, level, &record),
        };
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        for output in outputs.iter_mut() {
            output.write_line(line.as_bytes());
        }
    }
}

/// zap's short caller: the last directory and the file, `node/core.rs:42`.
fn short_caller(file: Option<&str>, line: Option<u32>) -> String {
    let file = file.unwrap_or("?");
    let mut parts = file.rsplit('/');
    let name = parts.next().unwrap_or(file);
    let short = match parts.next() {
        Some(dir) if dir != "src" => format!("{dir}/{name}"),
        _ => name.to_string(),
    };
    format!("{short}:{}", line.unwrap_or(0))
}

/// capnslog's package: the module path without the crate, `node/core`.
fn package(target: &str) -> String {
    let path = target.split_once("::").map_or(target, |(_, rest)| rest);
    path.replace("::", "/")
}

/// Collects an event's fields: `message` is the message, `caller` overrides the call site (the
/// raft bridge passes raft-rs's), the rest are fields.
struct Fields<'a>(&'a mut Record);

impl Fields<'_> {
    fn push(&mut self, field: &Field, value: FieldValue) {
        match (field.name(), value) {
            ("message", FieldValue::Str(s)) => self.0.msg = s,
            ("caller", FieldValue::Str(s)) => self.0.caller = s,
            (name, value) => self.0.fields.push((name.replace('_', "-"), value)),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, FieldValue::Str(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        // A list or a number given with `?` is written as JSON, as zap writes its arrays;
        // anything else (`%` values, durations) as a string.
        let is_json = field.name() != "message"
            && (text.starts_with('[') || text.starts_with('{') || text.parse::<f64>().is_ok())
            && serde_json::from_str::<serde_json::Value>(&text).is_ok();
        let value = if is_json {
            FieldValue::Json(text)
        } else {
            FieldValue::Str(text)
        };
        self.push(field, value);
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        _ => LevelFilter::ERROR,
    }
}

/// Opens the outputs and installs the logger for the whole process. An output that cannot be
/// opened fails with zap's words (`open sink "<path>": ...`).
pub fn init(config: &Config) -> Result<(), String> {
    let mut outputs = Vec::new();
    for output in &config.log_outputs {
        outputs.push(match output {
            LogOutput::Stderr | LogOutput::Journal => Output::Stderr,
            LogOutput::Stdout => Output::Stdout,
            LogOutput::File(path) => Output::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("open sink {path:?}: open {path}: {}", io_reason(&e)))?,
            ),
        });
    }
    let layer = EtcdLines {
        logger: config.logger,
        outputs: Mutex::new(outputs),
    };
    let subscriber = tracing_subscriber::registry()
        .with(level_filter(config.log_level))
        .with(layer);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("installing the logger: {e}"))
}

/// Go's lowercase wording of common I/O errors, without Rust's `(os error N)`.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Logs the startup warnings the configuration collected (ignored flags, deprecations).
pub fn config_warnings(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!(target: "keelson::config", "{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_and_packages() {
        assert_eq!(
            short_caller(Some("src/node/core.rs"), Some(42)),
            "node/core.rs:42"
        );
        assert_eq!(short_caller(Some("src/main.rs"), Some(7)), "main.rs:7");
        assert_eq!(package("keelson::node::core"), "node/core");
        assert_eq!(package("raft"), "raft");
    }
}
