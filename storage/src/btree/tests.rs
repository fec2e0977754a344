//! Unit tests of the module as a whole, through its public API on an in-memory device, and the
//! check that the limits in code match the table in docs/STORAGE-BTREE.md.

use super::*;
use crate::io::MemoryDevice;

fn memory_db() -> (MemoryDevice, Database) {
    let device = MemoryDevice::new("mem.db");
    let db = Database::open(Arc::new(device.clone())).unwrap();
    (device, db)
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

#[test]
fn puts_are_visible_to_the_writer_and_after_commit_to_readers() {
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    txn.put(b"t", b"a", b"1").unwrap();
    assert_eq!(txn.get(b"t", b"a").unwrap(), Some(&b"1"[..]));
    let before = db.begin_read().unwrap();
    assert!(!before.contains_tree(b"t").unwrap());
    txn.commit().unwrap();
    let after = db.begin_read().unwrap();
    assert_eq!(after.get(b"t", b"a").unwrap(), Some(&b"1"[..]));
    assert_eq!(after.txn_id(), before.txn_id() + 1);
    assert!(matches!(
        before.get(b"t", b"a"),
        Err(Error::TreeNotFound { .. })
    ));
    assert_eq!(after.tree_names().unwrap(), vec![&b"t"[..]]);
}

#[test]
fn file_bytes_follow_the_file_as_commits_grow_it() {
    let (device, db) = memory_db();
    assert_eq!(db.file_bytes(), device.len().unwrap());
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    for i in 0..2000 {
        txn.put(b"t", &key(i), &[7; 200]).unwrap();
    }
    txn.commit_unsynced().unwrap();
    let grown = device.len().unwrap();
    assert!(
        grown > 64 * 1024,
        "the load must grow the file, got {grown}"
    );
    assert_eq!(db.file_bytes(), grown);
}

#[test]
fn a_tree_handle_reads_like_the_transaction() {
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    for i in 0..500 {
        txn.put(b"t", &key(i), &key(i * 2)).unwrap();
    }
    txn.commit().unwrap();
    let read = db.begin_read().unwrap();
    let tree = read.tree(b"t").unwrap();
    for i in [0, 1, 250, 499, 500] {
        assert_eq!(tree.get(&key(i)).unwrap(), read.get(b"t", &key(i)).unwrap());
    }
    let from_handle: Vec<_> = tree
        .range(&key(10)[..]..&key(20)[..])
        .rev()
        .map(|e| e.unwrap())
        .collect();
    let from_txn: Vec<_> = read
        .range(b"t", &key(10)[..]..&key(20)[..])
        .unwrap()
        .rev()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(from_handle, from_txn);
    assert_eq!(from_handle.len(), 10);
    let mut cursor = tree.cursor();
    assert_eq!(
        cursor.last().unwrap().map(|(k, _)| k.to_vec()),
        Some(key(499))
    );
    assert!(matches!(
        read.tree(b"missing"),
        Err(Error::TreeNotFound { .. })
    ));
}

#[test]
fn many_keys_split_and_merge_and_stay_ordered() {
    let (_, db) = memory_db();
    let count = 5000;
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    // Interleave so splits happen mid-leaf and at the end.
    for i in (0..count).step_by(2).chain((1..count).step_by(2)) {
        txn.put(b"t", &key(i), &[i as u8; 100]).unwrap();
    }
    txn.commit().unwrap();
    let report = db.check().unwrap();
    assert_eq!(report.entries, u64::from(count));
    assert!(report.branch_pages > 0);
    let read = db.begin_read().unwrap();
    let keys: Vec<Vec<u8>> = read
        .range(b"t", ..)
        .unwrap()
        .map(|e| e.unwrap().0.to_vec())
        .collect();
    assert_eq!(keys, (0..count).map(key).collect::<Vec<_>>());
    let back: Vec<Vec<u8>> = read
        .range(b"t", ..)
        .unwrap()
        .rev()
        .map(|e| e.unwrap().0.to_vec())
        .collect();
    assert_eq!(back, (0..count).rev().map(key).collect::<Vec<_>>());
    drop(read);

    let mut txn = db.begin_write().unwrap();
    for i in 0..count - 3 {
        assert!(txn.delete(b"t", &key(i)).unwrap());
    }
    assert!(!txn.delete(b"t", &key(0)).unwrap());
    txn.commit().unwrap();
    let report = db.check().unwrap();
    assert_eq!(report.entries, 3);
    // Merging brought the tree back down to one leaf (the other is the catalog's).
    assert_eq!((report.leaf_pages, report.branch_pages), (2, 0));
}

#[test]
fn overflow_values_are_one_slice_of_the_map() {
    let (_, db) = memory_db();
    let big: Vec<u8> = (0..1_600_000u32).map(|i| (i % 251) as u8).collect();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    txn.put(b"t", b"big", &big).unwrap();
    assert_eq!(txn.get(b"t", b"big").unwrap(), Some(big.as_slice()));
    txn.commit().unwrap();
    let read = db.begin_read().unwrap();
    let value = read.get(b"t", b"big").unwrap().unwrap();
    assert_eq!(value, big.as_slice());
    let map = read.snapshot.map.bytes().as_ptr_range();
    assert!(
        map.contains(&value.as_ptr()),
        "the value is borrowed from the map"
    );
    let report = db.check().unwrap();
    assert_eq!(
        report.overflow_pages,
        u64::from(page::run_pages_for(big.len()))
    );
}

#[test]
fn cursors_seek_and_walk_both_ways() {
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    for i in (0..2000).step_by(10) {
        txn.put(b"t", &key(i), b"v").unwrap();
    }
    txn.commit().unwrap();
    let read = db.begin_read().unwrap();
    let mut cursor = read.cursor(b"t").unwrap();
    assert_eq!(cursor.seek(&key(15)).unwrap().unwrap().0, key(20));
    assert_eq!(cursor.prev().unwrap().unwrap().0, key(10));
    assert_eq!(cursor.next().unwrap().unwrap().0, key(20));
    assert_eq!(cursor.seek_back(&key(15)).unwrap().unwrap().0, key(10));
    assert_eq!(cursor.last().unwrap().unwrap().0, key(1990));
    assert!(cursor.next().unwrap().is_none());
    assert_eq!(cursor.first().unwrap().unwrap().0, key(0));
    assert!(cursor.prev().unwrap().is_none());
    let (low, high) = (key(100), key(200));
    let mut range = read.range(b"t", low.as_slice()..high.as_slice()).unwrap();
    assert_eq!(range.next().unwrap().unwrap().0, key(100));
    assert_eq!(range.next_back().unwrap().unwrap().0, key(190));
    assert_eq!(range.count(), 8);
}

#[test]
fn abort_leaves_nothing_behind() {
    let (device, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    txn.commit().unwrap();
    let syncs = device.sync_count();
    let mut txn = db.begin_write().unwrap();
    txn.put(b"t", b"k", &vec![7u8; 100_000]).unwrap();
    txn.abort();
    let mut txn = db.begin_write().unwrap();
    txn.put(b"t", b"j", b"v").unwrap();
    drop(txn);
    assert_eq!(device.sync_count(), syncs, "an abort writes nothing");
    let read = db.begin_read().unwrap();
    assert_eq!(read.range(b"t", ..).unwrap().count(), 0);
    db.check().unwrap();
}

#[test]
fn deleted_trees_free_their_pages() {
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"a").unwrap();
    txn.create_tree(b"b").unwrap();
    for i in 0..3000 {
        txn.put(b"a", &key(i), &[1; 200]).unwrap();
    }
    txn.put(b"a", b"big", &[2; 50_000]).unwrap();
    txn.commit().unwrap();
    let used = db.check().unwrap();
    let mut txn = db.begin_write().unwrap();
    assert!(txn.delete_tree(b"a").unwrap());
    assert!(!txn.delete_tree(b"a").unwrap());
    assert!(matches!(
        txn.put(b"a", b"k", b"v"),
        Err(Error::TreeNotFound { .. })
    ));
    txn.create_tree(b"a").unwrap();
    assert_eq!(txn.get(b"a", &key(1)).unwrap(), None);
    txn.commit().unwrap();
    let report = db.check().unwrap();
    assert_eq!(report.trees, 2);
    assert_eq!(report.entries, 0);
    assert!(report.free_pages >= used.leaf_pages + used.overflow_pages);
}

#[test]
fn compaction_copies_live_data_densely() {
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"a").unwrap();
    txn.create_tree(b"empty").unwrap();
    for i in 0..4000 {
        txn.put(b"a", &key(i), &[3; 150]).unwrap();
    }
    txn.put(b"a", b"big", &[4; 70_000]).unwrap();
    txn.commit().unwrap();
    let mut txn = db.begin_write().unwrap();
    for i in (0..4000).filter(|i| i % 3 != 0) {
        txn.delete(b"a", &key(i)).unwrap();
    }
    txn.commit().unwrap();
    let dest = MemoryDevice::new("compact.db");
    db.compact_into(Arc::new(dest.clone())).unwrap();
    assert!(matches!(
        db.compact_into(Arc::new(dest.clone())),
        Err(Error::DestinationNotEmpty { .. })
    ));
    let copy = Database::open(Arc::new(dest)).unwrap();
    let report = copy.check().unwrap();
    assert_eq!(report.free_pages, 0);
    assert!(report.page_count < db.check().unwrap().page_count);
    let (source, target) = (db.begin_read().unwrap(), copy.begin_read().unwrap());
    assert_eq!(source.tree_names().unwrap(), target.tree_names().unwrap());
    let left: Vec<_> = source
        .range(b"a", ..)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let right: Vec<_> = target
        .range(b"a", ..)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, right);
    // The copy is a normal database: it takes writes.
    let mut txn = copy.begin_write().unwrap();
    txn.put(b"empty", b"k", b"v").unwrap();
    txn.commit().unwrap();
    copy.check().unwrap();
}

