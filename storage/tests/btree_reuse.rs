//! Free-page reuse: under a steady update workload the file stops growing once readers close; a
//! long-lived reader pins the pages it can see, and its snapshot stays intact while the writer
//! keeps committing. Also readers on other threads against a real file that grows and remaps.

use keelson_storage::btree::Database;
use keelson_storage::io::{BlockDevice, Mapping, MemoryDevice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::Duration;

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn value(i: u32, version: u32) -> Vec<u8> {
    let mut v = vec![(i ^ version) as u8; 200];
    v[..4].copy_from_slice(&version.to_le_bytes());
    v
}

fn fill(db: &Database, keys: u32) {
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    for i in 0..keys {
        txn.put(b"t", &key(i), &value(i, 0)).unwrap();
    }
    txn.put(b"t", b"big", &vec![0; 20_000]).unwrap();
    txn.commit().unwrap();
}

fn update(db: &Database, rng: &mut StdRng, keys: u32, version: u32) {
    let mut txn = db.begin_write().unwrap();
    for _ in 0..20 {
        let i = rng.random_range(0..keys);
        txn.put(b"t", &key(i), &value(i, version)).unwrap();
    }
    txn.put(b"t", b"big", &vec![version as u8; 20_000]).unwrap();
    txn.commit().unwrap();
}

#[test]
fn steady_updates_reuse_pages_once_readers_close() {
    let db = Database::open(Arc::new(MemoryDevice::new("reuse.db"))).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let keys = 2000;
    fill(&db, keys);
    for version in 1..=50 {
        update(&db, &mut rng, keys, version);
    }
    let warm = db.check().unwrap().page_count;
    for version in 51..=400 {
        update(&db, &mut rng, keys, version);
    }
    let report = db.check().unwrap();
    assert!(
        report.page_count <= warm + 8,
        "the file kept growing: {warm} pages after warm-up, {} after 350 more commits",
        report.page_count
    );
    assert!(report.free_pages > 0);
}

#[test]
fn a_long_lived_reader_pins_its_snapshot() {
    let db = Database::open(Arc::new(MemoryDevice::new("pin.db"))).unwrap();
    let mut rng = StdRng::seed_from_u64(8);
    let keys = 1000;
    fill(&db, keys);
    let pinned = db.begin_read().unwrap();
    let before: Vec<(Vec<u8>, Vec<u8>)> = pinned
        .range(b"t", ..)
        .unwrap()
        .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    let start = db.check().unwrap().page_count;
    for version in 1..=60 {
        update(&db, &mut rng, keys, version);
    }
    let pinned_growth = db.check().unwrap().page_count - start;
    // Every page the old snapshot sees is still intact.
    let after: Vec<(Vec<u8>, Vec<u8>)> = pinned
        .range(b"t", ..)
        .unwrap()
        .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    assert!(
        before == after,
        "a pinned snapshot changed under its reader"
    );
    assert_eq!(
        pinned.get(b"t", b"big").unwrap().unwrap(),
        vec![0; 20_000].as_slice()
    );
    drop(pinned);
    let released = db.check().unwrap().page_count;
    for version in 61..=120 {
        update(&db, &mut rng, keys, version);
    }
    let unpinned_growth = db.check().unwrap().page_count - released;
    assert!(
        unpinned_growth * 4 < pinned_growth.max(1),
        "pinned growth {pinned_growth} pages, unpinned {unpinned_growth}"
    );
}

/// Snapshots on other threads over a real file: every key of a snapshot carries the same
/// version, because each commit rewrites all keys; the file grows and remaps meanwhile.
#[test]
fn concurrent_readers_see_consistent_snapshots_on_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open_file(&dir.path().join("threads.db")).unwrap());
    let keys = 300;
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    txn.create_tree(b"grow").unwrap();
    for i in 0..keys {
        txn.put(b"t", &key(i), &value(i, 0)).unwrap();
    }
    txn.commit().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    let read = db.begin_read().unwrap();
                    let mut version = None;
                    let mut count = 0;
                    for entry in read.range(b"t", ..).unwrap() {
                        let (_, v) = entry.unwrap();
                        let got = u32::from_le_bytes(v[..4].try_into().unwrap());
                        assert_eq!(*version.get_or_insert(got), got, "a torn snapshot");
                        count += 1;
                    }
                    assert_eq!(count, keys);
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for version in 1..=60u32 {
        let mut txn = db.begin_write().unwrap();
        for i in 0..keys {
            txn.put(b"t", &key(i), &value(i, version)).unwrap();
        }
        // Growth: every commit adds keys, so the file is extended and remapped.
        for i in 0..50 {
            txn.put(b"grow", &key(version * 50 + i), &[1; 500]).unwrap();
        }
        txn.commit().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    db.check().unwrap();
}

