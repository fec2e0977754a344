//! etcd's backend space quota (`etcdserver/quota.go`): what a request is estimated to add to the
//! B+tree, and whether that still fits.
//!
//! Owns the cost estimate only: a Put costs its key and value plus a fixed overhead for the key's
//! metadata, a Txn the larger of its two branches' top-level puts (nested txns cost nothing, as
//! in etcd), a LeaseGrant a fixed overhead. It must never measure the file or raise alarms
//! itself: the API layer does that before proposing, and apply refuses writes while NOSPACE is
//! raised (see `server::alarm`).

use keelson_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};

/// etcd's `kvOverhead`: the estimated cost of a key's metadata.
pub const KV_OVERHEAD_BYTES: u64 = 256;
/// etcd's `leaseOverhead`: the estimated cost of storing a lease.
pub const LEASE_OVERHEAD_BYTES: u64 = 64;

pub fn put_cost(put: &PutRequest) -> u64 {
    KV_OVERHEAD_BYTES + put.key.len() as u64 + put.value.len() as u64
}

fn op_cost(op: &RequestOp) -> u64 {
    match &op.request {
        Some(request_op::Request::RequestPut(put)) => put_cost(put),
        _ => 0,
    }
}

/// The larger of the branches' costs: only one of them runs.
pub fn txn_cost(txn: &TxnRequest) -> u64 {
    let success: u64 = txn.success.iter().map(op_cost).sum();
    let failure: u64 = txn.failure.iter().map(op_cost).sum();
    success.max(failure)
}

pub fn lease_grant_cost() -> u64 {
    LEASE_OVERHEAD_BYTES
}

/// etcd's `backendQuota.Available`: the request fits if the backend stays strictly below the
/// quota after it.
pub fn available(db_bytes: u64, cost: u64, quota_bytes: u64) -> bool {
    db_bytes.saturating_add(cost) < quota_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::etcdserverpb::{DeleteRangeRequest, RequestOp};

    fn put(key: &str, value: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..PutRequest::default()
            })),
        }
    }

    #[test]
    fn costs_follow_etcd() {
        let p = PutRequest {
            key: b"key".to_vec(),
            value: vec![0; 1000],
            ..PutRequest::default()
        };
        assert_eq!(put_cost(&p), 256 + 3 + 1000);
        let delete = RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest::default(),
            )),
        };
        let nested = RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success: vec![put("n", "big value")],
                ..TxnRequest::default()
            })),
        };
        let txn = TxnRequest {
            success: vec![put("a", "1"), put("b", "22")],
            failure: vec![put("c", "1"), delete.clone(), nested.clone()],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost(&txn), 2 * 256 + 2 + 3);
        let no_puts = TxnRequest {
            success: vec![delete, nested],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost(&no_puts), 0);
        assert_eq!(lease_grant_cost(), 64);
    }

    #[test]
    fn available_is_strictly_below_the_quota() {
        assert!(available(900, 99, 1000));
        assert!(!available(900, 100, 1000));
        assert!(!available(1000, 0, 1000));
        assert!(!available(u64::MAX, 1, 1000));
    }
}
