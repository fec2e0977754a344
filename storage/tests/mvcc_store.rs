//! The MVCC store against a model that keeps the whole key space at every revision.
//!
//! Random puts, deletes, multi-op requests, reads at random revisions with limits, compactions
//! (valid and invalid) run to completion, and reopens. After every step the store must answer
//! exactly as the model: records (create/mod revision, version, value, lease), counts, header
//! revisions, and etcd's errors for compacted and future revisions.

use keelson_storage::btree::Database;
use keelson_storage::io::MemoryDevice;
use keelson_storage::mvcc::kv::KeyValue;
use keelson_storage::mvcc::store::{Error, FIRST_REV};
use keelson_storage::mvcc::{Change, KeyRange, RangeOptions, Revision, Store};
use keelson_storage::schema;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

type State = BTreeMap<Vec<u8>, KeyValue>;

struct Model {
    /// The key space after each revision, by revision.
    history: BTreeMap<i64, State>,
    rev: i64,
    compact_rev: i64,
}

impl Model {
    fn new() -> Model {
        Model {
            history: BTreeMap::from([(i64::MIN, State::new()), (FIRST_REV, State::new())]),
            rev: FIRST_REV,
            compact_rev: -1,
        }
    }

    fn current(&self) -> &State {
        &self.history[&self.rev]
    }

    fn at(&self, rev: i64) -> &State {
        self.history
            .range(..=rev)
            .next_back()
            .expect("history starts at the first revision")
            .1
    }
}

fn open(device: &MemoryDevice) -> Store {
    Store::open(Database::open(Arc::new(device.clone())).expect("open db")).expect("open store")
}

const KEYS: [&[u8]; 8] = [b"a", b"ab", b"abc", b"b", b"ba", b"c", b"d", b"\xff"];

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    KEYS[rng.random_range(0..KEYS.len())].to_vec()
}

/// A random key range in etcd's request form (key, range_end).
fn random_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    match rng.random_range(0..4) {
        0 => (random_key(rng), Vec::new()),
        1 => (random_key(rng), vec![0]),
        2 => (vec![0], vec![0]),
        _ => {
            let mut a = random_key(rng);
            let mut b = random_key(rng);
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            (a, b)
        }
    }
}

fn in_range(range: KeyRange<'_>, key: &[u8]) -> bool {
    range.contains(key)
}

fn check_range(store: &Store, model: &Model, rng: &mut StdRng) {
    let (key, end) = random_range(rng);
    let range = KeyRange::from_request(&key, &end);
    let rev = match rng.random_range(0..3) {
        0 => 0,
        _ => rng.random_range(model.compact_rev.max(0) - 1..=model.rev + 1),
    };
    let limit = rng.random_range(0..4);
    let count_only = rng.random_range(0..6) == 0;
    let view = store.view();
    let got = store.range(
        &view,
        range,
        RangeOptions {
            limit,
            rev,
            count_only,
        },
    );
    if rev > model.rev {
        assert!(
            matches!(got, Err(Error::FutureRev)),
            "rev {rev} > {}: {got:?}",
            model.rev
        );
        return;
    }
    let read_rev = if rev <= 0 { model.rev } else { rev };
    if read_rev < model.compact_rev {
        assert!(
            matches!(got, Err(Error::Compacted)),
            "rev {read_rev} < {}: {got:?}",
            model.compact_rev
        );
        return;
    }
    let got = got.expect("range");
    let want: Vec<&KeyValue> = model
        .at(read_rev)
        .iter()
        .filter(|(k, _)| in_range(range, k))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got.count, want.len(), "count of {range:?} at {read_rev}");
    assert_eq!(got.rev, model.rev, "header revision");
    let expected: Vec<KeyValue> = if count_only {
        Vec::new()
    } else {
        want.iter()
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|kv| (*kv).clone())
            .collect()
    };
    let got: Vec<KeyValue> = got.kvs.iter().map(|kv| kv.to_owned()).collect();
    assert_eq!(
        got, expected,
        "records of {range:?} at {read_rev} limit {limit}"
    );
}