/// How many snapshots reader 0 verifies between two `check()` calls.
const CHECK_EVERY: u64 = 16;

/// The server's pattern on a real file: one thread applies unsynced commits in a loop (with an
/// occasional durable commit), two others call `sync` in loops, readers verify every snapshot
/// they take. Pages still get reused; a clean reopen shows exactly the last durable commit. (That
/// the writer does not wait for a sync's fsyncs is shown deterministically further down.)
#[test]
fn unsynced_commits_with_a_concurrent_sync_loop_on_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.db");
    let db = Arc::new(Database::open_file(&path).unwrap());
    let keys = 200;
    let commits = 150u32;
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    for i in 0..keys {
        txn.put(b"t", &key(i), &value(i, 0)).unwrap();
    }
    txn.commit().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Two sync loops, so syncs also race each other (the server has one; `sync` allows more).
    let syncers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                // Syncs that made something durable (most find nothing new and return at once).
                let mut syncs = 0;
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let newest = db.begin_read().unwrap().txn_id();
                    let durable = db.sync().unwrap();
                    assert!(durable >= newest && durable >= last, "sync went backwards");
                    assert!(db.durable_txn_id() >= durable);
                    if durable > last {
                        syncs += 1;
                    }
                    last = durable;
                }
                syncs
            })
        })
        .collect();
    // Reader 0 also runs `check()` now and then: its accounting must hold between any two
    // commits, whatever the syncs are doing.
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last_txn = 0;
                for round in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if reader == 0 && round % CHECK_EVERY == 0 {
                        db.check().unwrap();
                    }
                    let read = db.begin_read().unwrap();
                    assert!(read.txn_id() >= last_txn, "snapshots went backwards");
                    last_txn = read.txn_id();
                    let mut version = None;
                    let mut count = 0;
                    for entry in read.range(b"t", ..).unwrap() {
                        let (_, v) = entry.unwrap();
                        let got = u32::from_le_bytes(v[..4].try_into().unwrap());
                        assert_eq!(*version.get_or_insert(got), got, "a torn snapshot");
                        count += 1;
                    }
                    assert_eq!(count, keys);
                }
                last_txn
            })
        })
        .collect();
    // The version each transaction id wrote.
    let mut versions = vec![0u32; 2];
    for version in 1..=commits {
        let mut txn = db.begin_write().unwrap();
        for i in (0..keys).filter(|i| i % 7 != version % 7) {
            txn.put(b"t", &key(i), &value(i, version)).unwrap();
        }
        // Every key carries the version, so rewrite the rest too; the split keeps commits of
        // differing shapes.
        for i in (0..keys).filter(|i| i % 7 == version % 7) {
            txn.put(b"t", &key(i), &value(i, version)).unwrap();
        }
        assert_eq!(txn.txn_id() as usize, versions.len());
        if version % 25 == 0 {
            txn.commit().unwrap();
            assert_eq!(db.durable_txn_id(), version as u64 + 1);
        } else {
            txn.commit_unsynced().unwrap();
        }
        versions.push(version);
    }
    stop.store(true, Ordering::Relaxed);
    let syncs: u32 = syncers.into_iter().map(|s| s.join().unwrap()).sum();
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    assert!(syncs > 0);
    let report = db.check().unwrap();
    // Without reuse every commit would add a whole tree's worth of pages. How much is reused
    // depends on how far durability lags; the durable commits bound the lag.
    let tree_pages = report.leaf_pages + report.branch_pages;
    assert!(
        report.page_count < tree_pages * u64::from(commits) / 2,
        "{syncs} syncs, {report:?}"
    );
    let durable = db.durable_txn_id();
    drop(db);
    let reopened = Database::open_file(&path).unwrap();
    let read = reopened.begin_read().unwrap();
    assert_eq!(read.txn_id(), durable);
    let expected = versions[durable as usize];
    for entry in read.range(b"t", ..).unwrap() {
        let (k, v) = entry.unwrap();
        let i: u32 = std::str::from_utf8(&k[3..]).unwrap().parse().unwrap();
        assert!(v == value(i, expected).as_slice());
    }
    drop(read);
    reopened.check().unwrap();
}

