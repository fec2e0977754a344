//! Interprets bytes as B+tree operations and checks every result against a `BTreeMap` model.
//! Shared by the `btree_ops` fuzz target and the storage crate's replay test.
//!
//! Commits are durable (`commit`) or not (`commit_unsynced`, made durable by `Database::sync`), so
//! the model keeps two states: what readers see and what is durable.
//!
//! Crashes are modelled by failing one device operation of a commit or a sync (or none), then
//! rebuilding the device as a crash would leave it (in-flight writes lost, kept, or torn). The
//! reopened file must hold exactly the last durable commit, or the one being made durable if its
//! meta got through; unsynced commits are lost.

use keelson_storage::btree::Database;
use keelson_storage::io::{FaultPlan, MemoryDevice};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

type Trees = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

const NAME: &str = "fuzz.db";
const TREES: [&[u8]; 2] = [b"a", b"b"];

struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(*first)
    }

    fn key(&mut self) -> Option<Vec<u8>> {
        let b = self.byte()?;
        Some(if b >= 250 {
            vec![b; 1000]
        } else {
            format!("k{:03}", b % 96).into_bytes()
        })
    }

    fn value(&mut self) -> Option<Vec<u8>> {
        let len = match self.byte()? {
            b @ 0..=199 => usize::from(b) * 3,
            b @ 200..=249 => 1000 + usize::from(b - 200),
            b => 5000 + usize::from(b - 250) * 7000,
        };
        let seed = self.byte()?;
        Some((0..len).map(|i| seed.wrapping_add(i as u8)).collect())
    }

    fn bound(&mut self) -> Option<Bound<Vec<u8>>> {
        Some(match self.byte()? % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.key()?),
            _ => Bound::Excluded(self.key()?),
        })
    }
}