#[test]
fn limits_are_enforced_before_anything_changes() {
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    let long_key = vec![0u8; KEY_BYTES_MAX + 1];
    assert!(matches!(
        txn.put(b"t", &long_key, b"v"),
        Err(Error::KeyTooLarge { .. })
    ));
    let long_value = vec![0u8; VALUE_BYTES_MAX + 1];
    assert!(matches!(
        txn.put(b"t", b"k", &long_value),
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(matches!(
        txn.create_tree(&long_key),
        Err(Error::KeyTooLarge { .. })
    ));
    // The transaction is still usable, and limits exactly at the bound are accepted.
    txn.put(b"t", &vec![1u8; KEY_BYTES_MAX], &vec![2u8; VALUE_BYTES_MAX])
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(db.check().unwrap().entries, 1);
}

#[test]
fn database_and_read_txn_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync::<Database>();
    send_static::<ReadTxn>();
    let (_, db) = memory_db();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    txn.put(b"t", b"k", b"v").unwrap();
    txn.commit().unwrap();
    let read = db.begin_read().unwrap();
    let got = std::thread::spawn(move || read.get(b"t", b"k").unwrap().map(<[u8]>::to_vec))
        .join()
        .unwrap();
    assert_eq!(got, Some(b"v".to_vec()));
}

#[test]
fn limits_in_code_match_the_spec() {
    let spec = include_str!("../../../docs/STORAGE-BTREE.md");
    let table: std::collections::BTreeMap<&str, u64> = spec
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .filter(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(|(name, value)| (name, value.trim().parse().expect("a number")))
        .collect();
    let code = [
        ("PAGE_BYTES", PAGE_BYTES as u64),
        ("PAGE_HEADER_BYTES", PAGE_HEADER_BYTES as u64),
        ("KEY_BYTES_MAX", KEY_BYTES_MAX as u64),
        ("VALUE_BYTES_MAX", VALUE_BYTES_MAX as u64),
        ("INLINE_ENTRY_BYTES_MAX", INLINE_ENTRY_BYTES_MAX as u64),
        ("FORMAT_VERSION", u64::from(FORMAT_VERSION)),
        ("GROW_BYTES_MAX", GROW_BYTES_MAX),
        ("TREE_DEPTH_MAX", TREE_DEPTH_MAX as u64),
    ];
    assert_eq!(table.len(), code.len(), "spec table: {table:?}");
    for (name, value) in code {
        assert_eq!(
            table.get(name),
            Some(&value),
            "{name} differs between code and spec"
        );
    }
    assert!(spec.contains("\"KEELSONB\""));
    assert_eq!(&page::MAGIC, b"KEELSONB");
}
