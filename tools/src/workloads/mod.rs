//! The workloads: each builds its clients from the command line's options,
//! runs, and returns a [`RunResult`]. Failures to set up (no connection, a
//! lease grant refused) become errors in the result, so callers always get
//! a report.

mod kv;
mod lease;
mod watch;

use std::time::Duration;

use crate::args::{RunSpec, Workload};
use crate::conn::Pool;
use crate::driver::{Plan, drive};
use crate::report::RunResult;

/// Time allowed for setup and teardown on top of `--timeout` (connecting,
/// granting leases, creating watchers, draining events).
const SETUP_SLACK: Duration = Duration::from_secs(60);

/// Operations a workload sets out to do, before it knows more.
fn planned(w: &Workload) -> u64 {
    match w {
        Workload::Put(o) => o.total,
        Workload::Range(o) => o.total,
        Workload::TxnPut(o) => o.total,
        Workload::TxnMixed(o) => o.total,
        Workload::Watch(o) => o.put_total,
        Workload::WatchLatency(o) => o.total,
        Workload::LeaseKeepalive(o) => o.total,
    }
}

/// Runs one workload to completion (bounded by `--timeout` plus setup slack).
pub async fn run(spec: &RunSpec) -> RunResult {
    let label = spec.workload.label();
    let bound = spec.global.timeout + SETUP_SLACK;
    let outcome = match tokio::time::timeout(bound, run_inner(spec, &label)).await {
        Ok(r) => r,
        Err(_) => Err(format!("workload did not finish within {bound:?}")),
    };
    outcome.unwrap_or_else(|e| {
        let mut r = RunResult::new(&label, &spec.command, planned(&spec.workload));
        r.errors = r.requests;
        r.note_error(e);
        r
    })
}

async fn run_inner(spec: &RunSpec, label: &str) -> Result<RunResult, String> {
    let g = &spec.global;
    let pool = Pool::connect(&g.endpoints, g.conns).await?;
    let plan = |total: u64, rate: u64, classes: &[&str]| Plan {
        label: label.to_string(),
        command: spec.command.clone(),
        total,
        rate,
        deadline: g.timeout,
        classes: classes.iter().map(|c| c.to_string()).collect(),
    };
    let clients = 0..g.clients;
    Ok(match &spec.workload {
        Workload::Put(o) => {
            let workers = clients
                .map(|i| kv::PutWorker::new(pool.for_client(i), o, i))
                .collect();
            drive(&plan(o.total, o.rate, &[]), workers).await
        }
        Workload::Range(o) => {
            let workers = clients
                .map(|i| kv::RangeWorker::new(pool.for_client(i), o))
                .collect();
            drive(&plan(o.total, o.rate, &[]), workers).await
        }
        Workload::TxnPut(o) => {
            let workers = clients
                .map(|i| kv::TxnPutWorker::new(pool.for_client(i), o))
                .collect();
            drive(&plan(o.total, o.rate, &[]), workers).await
        }
        Workload::TxnMixed(o) => {
            let workers = clients
                .map(|i| kv::TxnMixedWorker::new(pool.for_client(i), o, i))
                .collect();
            drive(&plan(o.total, o.rate, &kv::TXN_MIXED_CLASSES), workers).await
        }
        Workload::LeaseKeepalive(o) => {
            let mut workers = Vec::with_capacity(g.clients);
            for i in clients {
                workers.push(lease::KeepaliveWorker::setup(pool.for_client(i)).await?);
            }
            let ids: Vec<i64> = workers.iter().map(|w| w.lease_id()).collect();
            let result = drive(&plan(o.total, 0, &[]), workers).await;
            lease::revoke(pool.for_client(0), &ids).await;
            result
        }
        Workload::WatchLatency(o) => {
            watch::watch_latency(&pool, &g.endpoints[0], g, o, label, &spec.command).await?
        }
        Workload::Watch(o) => watch::watch(&pool, g, o, label, &spec.command).await?,
    })
}