fn snapshot(db: &Database) -> Trees {
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

/// Rebuilds the device as a crash now would leave it, chosen by `how`.
fn crash(device: &MemoryDevice, how: u8) -> MemoryDevice {
    let image = device.crash_points().pop().unwrap();
    match how % 3 {
        0 => image.lose_unsynced(NAME),
        1 => image.keep_unsynced(NAME),
        _ => image.torn(NAME, u64::from(how)),
    }
}

/// Operation codes (the byte modulo `OPS`); the tree is chosen by `byte / 16 % 2`.
const OPS: u8 = 20;

pub fn run(data: &[u8]) {
    let mut input = Input { bytes: data };
    let mut device = MemoryDevice::new(NAME);
    let mut db = Database::open(Arc::new(device.clone())).unwrap();
    // What readers see, and what survives a crash.
    let mut visible = Trees::new();
    let mut durable = Trees::new();
    'session: loop {
        let mut pending = visible.clone();
        let mut txn = db.begin_write().unwrap();
        loop {
            let Some(op) = input.byte() else {
                break 'session;
            };
            match op % OPS {
                0..=5 => {
                    let tree = TREES[usize::from(op / 16) % 2];
                    let (Some(key), Some(value)) = (input.key(), input.value()) else {
                        break 'session;
                    };
                    let result = txn.put(tree, &key, &value);
                    match pending.get_mut(tree) {
                        Some(entries) => {
                            result.unwrap();
                            entries.insert(key, value);
                        }
                        None => assert!(result.is_err()),
                    }
                }
                6..=7 => {
                    let tree = TREES[usize::from(op / 16) % 2];
                    let Some(key) = input.key() else {
                        break 'session;
                    };
                    let result = txn.delete(tree, &key);
                    match pending.get_mut(tree) {
                        Some(entries) => {
                            assert_eq!(result.unwrap(), entries.remove(&key).is_some())
                        }
                        None => assert!(result.is_err()),
                    }
                }
                8 => {
                    let tree = TREES[usize::from(op / 16) % 2];
                    txn.create_tree(tree).unwrap();
                    pending.entry(tree.to_vec()).or_default();
                }
                9 => {
                    let tree = TREES[usize::from(op / 16) % 2];
                    assert_eq!(
                        txn.delete_tree(tree).unwrap(),
                        pending.remove(tree).is_some()
                    );
                }
                10 => {
                    let tree = TREES[usize::from(op / 16) % 2];
                    let (Some(lower), Some(upper), Some(steps)) =
                        (input.bound(), input.bound(), input.byte())
                    else {
                        break 'session;
                    };
                    let Some(entries) = pending.get(tree) else {
                        continue;
                    };
                    let bounds = (
                        lower.as_ref().map(Vec::as_slice),
                        upper.as_ref().map(Vec::as_slice),
                    );
                    let mut range = txn.range(tree, bounds).unwrap();
                    let mut expected: std::collections::VecDeque<_> = entries
                        .iter()
                        .filter(|(k, _)| {
                            (match &lower {
                                Bound::Unbounded => true,
                                Bound::Included(l) => *k >= l,
                                Bound::Excluded(l) => *k > l,
                            }) && (match &upper {
                                Bound::Unbounded => true,
                                Bound::Included(u) => *k <= u,
                                Bound::Excluded(u) => *k < u,
                            })
                        })
                        .collect();
                    for step in 0.. {
                        let back = (steps >> (step % 8)) & 1 == 1;
                        let (got, want) = if back {
                            (range.next_back(), expected.pop_back())
                        } else {
                            (range.next(), expected.pop_front())
                        };
                        match (got, want) {
                            (None, None) => break,
                            (Some(Ok((k, v))), Some((mk, mv))) => {
                                assert!(k == mk.as_slice() && v == mv.as_slice());
                            }
                            _ => panic!("range differs from the model"),
                        }
                    }
                }
                11..=12 => {
                    txn.commit().unwrap();
                    visible = pending;
                    durable = visible.clone();
                    break;
                }
                13 => {
                    txn.abort();
                    break;
                }
                14 => {
                    drop(txn);
                    drop(db);
                    db = Database::open(Arc::new(device.clone())).unwrap();
                    visible = durable.clone();
                    break;
                }
                15 => {
                    // A commit with one failing device operation, then a crash.
                    let (Some(fail_at), Some(how)) = (input.byte(), input.byte()) else {
                        break 'session;
                    };
                    device.set_fault_plan(FaultPlan {
                        fail_mutation_after: Some(u64::from(fail_at % 8)),
                        ..FaultPlan::default()
                    });
                    let succeeded = txn.commit().is_ok();
                    device.set_fault_plan(FaultPlan::default());
                    drop(db);
                    device = crash(&device, how);
                    db = Database::open(Arc::new(device.clone())).unwrap();
                    let recovered = snapshot(&db);
                    if recovered == pending {
                        durable = pending;
                    } else {
                        assert!(!succeeded, "a successful commit was lost");
                        assert!(recovered == durable, "recovered state is neither commit");
                    }
                    visible = durable.clone();
                    db.check().unwrap();
                    break;
                }
                16 => {
                    let durable_id = db.durable_txn_id();
                    txn.commit_unsynced().unwrap();
                    assert_eq!(db.durable_txn_id(), durable_id);
                    visible = pending;
                    break;
                }
                17 => {
                    // `sync` waits for the writer slot, so the transaction must end first.
                    txn.abort();
                    let newest = db.begin_read().unwrap().txn_id();
                    assert_eq!(db.sync().unwrap(), newest);
                    durable = visible.clone();
                    break;
                }
                18 => {
                    // A crash with no failure: unsynced commits are lost, nothing else.
                    let Some(how) = input.byte() else {
                        break 'session;
                    };
                    drop(txn);
                    drop(db);
                    device = crash(&device, how);
                    db = Database::open(Arc::new(device.clone())).unwrap();
                    assert!(snapshot(&db) == durable, "a crash lost a durable commit");
                    visible = durable.clone();
                    db.check().unwrap();
                    break;
                }
                _ => {
                    // One failing device operation in an unsynced commit or in a sync, then a
                    // crash.
                    let (Some(fail_at), Some(how)) = (input.byte(), input.byte()) else {
                        break 'session;
                    };
                    let plan = FaultPlan {
                        fail_mutation_after: Some(u64::from(fail_at % 8)),
                        ..FaultPlan::default()
                    };
                    let synced = if fail_at & 0x80 == 0 {
                        device.set_fault_plan(plan);
                        let _ = txn.commit_unsynced();
                        false
                    } else {
                        txn.commit_unsynced().unwrap();
                        visible = pending.clone();
                        device.set_fault_plan(plan);
                        db.sync().is_ok()
                    };
                    device.set_fault_plan(FaultPlan::default());
                    drop(db);
                    device = crash(&device, how);
                    db = Database::open(Arc::new(device.clone())).unwrap();
                    let recovered = snapshot(&db);
                    if synced {
                        assert!(recovered == visible, "a successful sync was lost");
                    } else if recovered != durable {
                        assert!(fail_at & 0x80 != 0, "an unsynced commit survived a crash");
                        assert!(recovered == visible, "recovered state is neither commit");
                    }
                    durable = recovered;
                    visible = durable.clone();
                    db.check().unwrap();
                    break;
                }
            }
        }
    }
    assert!(
        snapshot(&db) == visible,
        "visible state differs from the model"
    );
    db.check().unwrap();
    // A clean reopen shows the durable state.
    drop(db);
    let db = Database::open(Arc::new(device)).unwrap();
    assert!(
        snapshot(&db) == durable,
        "durable state differs from the model"
    );
    db.check().unwrap();
}
