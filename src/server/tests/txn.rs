//! Txn: compares (every target and result, ranges, missing keys), branches, nested txns, own-write
//! visibility, per-op revisions, and that a rejected txn changes nothing.

use super::*;
use keelson_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::{
    Compare, RequestOp, ResponseOp, TxnRequest, TxnResponse, request_op, response_op,
};

const LEASE: i64 = 7;

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(key, value))),
    }
}

fn op_get(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(get_req(key, ""))),
    }
}

fn op_del(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(del_req(
            key, range_end,
        ))),
    }
}

fn op_txn(txn: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(txn)),
    }
}

fn cmp(key: &str, range_end: &str, result: CompareResult, union: TargetUnion) -> Compare {
    let target = match union {
        TargetUnion::Version(_) => CompareTarget::Version,
        TargetUnion::CreateRevision(_) => CompareTarget::Create,
        TargetUnion::ModRevision(_) => CompareTarget::Mod,
        TargetUnion::Value(_) => CompareTarget::Value,
        TargetUnion::Lease(_) => CompareTarget::Lease,
    };
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: range_end.into(),
        target_union: Some(union),
    }
}

fn txn(
    store: &Store,
    request: TxnRequest,
    leases: &Leases,
) -> Result<(TxnResponse, Applied), EtcdError> {
    let applied = run(store, WriteRequest::Txn(request), leases)?;
    match &applied.response {
        WriteResponse::Txn(response) => Ok((response.clone(), applied)),
        other => panic!("not a txn response: {other:?}"),
    }
}

/// Whether a txn with just `compares` succeeds.
fn holds(store: &Store, compares: Vec<Compare>) -> bool {
    let request = TxnRequest {
        compare: compares,
        ..TxnRequest::default()
    };
    txn(store, request, &NO_LEASES).unwrap().0.succeeded
}

fn op_revision(op: &ResponseOp) -> i64 {
    match op.response.as_ref().unwrap() {
        response_op::Response::ResponseRange(r) => r.header.unwrap().revision,
        response_op::Response::ResponsePut(r) => r.header.unwrap().revision,
        response_op::Response::ResponseDeleteRange(r) => r.header.unwrap().revision,
        response_op::Response::ResponseTxn(r) => r.header.unwrap().revision,
    }
}

/// a: create 2, mod 4, version 2, value "v2", lease LEASE; b: create 3, mod 3, version 1, "b".
fn setup() -> Store {
    let store = new_store();
    put(&store, "a", "v1");
    put(&store, "b", "b");
    let leased = PutRequest {
        lease: LEASE,
        ..put_req("a", "v2")
    };
    run(&store, WriteRequest::Put(leased), &Leases(vec![LEASE])).unwrap();
    assert_eq!(store.current_rev(), 4);
    store
}

#[test]
fn every_target_and_result_on_an_existing_key() {
    use CompareResult::{Equal, Greater, Less, NotEqual};
    let store = setup();
    let actual = [
        TargetUnion::Version(2),
        TargetUnion::CreateRevision(2),
        TargetUnion::ModRevision(4),
        TargetUnion::Lease(LEASE),
    ];
    for union in actual {
        let shifted = |by: i64| match union {
            TargetUnion::Version(n) => TargetUnion::Version(n + by),
            TargetUnion::CreateRevision(n) => TargetUnion::CreateRevision(n + by),
            TargetUnion::ModRevision(n) => TargetUnion::ModRevision(n + by),
            TargetUnion::Lease(n) => TargetUnion::Lease(n + by),
            TargetUnion::Value(_) => unreachable!(),
        };
        for (result, below, same, above) in [
            (Equal, false, true, false),
            (NotEqual, true, false, true),
            (Greater, true, false, false),
            (Less, false, false, true),
        ] {
            // The record compared with a target value below, equal to, and above its own.
            for (by, expected) in [(-1, below), (0, same), (1, above)] {
                let compare = cmp("a", "", result, shifted(by));
                assert_eq!(
                    holds(&store, vec![compare.clone()]),
                    expected,
                    "{compare:?}"
                );
            }
        }
    }
    let value = |result, value: &str| cmp("a", "", result, TargetUnion::Value(value.into()));
    assert!(holds(&store, vec![value(Equal, "v2")]));
    assert!(holds(&store, vec![value(NotEqual, "v1")]));
    assert!(holds(&store, vec![value(Greater, "v1")]));
    assert!(holds(&store, vec![value(Less, "v3")]));
    assert!(!holds(&store, vec![value(Less, "v2")]));
    // A compare reads but never writes.
    assert_eq!(store.current_rev(), 4);
}