/// Pages freed by unsynced commits wait for durability: without `sync` the file grows by every
/// commit's copies; with a `sync` after each commit it stays at a small multiple of the tree.
#[test]
fn unsynced_commits_reuse_pages_only_once_synced() {
    let grow = |sync_each: bool| {
        let db = Database::open(Arc::new(MemoryDevice::new("unsynced.db"))).unwrap();
        fill(&db, 300);
        for version in 1..=40 {
            let mut txn = db.begin_write().unwrap();
            for i in 0..300 {
                txn.put(b"t", &key(i), &value(i, version)).unwrap();
            }
            txn.commit_unsynced().unwrap();
            if sync_each {
                db.sync().unwrap();
            }
        }
        db.check().unwrap()
    };
    let unsynced = grow(false);
    let synced = grow(true);
    let tree = synced.leaf_pages + synced.branch_pages + synced.overflow_pages;
    assert!(unsynced.page_count > 40 * (unsynced.leaf_pages + unsynced.branch_pages));
    assert!(synced.page_count < 4 * tree, "{synced:?}");
}

/// Which device operation a [`GatedDevice`] holds up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GatedOp {
    Write,
    Sync,
}

/// A [`MemoryDevice`] that can stop one thread at its next write or sync until the test lets it
/// go, to hold a `sync` at a chosen step while the test thread acts.
struct GatedDevice {
    inner: MemoryDevice,
    gate: Mutex<Option<Gate>>,
    /// Set if a held thread was let go by the timeout rather than by the test.
    timed_out: AtomicBool,
}

struct Gate {
    thread: ThreadId,
    op: GatedOp,
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

/// How long a held thread waits before going on by itself, so a broken test fails, not hangs.
const GATE_TIMEOUT: Duration = Duration::from_secs(10);

impl GatedDevice {
    /// Arms the gate for the calling thread: it stops at its next `op`, reports on the first
    /// channel returned, and goes on when the second one is sent to.
    fn arm(&self, op: GatedOp) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered, entered_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        *self.gate.lock().unwrap() = Some(Gate {
            thread: std::thread::current().id(),
            op,
            entered,
            release,
        });
        (entered_rx, release_tx)
    }

    fn pass(&self, op: GatedOp) {
        let mut gate_guard = self.gate.lock().unwrap();
        let gate = &mut *gate_guard;
        let held = gate
            .as_ref()
            .is_some_and(|g| g.op == op && g.thread == std::thread::current().id());
        if !held {
            return;
        }
        let gate = gate.take().unwrap();
        // Other threads pass through here while this one waits.
        drop(gate_guard);
        gate.entered.send(()).unwrap();
        if gate.release.recv_timeout(GATE_TIMEOUT).is_err() {
            self.timed_out.store(true, Ordering::SeqCst);
        }
    }
}

impl BlockDevice for GatedDevice {
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
        self.pass(GatedOp::Write);
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.pass(GatedOp::Sync);
        self.inner.sync_data()
    }
    fn map(&self) -> std::io::Result<Arc<dyn Mapping>> {
        self.inner.map()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}

/// A database on a [`GatedDevice`] with tree "t" of 300 keys at version 0 (txn 1) and one
/// unsynced commit (txn 2) rewriting them at version 1.
fn gated() -> (Arc<GatedDevice>, Arc<Database>) {
    let device = Arc::new(GatedDevice {
        inner: MemoryDevice::new("gated.db"),
        gate: Mutex::new(None),
        timed_out: AtomicBool::new(false),
    });
    let db = Arc::new(Database::open(device.clone()).unwrap());
    fill(&db, 300);
    rewrite(&db, 300, 1, false);
    (device, db)
}

