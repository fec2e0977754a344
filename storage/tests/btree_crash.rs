//! Crash consistency: a random workload on a device that records every sync point, then a crash
//! at each point (in-flight writes lost, all kept, or a seeded mix of lost, kept and torn). Every
//! rebuilt file must open, pass `check()`, hold exactly the last completed commit (or the one in
//! flight if and only if its meta could have become durable), and accept further commits.

use keelson_storage::btree::{Database, Error};
use keelson_storage::io::{CrashImage, MemoryDevice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

type Trees = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

const TORN_SEEDS: u64 = 4;

fn contents(db: &Database) -> Trees {
    let read = db.begin_read().unwrap();
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

/// Runs `commits` random commits (with aborted transactions between them); returns the model
/// state after each commit, indexed by transaction id (0 is the empty file).
fn workload(device: &MemoryDevice, seed: u64, commits: usize) -> Vec<Trees> {
    let mut rng = StdRng::seed_from_u64(seed);
    let db = Database::open(Arc::new(device.clone())).unwrap();
    let mut states = vec![Trees::new()];
    let names: [&[u8]; 2] = [b"one", b"two"];
    while states.len() <= commits {
        let mut model = states.last().unwrap().clone();
        let mut txn = db.begin_write().unwrap();
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

fn crash_everywhere(seed: u64, commits: usize) {
    let device = MemoryDevice::new("crash.db");
    device.record_crash_points(true);
    let states = workload(&device, seed, commits);
    let points = device.crash_points();
    // One sync creating the file, exactly two per commit, and the final "now" point.
    assert_eq!(points.len(), 1 + 2 * commits + 1);
    for (index, image) in points.iter().enumerate() {
        // Which commit was in flight at this sync point, and whether its meta was.
        let (allowed, meta_in_flight): (Vec<u64>, bool) = if index == 0 || index == points.len() - 1
        {
            let id = if index == 0 { 0 } else { commits as u64 };
            (vec![id], false)
        } else {
            let commit = (index as u64 - 1) / 2 + 1;
            let is_meta_sync = (index - 1) % 2 == 1;
            if is_meta_sync {
                (vec![commit - 1, commit], true)
            } else {
                (vec![commit - 1], false)
            }
        };
        let what = format!("seed {seed}, point {index}");
        let lost = verify(
            image,
            image.lose_unsynced("crash.db"),
            &allowed,
            &states,
            &format!("{what} lose"),
        );
        let kept = verify(
            image,
            image.keep_unsynced("crash.db"),
            &allowed,
            &states,
            &format!("{what} keep"),
        );
        if meta_in_flight {
            assert_eq!(lost, allowed[0], "{what}: a lost meta must fall back");
            assert_eq!(kept, allowed[1], "{what}: a durable meta must win");
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
                &states,
                &format!("{what} torn {torn}"),
            );
        }
    }
}

#[test]
fn every_crash_point_recovers_the_last_durable_commit() {
    for seed in 0..10 {
        crash_everywhere(seed, 12);
    }
}