#[test]
fn compares_on_missing_keys_and_ranges() {
    use CompareResult::{Equal, Greater, Less, NotEqual};
    let store = setup();
    // A missing key compares as the zero record...
    assert!(holds(
        &store,
        vec![cmp("zz", "", Equal, TargetUnion::Version(0))]
    ));
    assert!(holds(
        &store,
        vec![cmp("zz", "", Equal, TargetUnion::CreateRevision(0))]
    ));
    assert!(holds(
        &store,
        vec![cmp("zz", "", Less, TargetUnion::ModRevision(1))]
    ));
    assert!(holds(
        &store,
        vec![cmp("zz", "", Equal, TargetUnion::Lease(0))]
    ));
    // ...except on VALUE, which fails whatever the result (etcd 3.4.23: NOT_EQUAL "x" on a
    // missing key does not succeed).
    for result in [Equal, NotEqual, Greater, Less] {
        assert!(!holds(
            &store,
            vec![cmp("zz", "", result, TargetUnion::Value(Vec::new()))]
        ));
    }
    // A range holds only if every key in it does.
    assert!(holds(
        &store,
        vec![cmp("a", "c", Greater, TargetUnion::Version(0))]
    ));
    assert!(!holds(
        &store,
        vec![cmp("a", "c", Equal, TargetUnion::Version(2))]
    ));
    assert!(holds(
        &store,
        vec![cmp("a", "\0", Less, TargetUnion::ModRevision(5))]
    ));
    assert!(!holds(
        &store,
        vec![cmp("a", "\0", Less, TargetUnion::ModRevision(4))]
    ));
    // An empty range is the zero record too.
    assert!(holds(
        &store,
        vec![cmp("c", "d", Equal, TargetUnion::Version(0))]
    ));
    // All compares must hold.
    assert!(!holds(
        &store,
        vec![
            cmp("a", "", Equal, TargetUnion::Version(2)),
            cmp("b", "", Equal, TargetUnion::Version(2))
        ]
    ));
    // A union of another kind than the target compares with zero.
    let mismatched = Compare {
        target: CompareTarget::Version as i32,
        ..cmp("a", "", Greater, TargetUnion::Value(b"zzz".to_vec()))
    };
    assert!(holds(&store, vec![mismatched]));
}

#[test]
fn branches_and_responses() {
    let store = setup();
    let request = |version| TxnRequest {
        compare: vec![cmp(
            "a",
            "",
            CompareResult::Equal,
            TargetUnion::Version(version),
        )],
        success: vec![op_put("s", "1"), op_get("a")],
        failure: vec![op_get("b")],
    };
    let (failed, applied) = txn(&store, request(9), &NO_LEASES).unwrap();
    assert!(!failed.succeeded);
    assert_eq!(failed.responses.len(), 1);
    assert!(applied.changes.is_empty());
    // A read-only outcome does not advance the revision.
    assert_eq!(
        (failed.header.unwrap().revision, store.current_rev()),
        (4, 4)
    );
    let (ok, applied) = txn(&store, request(2), &NO_LEASES).unwrap();
    assert!(ok.succeeded);
    assert_eq!(ok.header.unwrap().revision, 5);
    assert_eq!(applied.changes.len(), 1);
    assert!(matches!(
        ok.responses[0].response,
        Some(response_op::Response::ResponsePut(_))
    ));
    assert!(matches!(
        ok.responses[1].response,
        Some(response_op::Response::ResponseRange(_))
    ));
}

