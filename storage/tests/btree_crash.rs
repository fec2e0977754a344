//! Crash consistency: a random workload on a device that records every sync point, then a crash
//! at each point (in-flight writes lost, all kept, or a seeded mix of lost, kept and torn). Every
//! rebuilt file must open, pass `check()`, hold exactly the last completed commit (or the one in
//! flight if and only if its meta could have become durable), and accept further commits.
//!
//! A second workload mixes durable commits, unsynced commits and `sync` calls: there a crash must
//! recover the last *durable* commit (unsynced ones are lost by contract), or the one a sync or
//! commit was making durable if its meta got through.

use keelson_storage::btree::{Database, Error, PAGE_BYTES, ReadTxn, WriteTxn};
use keelson_storage::io::{CrashImage, MemoryDevice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

type Trees = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

const TORN_SEEDS: u64 = 4;

fn contents(db: &Database) -> Trees {
    contents_of(&db.begin_read().unwrap())
}

fn contents_of(read: &ReadTxn) -> Trees {
    let mut trees = Trees::new();
    for name in read.tree_names().unwrap() {
        let entries = read
            .range(name, ..)
            .unwrap()
            .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        trees.insert(name.to_vec(), entries);
    }
    trees
}

/// Random edits of `txn` mirrored in `model`.
fn random_edits(rng: &mut StdRng, txn: &mut WriteTxn<'_>, model: &mut Trees) {
    let names: [&[u8]; 2] = [b"one", b"two"];
    for _ in 0..rng.random_range(1..40) {
        let name = names[rng.random_range(0..names.len())];
        match rng.random_range(0..10) {
            0 => {
                txn.create_tree(name).unwrap();
                model.entry(name.to_vec()).or_default();
            }
            1 if rng.random_bool(0.2) => {
                txn.delete_tree(name).unwrap();
                model.remove(name);
            }
            2..=3 => {
                if let Some(entries) = model.get_mut(name) {
                    let key = format!("k{:04}", rng.random_range(0..300)).into_bytes();
                    assert_eq!(
                        txn.delete(name, &key).unwrap(),
                        entries.remove(&key).is_some()
                    );
                }
            }
            _ => {
                if let Some(entries) = model.get_mut(name) {
                    let key = format!("k{:04}", rng.random_range(0..300)).into_bytes();
                    let len = if rng.random_bool(0.1) {
                        rng.random_range(2000..30_000)
                    } else {
                        rng.random_range(0..400)
                    };
                    let value: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    txn.put(name, &key, &value).unwrap();
                    entries.insert(key, value);
                }
            }
        }
    }
}

/// Runs `commits` random commits (with aborted transactions between them); returns the model
/// state after each commit, indexed by transaction id (0 is the empty file).
fn workload(device: &MemoryDevice, seed: u64, commits: usize) -> Vec<Trees> {
    let mut rng = StdRng::seed_from_u64(seed);
    let db = Database::open(Arc::new(device.clone())).unwrap();
    let mut states = vec![Trees::new()];
    while states.len() <= commits {
        let mut model = states.last().unwrap().clone();
        let mut txn = db.begin_write().unwrap();
        random_edits(&mut rng, &mut txn, &mut model);
        if rng.random_bool(0.15) {
            txn.abort();
        } else {
            txn.commit().unwrap();
            states.push(model);
        }
    }
    states
}

/// Opens a crashed image and checks it shows one of the `allowed` transaction ids, with exactly
/// that commit's contents; then proves the recovered file still takes writes.
fn verify(
    image: &CrashImage,
    device: MemoryDevice,
    allowed: &[u64],
    states: &[Trees],
    what: &str,
) -> u64 {
    let db =
        Database::open(Arc::new(device)).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let txn_id = db.begin_read().unwrap().txn_id();
    assert!(
        allowed.contains(&txn_id),
        "{what}: recovered txn {txn_id}, allowed {allowed:?} ({} writes in flight)",
        image.in_flight_count()
    );
    assert!(
        contents(&db) == states[txn_id as usize],
        "{what}: contents differ from commit {txn_id}"
    );
    db.check()
        .unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"after").unwrap();
    for i in 0..50u32 {
        txn.put(b"after", &i.to_be_bytes(), &[9; 300]).unwrap();
    }
    txn.commit().unwrap();
    db.check()
        .unwrap_or_else(|e| panic!("{what}: check after a new commit failed: {e}"));
    txn_id
}

/// Bytes of a meta write that reach the disk in `torn_meta`: the new checksum but not the new
/// transaction id (header bytes 16..24), so the page can never verify. (`CrashImage::torn` tears
/// at a random byte, and past the meta's fields the new page equals the old one, so it almost
/// never produces an invalid meta.)
const TORN_META_BYTES: usize = 12;

/// The image at a meta sync point with the meta write (the only write in flight there: the pages
/// were synced before it) torn after `TORN_META_BYTES`. Open must fall back to the meta in the
/// other slot, which must therefore be the newest durable one.
fn torn_meta(image: &CrashImage) -> MemoryDevice {
    let lost = image.lose_unsynced("crash.db").contents();
    let kept = image.keep_unsynced("crash.db").contents();
    assert_eq!(image.in_flight_count(), 1, "only the meta is in flight");
    let slot = (0..2)
        .find(|slot| {
            let page = slot * PAGE_BYTES..(slot + 1) * PAGE_BYTES;
            lost[page.clone()] != kept[page]
        })
        .expect("the meta write changes a meta page");
    let mut torn = lost;
    let start = slot * PAGE_BYTES;
    torn[start..start + TORN_META_BYTES].copy_from_slice(&kept[start..start + TORN_META_BYTES]);
    MemoryDevice::from_bytes("crash.db", torn)
}

