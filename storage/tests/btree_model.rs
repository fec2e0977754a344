//! Property test: random operation sequences on the B+tree against a `BTreeMap` model, including
//! overflow values, several trees, ranges from both ends, aborts, and read snapshots held across
//! later commits. Commits are durable or unsynced, with `sync` calls between: readers see every
//! commit at once, and a reopen (a clean one: no crash) shows the last durable commit.

use keelson_storage::btree::{Database, Error, ReadTxn};
use keelson_storage::io::MemoryDevice;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

type Trees = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

const TREES: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];

#[derive(Clone, Debug)]
enum Op {
    Put {
        tree: usize,
        key: Vec<u8>,
        value: (usize, u8),
    },
    /// Many ascending keys at once, so trees grow several levels deep.
    Fill {
        tree: usize,
        start: u16,
        count: u16,
        value_len: usize,
    },
    Delete {
        tree: usize,
        key: Vec<u8>,
    },
    /// Deletes every other key of a fill, so leaves shrink and merge.
    Thin {
        tree: usize,
        start: u16,
        count: u16,
    },
    Range {
        tree: usize,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        steps: u64,
    },
    CreateTree(usize),
    DeleteTree(usize),
    Commit,
    /// Ends the transaction with `commit_unsynced`.
    CommitUnsynced,
    /// Ends the transaction with `commit_unsynced`, then calls `Database::sync`.
    Sync,
    Abort,
    OpenReader,
    CloseReader(usize),
    Reopen,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c', b'f']), 0..6),
        (0u16..2000).prop_map(|i| format!("f{i:05}").into_bytes()),
    ]
}

fn value_strategy() -> impl Strategy<Value = (usize, u8)> {
    (
        prop_oneof![
            4 => 0usize..40,
            3 => 100usize..700,
            2 => 950usize..1100,
            2 => 3000usize..20_000,
        ],
        any::<u8>(),
    )
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key_strategy().prop_map(Bound::Included),
        key_strategy().prop_map(Bound::Excluded),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let tree = 0usize..TREES.len();
    prop_oneof![
        20 => (tree.clone(), key_strategy(), value_strategy())
            .prop_map(|(tree, key, value)| Op::Put { tree, key, value }),
        2 => (tree.clone(), 0u16..1500, 1u16..400, 0usize..300)
            .prop_map(|(tree, start, count, value_len)| Op::Fill { tree, start, count, value_len }),
        8 => (tree.clone(), key_strategy()).prop_map(|(tree, key)| Op::Delete { tree, key }),
        2 => (tree.clone(), 0u16..1500, 1u16..400)
            .prop_map(|(tree, start, count)| Op::Thin { tree, start, count }),
        6 => (tree.clone(), bound_strategy(), bound_strategy(), any::<u64>())
            .prop_map(|(tree, lower, upper, steps)| Op::Range { tree, lower, upper, steps }),
        2 => tree.clone().prop_map(Op::CreateTree),
        1 => tree.prop_map(Op::DeleteTree),
        3 => Just(Op::Commit),
        4 => Just(Op::CommitUnsynced),
        2 => Just(Op::Sync),
        2 => Just(Op::Abort),
        3 => Just(Op::OpenReader),
        2 => (0usize..4).prop_map(Op::CloseReader),
        1 => Just(Op::Reopen),
    ]
}

fn value_bytes((len, seed): (usize, u8)) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 253) as u8))
        .collect()
}

fn within(key: &[u8], lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    let above = match lower {
        Bound::Unbounded => true,
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
    };
    let below = match upper {
        Bound::Unbounded => true,
        Bound::Included(u) => key <= u.as_slice(),
        Bound::Excluded(u) => key < u.as_slice(),
    };
    above && below
}

