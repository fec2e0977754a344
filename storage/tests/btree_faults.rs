//! Faults and bad input: failed syncs and writes poison the handle and lose nothing committed;
//! damaged, truncated and foreign files are refused with the file's name and the reason; limits
//! are refused with nothing written.

use keelson_storage::btree::{Database, Error, KEY_BYTES_MAX, PAGE_BYTES, VALUE_BYTES_MAX};
use keelson_storage::io::{BlockDevice, FaultPlan, MemoryDevice};
use std::sync::Arc;

const NAME: &str = "faulty.db";

fn key(i: u32) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

/// A database with one committed tree of `count` entries (txn 1).
fn populated(count: u32) -> (MemoryDevice, Database) {
    let device = MemoryDevice::new(NAME);
    let db = Database::open(Arc::new(device.clone())).unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.create_tree(b"t").unwrap();
    for i in 0..count {
        txn.put(b"t", &key(i), &[i as u8; 100]).unwrap();
    }
    txn.commit().unwrap();
    (device, db)
}

fn entries(db: &Database) -> usize {
    db.begin_read().unwrap().range(b"t", ..).unwrap().count()
}

/// The bytes a crash right now would keep.
fn durable(device: &MemoryDevice) -> MemoryDevice {
    device.crash_points().pop().unwrap().lose_unsynced(NAME)
}

fn open_error(device: MemoryDevice) -> String {
    match Database::open(Arc::new(device)) {
        Ok(_) => panic!("a bad file was accepted"),
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. }), "{e}");
            let message = e.to_string();
            assert!(
                message.contains(NAME),
                "error does not name the file: {message}"
            );
            message
        }
    }
}

#[test]
fn a_failed_sync_poisons_and_keeps_the_last_commit() {
    for failing_sync in 0..2 {
        let (device, db) = populated(100);
        device.set_fault_plan(FaultPlan {
            fail_sync_after: Some(failing_sync),
            ..FaultPlan::default()
        });
        let mut txn = db.begin_write().unwrap();
        txn.put(b"t", b"new", b"value").unwrap();
        let err = txn.commit().unwrap_err();
        assert!(
            matches!(err, Error::Io { .. }) && err.to_string().contains(NAME),
            "{err}"
        );
        let poisoned = db.begin_write().unwrap_err();
        assert!(matches!(poisoned, Error::Poisoned { .. }), "{poisoned}");
        assert!(poisoned.to_string().contains(NAME));
        // Readers keep the last good snapshot.
        let read = db.begin_read().unwrap();
        assert_eq!(read.txn_id(), 1);
        assert_eq!(read.get(b"t", b"new").unwrap(), None);
        assert_eq!(entries(&db), 100);
        let reopened = Database::open(Arc::new(durable(&device))).unwrap();
        assert_eq!(reopened.begin_read().unwrap().txn_id(), 1);
        assert_eq!(entries(&reopened), 100);
        reopened.check().unwrap();
    }
}

#[test]
fn a_failed_write_mid_commit_poisons_and_keeps_the_last_commit() {
    // Fail each mutation of the commit in turn until one commit gets through.
    let mut failed = 0;
    for n in 0.. {
        let (device, db) = populated(2000);
        device.set_fault_plan(FaultPlan {
            fail_mutation_after: Some(n),
            ..FaultPlan::default()
        });
        let mut txn = db.begin_write().unwrap();
        for i in 0..2000 {
            txn.put(b"t", &key(i), &[7; 150]).unwrap();
        }
        txn.put(b"t", b"big", &vec![1; 100_000]).unwrap();
        if txn.commit().is_ok() {
            break;
        }
        failed += 1;
        assert!(matches!(db.begin_write(), Err(Error::Poisoned { .. })));
        assert_eq!(db.begin_read().unwrap().get(b"t", b"big").unwrap(), None);
        let reopened = Database::open(Arc::new(durable(&device))).unwrap();
        assert_eq!(
            reopened.begin_read().unwrap().txn_id(),
            1,
            "after failing mutation {n}"
        );
        reopened.check().unwrap();
        // The bytes the device did take (no crash) hold either commit, whole.
        let current =
            Database::open(Arc::new(MemoryDevice::from_bytes(NAME, device.contents()))).unwrap();
        assert!([1, 2].contains(&current.begin_read().unwrap().txn_id()));
        current.check().unwrap();
    }
    assert!(failed >= 4, "the commit made only {failed} mutations");
}

