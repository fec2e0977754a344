//! etcd's "apply request took too long" warning: an applied request slower than
//! `--experimental-warning-apply-duration` is logged with a summary of the request (values
//! replaced by their sizes, as etcd's loggable stringers do) and the size of its response, and
//! counted in `etcd_server_slow_apply_total`.
//!
//! Owns: the threshold, the summary and Go's duration text. Never: logs a request that was
//! fast (the check is one clock read and a comparison).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;

use crate::config::WARNING_APPLY_DURATION_DEFAULT;
use crate::server::apply::{Applied, ApplyError};
use crate::server::{WriteRequest, WriteResponse};

/// The threshold in nanoseconds, set once at startup from the configuration.
static THRESHOLD_NANOS: AtomicU64 =
    AtomicU64::new(WARNING_APPLY_DURATION_DEFAULT.as_nanos() as u64);

/// Sets `--experimental-warning-apply-duration`.
pub fn set_threshold(threshold: Duration) {
    let nanos = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
    THRESHOLD_NANOS.store(nanos, Ordering::Relaxed);
}

fn threshold() -> Duration {
    Duration::from_nanos(THRESHOLD_NANOS.load(Ordering::Relaxed))
}

/// Checks one applied request that started at `started`; logs and counts it when slow.
pub fn check_apply(
    started: Instant,
    id: u64,
    request: &WriteRequest,
    result: &Result<Applied, ApplyError>,
) {
    let took = started.elapsed();
    let expected = threshold();
    if took <= expected {
        return;
    }
    crate::metrics::server().slow_apply_total.inc();
    let (response, error) = match result {
        Ok(applied) => (
            format!("size:{}", response_size(&applied.response)),
            String::new(),
        ),
        Err(e) => (String::new(), e.to_string()),
    };
    tracing::warn!(
        took = %go_duration(took),
        expected_duration = %go_duration(expected),
        prefix = "",
        request = %summary(id, request),
        response = %response,
        error = %error,
        "apply request took too long"
    );
}

fn response_size(response: &WriteResponse) -> usize {
    match response {
        WriteResponse::Put(r) => r.encoded_len(),
        WriteResponse::DeleteRange(r) => r.encoded_len(),
        WriteResponse::Txn(r) => r.encoded_len(),
        WriteResponse::Compaction(r) => r.encoded_len(),
        WriteResponse::LeaseGrant(r) => r.encoded_len(),
        WriteResponse::LeaseRevoke(r) => r.encoded_len(),
        WriteResponse::LeaseCheckpoint(r) => r.encoded_len(),
        WriteResponse::Alarm(r) => r.encoded_len(),
    }
}

/// Go's `%q` of a byte string, close enough for a log line.
fn quoted(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The request in etcd's loggable text form: `header:<ID:7 > put:<key:"k" value_size:3 >`.
pub fn summary(id: u64, request: &WriteRequest) -> String {
    let body = match request {
        WriteRequest::Put(p) => {
            let mut s = format!("put:<key:{} value_size:{} ", quoted(&p.key), p.value.len());
            if p.lease != 0 {
                s.push_str(&format!("lease:{} ", p.lease));
            }
            s.push('>');
            s
        }
        WriteRequest::DeleteRange(d) => {
            let mut s = format!("delete_range:<key:{} ", quoted(&d.key));
            if !d.range_end.is_empty() {
                s.push_str(&format!("range_end:{} ", quoted(&d.range_end)));
            }
            s.push('>');
            s
        }
        WriteRequest::Txn(t) => format!(
            "txn:<compare_count:{} success_count:{} failure_count:{} >",
            t.compare.len(),
            t.success.len(),
            t.failure.len()
        ),
        WriteRequest::Compaction(c) => format!("compaction:<revision:{} >", c.revision),
        WriteRequest::LeaseGrant(g) => {
            format!("lease_grant:<ttl:{}-second id:{:016x}>", g.ttl, g.id)
        }
        WriteRequest::LeaseRevoke(r) => format!("lease_revoke:<id:{:016x}>", r.id),
        WriteRequest::LeaseCheckpoint(c) => {
            format!(
                "lease_checkpoint:<checkpoints_count:{} >",
                c.checkpoints.len()
            )
        }
        WriteRequest::Alarm(a) => format!("alarm:<action:{} alarm:{} >", a.action, a.alarm),
    };
    format!("header:<ID:{id} > {body}")
}

/// Go's `time.Duration.String()`: `1.5s`, `123.456789ms`, `2m0s`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let fraction = |value: u128, unit: u128, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return format!("{whole}{suffix}");
        }
        let digits = unit.to_string().len() - 1;
        let text = format!("{rest:0digits$}");
        format!("{whole}.{}{suffix}", text.trim_end_matches('0'))
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return fraction(nanos, 1_000, "µs");
    }
    if nanos < 1_000_000_000 {
        return fraction(nanos, 1_000_000, "ms");
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000, "s");
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::etcdserverpb::PutRequest;

    #[test]
    fn go_durations_print_as_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(500)), "500ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(
            go_duration(Duration::from_nanos(123_456_789)),
            "123.456789ms"
        );
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(go_duration(Duration::from_millis(3_723_500)), "1h2m3.5s");
    }

    #[test]
    fn summaries_hide_values() {
        let put = WriteRequest::Put(PutRequest {
            key: b"foo".to_vec(),
            value: b"secret".to_vec(),
            ..PutRequest::default()
        });
        assert_eq!(
            summary(7, &put),
            "header:<ID:7 > put:<key:\"foo\" value_size:6 >"
        );
    }
}
