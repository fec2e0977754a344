//! The auto-compaction schedule under simulated time: the driver runs against a fake clock whose
//! sleeps return at once after moving time forward, and a target whose revision grows with that
//! time. No test sleeps.

use super::*;
use crate::config::Config;
use parking_lot::Mutex;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);

/// Time moves only when the compactor sleeps.
#[derive(Clone, Default)]
struct FakeClock {
    now: Arc<Mutex<Duration>>,
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.now.lock()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        *self.now.lock() += duration;
        // Yield once so the test's horizon check runs between turns of the loop.
        let mut yielded = false;
        std::future::poll_fn(move |cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }
}

/// One write per simulated second: the revision at time `t` is `1 + t` in seconds. Compactions
/// are recorded with the time they were asked for; `fail_before` makes earlier ones fail, and
/// `compacted` answers ErrCompacted instead of success.
#[derive(Clone)]
struct FakeTarget {
    clock: FakeClock,
    compactions: Arc<Mutex<Vec<(Duration, i64)>>>,
    fail_before: Duration,
    compacted: bool,
}

impl FakeTarget {
    fn new(clock: &FakeClock) -> FakeTarget {
        FakeTarget {
            clock: clock.clone(),
            compactions: Arc::default(),
            fail_before: Duration::ZERO,
            compacted: false,
        }
    }
}

fn rev_at(t: Duration) -> i64 {
    1 + t.as_secs() as i64
}

impl Target for FakeTarget {
    fn rev(&self) -> i64 {
        rev_at(self.clock.now())
    }

    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), EtcdError>> + Send {
        let now = self.clock.now();
        self.compactions.lock().push((now, rev));
        let outcome = if now < self.fail_before {
            Err(EtcdError::Stopped)
        } else if self.compacted {
            Err(EtcdError::Compacted)
        } else {
            Ok(())
        };
        std::future::ready(outcome)
    }
}

/// Runs the driver until the fake clock passes `horizon`; returns the compactions.
fn run_for(policy: AutoCompaction, target: FakeTarget, horizon: Duration) -> Vec<(Duration, i64)> {
    let clock = target.clock.clone();
    let compactions = target.compactions.clone();
    let mut driver = pin!(run(policy, clock.clone(), target));
    futures::executor::block_on(std::future::poll_fn(|cx| {
        loop {
            if driver.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if clock.now() > horizon {
                return Poll::Ready(());
            }
        }
    }));
    compactions.lock().clone()
}

/// The compactions of a periodic run that never fails: at each `at[i] * unit`, to the revision
/// sampled at 0 for the first, and `period + sample` before it for the later ones.
fn expected(
    period: Duration,
    sample: Duration,
    at: &[u32],
    unit: Duration,
) -> Vec<(Duration, i64)> {
    at.iter()
        .enumerate()
        .map(|(i, n)| {
            let t = unit * *n;
            let back = if i == 0 { period } else { period + sample };
            (t, rev_at(t - back))
        })
        .collect()
}

#[test]
fn periodic_one_hour_samples_every_six_minutes_and_compacts_hourly() {
    let p = Periodic::new(HOUR, Duration::ZERO);
    assert_eq!(p.sample_interval(), 6 * MINUTE);
    assert_eq!(p.compact_interval(), HOUR);
    assert_eq!(p.samples_kept(), 11);

    let clock = FakeClock::default();
    let done = run_for(
        AutoCompaction::Periodic(HOUR),
        FakeTarget::new(&clock),
        4 * HOUR,
    );
    // First at 1h to the revision sampled at 0. Later ones every hour, to the oldest of the 11
    // samples, which were taken before the sleep: one hour and one sample interval back.
    assert_eq!(done, expected(HOUR, 6 * MINUTE, &[1, 2, 3, 4], HOUR));
}

#[test]
fn periodic_over_an_hour_waits_the_whole_retention_then_compacts_hourly() {
    let p = Periodic::new(24 * HOUR, Duration::ZERO);
    assert_eq!(p.sample_interval(), 6 * MINUTE);
    assert_eq!(p.compact_interval(), HOUR);
    assert_eq!(p.samples_kept(), 241);

    let clock = FakeClock::default();
    let done = run_for(
        AutoCompaction::Periodic(24 * HOUR),
        FakeTarget::new(&clock),
        27 * HOUR,
    );
    assert_eq!(
        done,
        expected(24 * HOUR, 6 * MINUTE, &[24, 25, 26, 27], HOUR)
    );
}

#[test]
fn periodic_under_an_hour_compacts_every_retention() {
    let period = 10 * MINUTE;
    let p = Periodic::new(period, Duration::ZERO);
    assert_eq!(p.sample_interval(), MINUTE);
    assert_eq!(p.samples_kept(), 11);
    let clock = FakeClock::default();
    let done = run_for(
        AutoCompaction::Periodic(period),
        FakeTarget::new(&clock),
        30 * MINUTE,
    );
    assert_eq!(done, expected(period, MINUTE, &[1, 2, 3], period));
}