/// Rewrites every key at `version`, durably or not.
fn rewrite(db: &Database, keys: u32, version: u32, durable: bool) {
    let mut txn = db.begin_write().unwrap();
    for i in 0..keys {
        txn.put(b"t", &key(i), &value(i, version)).unwrap();
    }
    if durable {
        txn.commit().unwrap();
    } else {
        txn.commit_unsynced().unwrap();
    }
}

fn assert_version(db: &Database, keys: u32, version: u32) {
    let read = db.begin_read().unwrap();
    for i in 0..keys {
        let got = read.get(b"t", &key(i)).unwrap();
        assert!(
            got == Some(&value(i, version)[..]),
            "key {i} at version {version}"
        );
    }
}

/// A sync stopped inside its first fdatasync (holding the meta lock) does not stop the writer:
/// unsynced commits go on and readers see them; the sync then makes its commit durable.
#[test]
fn a_sync_in_fdatasync_does_not_block_the_writer() {
    let (device, db) = gated();
    let (handoff, gate) = mpsc::channel();
    let syncer = {
        let (db, device) = (db.clone(), device.clone());
        std::thread::spawn(move || {
            handoff.send(device.arm(GatedOp::Sync)).unwrap();
            db.sync().unwrap()
        })
    };
    let (in_sync, let_go) = gate.recv().unwrap();
    in_sync.recv().unwrap();
    for version in 2..=20 {
        rewrite(&db, 300, version, false);
        assert_version(&db, 300, version);
    }
    assert_eq!(db.durable_txn_id(), 1);
    let_go.send(()).unwrap();
    assert_eq!(syncer.join().unwrap(), 2);
    assert!(
        !device.timed_out.load(Ordering::SeqCst),
        "the writer waited for the sync"
    );
    assert_eq!(db.durable_txn_id(), 2);
    assert_eq!(db.sync().unwrap(), 21);
    db.check().unwrap();
    drop(db);
    let reopened = Database::open(Arc::new(device.inner.clone())).unwrap();
    assert_eq!(reopened.begin_read().unwrap().txn_id(), 21);
    assert_version(&reopened, 300, 20);
    reopened.check().unwrap();
}

/// A durable commit overtakes a sync stopped before it writes its freelist run: the commit's meta
/// frees that run before it is written. Later commits must not reuse the run's pages until the
/// sync is done with them, or its late write would land in their trees. Which commit would reuse
/// them depends on the allocation order, so this tries one to four commits after the overtaking
/// one.
#[test]
fn a_durable_commit_overtaking_a_sync_does_not_lose_pages_to_its_late_write() {
    for later in 1..=4 {
        let (device, db) = gated();
        // Free pages, so the sync's run comes from the free set like the writer's pages.
        rewrite(&db, 300, 2, true);
        rewrite(&db, 300, 3, false);
        let (handoff, gate) = mpsc::channel();
        let syncer = {
            let (db, device) = (db.clone(), device.clone());
            std::thread::spawn(move || {
                handoff.send(device.arm(GatedOp::Write)).unwrap();
                db.sync().unwrap()
            })
        };
        let (in_write, let_go) = gate.recv().unwrap();
        in_write.recv().unwrap();
        let last = 4 + later;
        for version in 4..=last {
            rewrite(&db, 300, version, true);
        }
        let durable = db.durable_txn_id();
        assert_eq!(durable, db.begin_read().unwrap().txn_id());
        let_go.send(()).unwrap();
        // The sync found a newer durable commit and wrote no meta of its own.
        assert_eq!(syncer.join().unwrap(), durable);
        assert!(
            !device.timed_out.load(Ordering::SeqCst),
            "the writer waited for the sync"
        );
        assert_version(&db, 300, last);
        db.check()
            .unwrap_or_else(|e| panic!("{later} commits after: {e}"));
        for version in last + 1..=last + 4 {
            rewrite(&db, 300, version, version % 2 == 0);
        }
        db.check().unwrap();
        let newest = db.begin_read().unwrap().txn_id();
        db.sync().unwrap();
        drop(db);
        let reopened = Database::open(Arc::new(device.inner.clone())).unwrap();
        assert_eq!(reopened.begin_read().unwrap().txn_id(), newest);
        assert_version(&reopened, 300, last + 4);
        reopened.check().unwrap();
    }
}
