//! Put, DeleteRange and Compaction: options, errors, and that a rejected request changes nothing.

use super::*;
use keelson_storage::mvcc::Change;

const LEASE: i64 = 0x1234;

fn put_with(store: &Store, request: PutRequest, leases: &Leases) -> Result<Applied, EtcdError> {
    run(store, WriteRequest::Put(request), leases)
}

fn put_response(applied: &Applied) -> &keelson_proto::etcdserverpb::PutResponse {
    match &applied.response {
        WriteResponse::Put(response) => response,
        other => panic!("not a put response: {other:?}"),
    }
}

fn delete_response(applied: &Applied) -> &keelson_proto::etcdserverpb::DeleteRangeResponse {
    match &applied.response {
        WriteResponse::DeleteRange(response) => response,
        other => panic!("not a delete response: {other:?}"),
    }
}

#[test]
fn put_advances_the_revision_and_reports_prev_kv() {
    let store = new_store();
    assert_eq!(store.current_rev(), 1);
    let first = put_with(
        &store,
        PutRequest {
            prev_kv: true,
            ..put_req("k", "v1")
        },
        &NO_LEASES,
    )
    .unwrap();
    assert_eq!(revision(&first.response), 2);
    assert_eq!(put_response(&first).prev_kv, None);
    let header = put_response(&first).header.unwrap();
    assert_eq!(
        (header.cluster_id, header.member_id, header.raft_term),
        (0, 0, 0)
    );
    assert!(
        matches!(&first.changes[..], [Change::Put(kv)] if kv.value == b"v1" && kv.mod_revision == 2)
    );
    assert_eq!(first.compaction, None);
    let second = put_with(
        &store,
        PutRequest {
            prev_kv: true,
            ..put_req("k", "v2")
        },
        &NO_LEASES,
    )
    .unwrap();
    let prev = put_response(&second).prev_kv.clone().unwrap();
    assert_eq!(
        (prev.value, prev.version, prev.mod_revision),
        (b"v1".to_vec(), 1, 2)
    );
    assert_eq!(revision(&second.response), 3);
    // Without prev_kv, none is returned even though the key existed.
    let third = put_with(&store, put_req("k", "v3"), &NO_LEASES).unwrap();
    assert_eq!(put_response(&third).prev_kv, None);
    let kv = &get(&store, &get_req("k", "")).unwrap().kvs[0];
    assert_eq!((kv.version, kv.create_revision, kv.mod_revision), (3, 2, 4));
}

#[test]
fn put_with_a_lease() {
    let store = new_store();
    put(&store, "k", "v");
    let before = dump(&store);
    let missing = put_with(
        &store,
        PutRequest {
            lease: LEASE,
            ..put_req("k", "x")
        },
        &NO_LEASES,
    );
    assert_eq!(missing.unwrap_err(), EtcdError::LeaseNotFound);
    assert_eq!(dump(&store), before, "a rejected put changes nothing");
    let leases = Leases(vec![LEASE]);
    put_with(
        &store,
        PutRequest {
            lease: LEASE,
            ..put_req("k", "x")
        },
        &leases,
    )
    .unwrap();
    assert_eq!(get(&store, &get_req("k", "")).unwrap().kvs[0].lease, LEASE);
}

#[test]
fn ignore_value_and_ignore_lease() {
    let store = new_store();
    let leases = Leases(vec![LEASE, LEASE + 1]);
    let before = dump(&store);
    for request in [
        PutRequest {
            ignore_value: true,
            ..put_req("k", "")
        },
        PutRequest {
            ignore_lease: true,
            ..put_req("k", "v")
        },
    ] {
        assert_eq!(
            put_with(&store, request, &leases).unwrap_err(),
            EtcdError::KeyNotFound
        );
    }
    assert_eq!(dump(&store), before);
    // The lease is checked before the key (etcd's order).
    let both = PutRequest {
        ignore_value: true,
        lease: 99,
        ..put_req("k", "")
    };
    assert_eq!(
        put_with(&store, both, &leases).unwrap_err(),
        EtcdError::LeaseNotFound
    );

    put_with(
        &store,
        PutRequest {
            lease: LEASE,
            ..put_req("k", "v1")
        },
        &leases,
    )
    .unwrap();
    let keep_value = PutRequest {
        ignore_value: true,
        lease: LEASE + 1,
        prev_kv: true,
        ..put_req("k", "")
    };
    let applied = put_with(&store, keep_value, &leases).unwrap();
    assert_eq!(
        put_response(&applied).prev_kv.as_ref().unwrap().lease,
        LEASE
    );
    let kv = &get(&store, &get_req("k", "")).unwrap().kvs[0];
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v1"[..], LEASE + 1, 2)
    );
    put_with(
        &store,
        PutRequest {
            ignore_lease: true,
            ..put_req("k", "v2")
        },
        &leases,
    )
    .unwrap();
    let kv = &get(&store, &get_req("k", "")).unwrap().kvs[0];
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"v2"[..], LEASE + 1));
}