/// What a crash at one sync point may recover: the durable commit before it, and the commit whose
/// meta is in flight there, if any.
#[derive(Clone, Copy, Debug)]
struct Expect {
    durable: u64,
    meta_in_flight: Option<u64>,
}

fn crash_everywhere(seed: u64, commits: usize) {
    let device = MemoryDevice::new("crash.db");
    device.record_crash_points(true);
    let states = workload(&device, seed, commits);
    // One sync creating the file, exactly two per commit, and the final "now" point.
    let mut expected = vec![Expect {
        durable: 0,
        meta_in_flight: None,
    }];
    for commit in 1..=commits as u64 {
        let durable = commit - 1;
        expected.push(Expect {
            durable,
            meta_in_flight: None,
        });
        expected.push(Expect {
            durable,
            meta_in_flight: Some(commit),
        });
    }
    expected.push(Expect {
        durable: commits as u64,
        meta_in_flight: None,
    });
    crash_at_every_point(&device, &states, &expected, &format!("seed {seed}"));
}

/// Crashes at every recorded sync point three ways (and `TORN_SEEDS` torn mixes) and verifies
/// each recovery against `expected`, one entry per point.
fn crash_at_every_point(device: &MemoryDevice, states: &[Trees], expected: &[Expect], what: &str) {
    let points = device.crash_points();
    assert_eq!(points.len(), expected.len(), "{what}: sync points");
    for (index, (image, expect)) in points.iter().zip(expected).enumerate() {
        let mut allowed = vec![expect.durable];
        allowed.extend(expect.meta_in_flight);
        let what = format!("{what}, point {index}");
        let lost = verify(
            image,
            image.lose_unsynced("crash.db"),
            &allowed,
            states,
            &format!("{what} lose"),
        );
        assert_eq!(lost, expect.durable, "{what}: lost writes must fall back");
        let kept = verify(
            image,
            image.keep_unsynced("crash.db"),
            &allowed,
            states,
            &format!("{what} keep"),
        );
        assert_eq!(
            kept,
            *allowed.last().unwrap(),
            "{what}: a meta that reached the disk must win, unsynced commits must not"
        );
        if expect.meta_in_flight.is_some() {
            let recovered = verify(
                image,
                torn_meta(image),
                &allowed,
                states,
                &format!("{what} torn meta"),
            );
            assert_eq!(
                recovered, expect.durable,
                "{what}: a torn meta must fall back"
            );
        }
        for torn in 0..TORN_SEEDS {
            if index == 0 {
                // A crash while the empty file is being created may leave a file that never held
                // a commit and is refused as corrupt; it must never open as something else.
                let device = image.torn("crash.db", torn);
                if let Err(e) = Database::open(Arc::new(device.clone())) {
                    assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e}");
                    continue;
                }
            }
            verify(
                image,
                image.torn("crash.db", torn),
                &allowed,
                states,
                &format!("{what} torn {torn}"),
            );
        }
    }
}

/// Runs `ops` random operations: durable commits, unsynced commits, syncs and aborts, with read
/// snapshots held across some of them. Returns the model state of every commit by transaction
/// id, and what a crash at each sync point may recover.
fn mixed_workload(device: &MemoryDevice, seed: u64, ops: usize) -> (Vec<Trees>, Vec<Expect>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let db = Database::open(Arc::new(device.clone())).unwrap();
    let mut states = vec![Trees::new()];
    let mut expected = vec![Expect {
        durable: 0,
        meta_in_flight: None,
    }];
    let mut durable = 0;
    let mut readers = Vec::new();
    for _ in 0..ops {
        let syncs_before = device.sync_count();
        let newest = states.len() as u64 - 1;
        match rng.random_range(0..10) {
            0..=6 => {
                let mut model = states.last().unwrap().clone();
                let mut txn = db.begin_write().unwrap();
                random_edits(&mut rng, &mut txn, &mut model);
                match rng.random_range(0..8) {
                    0 => txn.abort(),
                    1..=2 => {
                        txn.commit().unwrap();
                        states.push(model);
                    }
                    _ => {
                        txn.commit_unsynced().unwrap();
                        states.push(model);
                    }
                }
            }
            7..=8 => {
                assert_eq!(db.sync().unwrap(), newest);
            }
            _ => {
                if readers.len() < 2 && rng.random_bool(0.5) {
                    readers.push(db.begin_read().unwrap());
                } else {
                    readers.clear();
                }
            }
        }
        let newest = states.len() as u64 - 1;
        let syncs = device.sync_count() - syncs_before;
        if db.durable_txn_id() != durable {
            // A durable commit or a sync: pages, then the meta.
            assert_eq!(syncs, 2);
            assert_eq!(db.durable_txn_id(), newest);
            for meta_in_flight in [None, Some(newest)] {
                expected.push(Expect {
                    durable,
                    meta_in_flight,
                });
            }
            durable = newest;
        } else {
            assert_eq!(syncs, 0, "only making a commit durable syncs");
        }
        for read in &readers {
            assert!(contents_of(read) == states[read.txn_id() as usize]);
        }
    }
    assert!(contents(&db) == states[states.len() - 1]);
    db.check().unwrap();
    expected.push(Expect {
        durable,
        meta_in_flight: None,
    });
    (states, expected)
}

#[test]
fn every_crash_point_recovers_the_last_durable_commit() {
    for seed in 0..10 {
        crash_everywhere(seed, 12);
    }
}

#[test]
fn with_unsynced_commits_every_crash_point_recovers_the_last_durable_commit() {
    for seed in 0..10 {
        let device = MemoryDevice::new("crash.db");
        device.record_crash_points(true);
        let (states, expected) = mixed_workload(&device, seed, 40);
        crash_at_every_point(&device, &states, &expected, &format!("mixed seed {seed}"));
    }
}