/// One write request of one to three operations on distinct keys, applied to both.
fn write_request(store: &Store, model: &mut Model, rng: &mut StdRng) {
    let mut write = store.begin_write().expect("begin");
    let mut next = model.current().clone();
    let new_rev = model.rev + 1;
    let mut changed = false;
    let mut touched: Vec<Vec<u8>> = Vec::new();
    write.begin_request();
    for sub in 0..rng.random_range(1..=3) {
        if rng.random_range(0..3) > 0 {
            let key = random_key(rng);
            if touched.contains(&key) {
                continue;
            }
            touched.push(key.clone());
            let value = format!("v{new_rev}.{sub}").into_bytes();
            let lease = rng.random_range(0..3);
            let written = write.put(&key, &value, lease).expect("put");
            let (create_revision, version) = match model.current().get(&key) {
                Some(old) => (old.create_revision, old.version + 1),
                None => (new_rev, 1),
            };
            let want = KeyValue {
                key: key.clone(),
                create_revision,
                mod_revision: new_rev,
                version,
                value,
                lease,
            };
            assert_eq!(written, want);
            next.insert(key, want);
            changed = true;
        } else {
            let (key, end) = random_range(rng);
            let range = KeyRange::from_request(&key, &end);
            // A request never deletes what it wrote itself (etcd refuses such txns upstream).
            if touched.iter().any(|k| in_range(range, k)) {
                continue;
            }
            let deleted = write.delete_range(range).expect("delete");
            let want: Vec<Vec<u8>> = next
                .keys()
                .filter(|k| in_range(range, k))
                .cloned()
                .collect();
            assert_eq!(deleted, want, "deleted keys of {range:?}");
            for key in &want {
                next.remove(key);
                touched.push(key.clone());
            }
            changed |= !want.is_empty();
        }
        // Reads inside the request see its own writes.
        let all = write
            .range(KeyRange::from_request(&[0], &[0]), RangeOptions::default())
            .expect("range in txn");
        let seen: Vec<Vec<u8>> = all.kvs.iter().map(|kv| kv.key.to_vec()).collect();
        assert_eq!(seen, next.keys().cloned().collect::<Vec<_>>());
    }
    let (changes, header_rev) = write.end_request();
    assert_eq!(changes.is_empty(), !changed);
    for change in &changes {
        match change {
            Change::Put(kv) => assert_eq!(kv.mod_revision, new_rev),
            Change::Delete { mod_revision, .. } => assert_eq!(*mod_revision, new_rev),
        }
    }
    write.commit_durable().expect("commit");
    if changed {
        model.rev = new_rev;
        model.history.insert(new_rev, next);
    }
    assert_eq!(header_rev, model.rev);
}

fn compact(store: &Store, model: &mut Model, rng: &mut StdRng) {
    let rev = rng.random_range(model.compact_rev.max(0) - 1..=model.rev + 1);
    let mut write = store.begin_write().expect("begin");
    let result = write.schedule_compaction(rev);
    if rev <= model.compact_rev {
        assert!(
            matches!(result, Err(Error::Compacted)),
            "compact {rev} <= {}",
            model.compact_rev
        );
        return;
    }
    if rev > model.rev {
        assert!(
            matches!(result, Err(Error::FutureRev)),
            "compact {rev} > {}",
            model.rev
        );
        return;
    }
    result.expect("schedule compaction");
    write.commit_durable().expect("commit");
    model.compact_rev = rev;
    // Stop part-way sometimes: a reopen must finish the job.
    let mut job = store.compaction_job(rev);
    if rng.random_range(0..4) == 0 {
        return;
    }
    loop {
        let mut write = store.begin_write().expect("begin");
        let done = write.compaction_step(&mut job).expect("step");
        write.commit_durable().expect("commit");
        if done {
            break;
        }
    }
    check_compacted(store, model);
}

/// After a finished compaction at C, the key tree holds exactly one record at or below C per key
/// live at C, and nothing else at or below C.
fn check_compacted(store: &Store, model: &Model) {
    let view = store.view();
    let end = Revision::new(model.compact_rev + 1, 0).to_bytes();
    let old: Vec<(Revision, bool)> = view
        .txn()
        .range(schema::TREE_KEY, ..&end[..])
        .expect("range")
        .map(|entry| Revision::from_key(entry.expect("entry").0).expect("revision key"))
        .collect();
    assert!(
        old.iter().all(|(_, tombstone)| !tombstone),
        "a tombstone survived compaction: {old:?}"
    );
    let live_at_compaction = model.at(model.compact_rev).len();
    assert_eq!(
        old.len(),
        live_at_compaction,
        "records at or below {}",
        model.compact_rev
    );
}

fn run(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let device = MemoryDevice::new("mvcc");
    let mut store = open(&device);
    let mut model = Model::new();
    assert_eq!(store.current_rev(), FIRST_REV);
    for _ in 0..steps {
        match rng.random_range(0..20) {
            0..=8 => write_request(&store, &mut model, &mut rng),
            9..=16 => check_range(&store, &model, &mut rng),
            17 | 18 => compact(&store, &mut model, &mut rng),
            _ => {
                drop(store);
                store = open(&device);
                assert_eq!(store.current_rev(), model.rev, "revision after reopen");
                assert_eq!(
                    store.view().compact_rev(),
                    model.compact_rev,
                    "compact revision after reopen"
                );
            }
        }
    }
    store.database().check().expect("check");
}

#[test]
fn store_matches_the_model() {
    for seed in 0..24 {
        run(seed, 300);
    }
}

