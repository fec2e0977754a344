//! The closed-loop request driver shared by the unary workloads.
//!
//! Every client is a task that claims the next request number from a shared
//! counter and issues it as soon as its previous one returned, or at its slot
//! in a global schedule when `--rate` paces the run. The run ends when all
//! `total` requests are claimed and answered, or when the wall-time bound
//! passes, whichever is first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hist::{Latency, Samples};
use crate::progress::ProgressLine;
use crate::report::RunResult;

/// Bound on one request, so a lost reply cannot stall its client forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct error messages kept for the report.
const MAX_ERROR_SAMPLES: usize = 5;

/// One client's connection state and request builder.
pub trait Worker: Send + 'static {
    /// Issues request number `seq` and waits for its answer. On success,
    /// returns the class index the latency is also filed under (see
    /// [`Plan::classes`]); workloads with one kind of request return 0.
    fn call(&mut self, seq: u64) -> impl Future<Output = Result<usize, String>> + Send;
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub label: String,
    pub command: String,
    pub total: u64,
    /// Requests per second over all clients; 0 is unpaced.
    pub rate: u64,
    pub deadline: Duration,
    /// Names of request classes with their own latency breakdown (e.g.
    /// `read`, `write`); empty when the workload has one kind of request.
    pub classes: Vec<String>,
}

/// When request `seq` may start under a global `rate` per second.
pub fn slot(start: Instant, seq: u64, rate: u64) -> Instant {
    if rate == 0 {
        return start;
    }
    start + Duration::from_nanos((u128::from(seq) * 1_000_000_000 / u128::from(rate)) as u64)
}

struct ClientTally {
    samples: Samples,
    by_class: Vec<Samples>,
    ok: u64,
    errors: u64,
    error_samples: Vec<String>,
}

/// Runs `workers` (one per client) through `plan`.
pub async fn drive<W: Worker>(plan: &Plan, workers: Vec<W>) -> RunResult {
    let line = ProgressLine::start(&plan.label, plan.total);
    let next = Arc::new(AtomicU64::new(0));
    let timed_out = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let end_by = start + plan.deadline;
    let per_client = plan.total as usize / workers.len().max(1) + 1;

    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let next = next.clone();
        let timed_out = timed_out.clone();
        let progress = line.counter();
        let (total, rate, classes) = (plan.total, plan.rate, plan.classes.len());
        tasks.push(tokio::spawn(async move {
            let mut tally = ClientTally {
                samples: Samples::with_capacity(per_client),
                by_class: vec![Samples::default(); classes],
                ok: 0,
                errors: 0,
                error_samples: Vec::new(),
            };
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let at = slot(start, seq, rate);
                if at >= end_by || Instant::now() >= end_by {
                    timed_out.store(true, Ordering::Relaxed);
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let t0 = Instant::now();
                let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, worker.call(seq)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                };
                let took = t0.elapsed();
                match outcome {
                    Ok(class) => {
                        tally.ok += 1;
                        tally.samples.record(took);
                        if let Some(s) = tally.by_class.get_mut(class) {
                            s.record(took);
                        }
                    }
                    Err(e) => {
                        tally.errors += 1;
                        if tally.error_samples.len() < MAX_ERROR_SAMPLES
                            && !tally.error_samples.contains(&e)
                        {
                            tally.error_samples.push(e);
                        }
                    }
                }
                progress.inc();
            }
            tally
        }));
    }

    let mut result = RunResult::new(&plan.label, &plan.command, plan.total);
    result.breakdown = plan
        .classes
        .iter()
        .map(|c| (c.clone(), Latency::default()))
        .collect();
    for task in tasks {
        match task.await {
            Ok(tally) => {
                result.ok += tally.ok;
                result.errors += tally.errors;
                result.latency.add_samples(&tally.samples);
                for (i, s) in tally.by_class.iter().enumerate() {
                    result.breakdown[i].1.add_samples(s);
                }
                for e in tally.error_samples {
                    result.note_error(e);
                }
            }
            Err(e) => {
                result.errors += 1;
                result.note_error(format!("client task failed: {e}"));
            }
        }
    }
    result.elapsed = start.elapsed();
    result.timed_out = timed_out.load(Ordering::Relaxed);
    line.finish();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky;

    impl Worker for Flaky {
        async fn call(&mut self, seq: u64) -> Result<usize, String> {
            if seq.is_multiple_of(10) {
                Err("every tenth fails".into())
            } else {
                Ok((seq % 2) as usize)
            }
        }
    }

    fn plan(total: u64, rate: u64, deadline: Duration) -> Plan {
        Plan {
            label: "t".into(),
            command: "t".into(),
            total,
            rate,
            deadline,
            classes: vec!["even".into(), "odd".into()],
        }
    }

    #[tokio::test]
    async fn counts_every_request_once() {
        let r = drive(
            &plan(100, 0, Duration::from_secs(10)),
            vec![Flaky, Flaky, Flaky],
        )
        .await;
        assert_eq!((r.requests, r.ok, r.errors), (100, 90, 10));
        assert_eq!(r.latency.count(), 90);
        assert_eq!(r.breakdown[0].1.count(), 40);
        assert_eq!(r.breakdown[1].1.count(), 50);
        assert_eq!(r.error_samples, vec!["every tenth fails".to_string()]);
        assert!(!r.timed_out && !r.all_ok());
    }

    #[tokio::test]
    async fn rate_paces_and_deadline_stops() {
        // 20 requests at 100/s take about 190 ms.
        let r = drive(&plan(20, 100, Duration::from_secs(10)), vec![Flaky]).await;
        assert!(r.elapsed >= Duration::from_millis(180), "{:?}", r.elapsed);
        // At 10/s a 250 ms bound admits three requests (t = 0, 100, 200 ms).
        let r = drive(&plan(1000, 10, Duration::from_millis(250)), vec![Flaky]).await;
        assert!(r.timed_out);
        assert_eq!(r.ok + r.errors, 3);
    }

    #[test]
    fn slots() {
        let t = Instant::now();
        assert_eq!(slot(t, 5, 0), t);
        assert_eq!(slot(t, 3, 1000), t + Duration::from_millis(3));
    }
}
