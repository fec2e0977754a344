//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), on etcd 3.4's
//! schedule (`etcdserver/api/v3compactor`, `periodic.go` and `revision.go`).
//!
//! - Periodic, retention `p`: every `min(p, 1h) / 10` the current revision is sampled (before
//!   the wait), keeping `p / (min(p, 1h) / 10) + 1` samples. Nothing is compacted during the
//!   first `p` after start; from then on, whenever `min(p, 1h)` has passed since the last
//!   successful compaction, the oldest sample is compacted to: the revision of `p` ago for the
//!   first compaction, of `p` plus one sample interval ago for the later ones (the window is full
//!   by then), exactly as etcd. A failed compaction is retried at the next sample.
//! - Revision, retention `r`: every 5 minutes, compact to `current - r` unless that is not
//!   positive or was already compacted to successfully.
//!
//! A compaction is an ordinary `Compaction` proposed through the log ([`Target::compact`]), so it
//! is durable and ordered like a client's; `ErrCompacted` counts as success (someone compacted
//! further already), as in etcd. etcd pauses its compactor on followers; a single voter always
//! leads, and a proposal without a leader fails and is retried like any failure.
//!
//! The policies ([`Periodic`], [`Revision`]) are pure state machines over an injected time; the
//! driver ([`run`]) reads its time from a [`Clock`], so tests run days of schedule without
//! sleeping. This module must never touch the store or Raft itself: its only effect is proposing
//! compactions.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use crate::config::AutoCompaction;
use crate::errors::EtcdError;

/// Periodic mode samples and compacts at most this far apart (`getCompactInterval`).
pub const PERIODIC_INTERVAL_MAX: Duration = Duration::from_secs(60 * 60);
/// Samples per compaction interval (etcd's `retryDivisor`).
pub const PERIODIC_SAMPLES_PER_INTERVAL: u32 = 10;
/// etcd divides by the sampling interval, which is zero (a panic there) for a retention under
/// ten nanoseconds; Keelson samples at least this far apart instead of spinning.
pub const PERIODIC_SAMPLE_INTERVAL_MIN: Duration = Duration::from_millis(1);
/// Revision mode checks this often (etcd's `revInterval`).
pub const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Where the compactor reads time. `now` is monotonic from an arbitrary origin.
pub trait Clock {
    fn now(&self) -> Duration;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// What the compactor compacts.
pub trait Target {
    /// The store's current revision.
    fn rev(&self) -> i64;
    /// Proposes a compaction to `rev` and waits until it is applied.
    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), EtcdError>> + Send;
}

/// Whether a compaction's outcome counts as done (etcd: `err == nil || err == ErrCompacted`).
fn succeeded(outcome: &Result<(), EtcdError>) -> bool {
    matches!(outcome, Ok(()) | Err(EtcdError::Compacted))
}

/// etcd's periodic compactor as a state machine: [`Periodic::record`] at the top of each turn,
/// wait [`Periodic::sample_interval`], then [`Periodic::due`] and, if it names a revision,
/// compact and report with [`Periodic::finished`].
#[derive(Clone, Debug)]
pub struct Periodic {
    period: Duration,
    compact_interval: Duration,
    sample_interval: Duration,
    samples_kept: usize,
    /// Oldest first; the front is the revision of one period ago once the window is full.
    samples: VecDeque<i64>,
    last_success: Duration,
    /// The time that must pass since `last_success`: the whole period before the first
    /// compaction, the compact interval after it.
    wait: Duration,
}

impl Periodic {
    /// A compactor keeping `period` of history, started at `now`.
    pub fn new(period: Duration, now: Duration) -> Periodic {
        let compact_interval = period.min(PERIODIC_INTERVAL_MAX);
        let sample_interval =
            (compact_interval / PERIODIC_SAMPLES_PER_INTERVAL).max(PERIODIC_SAMPLE_INTERVAL_MIN);
        let samples_kept =
            usize::try_from(period.as_nanos() / sample_interval.as_nanos()).unwrap_or(usize::MAX);
        Periodic {
            period,
            compact_interval,
            sample_interval,
            samples_kept: samples_kept.saturating_add(1),
            samples: VecDeque::new(),
            last_success: now,
            wait: period,
        }
    }

