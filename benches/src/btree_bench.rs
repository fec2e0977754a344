//! The B+tree beside redb, in one run on the same disk and the same data.
//!
//! Workloads (the issue's): load N keys (32 B) with 256 B values in commits of 1000 (batched
//! inserts), random point gets, ordered range scans of 1000 keys, and single-insert commits.
//! Then single-insert commits without durability, as the server applies Raft batches: Keelson's
//! `commit_unsynced` beside redb's `Durability::None`, first back to back (then one sync making
//! them all durable: Keelson's `Database::sync`, an empty `Durability::Immediate` commit in redb),
//! then with a thread making them durable every `SYNC_INTERVAL` meanwhile, as the server does.
//! Keelson's file is wrapped in a device that counts fdatasyncs, so the run also shows syncs per
//! commit. Both engines are loaded side by side and the one that goes first alternates between
//! workloads, so neither always runs on a warmer page cache.
//!
//! `cargo run --release -p keelson-benches --bin btree-bench -- [--keys N] [--dir PATH] [--json]`

use hdrhistogram::Histogram;
use keelson_storage::btree::Database;
use keelson_storage::io::{BlockDevice, FileDevice, Mapping};
use redb::{ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEY_BYTES: usize = 32;
const VALUE_BYTES: usize = 256;
const BATCH_KEYS: usize = 1000;
const SCAN_KEYS: usize = 1000;
const TREE: &[u8] = b"bench";
const REDB_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");
/// How often the server makes applied commits durable (etcd commits bbolt every 100 ms).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

struct Options {
    keys: usize,
    gets: usize,
    scans: usize,
    single_commits: usize,
    unsynced_commits: usize,
    dir: PathBuf,
    json: bool,
}

fn parse_options() -> Options {
    let mut options = Options {
        keys: 1_000_000,
        gets: 1_000_000,
        scans: 2_000,
        single_commits: 500,
        unsynced_commits: 20_000,
        dir: PathBuf::from("target/bench-data"),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--keys" => options.keys = value("--keys").parse().expect("--keys N"),
            "--gets" => options.gets = value("--gets").parse().expect("--gets N"),
            "--scans" => options.scans = value("--scans").parse().expect("--scans N"),
            "--single-commits" => {
                options.single_commits = value("--single-commits")
                    .parse()
                    .expect("--single-commits N")
            }
            "--unsynced-commits" => {
                options.unsynced_commits = value("--unsynced-commits")
                    .parse()
                    .expect("--unsynced-commits N")
            }
            "--dir" => options.dir = PathBuf::from(value("--dir")),
            "--json" => options.json = true,
            // cargo bench passes --bench to harness-less targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

/// A deterministic 64-bit mix (splitmix64), so both engines get the same keys in the same order.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(i: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    for (chunk, n) in key.chunks_mut(8).zip(0u64..) {
        chunk.copy_from_slice(&mix(i.wrapping_mul(4).wrapping_add(n)).to_be_bytes());
    }
    key
}

fn value(i: u64) -> [u8; VALUE_BYTES] {
    let mut value = [0u8; VALUE_BYTES];
    value[..8].copy_from_slice(&i.to_le_bytes());
    value
}

/// A [`FileDevice`] that counts its fdatasyncs.
struct CountingDevice {
    inner: FileDevice,
    syncs: Arc<AtomicU64>,
}

impl BlockDevice for CountingDevice {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }
    fn map(&self) -> std::io::Result<Arc<dyn Mapping>> {
        self.inner.map()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}

/// What one engine measured.
#[derive(Default)]
struct Results {
    load_keys_per_s: f64,
    gets_per_s: f64,
    scans_per_s: f64,
    single_commits_per_s: f64,
    single_commit_us_p50: u64,
    single_commit_us_p99: u64,
    syncs_per_commit: Option<f64>,
    unsynced_commits_per_s: f64,
    unsynced_commit_us_p50: u64,
    unsynced_commit_us_p99: u64,
    /// The one sync that makes every unsynced commit durable.
    sync_after_unsynced_ms: f64,
    /// Unsynced commits with another thread syncing every `SYNC_INTERVAL`.
    background_synced_commits_per_s: f64,
    background_synced_commit_us_p99: u64,
    /// The longest commit: whether the writer waited for a sync's fsyncs.
    background_synced_commit_us_max: u64,
    background_syncs: u64,
    file_bytes: u64,
}

/// The operations each engine provides to the workloads.
trait Engine: Sync {
    fn insert_batch(&mut self, keys: std::ops::Range<u64>);
    /// Commits the inserts visible but not durable.
    fn insert_unsynced(&self, keys: std::ops::Range<u64>);
    /// Makes every commit so far durable; safe to call from another thread.
    fn make_durable(&self);
    fn get_all(&self, order: &[u64]) -> usize;
    fn scan(&self, starts: &[u64]) -> usize;
    fn file_bytes(&self) -> u64;
}

struct Keelson {
    db: Database,
    path: PathBuf,
    syncs: Arc<AtomicU64>,
}

impl Keelson {
    fn create(path: &Path) -> Keelson {
        let syncs = Arc::new(AtomicU64::new(0));
        let device = CountingDevice {
            inner: FileDevice::open(path, true).expect("open"),
            syncs: syncs.clone(),
        };
        let db = Database::open(Arc::new(device)).expect("open keelson btree");
        let mut txn = db.begin_write().expect("begin");
        txn.create_tree(TREE).expect("create tree");
        txn.commit().expect("commit");
        Keelson {
            db,
            path: path.to_path_buf(),
            syncs,
        }
    }
}

impl Engine for Keelson {
    fn insert_batch(&mut self, keys: std::ops::Range<u64>) {
        let mut txn = self.db.begin_write().expect("begin");
        for i in keys {
            txn.put(TREE, &key(i), &value(i)).expect("put");
        }
        txn.commit().expect("commit");
    }

    fn insert_unsynced(&self, keys: std::ops::Range<u64>) {
        let mut txn = self.db.begin_write().expect("begin");
        for i in keys {
            txn.put(TREE, &key(i), &value(i)).expect("put");
        }
        txn.commit_unsynced().expect("commit unsynced");
    }

    fn make_durable(&self) {
        self.db.sync().expect("sync");
    }

    fn get_all(&self, order: &[u64]) -> usize {
        let txn = self.db.begin_read().expect("begin read");
        // Resolve the tree once, as redb's side opens its table once.
        let tree = txn.tree(TREE).expect("tree");
        let mut found = 0;
        for &i in order {
            if let Some(v) = tree.get(&key(i)).expect("get") {
                found += v.len();
            }
        }
        found
    }

    fn scan(&self, starts: &[u64]) -> usize {
        let txn = self.db.begin_read().expect("begin read");
        let tree = txn.tree(TREE).expect("tree");
        let mut seen = 0;
        for &i in starts {
            let start = key(i);
            for entry in tree.range(&start[..]..).take(SCAN_KEYS) {
                let (k, v) = entry.expect("scan");
                seen += k.len() + v.len();
            }
        }
        seen
    }

    fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

struct Redb {
    db: redb::Database,
    path: PathBuf,
}

impl Redb {
    fn create(path: &Path) -> Redb {
        let db = redb::Database::create(path).expect("create redb");
        let txn = db.begin_write().expect("begin");
        txn.open_table(REDB_TABLE).expect("table");
        txn.commit().expect("commit");
        Redb {
            db,
            path: path.to_path_buf(),
        }
    }
}

impl Engine for Redb {
    fn insert_batch(&mut self, keys: std::ops::Range<u64>) {
        let txn = self.db.begin_write().expect("begin");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("table");
            for i in keys {
                table.insert(&key(i)[..], &value(i)[..]).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    fn insert_unsynced(&self, keys: std::ops::Range<u64>) {
        let mut txn = self.db.begin_write().expect("begin");
        txn.set_durability(redb::Durability::None)
            .expect("durability");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("table");
            for i in keys {
                table.insert(&key(i)[..], &value(i)[..]).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    /// redb makes earlier `Durability::None` commits durable with the next immediate commit; it
    /// holds the single write transaction for the fsync.
    fn make_durable(&self) {
        let txn = self.db.begin_write().expect("begin");
        txn.commit().expect("commit");
    }

    fn get_all(&self, order: &[u64]) -> usize {
        let txn = self.db.begin_read().expect("begin read");
        let table = txn.open_table(REDB_TABLE).expect("table");
        let mut found = 0;
        for &i in order {
            if let Some(v) = table.get(&key(i)[..]).expect("get") {
                found += v.value().len();
            }
        }
        found
    }

    fn scan(&self, starts: &[u64]) -> usize {
        let txn = self.db.begin_read().expect("begin read");
        let table = txn.open_table(REDB_TABLE).expect("table");
        let mut seen = 0;
        for &i in starts {
            let start = key(i);
            for entry in table.range(&start[..]..).expect("range").take(SCAN_KEYS) {
                let (k, v) = entry.expect("scan");
                seen += k.value().len() + v.value().len();
            }
        }
        seen
    }

    fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The workloads, in the order they run.
#[derive(Clone, Copy)]
enum Phase {
    Load,
    Gets,
    Scans,
    SingleCommits,
    UnsyncedCommits,
}

/// Runs one workload on one engine, recording its result.
fn run_phase(
    phase: Phase,
    engine: &mut dyn Engine,
    options: &Options,
    syncs: Option<&AtomicU64>,
    results: &mut Results,
) {
    let keys = options.keys as u64;
    match phase {
        Phase::Load => {
            let started = Instant::now();
            let mut next = 0;
            while next < keys {
                let end = (next + BATCH_KEYS as u64).min(keys);
                engine.insert_batch(next..end);
                next = end;
            }
            results.load_keys_per_s = per_second(options.keys, started.elapsed());
        }
        Phase::Gets => {
            let order: Vec<u64> = (0..options.gets as u64)
                .map(|i| mix(i ^ 0xA5A5) % keys)
                .collect();
            let started = Instant::now();
            let found = engine.get_all(&order);
            results.gets_per_s = per_second(options.gets, started.elapsed());
            assert_eq!(
                found,
                options.gets * VALUE_BYTES,
                "every get must find its key"
            );
        }
        Phase::Scans => {
            let starts: Vec<u64> = (0..options.scans as u64)
                .map(|i| mix(i ^ 0x5A5A) % keys)
                .collect();
            let started = Instant::now();
            let seen = engine.scan(&starts);
            results.scans_per_s = per_second(options.scans, started.elapsed());
            assert!(seen > 0, "scans must return data");
        }
        Phase::SingleCommits => {
            let mut latency = Histogram::<u64>::new(3).expect("histogram");
            let syncs_before = syncs.map(|s| s.load(Ordering::Relaxed));
            let started = Instant::now();
            for i in 0..options.single_commits as u64 {
                let one = Instant::now();
                engine.insert_batch(keys + i..keys + i + 1);
                latency
                    .record(one.elapsed().as_micros() as u64)
                    .expect("record");
            }
            results.single_commits_per_s = per_second(options.single_commits, started.elapsed());
            results.single_commit_us_p50 = latency.value_at_quantile(0.50);
            results.single_commit_us_p99 = latency.value_at_quantile(0.99);
            if let (Some(before), Some(syncs)) = (syncs_before, syncs) {
                let during = syncs.load(Ordering::Relaxed) - before;
                results.syncs_per_commit = Some(during as f64 / options.single_commits as f64);
            }
            results.file_bytes = engine.file_bytes();
        }
        Phase::UnsyncedCommits => {
            let first = keys + options.single_commits as u64;
            let count = options.unsynced_commits as u64;
            let (per_s, latency) = unsynced_commits(engine, first..first + count);
            results.unsynced_commits_per_s = per_s;
            results.unsynced_commit_us_p50 = latency.value_at_quantile(0.50);
            results.unsynced_commit_us_p99 = latency.value_at_quantile(0.99);
            let started = Instant::now();
            engine.make_durable();
            results.sync_after_unsynced_ms = started.elapsed().as_secs_f64() * 1000.0;

            // The server's pattern: apply loop on this thread, durability on another.
            let first = first + count;
            let stop = AtomicBool::new(false);
            let background_syncs = AtomicU64::new(0);
            let shared: &dyn Engine = engine;
            let (per_s, latency) = std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(SYNC_INTERVAL);
                        shared.make_durable();
                        background_syncs.fetch_add(1, Ordering::Relaxed);
                    }
                });
                let measured = unsynced_commits(shared, first..first + count);
                stop.store(true, Ordering::Relaxed);
                measured
            });
            results.background_synced_commits_per_s = per_s;
            results.background_synced_commit_us_p99 = latency.value_at_quantile(0.99);
            results.background_synced_commit_us_max = latency.max();
            results.background_syncs = background_syncs.load(Ordering::Relaxed);
            engine.make_durable();
        }
    }
}

/// One unsynced single-insert commit per key of `keys`; commits per second and the latencies.
fn unsynced_commits(engine: &dyn Engine, keys: std::ops::Range<u64>) -> (f64, Histogram<u64>) {
    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    let count = (keys.end - keys.start) as usize;
    let started = Instant::now();
    for i in keys {
        let one = Instant::now();
        engine.insert_unsynced(i..i + 1);
        latency
            .record(one.elapsed().as_micros() as u64)
            .expect("record");
    }
    (per_second(count, started.elapsed()), latency)
}

fn main() {
    let options = parse_options();
    std::fs::create_dir_all(&options.dir).expect("create bench dir");
    let keelson_path = options.dir.join("keelson-btree.db");
    let redb_path = options.dir.join("redb.db");
    for path in [&keelson_path, &redb_path] {
        let _ = std::fs::remove_file(path);
    }

    let mut keelson = Keelson::create(&keelson_path);
    let syncs = keelson.syncs.clone();
    let mut redb = Redb::create(&redb_path);
    let mut keelson_results = Results::default();
    let mut redb_results = Results::default();
    let phases = [
        Phase::Load,
        Phase::Gets,
        Phase::Scans,
        Phase::SingleCommits,
        Phase::UnsyncedCommits,
    ];
    for (number, phase) in phases.into_iter().enumerate() {
        // Alternate which engine goes first, so neither always runs on the warmer page cache.
        if number % 2 == 0 {
            run_phase(
                phase,
                &mut keelson,
                &options,
                Some(&syncs),
                &mut keelson_results,
            );
            run_phase(phase, &mut redb, &options, None, &mut redb_results);
        } else {
            run_phase(phase, &mut redb, &options, None, &mut redb_results);
            run_phase(
                phase,
                &mut keelson,
                &options,
                Some(&syncs),
                &mut keelson_results,
            );
        }
    }
    drop((keelson, redb));

    report(&options, &keelson_results, &redb_results);
    for path in [&keelson_path, &redb_path] {
        let _ = std::fs::remove_file(path);
    }
}

fn report(options: &Options, k: &Results, r: &Results) {
    let rows: [(&str, f64, f64, bool); 14] = [
        (
            "batched inserts (keys/s, 1000 per commit)",
            k.load_keys_per_s,
            r.load_keys_per_s,
            true,
        ),
        (
            "random point gets (gets/s)",
            k.gets_per_s,
            r.gets_per_s,
            true,
        ),
        (
            "range scans of 1000 keys (scans/s)",
            k.scans_per_s,
            r.scans_per_s,
            true,
        ),
        (
            "single-insert commits (commits/s)",
            k.single_commits_per_s,
            r.single_commits_per_s,
            true,
        ),
        (
            "single-insert commit p50 (us)",
            k.single_commit_us_p50 as f64,
            r.single_commit_us_p50 as f64,
            false,
        ),
        (
            "single-insert commit p99 (us)",
            k.single_commit_us_p99 as f64,
            r.single_commit_us_p99 as f64,
            false,
        ),
        (
            "unsynced single-insert commits (commits/s)",
            k.unsynced_commits_per_s,
            r.unsynced_commits_per_s,
            true,
        ),
        (
            "unsynced single-insert commit p50 (us)",
            k.unsynced_commit_us_p50 as f64,
            r.unsynced_commit_us_p50 as f64,
            false,
        ),
        (
            "unsynced single-insert commit p99 (us)",
            k.unsynced_commit_us_p99 as f64,
            r.unsynced_commit_us_p99 as f64,
            false,
        ),
        (
            "sync after the unsynced commits (ms)",
            k.sync_after_unsynced_ms,
            r.sync_after_unsynced_ms,
            false,
        ),
        (
            "unsynced commits, sync every 100 ms (c/s)",
            k.background_synced_commits_per_s,
            r.background_synced_commits_per_s,
            true,
        ),
        (
            "  same, commit p99 (us)",
            k.background_synced_commit_us_p99 as f64,
            r.background_synced_commit_us_p99 as f64,
            false,
        ),
        (
            "  same, longest commit (us)",
            k.background_synced_commit_us_max as f64,
            r.background_synced_commit_us_max as f64,
            false,
        ),
        (
            "file size (MiB)",
            k.file_bytes as f64 / 1048576.0,
            r.file_bytes as f64 / 1048576.0,
            false,
        ),
    ];
    if options.json {
        let fields: Vec<String> = rows
            .iter()
            .map(|(name, kv, rv, _)| {
                format!("{{\"workload\":\"{name}\",\"keelson\":{kv:.1},\"redb\":{rv:.1}}}")
            })
            .collect();
        println!("[{}]", fields.join(","));
        return;
    }
    println!(
        "B+tree benchmark: {} keys of {KEY_BYTES} B, values of {VALUE_BYTES} B",
        options.keys
    );
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "workload", "keelson", "redb", "ratio"
    );
    for (name, kv, rv, higher_is_better) in rows {
        // Ratio > 1 always means Keelson is better.
        let ratio = if higher_is_better { kv / rv } else { rv / kv };
        println!("{name:<44} {kv:>14.1} {rv:>14.1} {ratio:>7.2}x");
    }
    if let Some(syncs) = k.syncs_per_commit {
        println!("keelson fdatasyncs per single-insert commit: {syncs:.2}");
    }
    println!(
        "background syncs during the unsynced commits: keelson {}, redb {}",
        k.background_syncs, r.background_syncs
    );
}
