//! Alarm apply and the NOSPACE cap, on a store over a memory device (etcd 3.4's
//! `applierV3backend.Alarm` and `applierV3Capped`).

use super::*;
use crate::server::WriteResponse;
use crate::server::tests::{NO_LEASES, del_req, new_store, put, put_req, run};
use keelson_proto::etcdserverpb::{CompactionRequest, RequestOp, TxnRequest, request_op};
use keelson_storage::mvcc::Store;

const MEMBER: u64 = 0x1234;

fn alarm(store: &Store, action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmResponse {
    let request = AlarmRequest {
        action: action as i32,
        member_id,
        alarm: alarm as i32,
    };
    match run(store, WriteRequest::Alarm(request), &NO_LEASES) {
        Ok(applied) => {
            assert!(applied.changes.is_empty());
            match applied.response {
                WriteResponse::Alarm(response) => response,
                other => panic!("{other:?}"),
            }
        }
        Err(e) => panic!("{e:?}"),
    }
}

fn member(member_id: u64, alarm: AlarmType) -> AlarmMember {
    AlarmMember {
        member_id,
        alarm: alarm as i32,
    }
}

fn txn(ops: Vec<RequestOp>) -> WriteRequest {
    WriteRequest::Txn(TxnRequest {
        success: ops,
        ..TxnRequest::default()
    })
}

#[test]
fn activate_get_deactivate_like_etcd() {
    let store = new_store();
    let rev = put(&store, "k", "v");
    let nospace = member(MEMBER, AlarmType::Nospace);
    let listed = alarm(&store, AlarmAction::Get, 0, AlarmType::None);
    assert_eq!(listed.alarms, vec![]);
    assert_eq!(listed.header, None, "etcd's AlarmResponse has no header");
    // Raising answers the alarm, also when it is already raised.
    for _ in 0..2 {
        let raised = alarm(&store, AlarmAction::Activate, MEMBER, AlarmType::Nospace);
        assert_eq!(raised.alarms, vec![nospace]);
    }
    let corrupt = member(7, AlarmType::Corrupt);
    alarm(&store, AlarmAction::Activate, 7, AlarmType::Corrupt);
    // GET ignores the member and filters by type (NONE: every type), in key order.
    assert_eq!(
        alarm(&store, AlarmAction::Get, 99, AlarmType::None).alarms,
        vec![corrupt, nospace]
    );
    assert_eq!(
        alarm(&store, AlarmAction::Get, 0, AlarmType::Corrupt).alarms,
        vec![corrupt]
    );
    assert_eq!(
        active(store.view().txn(), AlarmType::Nospace).unwrap(),
        vec![nospace]
    );
    // Clearing answers the alarm once; an alarm that is not raised answers nothing.
    assert_eq!(
        alarm(&store, AlarmAction::Deactivate, MEMBER, AlarmType::Nospace).alarms,
        vec![nospace]
    );
    assert_eq!(
        alarm(&store, AlarmAction::Deactivate, MEMBER, AlarmType::Nospace).alarms,
        vec![]
    );
    assert_eq!(
        alarm(&store, AlarmAction::Get, 0, AlarmType::None).alarms,
        vec![corrupt]
    );
    assert_eq!(store.view().rev(), rev, "alarms make no revision");
}

#[test]
fn describe_matches_etcd_text() {
    assert_eq!(
        describe(&member(6519915504097738778, AlarmType::Nospace)),
        "memberID:6519915504097738778 alarm:NOSPACE "
    );
    assert_eq!(
        describe(&member(1, AlarmType::Corrupt)),
        "memberID:1 alarm:CORRUPT "
    );
}

#[test]
fn nospace_refuses_puts_and_txns_with_puts_only() {
    let store = new_store();
    put(&store, "a", "1");
    put(&store, "b", "2");
    alarm(&store, AlarmAction::Activate, MEMBER, AlarmType::Nospace);
    let rev = store.view().rev();
    let put_op = RequestOp {
        request: Some(request_op::Request::RequestPut(put_req("c", "3"))),
    };
    let delete_op = RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(del_req("a", ""))),
    };
    let nested_put = RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            success: vec![put_op.clone()],
            ..TxnRequest::default()
        })),
    };
    let refused = [
        WriteRequest::Put(put_req("c", "3")),
        txn(vec![put_op.clone()]),
        txn(vec![delete_op.clone(), put_op.clone()]),
        // Only one branch runs, but etcd counts the larger: the failure branch's put.
        WriteRequest::Txn(TxnRequest {
            failure: vec![put_op],
            ..TxnRequest::default()
        }),
    ];
    for request in refused {
        assert_eq!(
            run(&store, request.clone(), &NO_LEASES).unwrap_err(),
            EtcdError::NoSpace,
            "{request:?}"
        );
    }
    assert_eq!(store.view().rev(), rev, "nothing refused was written");

    // etcd's cost of a nested txn is 0, so its puts pass the cap, as in etcd.
    run(&store, txn(vec![nested_put]), &NO_LEASES).unwrap();
    run(&store, txn(vec![delete_op]), &NO_LEASES).unwrap();
    run(
        &store,
        WriteRequest::DeleteRange(del_req("b", "")),
        &NO_LEASES,
    )
    .unwrap();
    let compaction = CompactionRequest {
        revision: store.view().rev(),
        physical: false,
    };
    run(&store, WriteRequest::Compaction(compaction), &NO_LEASES).unwrap();

    alarm(&store, AlarmAction::Deactivate, MEMBER, AlarmType::Nospace);
    run(&store, WriteRequest::Put(put_req("c", "3")), &NO_LEASES).unwrap();
}

#[test]
fn another_alarm_does_not_cap() {
    let store = new_store();
    alarm(&store, AlarmAction::Activate, MEMBER, AlarmType::Corrupt);
    run(&store, WriteRequest::Put(put_req("c", "3")), &NO_LEASES).unwrap();
}

#[test]
fn nospace_refuses_lease_grants() {
    use keelson_proto::etcdserverpb::LeaseGrantRequest;
    let store = new_store();
    alarm(&store, AlarmAction::Activate, MEMBER, AlarmType::Nospace);
    let grant = WriteRequest::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 5 });
    assert_eq!(
        run(&store, grant, &NO_LEASES).unwrap_err(),
        EtcdError::NoSpace
    );
}
