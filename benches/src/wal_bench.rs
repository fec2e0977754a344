//! `wal-bench`: the write-ahead log against the disk's own floor, in one run on one disk.
//!
//! 1. Raw 4 KiB `write + fdatasync` in a loop through glommio DMA files over a preallocated,
//!    zero-filled file (what the log does), interleaved in rounds with the log driven by a single
//!    appender, so that drift in the disk's speed hits both alike.
//! 2. Raw 4 KiB `write + fdatasync` appending to an empty file.
//! 3. The log with 16, 256 and 1024 concurrent appenders of 256-byte entries.
//!
//! For each: durable appends per second, fdatasyncs per second, latency percentiles.
//!
//! Usage: `wal-bench [DIR] [SECONDS_PER_WAL_RUN]`. DIR (default: the current directory) selects
//! the disk; the benchmark works in a temporary directory inside it and removes it afterwards.

use glommio::LocalExecutorBuilder;
use glommio::io::OpenOptions;
use hdrhistogram::Histogram;
use keelson_storage::io::GlommioDirectory;
use keelson_storage::wal::{Entry, Record, Wal, WalConfig};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
const RAW_OPS: u64 = 3000;
/// Rounds of (raw overwrite, single appender), each of `RAW_OPS / ROUNDS` operations.
const ROUNDS: u64 = 6;
const RECORD_DATA_BYTES: usize = 256;
const APPENDERS: [usize; 3] = [16, 256, 1024];

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn us(h: &Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

async fn raw_file(dir: &Path, preallocated: bool) -> glommio::io::DmaFile {
    let path = dir.join(if preallocated {
        "raw-over"
    } else {
        "raw-append"
    });
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .dma_open(&path)
        .await
        .expect("open raw file");
    if preallocated {
        let chunk = 1 << 20;
        let total = RAW_OPS * BLOCK as u64;
        let mut at = 0;
        while at < total {
            let mut buf = file.alloc_dma_buffer(chunk);
            buf.as_bytes_mut().fill(0);
            file.write_at(buf, at).await.expect("zero fill");
            at += chunk as u64;
        }
        file.fdatasync().await.expect("sync");
    }
    file
}

/// Blocks `ops` of `file`, each written and fdatasynced on its own; records latencies in `h`.
async fn raw(file: &glommio::io::DmaFile, ops: std::ops::Range<u64>, h: &mut Histogram<u64>) {
    for i in ops {
        let mut buf = file.alloc_dma_buffer(BLOCK);
        buf.as_bytes_mut().fill(i as u8 | 1);
        let t = Instant::now();
        file.write_at(buf, i * BLOCK as u64).await.expect("write");
        file.fdatasync().await.expect("sync");
        h.record(t.elapsed().as_micros().max(1) as u64)
            .expect("record");
    }
}

/// `ops` appends of one entry each, one at a time, starting at entry `first`.
async fn single_appender(
    wal: &Wal<GlommioDirectory>,
    first: u64,
    ops: u64,
    h: &mut Histogram<u64>,
) {
    for index in first..first + ops {
        let record = Record::Entry(Entry {
            index,
            term: 1,
            data: vec![0xA5; RECORD_DATA_BYTES],
        });
        let t = Instant::now();
        wal.append(&[record]).await.expect("append");
        h.record(t.elapsed().as_micros().max(1) as u64)
            .expect("record");
    }
}

fn row(name: &str, ops: u64, syncs: u64, elapsed: Duration, h: &Histogram<u64>) {
    let s = elapsed.as_secs_f64();
    println!(
        "{name:<36} {:>12.0} {:>12.0} {:>9} {:>9} {:>9}",
        ops as f64 / s,
        syncs as f64 / s,
        us(h, 0.5),
        us(h, 0.99),
        us(h, 0.999)
    );
}

struct WalRun {
    appends: u64,
    syncs: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

async fn wal_run(dir: &Path, appenders: usize, run_for: Duration) -> WalRun {
    let path = dir.join(format!("wal-{appenders}"));
    let gdir = GlommioDirectory::open(&path).await.expect("open dir");
    let (wal, _) = Wal::open(gdir, WalConfig::default())
        .await
        .expect("open wal");
    let preparer = glommio::spawn_local(wal.clone().prepare_segments());
    // Let the next segment be zero-filled before timing, as it would be in steady state.
    glommio::timer::sleep(Duration::from_millis(300)).await;
    let next_index = Rc::new(Cell::new(1u64));
    let latency = Rc::new(RefCell::new(histogram()));
    let start = Instant::now();
    let deadline = start + run_for;
    let before = wal.stats();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let (wal, next_index, latency) = (wal.clone(), next_index.clone(), latency.clone());
            glommio::spawn_local(async move {
                let data = vec![0xA5u8; RECORD_DATA_BYTES];
                while Instant::now() < deadline {
                    let index = next_index.get();
                    next_index.set(index + 1);
                    let record = Record::Entry(Entry {
                        index,
                        term: 1,
                        data: data.clone(),
                    });
                    let t = Instant::now();
                    wal.append(&[record]).await.expect("append");
                    let took = t.elapsed().as_micros().max(1) as u64;
                    latency.borrow_mut().record(took).expect("record");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let elapsed = start.elapsed();
    let after = wal.stats();
    wal.close();
    preparer.await.expect("preparer");
    let latency = latency.borrow().clone();
    drop(wal);
    std::fs::remove_dir_all(&path).expect("remove wal dir");
    WalRun {
        appends: after.appends - before.appends,
        syncs: after.syncs - before.syncs,
        elapsed,
        latency,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let secs: f64 = args
        .next()
        .map(|s| s.parse().expect("seconds"))
        .unwrap_or(3.0);
    let tmp = tempfile::Builder::new()
        .prefix("wal-bench-")
        .tempdir_in(&base)
        .expect("temporary directory");
    let dir = tmp.path().to_path_buf();
    LocalExecutorBuilder::default()
        .name("wal-bench")
        .make()
        .expect("glommio executor")
        .run(async move {
            println!("disk: {}", base.display());
            println!(
                "{:<36} {:>12} {:>12} {:>9} {:>9} {:>9}",
                "case", "appends/s", "fdatasync/s", "p50 us", "p99 us", "p99.9 us"
            );
            // 1. The floor and the single appender, interleaved.
            let over = raw_file(&dir, true).await;
            let wal_dir = dir.join("wal-1");
            let gdir = GlommioDirectory::open(&wal_dir).await.expect("open dir");
            let (wal, _) = Wal::open(gdir, WalConfig::default())
                .await
                .expect("open wal");
            let per_round = RAW_OPS / ROUNDS;
            let (mut floor, mut single) = (histogram(), histogram());
            let (mut floor_time, mut single_time) = (Duration::ZERO, Duration::ZERO);
            let before = wal.stats();
            for round in 0..ROUNDS {
                let t = Instant::now();
                raw(
                    &over,
                    round * per_round..(round + 1) * per_round,
                    &mut floor,
                )
                .await;
                floor_time += t.elapsed();
                let t = Instant::now();
                single_appender(&wal, 1 + round * per_round, per_round, &mut single).await;
                single_time += t.elapsed();
            }
            let syncs = wal.stats().syncs - before.syncs;
            over.close().await.expect("close");
            drop(wal);
            row(
                "raw 4KiB write+fdatasync, overwrite",
                RAW_OPS,
                RAW_OPS,
                floor_time,
                &floor,
            );
            row(
                "wal, 1 appender x 256 B",
                RAW_OPS,
                syncs,
                single_time,
                &single,
            );
            println!(
                "  single-appender p50 / overwrite-floor p50 = {:.2}",
                us(&single, 0.5) as f64 / us(&floor, 0.5) as f64
            );
            // 2. Appending floor.
            let append = raw_file(&dir, false).await;
            let mut h = histogram();
            let t = Instant::now();
            raw(&append, 0..RAW_OPS, &mut h).await;
            row(
                "raw 4KiB write+fdatasync, append",
                RAW_OPS,
                RAW_OPS,
                t.elapsed(),
                &h,
            );
            append.close().await.expect("close");
            // 3. Many appenders.
            for n in APPENDERS {
                let r = wal_run(&dir, n, Duration::from_secs_f64(secs)).await;
                row(
                    &format!("wal, {n} appenders x 256 B"),
                    r.appends,
                    r.syncs,
                    r.elapsed,
                    &r.latency,
                );
            }
        });
}
