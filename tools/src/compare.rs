//! `compare`: etcd and Keelson side by side on the same machine and disk.
//!
//! Both servers start on fresh data dirs under one root and random loopback
//! ports. Each workload then runs A, B, A, B ... so slow drift (page cache,
//! thermal, other load) hits both alike, and rounds are merged per server.
//! Beside speed it records server memory and CPU per workload, data size
//! afterwards and the time to restart on the loaded data.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::args::{CompareSpec, RunSpec};
use crate::procstat::{self, RssSampler};
use crate::report::{CompareReport, CompareRow, ServerTotals, Side};
use crate::server::{self, Server};
use crate::workloads;
use crate::{disk, rtt};

const ETCD: &str = "etcd";
const KEELSON: &str = "keelson";

/// Removes the run's data dir when dropped, unless asked to keep it.
/// Declared before the servers so it drops after they stopped.
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("data and server logs kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn resolve_binaries(spec: &CompareSpec) -> Result<(PathBuf, PathBuf), String> {
    let etcd_name = spec.etcd.to_string_lossy();
    let etcd = server::find_program(&etcd_name)
        .ok_or_else(|| format!("etcd binary {etcd_name:?} not found (on PATH or as a path)"))?;
    let keelson = match &spec.keelson {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("locating this binary: {e}"))?
            .with_file_name(KEELSON),
    };
    if !keelson.is_file() {
        return Err(format!(
            "Keelson binary not found at {}; build it (cargo build --release -p keelson) or pass --keelson PATH",
            keelson.display()
        ));
    }
    Ok((etcd, keelson))
}

fn run_dir(spec: &CompareSpec) -> Result<RunDir, String> {
    let root = match &spec.data_root {
        Some(r) => r.clone(),
        None => std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join("target"),
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = root.join(format!("keelson-bench-{}-{stamp}", std::process::id()));
    server::fresh_dir(&path)?;
    Ok(RunDir {
        path,
        keep: spec.keep_data,
    })
}

async fn start(name: &str, binary: &Path, dir: &Path, timeout: Duration) -> Result<Server, String> {
    eprintln!("starting {name} ({})", binary.display());
    let mut s = Server::spawn(
        name,
        binary,
        &dir.join(name),
        &dir.join(format!("{name}.log")),
    )?;
    let took = s.wait_ready(timeout).await?;
    eprintln!(
        "{name} answered after {:.3}s on {}",
        took.as_secs_f64(),
        s.endpoint()
    );
    Ok(s)
}

/// Runs one workload against one server, sampling its memory and CPU.
async fn measure(server: &Server, spec: &RunSpec) -> Side {
    let pid = server.pid().unwrap_or(0);
    let mut run = spec.clone();
    run.global.endpoints = vec![server.endpoint()];
    let cpu_before = procstat::cpu_time(pid);
    let sampler = RssSampler::start(pid);
    let result = workloads::run(&run).await;
    let peak_rss = sampler.finish(pid).await;
    let cpu = match (cpu_before, procstat::cpu_time(pid)) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    Side {
        result,
        peak_rss,
        cpu,
    }
}

fn absorb(into: &mut Option<Side>, side: Side) {
    match into {
        None => *into = Some(side),
        Some(acc) => {
            acc.result.absorb(&side.result);
            acc.peak_rss = acc.peak_rss.max(side.peak_rss);
            acc.cpu += side.cpu;
        }
    }
}

/// How long a server is left alone before its resident memory is read, so
/// background work a workload started (syncs, compaction) has settled.
const RSS_SETTLE: Duration = Duration::from_secs(2);

/// VmRSS of `server` after `RSS_SETTLE`.
async fn settled_rss(server: &Server) -> u64 {
    tokio::time::sleep(RSS_SETTLE).await;
    server.pid().and_then(procstat::rss_bytes).unwrap_or(0)
}

/// Reads `server`'s memory, stops it, measures its data dir, restarts it on
/// the same data, times its first successful Range and reads its memory again.
async fn restart_totals(server: &mut Server, timeout: Duration) -> ServerTotals {
    let rss_loaded = settled_rss(server).await;
    server.stop();
    let db_bytes = procstat::dir_size(&server.data_dir);
    let restart = match server.restart() {
        Ok(()) => server.wait_ready(timeout).await,
        Err(e) => Err(e),
    };
    let rss_restarted = if restart.is_ok() {
        settled_rss(server).await
    } else {
        0
    };
    server.stop();
    ServerTotals {
        name: server.name.clone(),
        db_bytes,
        restart,
        rss_loaded,
        rss_restarted,
    }
}

pub async fn run(spec: &CompareSpec) -> Result<CompareReport, String> {
    let (etcd_bin, keelson_bin) = resolve_binaries(spec)?;
    let dir = run_dir(spec)?;
    let fsync = disk::fsync_floor(&dir.path, spec.fsync_samples).map_err(|e| {
        format!(
            "measuring the fdatasync floor in {}: {e}",
            dir.path.display()
        )
    })?;
    let rtt = rtt::loopback_rtt(spec.fsync_samples)
        .map_err(|e| format!("measuring the loopback round trip: {e}"))?;

    let mut a = start(ETCD, &etcd_bin, &dir.path, spec.start_timeout)
        .await
        .map_err(|e| format!("etcd failed to start: {e}"))?;
    let mut b = match start(KEELSON, &keelson_bin, &dir.path, spec.start_timeout).await {
        Ok(b) => b,
        Err(e) => {
            a.stop();
            return Err(format!("Keelson failed to start (etcd stopped): {e}"));
        }
    };

    let mut rows = Vec::with_capacity(spec.workloads.len());
    for workload in &spec.workloads {
        let label = workload.workload.label();
        let (mut side_a, mut side_b) = (None, None);
        for round in 1..=spec.rounds {
            for (server, acc) in [(&a, &mut side_a), (&b, &mut side_b)] {
                eprintln!("{label}: round {round}/{} on {}", spec.rounds, server.name);
                absorb(acc, measure(server, workload).await);
            }
        }
        if let (Some(a), Some(b)) = (side_a, side_b) {
            rows.push(CompareRow { label, a, b });
        }
    }

    let totals_a = restart_totals(&mut a, spec.start_timeout).await;
    let totals_b = restart_totals(&mut b, spec.start_timeout).await;
    Ok(CompareReport {
        rounds: spec.rounds,
        rows,
        a: totals_a,
        b: totals_b,
        fsync,
        rtt,
    })
}
