//! Everything etcd checks about a write request before proposing it (v3rpc `key.go`:
//! `checkPutRequest`, `checkDeleteRequest`, `checkTxnRequest`, `checkIntervals`; etcdserver's
//! `--max-request-bytes` check), in etcd's order so the same request gets the same error.
//!
//! Owns only stateless checks: it must never look at the store (leases, existing keys and
//! revisions are checked at apply time, see `apply`).

use super::WriteRequest;
use super::range::validate_range;
use crate::errors::EtcdError;
use keelson_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};
use prost::Message;
use std::collections::HashSet;

/// Bytes etcd's `InternalRaftRequest` adds around the request before comparing its size with
/// `--max-request-bytes`: the request header (field 100: a 2-byte tag, a 1-byte length, the ID's
/// 1-byte tag and a 10-byte varint, the worst case of etcd's generated IDs, whose top 16 bits are
/// the member ID's low 16 bits). The request's own field tag and length prefix are counted
/// separately. Checked against etcd 3.4.23 at `--max-request-bytes 1000` (see the tests).
pub const INTERNAL_REQUEST_HEADER_BYTES: usize = 14;

/// The server's request limits (`--max-txn-ops`, `--max-request-bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_txn_ops: usize,
    pub max_request_bytes: usize,
}

impl Default for Limits {
    /// etcd's defaults: 128 ops, 1.5 MiB.
    fn default() -> Limits {
        Limits {
            max_txn_ops: 128,
            max_request_bytes: 1_572_864,
        }
    }
}

/// Checks `request` as etcd does before proposing it.
pub fn validate(request: &WriteRequest, limits: &Limits) -> Result<(), EtcdError> {
    let encoded = match request {
        WriteRequest::Put(put) => {
            check_put(put)?;
            put.encoded_len()
        }
        WriteRequest::DeleteRange(delete) => {
            check_delete(delete)?;
            delete.encoded_len()
        }
        WriteRequest::Txn(txn) => {
            check_txn(txn, limits.max_txn_ops)?;
            // After the shape checks, so a huge malformed txn fails fast (etcd's order).
            check_intervals(&txn.success)?;
            check_intervals(&txn.failure)?;
            txn.encoded_len()
        }
        WriteRequest::Compaction(compaction) => compaction.encoded_len(),
        WriteRequest::LeaseGrant(grant) => grant.encoded_len(),
        WriteRequest::LeaseRevoke(revoke) => revoke.encoded_len(),
        WriteRequest::LeaseCheckpoint(checkpoint) => checkpoint.encoded_len(),
        WriteRequest::Alarm(alarm) => alarm.encoded_len(),
    };
    let framed = INTERNAL_REQUEST_HEADER_BYTES
        + 1
        + prost::encoding::encoded_len_varint(encoded as u64)
        + encoded;
    if framed > limits.max_request_bytes {
        return Err(EtcdError::RequestTooLarge);
    }
    Ok(())
}

fn check_put(put: &PutRequest) -> Result<(), EtcdError> {
    if put.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if put.ignore_value && !put.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

fn check_delete(delete: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if delete.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: the longest of compares, success and failure counts against the
/// limit, and a nested txn gets what its parent left (`max_txn_ops - opc`).
fn check_txn(txn: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let opc = txn
        .compare
        .len()
        .max(txn.success.len())
        .max(txn.failure.len());
    if opc > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if txn.compare.iter().any(|compare| compare.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in txn.success.iter().chain(&txn.failure) {
        check_op(op, max_txn_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(range)) => validate_range(range),
        Some(request_op::Request::RequestPut(put)) => check_put(put),
        Some(request_op::Request::RequestDeleteRange(delete)) => check_delete(delete),
        Some(request_op::Request::RequestTxn(txn)) => check_txn(txn, max_txn_ops),
        // etcd answers an empty op with "key not found".
        None => Err(EtcdError::KeyNotFound),
    }
}

/// A delete's key interval as etcd's `checkIntervals` builds it: `[key, range_end)` compared
/// byte-wise, or the single key. A `range_end` of `"\0"` is taken literally there, so a
/// "from key" delete overlaps no put (etcd 3.4's behaviour, kept).
#[derive(Clone, Debug)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn of(delete: &DeleteRangeRequest) -> Interval {
        Interval {
            start: delete.key.clone(),
            end: (!delete.range_end.is_empty()).then(|| delete.range_end.clone()),
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            Some(end) => self.start.as_slice() <= key && key < end.as_slice(),
        }
    }
}

/// The keys put and the intervals deleted by one branch and its nested txns.
struct Writes {
    puts: HashSet<Vec<u8>>,
    deletes: Vec<Interval>,
}

impl Writes {
    fn deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|interval| interval.contains(key))
    }
}

/// etcd's `checkIntervals`: within one branch (nested txns included), no key is put twice and no
/// put falls in a delete's interval. Deletes may overlap each other; a nested txn's success and
/// failure branches may put the same key, since only one runs.
fn check_intervals(ops: &[RequestOp]) -> Result<Writes, EtcdError> {
    let mut writes = Writes {
        puts: HashSet::new(),
        deletes: ops
            .iter()
            .filter_map(|op| match &op.request {
                Some(request_op::Request::RequestDeleteRange(delete)) => Some(Interval::of(delete)),
                _ => None,
            })
            .collect(),
    };
    for op in ops {
        let Some(request_op::Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let then = check_intervals(&txn.success)?;
        let otherwise = check_intervals(&txn.failure)?;
        for key in &then.puts {
            if writes.puts.contains(key) || writes.deleted(key) {
                return Err(EtcdError::DuplicateKey);
            }
            writes.puts.insert(key.clone());
        }
        for key in &otherwise.puts {
            if (writes.puts.contains(key) && !then.puts.contains(key)) || writes.deleted(key) {
                return Err(EtcdError::DuplicateKey);
            }
            writes.puts.insert(key.clone());
        }
        writes.deletes.extend(then.deletes);
        writes.deletes.extend(otherwise.deletes);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if writes.puts.contains(&put.key) || writes.deleted(&put.key) {
            return Err(EtcdError::DuplicateKey);
        }
        writes.puts.insert(put.key.clone());
    }
    Ok(writes)
}