#[test]
fn one_revision_own_writes_and_per_op_revisions() {
    let store = setup();
    // etcd 3.4.23 (JSON gateway) on [get a, put y, get a, txn{del none}]: revisions 7, 8, 8 and
    // a nested txn with an empty header whose delete reports 8 (the txn changed something).
    let request = TxnRequest {
        success: vec![
            op_get("a"),
            op_put("a", "new"),
            op_put("c", "c"),
            op_get("a"),
            op_txn(TxnRequest {
                success: vec![op_del("none", "")],
                ..TxnRequest::default()
            }),
            op_del("b", ""),
        ],
        ..TxnRequest::default()
    };
    let (response, applied) = txn(&store, request, &NO_LEASES).unwrap();
    let revisions: Vec<i64> = response.responses.iter().map(op_revision).collect();
    assert_eq!(revisions, [4, 5, 5, 5, 0, 5]);
    let range = |i: usize| match &response.responses[i].response {
        Some(response_op::Response::ResponseRange(r)) => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(range(0).kvs[0].value, b"v2");
    assert_eq!(range(3).kvs[0].value, b"new");
    assert_eq!(range(3).kvs[0].version, 3);
    let Some(response_op::Response::ResponseTxn(nested)) = &response.responses[4].response else {
        panic!("nested txn response expected");
    };
    assert_eq!(nested.header, Some(Default::default()));
    assert_eq!(op_revision(&nested.responses[0]), 5);
    assert_eq!(response.header.unwrap().revision, 5);
    assert_eq!(store.current_rev(), 5);
    assert_eq!(applied.changes.len(), 3);
    let after = get(&store, &get_req("a", "\0")).unwrap();
    assert_eq!(keys(&after), ["a", "c"]);
    assert!(after.kvs.iter().all(|kv| kv.mod_revision == 5));
    // A delete of nothing before any change reports the current revision.
    let (lone, _) = txn(
        &store,
        TxnRequest {
            success: vec![op_del("none", ""), op_put("d", "d")],
            ..TxnRequest::default()
        },
        &NO_LEASES,
    )
    .unwrap();
    assert_eq!(
        lone.responses.iter().map(op_revision).collect::<Vec<_>>(),
        [5, 6]
    );
}

#[test]
fn nested_compares_see_the_state_before_the_txn() {
    let store = setup();
    let nested = TxnRequest {
        compare: vec![cmp(
            "x",
            "",
            CompareResult::Greater,
            TargetUnion::Version(0),
        )],
        success: vec![op_put("seen", "1")],
        failure: vec![op_put("unseen", "1")],
    };
    let request = TxnRequest {
        compare: vec![cmp("x", "", CompareResult::Equal, TargetUnion::Version(0))],
        success: vec![op_put("x", "1"), op_txn(nested)],
        failure: vec![],
    };
    let (response, _) = txn(&store, request, &NO_LEASES).unwrap();
    assert!(response.succeeded);
    let Some(response_op::Response::ResponseTxn(inner)) = &response.responses[1].response else {
        panic!("nested txn response expected");
    };
    assert!(!inner.succeeded, "x did not exist before the txn");
    assert_eq!(
        keys(&get(&store, &get_req("a", "\0")).unwrap()),
        ["a", "b", "unseen", "x"]
    );
}

#[test]
fn deeply_nested_paths() {
    let store = setup();
    let leaf = |key: &str, version| TxnRequest {
        compare: vec![cmp(
            "a",
            "",
            CompareResult::Equal,
            TargetUnion::Version(version),
        )],
        success: vec![op_put(&format!("{key}-then"), "1")],
        failure: vec![op_put(&format!("{key}-else"), "1")],
    };
    let middle = TxnRequest {
        compare: vec![cmp("b", "", CompareResult::Equal, TargetUnion::Version(1))],
        success: vec![op_txn(leaf("p", 2)), op_txn(leaf("q", 5))],
        failure: vec![op_txn(leaf("r", 2))],
    };
    let request = TxnRequest {
        success: vec![op_txn(middle), op_txn(leaf("s", 5))],
        ..TxnRequest::default()
    };
    txn(&store, request, &NO_LEASES).unwrap();
    assert_eq!(
        keys(&get(&store, &get_req("p", "\0")).unwrap()),
        ["p-then", "q-else", "s-else"]
    );
    assert_eq!(store.current_rev(), 5);
}

#[test]
fn rejected_txns_change_nothing() {
    let store = setup();
    let before = dump(&store);
    let check = |request: TxnRequest, error| {
        assert_eq!(txn(&store, request, &NO_LEASES).map(|_| ()), Err(error));
        assert_eq!(dump(&store), before);
    };
    let leased = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            lease: 99,
            ..put_req("n", "1")
        })),
    };
    check(
        TxnRequest {
            success: vec![op_put("m", "1"), leased.clone()],
            ..TxnRequest::default()
        },
        EtcdError::LeaseNotFound,
    );
    // Inside a nested txn on the path taken, too; not on a branch not taken.
    let nested = TxnRequest {
        success: vec![leased.clone()],
        ..TxnRequest::default()
    };
    check(
        TxnRequest {
            success: vec![op_put("m", "1"), op_txn(nested)],
            ..TxnRequest::default()
        },
        EtcdError::LeaseNotFound,
    );
    let untaken = TxnRequest {
        success: vec![op_put("m", "1")],
        failure: vec![leased],
        ..TxnRequest::default()
    };
    assert!(txn(&store, untaken, &NO_LEASES).is_ok());
    let before = dump(&store);
    let check = |request: TxnRequest, error| {
        assert_eq!(txn(&store, request, &NO_LEASES).map(|_| ()), Err(error));
        assert_eq!(dump(&store), before);
    };
    let ignore = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            ignore_value: true,
            ..put_req("zz", "")
        })),
    };
    check(
        TxnRequest {
            success: vec![op_put("m2", "1"), ignore],
            ..TxnRequest::default()
        },
        EtcdError::KeyNotFound,
    );
    // A key only a "from key" delete of the same txn removed (etcd would panic mid-txn).
    let ignore_b = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            ignore_lease: true,
            ..put_req("b", "x")
        })),
    };
    check(
        TxnRequest {
            success: vec![op_del("a", "\0"), ignore_b],
            ..TxnRequest::default()
        },
        EtcdError::KeyNotFound,
    );
    let future = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            revision: 99,
            ..get_req("a", "")
        })),
    };
    check(
        TxnRequest {
            success: vec![op_put("m3", "1"), future],
            ..TxnRequest::default()
        },
        EtcdError::FutureRev,
    );
}