#[test]
fn one_bad_meta_falls_back_and_two_are_refused() {
    let (device, db) = populated(50);
    let mut txn = db.begin_write().unwrap();
    txn.put(b"t", b"second", b"commit").unwrap();
    txn.commit().unwrap();
    drop(db);
    // Commit 2 lives in meta slot 0; damage it and the file opens at commit 1.
    let damaged = MemoryDevice::from_bytes(NAME, device.contents());
    damaged.flip_bit(100, 3);
    let db = Database::open(Arc::new(damaged.clone())).unwrap();
    assert_eq!(db.begin_read().unwrap().txn_id(), 1);
    assert_eq!(db.begin_read().unwrap().get(b"t", b"second").unwrap(), None);
    drop(db);
    damaged.flip_bit(PAGE_BYTES as u64 + 100, 3);
    let message = open_error(damaged);
    assert!(message.contains("both meta pages are bad"), "{message}");
}

/// The first page whose bytes contain `needle`.
fn page_containing(bytes: &[u8], needle: &[u8]) -> u64 {
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    (at / PAGE_BYTES) as u64
}

#[test]
fn a_flipped_bit_in_a_data_page_is_found() {
    let (device, db) = populated(3000);
    drop(db);
    let bytes = device.contents();
    // A leaf deep in the tree: open does not read it, check does.
    let leaf = page_containing(&bytes, &key(1500));
    let damaged = MemoryDevice::from_bytes(NAME, bytes.clone());
    damaged.flip_bit(leaf * PAGE_BYTES as u64 + 2000, 1);
    let db = Database::open(Arc::new(damaged)).unwrap();
    let message = db.check().unwrap_err().to_string();
    assert!(
        message.contains(&format!("page checksum mismatch at page {leaf}")),
        "{message}"
    );
    assert!(message.contains(NAME));
    // The root of the tree is verified on open: a flip there refuses the file.
    let root = (2..bytes.len() / PAGE_BYTES)
        .find(|&p| bytes[p * PAGE_BYTES + 4] == 2)
        .expect("a branch page") as u64;
    let damaged = MemoryDevice::from_bytes(NAME, bytes);
    damaged.flip_bit(root * PAGE_BYTES as u64 + 40, 0);
    let message = open_error(damaged);
    assert!(
        message.contains(&format!("page checksum mismatch at page {root}")),
        "{message}"
    );
}

#[test]
fn damaged_offsets_give_errors_not_panics() {
    let (device, db) = populated(3000);
    drop(db);
    let bytes = device.contents();
    let leaf = page_containing(&bytes, &key(1500));
    for offset in [32usize, 33, 40, 41, 300, 301] {
        let damaged = MemoryDevice::from_bytes(NAME, bytes.clone());
        for bit in 0..8 {
            damaged.flip_bit(leaf * PAGE_BYTES as u64 + offset as u64, bit);
        }
        let db = Database::open(Arc::new(damaged)).unwrap();
        assert!(db.check().is_err());
        // Reads may fail or return wrong bytes, but never panic.
        let read = db.begin_read().unwrap();
        let _ = read.get(b"t", &key(1500));
        let _ = read.range(b"t", ..).unwrap().count();
        let _ = read.range(b"t", ..).unwrap().rev().count();
    }
}

#[test]
fn truncated_files_are_refused() {
    let (device, db) = populated(3000);
    drop(db);
    let bytes = device.contents();
    for len in [100, PAGE_BYTES + 5, bytes.len() / 2] {
        let message = open_error(MemoryDevice::from_bytes(NAME, bytes[..len].to_vec()));
        assert!(message.contains("truncated"), "{message}");
    }
}

