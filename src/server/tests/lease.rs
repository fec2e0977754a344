//! The lessor and the lease requests' apply, with a fake clock: every call takes an `Instant`
//! built from one base, so expiry and checkpoints are decided without sleeping.

use super::{del_req, new_store, put_req};
use crate::errors::EtcdError;
use crate::server::apply::{Applied, LeaseLookup, apply};
use crate::server::lessor::{
    CHECKPOINT_INTERVAL, EXPIRED_RETRY, Lessor, MAX_LEASE_TTL, RenewError, min_ttl_seconds,
};
use crate::server::{Error, WriteRequest, WriteResponse};
use keelson_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
};
use keelson_storage::mvcc::{Change, KeyRange, RangeOptions, Store};
use std::time::{Duration, Instant};

const MIN_TTL: i64 = 2;

/// Applies `request` like the node: decide from the lessor, commit, then tell the lessor.
fn run(
    store: &Store,
    lessor: &mut Lessor,
    request: WriteRequest,
    now: Instant,
) -> Result<Applied, EtcdError> {
    let mut write = store.begin_write().unwrap();
    let result = match apply(&mut write, &request, &*lessor) {
        Ok(applied) => Ok(applied),
        Err(Error::Etcd(error)) => Err(error),
        Err(Error::Fatal(error)) => panic!("fatal: {error}"),
    };
    write.commit_deferred().unwrap();
    if let Ok(applied) = &result {
        lessor.applied(&request, &applied.changes, now);
    }
    result
}

fn grant(id: i64, ttl: i64) -> WriteRequest {
    WriteRequest::LeaseGrant(LeaseGrantRequest { id, ttl })
}

fn revoke(id: i64) -> WriteRequest {
    WriteRequest::LeaseRevoke(LeaseRevokeRequest { id })
}

fn put_with_lease(key: &str, lease: i64) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        lease,
        ..put_req(key, "v")
    })
}

fn live_keys(store: &Store) -> Vec<String> {
    let view = store.view();
    let all = KeyRange::Span {
        start: b"\0",
        end: None,
    };
    store
        .range(&view, all, RangeOptions::default())
        .unwrap()
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
        .collect()
}

fn keys(lessor: &Lessor, id: i64) -> Vec<String> {
    lessor
        .keys(id)
        .into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect()
}

#[test]
fn min_ttl_follows_etcd() {
    // etcd's defaults: 10 election ticks of 100 ms: 1.5 s, rounded up.
    assert_eq!(min_ttl_seconds(10, Duration::from_millis(100)), 2);
    assert_eq!(min_ttl_seconds(10, Duration::from_millis(200)), 3);
    assert_eq!(min_ttl_seconds(20, Duration::from_millis(100)), 3);
}

#[test]
fn grant_checks_and_raises_to_the_minimum() {
    let store = new_store();
    let mut lessor = Lessor::new(MIN_TTL);
    let t0 = Instant::now();
    let applied = run(&store, &mut lessor, grant(7, 1), t0).unwrap();
    match applied.response {
        WriteResponse::LeaseGrant(r) => assert_eq!((r.id, r.ttl), (7, MIN_TTL)),
        other => panic!("{other:?}"),
    }
    assert!(applied.changes.is_empty());
    assert_eq!(
        run(&store, &mut lessor, grant(7, 60), t0).unwrap_err(),
        EtcdError::LeaseExist
    );
    assert_eq!(
        run(&store, &mut lessor, grant(8, MAX_LEASE_TTL + 1), t0).unwrap_err(),
        EtcdError::LeaseTtlTooLarge
    );
    assert!(run(&store, &mut lessor, grant(8, MAX_LEASE_TTL), t0).is_ok());
    assert_eq!(lessor.ids(), vec![7, 8]);
    // A grant makes no revision.
    assert_eq!(store.current_rev(), 1);
}

