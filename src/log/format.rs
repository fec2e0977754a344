//! One log line in either of etcd 3.4's formats: zap's JSON (`{"level":"info","ts":...,
//! "caller":"file:line","msg":...,"key":value,...}`) or capnslog's text
//! (`2006-01-02 15:04:05.000000 I | package: message key=value`).
//!
//! Owns: the bytes of a line from a level, a time, a caller and fields. Never: decides what is
//! logged or writes anywhere.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;

/// A field's value as the line shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// Already JSON (a list, a number given through `Debug`).
    Json(String),
}

/// What one event carries besides its level and time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub msg: String,
    /// `file.rs:line` relative to the crate's `src/`, as zap's short caller.
    pub caller: String,
    /// The package capnslog names (`node/core`, `raft`).
    pub package: String,
    /// In the order given, keys spelled as etcd spells them (`local-member-id`).
    pub fields: Vec<(String, FieldValue)>,
}

/// zap's lowercase level name.
pub fn zap_level(level: Level) -> &'static str {
    match level {
        Level::TRACE | Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// capnslog's level letter.
fn capnslog_level(level: Level) -> char {
    match level {
        Level::TRACE | Level::DEBUG => 'D',
        Level::INFO => 'I',
        Level::WARN => 'W',
        Level::ERROR => 'E',
    }
}

/// A JSON line as etcd 3.4's zap logger writes it, newline included.
pub fn zap_line(time: SystemTime, level: Level, record: &Record) -> String {
    let (date, clock, micros) = utc(time);
    let mut line = String::with_capacity(128);
    line.push_str("{\"level\":\"");
    line.push_str(zap_level(level));
    let _ = write!(line, "\",\"ts\":\"{date}T{clock}.{:03}Z\"", micros / 1000);
    line.push_str(",\"caller\":");
    push_json_string(&mut line, &record.caller);
    line.push_str(",\"msg\":");
    push_json_string(&mut line, &record.msg);
    for (key, value) in &record.fields {
        line.push(',');
        push_json_string(&mut line, key);
        line.push(':');
        match value {
            FieldValue::Str(s) => push_json_string(&mut line, s),
            FieldValue::U64(n) => {
                let _ = write!(line, "{n}");
            }
            FieldValue::I64(n) => {
                let _ = write!(line, "{n}");
            }
            FieldValue::F64(n) if n.is_finite() => {
                let _ = write!(line, "{n}");
            }
            FieldValue::F64(n) => push_json_string(&mut line, &n.to_string()),
            FieldValue::Bool(b) => {
                let _ = write!(line, "{b}");
            }
            FieldValue::Json(raw) => line.push_str(raw),
        }
    }
    line.push_str("}\n");
    line
}

/// A text line as etcd 3.4's capnslog writes it, newline included; fields follow the message
/// as `key=value`.
pub fn capnslog_line(time: SystemTime, level: Level, record: &Record) -> String {
    let (date, clock, micros) = utc(time);
    let mut line = format!(
        "{date} {clock}.{micros:06} {} | {}: {}",
        capnslog_level(level),
        record.package,
        record.msg
    );
    for (key, value) in &record.fields {
        let _ = match value {
            FieldValue::Str(s) => write!(line, " {key}={s}"),
            FieldValue::U64(n) => write!(line, " {key}={n}"),
            FieldValue::I64(n) => write!(line, " {key}={n}"),
            FieldValue::F64(n) => write!(line, " {key}={n}"),
            FieldValue::Bool(b) => write!(line, " {key}={b}"),
            FieldValue::Json(raw) => write!(line, " {key}={raw}"),
        };
    }
    line.push('\n');
    line
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping is JSON's; a String never fails to serialize.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// `(YYYY-MM-DD, HH:MM:SS, microseconds)` of `time` in UTC.
fn utc(time: SystemTime) -> (String, String, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        ),
        since.subsec_micros(),
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record() -> Record {
        Record {
            msg: "became leader at term 2".into(),
            caller: "node/core.rs:42".into(),
            package: "raft".into(),
            fields: vec![
                (
                    "local-member-id".into(),
                    FieldValue::Str("8e9e05c52164694d".into()),
                ),
                ("term".into(), FieldValue::U64(2)),
                (
                    "peer-urls".into(),
                    FieldValue::Json("[\"http://a:1\"]".into()),
                ),
                ("quoted".into(), FieldValue::Str("say \"hi\"".into())),
            ],
        }
    }

    #[test]
    fn zap_json_line() {
        // 2026-12-02T08:16:35.360123Z
        let t = UNIX_EPOCH + Duration::from_micros(1_796_199_395_360_123);
        let line = zap_line(t, Level::INFO, &record());
        assert_eq!(
            line,
            "{\"level\":\"info\",\"ts\":\"2026-12-02T08:16:35.360Z\",\"caller\":\"node/core.rs:42\",\"msg\":\"became leader at term 2\",\"local-member-id\":\"8e9e05c52164694d\",\"term\":2,\"peer-urls\":[\"http://a:1\"],\"quoted\":\"say \\\"hi\\\"\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["peer-urls"][0], "http://a:1");
    }

    #[test]
    fn capnslog_text_line() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_199_395_360_123);
        assert_eq!(
            capnslog_line(t, Level::WARN, &record()),
            "2026-12-02 08:16:35.360123 W | raft: became leader at term 2 local-member-id=8e9e05c52164694d term=2 peer-urls=[\"http://a:1\"] quoted=say \"hi\"\n"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