#[test]
fn txn_reads_at_a_revision() {
    let store = setup();
    compact_fully(&store, 3);
    let at = |revision| RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            revision,
            ..get_req("a", "")
        })),
    };
    let read = |revision| {
        txn(
            &store,
            TxnRequest {
                success: vec![at(revision)],
                ..TxnRequest::default()
            },
            &NO_LEASES,
        )
    };
    assert_eq!(read(2).map(|_| ()), Err(EtcdError::Compacted));
    // etcd compares a txn read's revision with the compact revision as is: negative ones fail
    // (etcd 3.4.23: revision -1 in a txn after a compaction gives Compacted; a plain Range
    // with -1 reads the latest).
    assert_eq!(read(-1).map(|_| ()), Err(EtcdError::Compacted));
    let (ok, _) = read(3).unwrap();
    let Some(response_op::Response::ResponseRange(range)) = &ok.responses[0].response else {
        panic!("range response expected");
    };
    assert_eq!(range.kvs[0].value, b"v1");
    assert_eq!(range.header.unwrap().revision, 4);
}

#[test]
fn from_key_delete_and_put_in_one_txn() {
    let store = setup();
    // etcd 3.4.23: [del a..\0, put zz] is accepted (no duplicate-key error) and applies both at
    // one revision.
    let request = TxnRequest {
        success: vec![op_del("a", "\0"), op_put("zz", "1")],
        ..TxnRequest::default()
    };
    let (response, applied) = txn(&store, request, &NO_LEASES).unwrap();
    assert_eq!(response.header.unwrap().revision, 5);
    assert_eq!(applied.changes.len(), 3);
    assert_eq!(keys(&get(&store, &get_req("\0", "\0")).unwrap()), ["zz"]);
}