#[test]
fn puts_attach_and_detach_and_revoke_deletes_in_one_revision() {
    let store = new_store();
    let mut lessor = Lessor::new(MIN_TTL);
    let t0 = Instant::now();
    run(&store, &mut lessor, grant(1, 60), t0).unwrap();
    run(&store, &mut lessor, grant(2, 60), t0).unwrap();
    assert_eq!(
        run(&store, &mut lessor, put_with_lease("x", 3), t0).unwrap_err(),
        EtcdError::LeaseNotFound
    );
    for key in ["a", "b", "c", "d"] {
        run(&store, &mut lessor, put_with_lease(key, 1), t0).unwrap();
    }
    // Moving to another lease, dropping the lease and deleting all detach from lease 1.
    run(&store, &mut lessor, put_with_lease("b", 2), t0).unwrap();
    run(
        &store,
        &mut lessor,
        WriteRequest::Put(put_req("c", "v")),
        t0,
    )
    .unwrap();
    run(
        &store,
        &mut lessor,
        WriteRequest::DeleteRange(del_req("d", "")),
        t0,
    )
    .unwrap();
    run(&store, &mut lessor, put_with_lease("e", 1), t0).unwrap();
    assert_eq!(keys(&lessor, 1), ["a", "e"]);
    assert_eq!(keys(&lessor, 2), ["b"]);

    let before = store.current_rev();
    let applied = run(&store, &mut lessor, revoke(1), t0).unwrap();
    assert_eq!(store.current_rev(), before + 1);
    let deleted: Vec<&[u8]> = applied
        .changes
        .iter()
        .map(|c| match c {
            Change::Delete { key, mod_revision } => {
                assert_eq!(*mod_revision, before + 1);
                key.as_slice()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(deleted, [b"a".as_slice(), b"e"]);
    assert_eq!(live_keys(&store), ["b", "c"]);
    assert_eq!(lessor.ids(), vec![2]);
    assert_eq!(
        run(&store, &mut lessor, revoke(1), t0).unwrap_err(),
        EtcdError::LeaseNotFound
    );
    // A lease without keys is revoked without a revision.
    run(&store, &mut lessor, grant(3, 60), t0).unwrap();
    let rev = store.current_rev();
    run(&store, &mut lessor, revoke(3), t0).unwrap();
    assert_eq!(store.current_rev(), rev);
}

#[test]
fn expiry_renewal_and_retry() {
    let store = new_store();
    let mut lessor = Lessor::new(MIN_TTL);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    run(&store, &mut lessor, grant(1, 10), t0).unwrap();
    run(&store, &mut lessor, grant(2, 20), t0).unwrap();
    assert!(lessor.expired(at(9)).is_empty());
    assert_eq!(lessor.status(1, at(4)).unwrap().remaining, 6);
    // Renewing restarts the TTL from now.
    let renewed = lessor.renew(1, at(9)).unwrap();
    assert_eq!((renewed.ttl, renewed.clear_checkpoint), (10, false));
    assert!(lessor.expired(at(18)).is_empty());
    assert_eq!(lessor.expired(at(20)), vec![1, 2]);
    // Handed out once, again only after the retry interval.
    assert!(lessor.expired(at(21)).is_empty());
    assert_eq!(
        lessor.expired(at(20) + EXPIRED_RETRY),
        vec![1, 2],
        "not revoked in time: handed out again"
    );
    // An expired lease cannot be renewed; an unknown one neither.
    assert_eq!(lessor.renew(1, at(20)), Err(RenewError::NotFound));
    assert_eq!(lessor.renew(99, at(1)), Err(RenewError::NotFound));
    assert_eq!(lessor.status(1, at(25)).unwrap().remaining, 0);
    run(&store, &mut lessor, revoke(1), at(25)).unwrap();
    assert!(lessor.status(1, at(25)).is_none());
}

#[test]
fn checkpoints_are_persisted_and_restored() {
    let store = new_store();
    let mut lessor = Lessor::new(MIN_TTL);
    let t0 = Instant::now();
    let interval = CHECKPOINT_INTERVAL.as_secs() as i64;
    // Short leases never need a checkpoint (etcd only checkpoints past one interval).
    run(&store, &mut lessor, grant(1, interval), t0).unwrap();
    run(&store, &mut lessor, grant(2, 3 * interval), t0).unwrap();
    run(&store, &mut lessor, put_with_lease("k", 2), t0).unwrap();
    assert!(lessor.checkpoints_due(t0).is_empty());
    let due_at = t0 + CHECKPOINT_INTERVAL;
    let due = lessor.checkpoints_due(due_at);
    assert_eq!(
        due,
        vec![LeaseCheckpoint {
            id: 2,
            remaining_ttl: 2 * interval,
        }]
    );
    assert!(lessor.checkpoints_due(due_at).is_empty(), "rescheduled");
    run(
        &store,
        &mut lessor,
        WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
            checkpoints: due.clone(),
        }),
        due_at,
    )
    .unwrap();

    // A restart later resumes lease 2 from its checkpoint, lease 1 with its full TTL.
    let later = due_at + Duration::from_secs(100);
    let restored = Lessor::restore(&store, MIN_TTL, later).unwrap();
    assert_eq!(restored.status(2, later).unwrap().remaining, 2 * interval);
    assert_eq!(restored.status(2, later).unwrap().granted_ttl, 3 * interval);
    assert_eq!(restored.status(1, later).unwrap().remaining, interval);
    assert_eq!(keys(&restored, 2), ["k"]);
    assert!(keys(&restored, 1).is_empty());

    // Renewing a checkpointed lease asks for the checkpoint to be cleared.
    let mut lessor = restored;
    assert!(lessor.renew(2, later).unwrap().clear_checkpoint);
    run(
        &store,
        &mut lessor,
        WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
            checkpoints: vec![LeaseCheckpoint {
                id: 2,
                remaining_ttl: 0,
            }],
        }),
        later,
    )
    .unwrap();
    assert!(!lessor.renew(2, later).unwrap().clear_checkpoint);
    let restored = Lessor::restore(&store, MIN_TTL, later).unwrap();
    assert_eq!(restored.status(2, later).unwrap().remaining, 3 * interval);
}