#[test]
fn foreign_files_are_refused() {
    let mut state = 0x1234_5678_9abc_def0u64;
    let random: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let message = open_error(MemoryDevice::from_bytes(NAME, random));
    assert!(message.contains("bad magic"), "{message}");
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.resize(16 * 1024, 0);
    let message = open_error(MemoryDevice::from_bytes(NAME, sqlite));
    assert!(message.contains("bad magic"), "{message}");
    // Our own format from a future version.
    let (device, db) = populated(1);
    drop(db);
    let mut bytes = device.contents();
    for slot in 0..2 {
        bytes[slot * PAGE_BYTES + 40] = 9;
    }
    let message = open_error(MemoryDevice::from_bytes(NAME, bytes));
    assert!(
        message.contains("unsupported format version 9"),
        "{message}"
    );
}

#[test]
fn over_limit_keys_and_values_write_nothing() {
    let (device, db) = populated(10);
    let before = device.contents();
    let syncs = device.sync_count();
    let mut txn = db.begin_write().unwrap();
    let err = txn
        .put(b"t", &vec![1; KEY_BYTES_MAX + 1], b"v")
        .unwrap_err();
    assert!(matches!(err, Error::KeyTooLarge { .. }), "{err}");
    let err = txn
        .put(b"t", b"k", &vec![1; VALUE_BYTES_MAX + 1])
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    assert_eq!(txn.get(b"t", b"k").unwrap(), None);
    drop(txn);
    assert_eq!(device.sync_count(), syncs);
    assert!(
        device.contents() == before,
        "a refused write changed the file"
    );
    assert_eq!(entries(&db), 10);
}

#[test]
fn a_failed_read_on_open_names_the_file() {
    let (device, db) = populated(10);
    drop(db);
    device.set_fault_plan(FaultPlan {
        fail_read_after: Some(0),
        ..FaultPlan::default()
    });
    let err = Database::open(Arc::new(device.clone())).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains(NAME),
        "{err}"
    );
    assert_eq!(device.len().unwrap() % PAGE_BYTES as u64, 0);
}

/// Two unsynced commits (txns 2 and 3) on top of `populated`.
fn with_unsynced(db: &Database) {
    for i in 0..2u32 {
        let mut txn = db.begin_write().unwrap();
        txn.put(b"t", &key(1000 + i), b"unsynced").unwrap();
        txn.commit_unsynced().unwrap();
    }
}

fn assert_poisoned(db: &Database) {
    let refused = db.begin_write().unwrap_err();
    assert!(matches!(refused, Error::Poisoned { .. }), "{refused}");
    assert!(refused.to_string().contains(NAME));
    let refused = db.sync().unwrap_err();
    assert!(matches!(refused, Error::Poisoned { .. }), "{refused}");
}

#[test]
fn a_failed_sync_in_database_sync_poisons_and_keeps_the_last_durable_commit() {
    for failing_sync in 0..2 {
        let (device, db) = populated(100);
        with_unsynced(&db);
        device.set_fault_plan(FaultPlan {
            fail_sync_after: Some(failing_sync),
            ..FaultPlan::default()
        });
        let err = db.sync().unwrap_err();
        assert!(
            matches!(err, Error::Io { .. }) && err.to_string().contains(NAME),
            "{err}"
        );
        assert_poisoned(&db);
        assert_eq!(db.durable_txn_id(), 1);
        // Readers keep the last published snapshot, unsynced as it is.
        assert_eq!(db.begin_read().unwrap().txn_id(), 3);
        assert_eq!(entries(&db), 102);
        let reopened = Database::open(Arc::new(durable(&device))).unwrap();
        assert_eq!(reopened.begin_read().unwrap().txn_id(), 1);
        assert_eq!(entries(&reopened), 100);
        reopened.check().unwrap();
    }
}