#[test]
fn delete_range_counts_and_returns_prev_kvs() {
    let store = new_store();
    for key in ["a", "b", "c", "d"] {
        put(&store, key, key);
    }
    let request = DeleteRangeRequest {
        prev_kv: true,
        ..del_req("b", "d")
    };
    let applied = run(&store, WriteRequest::DeleteRange(request), &NO_LEASES).unwrap();
    let response = delete_response(&applied);
    assert_eq!(response.deleted, 2);
    assert_eq!(
        response
            .prev_kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        [b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(revision(&applied.response), 6);
    assert_eq!(applied.changes.len(), 2);
    assert!(matches!(&applied.changes[0], Change::Delete { key, mod_revision: 6 } if key == b"b"));
    // Without prev_kv: no kvs. A single key.
    let single = run(
        &store,
        WriteRequest::DeleteRange(del_req("a", "")),
        &NO_LEASES,
    )
    .unwrap();
    assert_eq!(
        (
            delete_response(&single).deleted,
            delete_response(&single).prev_kvs.len()
        ),
        (1, 0)
    );
    assert_eq!(revision(&single.response), 7);
    // Deleting nothing does not advance the revision; the header shows the current one.
    let nothing = run(
        &store,
        WriteRequest::DeleteRange(DeleteRangeRequest {
            prev_kv: true,
            ..del_req("a", "c")
        }),
        &NO_LEASES,
    )
    .unwrap();
    assert_eq!(
        (
            delete_response(&nothing).deleted,
            revision(&nothing.response)
        ),
        (0, 7)
    );
    assert!(nothing.changes.is_empty());
    assert_eq!(store.current_rev(), 7);
    // From key.
    let rest = run(
        &store,
        WriteRequest::DeleteRange(del_req("a", "\0")),
        &NO_LEASES,
    )
    .unwrap();
    assert_eq!(delete_response(&rest).deleted, 1);
    assert_eq!(get(&store, &get_req("\0", "\0")).unwrap().count, 0);
}

#[test]
fn compaction_errors_and_header() {
    let store = new_store();
    for value in ["1", "2", "3", "4"] {
        put(&store, "k", value);
    }
    assert_eq!(compact(&store, 6).unwrap_err(), EtcdError::FutureRev);
    let applied = compact(&store, 3).unwrap();
    assert_eq!(
        revision(&applied.response),
        5,
        "the current revision; compaction makes none"
    );
    assert_eq!(applied.compaction, Some(3));
    assert!(applied.changes.is_empty());
    assert_eq!(store.current_rev(), 5);
    // At or below the compact revision, even before the physical part ran.
    assert_eq!(compact(&store, 3).unwrap_err(), EtcdError::Compacted);
    assert_eq!(compact(&store, 2).unwrap_err(), EtcdError::Compacted);
    assert_eq!(
        get(
            &store,
            &RangeRequest {
                revision: 2,
                ..get_req("k", "")
            }
        ),
        Err(EtcdError::Compacted)
    );
    let mut job = store.compaction_job(3);
    let mut write = store.begin_write().unwrap();
    assert!(write.compaction_step(&mut job).unwrap());
    write.commit_deferred().unwrap();
    let at3 = get(
        &store,
        &RangeRequest {
            revision: 3,
            ..get_req("k", "")
        },
    )
    .unwrap();
    assert_eq!(at3.kvs[0].value, b"2");
    assert_eq!(compact(&store, 5).unwrap().compaction, Some(5));
}