#[test]
fn first_write_is_revision_two_and_versions_count_puts() {
    let device = MemoryDevice::new("mvcc");
    let store = open(&device);
    let mut write = store.begin_write().expect("begin");
    write.begin_request();
    let first = write.put(b"foo", b"bar", 0).expect("put");
    assert_eq!(
        (first.create_revision, first.mod_revision, first.version),
        (2, 2, 1)
    );
    assert_eq!(write.end_request().1, 2);
    write.begin_request();
    let second = write.put(b"foo", b"baz", 0).expect("put");
    assert_eq!(
        (second.create_revision, second.mod_revision, second.version),
        (2, 3, 2)
    );
    write.end_request();
    write.begin_request();
    assert_eq!(
        write
            .delete_range(KeyRange::Single(b"foo"))
            .expect("delete"),
        vec![b"foo".to_vec()]
    );
    write.end_request();
    // A delete of nothing changes nothing: no new revision.
    write.begin_request();
    assert!(
        write
            .delete_range(KeyRange::Single(b"foo"))
            .expect("delete")
            .is_empty()
    );
    assert_eq!(write.end_request(), (Vec::new(), 4));
    write.begin_request();
    let again = write.put(b"foo", b"new", 7).expect("put");
    assert_eq!(
        (
            again.create_revision,
            again.mod_revision,
            again.version,
            again.lease
        ),
        (5, 5, 1, 7)
    );
    write.end_request();
    write.commit_durable().expect("commit");
    let view = store.view();
    let old = store
        .range(
            &view,
            KeyRange::Single(b"foo"),
            RangeOptions {
                rev: 3,
                ..RangeOptions::default()
            },
        )
        .expect("range");
    assert_eq!(old.kvs[0].value, b"baz");
    let gone = store
        .range(
            &view,
            KeyRange::Single(b"foo"),
            RangeOptions {
                rev: 4,
                ..RangeOptions::default()
            },
        )
        .expect("range");
    assert_eq!((gone.kvs.len(), gone.count, gone.rev), (0, 0, 5));
}

#[test]
fn a_view_is_a_stable_snapshot() {
    let device = MemoryDevice::new("mvcc");
    let store = open(&device);
    let put = |value: &[u8]| {
        let mut write = store.begin_write().expect("begin");
        write.begin_request();
        write.put(b"k", value, 0).expect("put");
        write.end_request();
        write.commit_durable().expect("commit");
    };
    put(b"one");
    let before = store.view();
    put(b"two");
    let read = store
        .range(&before, KeyRange::Single(b"k"), RangeOptions::default())
        .expect("range");
    assert_eq!((read.kvs[0].value, read.rev), (&b"one"[..], 2));
    let after = store.view();
    let read = store
        .range(&after, KeyRange::Single(b"k"), RangeOptions::default())
        .expect("range");
    assert_eq!((read.kvs[0].value, read.rev), (&b"two"[..], 3));
}

#[test]
fn a_view_older_than_an_index_compaction_is_refused_not_misread() {
    let device = MemoryDevice::new("mvcc");
    let store = open(&device);
    let mut write = store.begin_write().expect("begin");
    for value in [b"1", b"2"] {
        write.begin_request();
        write.put(b"k", value, 0).expect("put");
        write.end_request();
    }
    write.commit_durable().expect("commit");
    let old = store.view();
    let mut write = store.begin_write().expect("begin");
    write.begin_request();
    write.put(b"k", b"3", 0).expect("put");
    write.end_request();
    write.schedule_compaction(4).expect("compact");
    write.commit_durable().expect("commit");
    let _job = store.compaction_job(4);
    let stale = store.range(&old, KeyRange::Single(b"k"), RangeOptions::default());
    assert!(matches!(stale, Err(Error::StaleView)), "{stale:?}");
    let fresh = store.view();
    let read = store
        .range(&fresh, KeyRange::Single(b"k"), RangeOptions::default())
        .expect("range");
    assert_eq!(read.kvs[0].value, b"3");
}

#[test]
fn consistent_index_survives_reopen() {
    let device = MemoryDevice::new("mvcc");
    let store = open(&device);
    let mut write = store.begin_write().expect("begin");
    write.set_consistent_index(42).expect("set");
    write.commit_durable().expect("commit");
    assert_eq!(store.view().consistent_index(), 42);
    drop(store);
    assert_eq!(open(&device).view().consistent_index(), 42);
}

#[test]
fn deferred_commits_are_visible_at_once_and_durable_after_sync() {
    let device = MemoryDevice::new("mvcc");
    let store = open(&device);
    let put = |value: &[u8], index: u64| {
        let mut write = store.begin_write().expect("begin");
        write.begin_request();
        write.put(b"k", value, 0).expect("put");
        write.end_request();
        write.set_consistent_index(index).expect("index");
        write.commit_deferred().expect("commit");
    };
    put(b"synced", 1);
    store.database().sync().expect("sync");
    put(b"deferred", 2);
    let view = store.view();
    let read = store
        .range(&view, KeyRange::Single(b"k"), RangeOptions::default())
        .expect("range");
    assert_eq!(
        (read.kvs[0].value, view.consistent_index()),
        (&b"deferred"[..], 2)
    );
    drop(view);
    // A crash now loses the deferred commit and nothing else.
    let crashed = device
        .crash_points()
        .pop()
        .expect("crash point")
        .lose_unsynced("mvcc");
    let reopened = open(&crashed);
    let view = reopened.view();
    let read = reopened
        .range(&view, KeyRange::Single(b"k"), RangeOptions::default())
        .expect("range");
    assert_eq!(
        (read.kvs[0].value, view.consistent_index(), view.rev()),
        (&b"synced"[..], 1, 2)
    );
}