#[test]
fn every_failed_operation_of_database_sync_poisons() {
    // `sync` mutates the device at most five times: grow, freelist, sync, meta, sync.
    let mut failures = 0;
    for failing in 0..6 {
        let (device, db) = populated(100);
        with_unsynced(&db);
        device.set_fault_plan(FaultPlan {
            fail_mutation_after: Some(failing),
            ..FaultPlan::default()
        });
        let result = db.sync();
        device.set_fault_plan(FaultPlan::default());
        let expected = match result {
            Ok(durable) => {
                assert_eq!(durable, 3);
                3
            }
            Err(e) => {
                assert!(matches!(e, Error::Io { .. }), "{e}");
                assert_poisoned(&db);
                failures += 1;
                1
            }
        };
        // A crash right after: in-flight writes lost or kept, the result is the same commit.
        let image = device.crash_points().pop().unwrap();
        for crashed in [image.lose_unsynced(NAME), image.keep_unsynced(NAME)] {
            let reopened = Database::open(Arc::new(crashed)).unwrap();
            assert_eq!(reopened.begin_read().unwrap().txn_id(), expected);
            assert_eq!(entries(&reopened), if expected == 3 { 102 } else { 100 });
            reopened.check().unwrap();
        }
    }
    assert!(failures >= 3, "{failures}");
}

#[test]
fn a_failed_write_in_commit_unsynced_poisons_and_keeps_the_last_durable_commit() {
    let (device, db) = populated(100);
    with_unsynced(&db);
    device.set_fault_plan(FaultPlan {
        fail_mutation_after: Some(0),
        ..FaultPlan::default()
    });
    let mut txn = db.begin_write().unwrap();
    txn.put(b"t", b"new", b"value").unwrap();
    let err = txn.commit_unsynced().unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains(NAME),
        "{err}"
    );
    assert_poisoned(&db);
    assert_eq!(db.begin_read().unwrap().txn_id(), 3);
    assert_eq!(db.begin_read().unwrap().get(b"t", b"new").unwrap(), None);
    let reopened = Database::open(Arc::new(durable(&device))).unwrap();
    assert_eq!(reopened.begin_read().unwrap().txn_id(), 1);
    assert_eq!(entries(&reopened), 100);
    reopened.check().unwrap();
}

/// The transaction id in the header of meta slot `slot`.
fn meta_txn_id(device: &MemoryDevice, slot: usize) -> u64 {
    const TXN_ID_OFFSET: usize = 16;
    let at = slot * PAGE_BYTES + TXN_ID_OFFSET;
    u64::from_le_bytes(device.contents()[at..at + 8].try_into().unwrap())
}

#[test]
fn meta_slots_alternate_by_durable_commits_not_by_txn_id() {
    let (device, db) = populated(10);
    assert_eq!((meta_txn_id(&device, 0), meta_txn_id(&device, 1)), (0, 1));
    with_unsynced(&db);
    // The unsynced commits wrote neither slot.
    assert_eq!((meta_txn_id(&device, 0), meta_txn_id(&device, 1)), (0, 1));
    // Txn 3 is odd, but slot 1 holds the only durable meta (txn 1): it goes to slot 0.
    assert_eq!(db.sync().unwrap(), 3);
    assert_eq!((meta_txn_id(&device, 0), meta_txn_id(&device, 1)), (3, 1));
    let mut txn = db.begin_write().unwrap();
    txn.put(b"t", b"x", b"y").unwrap();
    txn.commit().unwrap();
    assert_eq!((meta_txn_id(&device, 0), meta_txn_id(&device, 1)), (3, 4));
    with_unsynced(&db);
    let mut txn = db.begin_write().unwrap();
    txn.put(b"t", b"x", b"z").unwrap();
    txn.commit().unwrap();
    // Txn 7 is odd, but slot 1 holds txn 4.
    assert_eq!((meta_txn_id(&device, 0), meta_txn_id(&device, 1)), (7, 4));
    // A sync with nothing new writes nothing.
    let syncs = device.sync_count();
    assert_eq!(db.sync().unwrap(), 7);
    assert_eq!(device.sync_count(), syncs);
    drop(db);
    let reopened = Database::open(Arc::new(durable(&device))).unwrap();
    assert_eq!(reopened.begin_read().unwrap().txn_id(), 7);
    reopened.check().unwrap();
}
