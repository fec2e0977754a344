//! validate(): etcd's checks before proposing, in etcd's order.

use super::*;
use crate::server::apply::{Limits, validate};
use keelson_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::{Compare, RequestOp, TxnRequest, request_op};

fn op_put(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(key, "v"))),
    }
}

fn op_del(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(del_req(
            key, range_end,
        ))),
    }
}

fn op_get(request: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(request)),
    }
}

fn op_txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            compare: vec![],
            success,
            failure,
        })),
    }
}

fn compare(key: &str) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Version as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::Version(0)),
    }
}

fn check_txn(success: Vec<RequestOp>) -> Result<(), EtcdError> {
    let request = WriteRequest::Txn(TxnRequest {
        success,
        ..TxnRequest::default()
    });
    validate(&request, &Limits::default())
}

#[test]
fn put_and_delete_checks() {
    let limits = Limits::default();
    let put = |request| validate(&WriteRequest::Put(request), &limits);
    assert_eq!(put(put_req("k", "v")), Ok(()));
    assert_eq!(put(put_req("", "v")), Err(EtcdError::EmptyKey));
    assert_eq!(
        put(PutRequest {
            ignore_value: true,
            ..put_req("k", "v")
        }),
        Err(EtcdError::ValueProvided)
    );
    assert_eq!(
        put(PutRequest {
            ignore_value: true,
            ..put_req("k", "")
        }),
        Ok(())
    );
    assert_eq!(
        put(PutRequest {
            ignore_lease: true,
            lease: 1,
            ..put_req("k", "")
        }),
        Err(EtcdError::LeaseProvided)
    );
    // The key is checked first.
    assert_eq!(
        put(PutRequest {
            ignore_value: true,
            ..put_req("", "v")
        }),
        Err(EtcdError::EmptyKey)
    );
    let delete = |request| validate(&WriteRequest::DeleteRange(request), &limits);
    assert_eq!(delete(del_req("", "z")), Err(EtcdError::EmptyKey));
    assert_eq!(delete(del_req("a", "\0")), Ok(()));
    let compaction = WriteRequest::Compaction(CompactionRequest {
        revision: 5,
        physical: true,
    });
    assert_eq!(validate(&compaction, &limits), Ok(()));
}

#[test]
fn request_size_limit() {
    let limits = Limits {
        max_txn_ops: 128,
        max_request_bytes: 1000,
    };
    let sized = |bytes: usize| WriteRequest::Put(put_req("k", &"x".repeat(bytes)));
    // etcd 3.4.23 with --max-request-bytes 1000 (JSON gateway): a put of key "k" with a
    // 977-byte value is accepted, 978 bytes is "request is too large".
    assert_eq!(validate(&sized(977), &limits), Ok(()));
    assert_eq!(
        validate(&sized(978), &limits),
        Err(EtcdError::RequestTooLarge)
    );
    // Shape errors come first.
    let both = WriteRequest::Put(PutRequest {
        ignore_value: true,
        ..put_req("k", &"x".repeat(2000))
    });
    assert_eq!(validate(&both, &limits), Err(EtcdError::ValueProvided));
}

#[test]
fn txn_shape_checks() {
    let limits = Limits {
        max_txn_ops: 3,
        max_request_bytes: 1 << 20,
    };
    let txn = |compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>| {
        validate(
            &WriteRequest::Txn(TxnRequest {
                compare,
                success,
                failure,
            }),
            &limits,
        )
    };
    let puts = |n: usize| (0..n).map(|i| op_put(&format!("k{i}"))).collect::<Vec<_>>();
    assert_eq!(txn(vec![], puts(3), puts(3)), Ok(()));
    assert_eq!(txn(vec![], puts(4), vec![]), Err(EtcdError::TooManyOps));
    assert_eq!(txn(vec![], vec![], puts(4)), Err(EtcdError::TooManyOps));
    assert_eq!(
        txn((0..4).map(|_| compare("a")).collect(), vec![], vec![]),
        Err(EtcdError::TooManyOps)
    );
    // A nested txn gets what its parent left: 3 - 2 = 1 op.
    let nested = |n| op_txn(puts(n), vec![]);
    assert_eq!(txn(vec![], vec![nested(1), op_put("x")], vec![]), Ok(()));
    assert_eq!(
        txn(vec![], vec![nested(2), op_put("x")], vec![]),
        Err(EtcdError::TooManyOps)
    );
    assert_eq!(
        txn(vec![compare("")], vec![], vec![]),
        Err(EtcdError::EmptyKey)
    );
    assert_eq!(
        txn(vec![], vec![op_put("")], vec![]),
        Err(EtcdError::EmptyKey)
    );
    assert_eq!(
        txn(vec![], vec![op_del("", "")], vec![]),
        Err(EtcdError::EmptyKey)
    );
    assert_eq!(
        txn(vec![], vec![], vec![op_get(get_req("", ""))]),
        Err(EtcdError::EmptyKey)
    );
    let bad_sort = RangeRequest {
        sort_target: 9,
        ..get_req("a", "")
    };
    assert_eq!(
        txn(vec![], vec![op_get(bad_sort)], vec![]),
        Err(EtcdError::InvalidSortOption)
    );
    // etcd answers an empty op with "key not found" (etcd 3.4.23, JSON gateway).
    assert_eq!(
        txn(vec![], vec![RequestOp { request: None }], vec![]),
        Err(EtcdError::KeyNotFound)
    );
    // Shape errors come before duplicate keys.
    assert_eq!(
        txn(vec![], vec![op_put("a"), op_put("a"), op_put("")], vec![]),
        Err(EtcdError::EmptyKey)
    );
}