/// Walks `range` taking from the front or back as the bits of `steps` say, and compares with the
/// model's entries in bounds taken the same way.
fn compare_range<'a>(
    mut range: impl DoubleEndedIterator<Item = Result<(&'a [u8], &'a [u8]), Error>>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    lower: &Bound<Vec<u8>>,
    upper: &Bound<Vec<u8>>,
    steps: u64,
) {
    let mut expected: std::collections::VecDeque<(&Vec<u8>, &Vec<u8>)> = model
        .iter()
        .filter(|(k, _)| within(k, lower, upper))
        .collect();
    let mut bit = 0;
    loop {
        let from_back = (steps >> (bit % 64)) & 1 == 1;
        bit += 1;
        let (got, want) = if from_back {
            (range.next_back(), expected.pop_back())
        } else {
            (range.next(), expected.pop_front())
        };
        match (got, want) {
            (None, None) => break,
            (Some(Ok((k, v))), Some((mk, mv))) => {
                assert_eq!(k, mk.as_slice());
                assert!(v == mv.as_slice(), "value of {k:?} differs");
            }
            (got, want) => panic!(
                "range mismatch: got {:?}, expected {:?}",
                got.map(|r| r.map(|(k, _)| k.to_vec())),
                want.map(|(k, _)| k)
            ),
        }
    }
    assert!(range.next().is_none() && range.next_back().is_none());
}

fn assert_snapshot_equals(read: &ReadTxn, model: &Trees) {
    let names: Vec<Vec<u8>> = read
        .tree_names()
        .unwrap()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(names, model.keys().cloned().collect::<Vec<_>>());
    for (name, entries) in model {
        let got: Vec<(&[u8], &[u8])> = read.range(name, ..).unwrap().map(Result::unwrap).collect();
        assert_eq!(got.len(), entries.len(), "tree {name:?} size");
        for ((k, v), (mk, mv)) in got.iter().zip(entries) {
            assert_eq!(*k, mk.as_slice());
            assert!(*v == mv.as_slice());
        }
    }
}