#[test]
fn restore_attaches_live_keys_only() {
    let store = new_store();
    let mut lessor = Lessor::new(MIN_TTL);
    let t0 = Instant::now();
    run(&store, &mut lessor, grant(5, 60), t0).unwrap();
    run(&store, &mut lessor, put_with_lease("a", 5), t0).unwrap();
    run(&store, &mut lessor, put_with_lease("b", 5), t0).unwrap();
    run(
        &store,
        &mut lessor,
        WriteRequest::Put(put_req("b", "v")),
        t0,
    )
    .unwrap();
    run(&store, &mut lessor, put_with_lease("c", 5), t0).unwrap();
    run(
        &store,
        &mut lessor,
        WriteRequest::DeleteRange(del_req("c", "")),
        t0,
    )
    .unwrap();
    let restored = Lessor::restore(&store, MIN_TTL, t0).unwrap();
    assert_eq!(keys(&restored, 5), ["a"]);
    assert_eq!(restored.ids(), vec![5]);
}

#[test]
fn lease_requests_round_trip_through_the_entry_codec() {
    use crate::node::codec::{
        KIND_LEASE_CHECKPOINT, KIND_LEASE_GRANT, KIND_LEASE_REVOKE, decode, encode,
    };
    let checkpoint = WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id: 9,
            remaining_ttl: 400,
        }],
    });
    for (kind, request) in [
        (KIND_LEASE_GRANT, grant(7, 60)),
        (KIND_LEASE_REVOKE, revoke(7)),
        (KIND_LEASE_CHECKPOINT, checkpoint),
    ] {
        let bytes = encode(3, &request);
        assert_eq!(bytes[0], kind);
        assert_eq!(decode(&bytes).unwrap(), (3, request));
    }
}