#[test]
fn duplicate_keys_as_check_intervals_defines_them() {
    let dup = Err(EtcdError::DuplicateKey);
    assert_eq!(check_txn(vec![op_put("a"), op_put("a")]), dup);
    assert_eq!(check_txn(vec![op_put("a"), op_put("b")]), Ok(()));
    // Success and failure are separate branches.
    let request = TxnRequest {
        success: vec![op_put("a")],
        failure: vec![op_put("a")],
        ..TxnRequest::default()
    };
    assert_eq!(
        validate(&WriteRequest::Txn(request), &Limits::default()),
        Ok(())
    );
    // A put inside a delete's range, either order; the range end is exclusive.
    assert_eq!(check_txn(vec![op_del("a", "c"), op_put("b")]), dup);
    assert_eq!(check_txn(vec![op_put("b"), op_del("a", "c")]), dup);
    assert_eq!(check_txn(vec![op_put("c"), op_del("a", "c")]), Ok(()));
    assert_eq!(check_txn(vec![op_put("a"), op_del("a", "")]), dup);
    assert_eq!(check_txn(vec![op_put("ab"), op_del("a", "")]), Ok(()));
    // Deletes may overlap each other, and reads anything.
    assert_eq!(
        check_txn(vec![
            op_del("a", "c"),
            op_del("b", "d"),
            op_get(get_req("a", ""))
        ]),
        Ok(())
    );
    // etcd 3.4.23: a "from key" delete overlaps no put (its "\0" end is taken literally).
    assert_eq!(check_txn(vec![op_del("a", "\0"), op_put("b")]), Ok(()));
    // An inverted delete range covers nothing (etcd 3.4.23: accepted).
    assert_eq!(check_txn(vec![op_del("c", "a"), op_put("b")]), Ok(()));
    // Nested: the same key in a nested txn and its parent.
    assert_eq!(
        check_txn(vec![op_put("a"), op_txn(vec![op_put("a")], vec![])]),
        dup
    );
    assert_eq!(
        check_txn(vec![op_txn(vec![], vec![op_put("a")]), op_put("a")]),
        dup
    );
    // A nested txn's then and else may put the same key; two nested txns may not.
    assert_eq!(
        check_txn(vec![op_txn(vec![op_put("a")], vec![op_put("a")])]),
        Ok(())
    );
    assert_eq!(
        check_txn(vec![
            op_txn(vec![op_put("a")], vec![]),
            op_txn(vec![op_put("a")], vec![])
        ]),
        dup
    );
    assert_eq!(
        check_txn(vec![
            op_txn(vec![op_put("a")], vec![]),
            op_txn(vec![], vec![op_put("a")])
        ]),
        dup
    );
    // A parent's delete against a nested put, and a nested delete against a parent's put.
    assert_eq!(
        check_txn(vec![op_del("a", "z"), op_txn(vec![op_put("b")], vec![])]),
        dup
    );
    assert_eq!(
        check_txn(vec![op_txn(vec![op_del("a", "z")], vec![]), op_put("b")]),
        dup
    );
    // But a later nested txn's delete (etcd 3.4.23: accepted) is not checked against an earlier nested txn's puts (etcd
    // unions the deletes only after checking that txn's puts).
    assert_eq!(
        check_txn(vec![
            op_txn(vec![op_put("b")], vec![]),
            op_txn(vec![op_del("a", "z")], vec![])
        ]),
        Ok(())
    );
    // Deeper nesting.
    let deep = op_txn(vec![op_txn(vec![op_put("a")], vec![])], vec![]);
    assert_eq!(check_txn(vec![deep.clone(), op_put("a")]), dup);
    assert_eq!(check_txn(vec![deep, op_put("b")]), Ok(()));
}