    pub fn sample_interval(&self) -> Duration {
        self.sample_interval
    }

    pub fn compact_interval(&self) -> Duration {
        self.compact_interval
    }

    /// How many samples the window keeps.
    pub fn samples_kept(&self) -> usize {
        self.samples_kept
    }

    /// Records the current revision, dropping the oldest sample once the window is full.
    pub fn record(&mut self, rev: i64) {
        self.samples.push_back(rev);
        if self.samples.len() > self.samples_kept {
            self.samples.pop_front();
        }
    }

    /// After a sample interval: the revision to compact to now, if it is time.
    pub fn due(&mut self, now: Duration) -> Option<i64> {
        if now.saturating_sub(self.last_success) < self.wait {
            return None;
        }
        // Only the first compaction waits a whole period (etcd: "wait up to initial given
        // period"); after it, one compact interval.
        if self.wait == self.period {
            self.wait = self.compact_interval;
        }
        self.samples.front().copied()
    }

    /// Reports the outcome of the compaction [`Periodic::due`] asked for.
    pub fn finished(&mut self, now: Duration, outcome: &Result<(), EtcdError>) {
        if succeeded(outcome) {
            self.last_success = now;
        }
    }
}

/// etcd's revision compactor as a state machine: every [`REVISION_INTERVAL`], [`Revision::due`]
/// with the current revision, and if it names one, compact and report with
/// [`Revision::finished`].
#[derive(Clone, Debug)]
pub struct Revision {
    retention: i64,
    /// The last revision compacted to successfully.
    previous: i64,
}

impl Revision {
    pub fn new(retention: u64) -> Revision {
        Revision {
            retention: i64::try_from(retention).unwrap_or(i64::MAX),
            previous: 0,
        }
    }

    pub fn due(&self, current: i64) -> Option<i64> {
        let rev = current.saturating_sub(self.retention);
        (rev > 0 && rev != self.previous).then_some(rev)
    }

    pub fn finished(&mut self, rev: i64, outcome: &Result<(), EtcdError>) {
        if succeeded(outcome) {
            self.previous = rev;
        }
    }
}

/// Runs `policy` forever (returns at once when it is disabled).
pub async fn run(policy: AutoCompaction, clock: impl Clock, target: impl Target) {
    match policy {
        AutoCompaction::Disabled => {}
        AutoCompaction::Periodic(period) => {
            let mut periodic = Periodic::new(period, clock.now());
            loop {
                periodic.record(target.rev());
                clock.sleep(periodic.sample_interval()).await;
                if let Some(rev) = periodic.due(clock.now()) {
                    let outcome = target.compact(rev).await;
                    report("periodic", rev, &outcome);
                    periodic.finished(clock.now(), &outcome);
                }
            }
        }
        AutoCompaction::Revision(retention) => {
            let mut revision = Revision::new(retention);
            loop {
                clock.sleep(REVISION_INTERVAL).await;
                if let Some(rev) = revision.due(target.rev()) {
                    let outcome = target.compact(rev).await;
                    report("revision", rev, &outcome);
                    revision.finished(rev, &outcome);
                }
            }
        }
    }
}

/// etcd's v3compactor lines: `completed auto periodic compaction` (an already compacted
/// revision counts as done, as in etcd) or `failed auto ... compaction`.
fn report(mode: &str, rev: i64, outcome: &Result<(), EtcdError>) {
    match outcome {
        Ok(()) | Err(EtcdError::Compacted) => {
            tracing::info!(revision = rev, "completed auto {mode} compaction")
        }
        Err(e) => tracing::warn!(revision = rev, error = ?e, "failed auto {mode} compaction"),
    }
}

/// The real clock: tokio's monotonic time (needs a tokio runtime with time enabled).
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// Compactions proposed through a node's log.
#[derive(Clone, Debug)]
pub struct NodeTarget {
    pub node: crate::node::NodeHandle,
}

impl Target for NodeTarget {
    fn rev(&self) -> i64 {
        self.node.store().current_rev()
    }

    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), EtcdError>> + Send {
        let node = self.node.clone();
        async move {
            let request = keelson_proto::etcdserverpb::CompactionRequest {
                revision: rev,
                physical: false,
            };
            node.propose(crate::server::WriteRequest::Compaction(request))
                .await
                .map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests;