#[test]
fn periodic_retries_a_failure_at_every_sample_and_takes_compacted_as_success() {
    let clock = FakeClock::default();
    let mut target = FakeTarget::new(&clock);
    // Fails until 1h12m: tried at 1h, 1h6m, 1h12m (succeeds), then next at 2h12m.
    target.fail_before = HOUR + 12 * MINUTE;
    let done = run_for(
        AutoCompaction::Periodic(HOUR),
        target,
        2 * HOUR + 15 * MINUTE,
    );
    let times: Vec<Duration> = done.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![
            HOUR,
            HOUR + 6 * MINUTE,
            HOUR + 12 * MINUTE,
            2 * HOUR + 12 * MINUTE
        ]
    );
    // The first try compacts to the revision of one period before it, later ones (the window
    // is full by then) one period and one sample interval before.
    assert_eq!(done[0].1, rev_at(Duration::ZERO));
    for (t, rev) in &done[1..] {
        assert_eq!(*rev, rev_at(*t - HOUR - 6 * MINUTE));
    }

    let clock = FakeClock::default();
    let mut target = FakeTarget::new(&clock);
    target.compacted = true;
    let done = run_for(AutoCompaction::Periodic(HOUR), target, 3 * HOUR);
    assert_eq!(
        done.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![HOUR, 2 * HOUR, 3 * HOUR]
    );
}

#[test]
fn periodic_tiny_retention_samples_at_least_a_millisecond_apart() {
    let p = Periodic::new(Duration::from_nanos(5), Duration::ZERO);
    assert_eq!(p.sample_interval(), PERIODIC_SAMPLE_INTERVAL_MIN);
    assert_eq!(p.samples_kept(), 1);
}

#[test]
fn revision_mode_compacts_every_five_minutes_to_current_minus_retention() {
    let clock = FakeClock::default();
    let done = run_for(
        AutoCompaction::Revision(100),
        FakeTarget::new(&clock),
        16 * MINUTE,
    );
    assert_eq!(
        done,
        vec![
            (5 * MINUTE, rev_at(5 * MINUTE) - 100),
            (10 * MINUTE, rev_at(10 * MINUTE) - 100),
            (15 * MINUTE, rev_at(15 * MINUTE) - 100),
        ]
    );
}

#[test]
fn revision_mode_skips_non_positive_and_repeated_revisions_and_retries_failures() {
    let mut r = Revision::new(1000);
    assert_eq!(r.due(1000), None);
    assert_eq!(r.due(999), None);
    assert_eq!(r.due(1001), Some(1));
    r.finished(1, &Ok(()));
    // No writes since: the same revision is not compacted again.
    assert_eq!(r.due(1001), None);
    assert_eq!(r.due(1500), Some(500));
    r.finished(500, &Err(EtcdError::Stopped));
    assert_eq!(r.due(1500), Some(500), "a failure is retried");
    r.finished(500, &Err(EtcdError::Compacted));
    assert_eq!(r.due(1500), None, "ErrCompacted counts as done");
    // A retention beyond i64 never compacts.
    assert_eq!(Revision::new(u64::MAX).due(i64::MAX), None);
}

#[test]
fn disabled_returns_at_once() {
    let clock = FakeClock::default();
    let done = run_for(AutoCompaction::Disabled, FakeTarget::new(&clock), HOUR);
    assert!(done.is_empty());
    assert_eq!(clock.now(), Duration::ZERO);
}

fn policy(args: &[&str]) -> Result<AutoCompaction, String> {
    Config::from_args_and_env(args.iter().map(|s| s.to_string()), |_| None)
        .map(|c| c.auto_compaction)
        .map_err(|e| e.to_string())
}

#[test]
fn retention_flags_resolve_like_etcd() {
    let periodic = |r: &str| policy(&["--auto-compaction-retention", r]);
    assert_eq!(periodic("1h"), Ok(AutoCompaction::Periodic(HOUR)));
    // A bare number is hours in periodic mode.
    assert_eq!(periodic("1"), Ok(AutoCompaction::Periodic(HOUR)));
    assert_eq!(periodic("30m"), Ok(AutoCompaction::Periodic(30 * MINUTE)));
    assert_eq!(periodic("1h30m"), Ok(AutoCompaction::Periodic(90 * MINUTE)));
    assert_eq!(periodic("0"), Ok(AutoCompaction::Disabled));
    assert_eq!(periodic("0m"), Ok(AutoCompaction::Disabled));
    assert!(periodic("-1h").is_err());
    assert!(periodic("1x").is_err());
    let revision = |r: &str| {
        policy(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            r,
        ])
    };
    assert_eq!(revision("1000"), Ok(AutoCompaction::Revision(1000)));
    assert_eq!(revision("0"), Ok(AutoCompaction::Disabled));
    assert!(revision("5m").is_err());
    assert_eq!(policy(&[]), Ok(AutoCompaction::Disabled));
}
