//! Free-page reuse: under a steady update workload the file stops growing once readers close; a
//! long-lived reader pins the pages it can see, and its snapshot stays intact while the writer
//! keeps committing. Also readers on other threads against a real file that grows and remaps.

use keelson_storage::btree::Database;
use keelson_storage::io::MemoryDevice;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The server's pattern on a real file: one thread applies unsynced commits in a loop (with an
/// occasional durable commit), two others call `sync` in loops, readers verify every snapshot
/// they take. The writer never waits for a sync's fsyncs; pages still get reused; a clean reopen shows
/// exactly the last durable commit.
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
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last_txn = 0;
                while !stop.load(Ordering::Relaxed) {
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