fn run(ops: Vec<Op>) {
    let device = MemoryDevice::new("model.db");
    let mut db = Database::open(Arc::new(device.clone())).unwrap();
    // What readers see (every commit), and what a reopen shows (durable commits only).
    let mut visible: Trees = BTreeMap::new();
    let mut durable: Trees = BTreeMap::new();
    let mut readers: Vec<(ReadTxn, Trees)> = Vec::new();
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        // One write transaction per batch of operations up to a Commit, Abort or Reopen.
        let mut pending = visible.clone();
        let mut txn = db.begin_write().unwrap();
        let mut end = None;
        for op in ops.by_ref() {
            match op {
                Op::Put { tree, key, value } => {
                    let name = TREES[tree];
                    let value = value_bytes(value);
                    let result = txn.put(name, &key, &value);
                    match pending.get_mut(name) {
                        Some(entries) => {
                            result.unwrap();
                            entries.insert(key, value);
                        }
                        None => assert!(matches!(result, Err(Error::TreeNotFound { .. }))),
                    }
                }
                Op::Fill {
                    tree,
                    start,
                    count,
                    value_len,
                } => {
                    let name = TREES[tree];
                    let Some(entries) = pending.get_mut(name) else {
                        continue;
                    };
                    for i in start..start.saturating_add(count) {
                        let key = format!("f{i:05}").into_bytes();
                        let value = value_bytes((value_len, i as u8));
                        txn.put(name, &key, &value).unwrap();
                        entries.insert(key, value);
                    }
                }
                Op::Delete { tree, key } => {
                    let name = TREES[tree];
                    let result = txn.delete(name, &key);
                    match pending.get_mut(name) {
                        Some(entries) => {
                            assert_eq!(result.unwrap(), entries.remove(&key).is_some())
                        }
                        None => assert!(matches!(result, Err(Error::TreeNotFound { .. }))),
                    }
                }
                Op::Thin { tree, start, count } => {
                    let name = TREES[tree];
                    let Some(entries) = pending.get_mut(name) else {
                        continue;
                    };
                    for i in (start..start.saturating_add(count)).step_by(2) {
                        let key = format!("f{i:05}").into_bytes();
                        assert_eq!(
                            txn.delete(name, &key).unwrap(),
                            entries.remove(&key).is_some()
                        );
                    }
                }
                Op::Range {
                    tree,
                    lower,
                    upper,
                    steps,
                } => {
                    let name = TREES[tree];
                    match pending.get(name) {
                        Some(entries) => {
                            let range = txn
                                .range(
                                    name,
                                    (
                                        lower.as_ref().map(Vec::as_slice),
                                        upper.as_ref().map(Vec::as_slice),
                                    ),
                                )
                                .unwrap();
                            compare_range(range, entries, &lower, &upper, steps);
                        }
                        None => assert!(txn.range(name, ..).is_err()),
                    }
                    // The same bounds on the newest committed snapshot.
                    let read = db.begin_read().unwrap();
                    if let Some(entries) = visible.get(name) {
                        let range = read
                            .range(
                                name,
                                (
                                    lower.as_ref().map(Vec::as_slice),
                                    upper.as_ref().map(Vec::as_slice),
                                ),
                            )
                            .unwrap();
                        compare_range(range, entries, &lower, &upper, steps.rotate_left(7));
                    }
                }
                Op::CreateTree(tree) => {
                    txn.create_tree(TREES[tree]).unwrap();
                    pending.entry(TREES[tree].to_vec()).or_default();
                }
                Op::DeleteTree(tree) => {
                    let existed = pending.remove(TREES[tree]).is_some();
                    assert_eq!(txn.delete_tree(TREES[tree]).unwrap(), existed);
                }
                Op::OpenReader => {
                    readers.push((db.begin_read().unwrap(), visible.clone()));
                }
                Op::CloseReader(i) => {
                    if !readers.is_empty() {
                        let (read, model) = readers.remove(i % readers.len());
                        assert_snapshot_equals(&read, &model);
                    }
                }
                end_op @ (Op::Commit | Op::CommitUnsynced | Op::Sync | Op::Abort | Op::Reopen) => {
                    end = Some(end_op);
                    break;
                }
            }
        }
        let txn_id = txn.txn_id();
        match end {
            Some(Op::Abort) => txn.abort(),
            Some(Op::Reopen) => {
                drop(txn);
                readers.clear();
                drop(db);
                db = Database::open(Arc::new(device.clone())).unwrap();
                visible = durable.clone();
            }
            Some(Op::CommitUnsynced) => {
                let durable_id = db.durable_txn_id();
                txn.commit_unsynced().unwrap();
                visible = pending;
                assert_eq!(db.durable_txn_id(), durable_id);
            }
            Some(Op::Sync) => {
                txn.commit_unsynced().unwrap();
                assert_eq!(db.sync().unwrap(), txn_id);
                assert_eq!(db.durable_txn_id(), txn_id);
                visible = pending;
                durable = visible.clone();
            }
            _ => {
                txn.commit().unwrap();
                assert_eq!(db.durable_txn_id(), txn_id);
                visible = pending;
                durable = visible.clone();
            }
        }
        let read = db.begin_read().unwrap();
        assert_snapshot_equals(&read, &visible);
        drop(read);
        // The page accounting holds between unsynced commits too.
        db.check().unwrap();
    }
    // Every snapshot still shows the state as of its start.
    for (read, model) in &readers {
        assert_snapshot_equals(read, model);
    }
    let report = db.check().unwrap();
    let entries: usize = visible.values().map(BTreeMap::len).sum();
    assert_eq!(report.entries as usize, entries);
    assert_eq!(report.trees as usize, visible.len());
    drop(readers);
    drop(db);
    // A clean reopen (the unsynced pages are all in the file) still shows only durable commits.
    let reopened = Database::open(Arc::new(device)).unwrap();
    assert_snapshot_equals(&reopened.begin_read().unwrap(), &durable);
    reopened.check().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn btree_matches_a_btreemap_model(
        ops in prop::collection::vec(op_strategy(), 1..200)
            .prop_map(|mut ops| { ops.insert(0, Op::CreateTree(0)); ops })
    ) {
        run(ops);
    }
}
