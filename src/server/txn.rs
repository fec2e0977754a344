//! A txn's compares and the branch each (nested) txn takes (etcd 3.4's `compareToPath`,
//! `applyCompare`, `compareKV`).
//!
//! Owns the decision "which branch", made for the whole txn tree against the state BEFORE the
//! txn, as etcd does: a nested txn's compares do not see the writes of the ops before it. It must
//! never write.

use super::error::Error;
use keelson_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::{Compare, RequestOp, TxnRequest, request_op};
use keelson_storage::mvcc::kv::KeyValueRef;
use keelson_storage::mvcc::{KeyRange, RangeOptions, StoreWrite, store};
use std::cmp::Ordering;

/// The branch a txn takes and, for each nested txn in that branch (in op order), its own path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub succeeded: bool,
    pub nested: Vec<Path>,
}

impl Path {
    /// Evaluates every compare of `txn` and of the nested txns on the branches taken. Must run
    /// before the txn's first write.
    pub fn evaluate(write: &StoreWrite<'_>, txn: &TxnRequest) -> Result<Path, Error> {
        let mut succeeded = true;
        for compare in &txn.compare {
            if !compare_holds(write, compare)? {
                succeeded = false;
                break;
            }
        }
        let mut nested = Vec::new();
        for op in branch(txn, succeeded) {
            if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
                nested.push(Path::evaluate(write, inner)?);
            }
        }
        Ok(Path { succeeded, nested })
    }
}

/// The ops of the branch taken.
pub fn branch(txn: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &txn.success
    } else {
        &txn.failure
    }
}

/// etcd's `applyCompare`: every key in the compare's range must satisfy it. With no key in range,
/// a VALUE compare fails whatever its result (etcd: "no way to represent missing value"), and the
/// other targets compare the zero record (version, revisions and lease 0).
fn compare_holds(write: &StoreWrite<'_>, compare: &Compare) -> Result<bool, Error> {
    let range = KeyRange::from_request(&compare.key, &compare.range_end);
    let result = match write.range(range, RangeOptions::default()) {
        Ok(result) => result,
        // etcd treats any range error in a compare as "does not hold"; at the latest revision the
        // only errors left are storage failures, which are not the client's.
        Err(error @ (store::Error::Compacted | store::Error::FutureRev)) => {
            debug_assert!(false, "a latest-revision range failed with {error}");
            return Ok(false);
        }
        Err(error) => return Err(Error::from_store(error)),
    };
    if result.kvs.is_empty() {
        if compare.target == CompareTarget::Value as i32 {
            return Ok(false);
        }
        return Ok(compare_kv(compare, &KeyValueRef::default()));
    }
    Ok(result.kvs.iter().all(|kv| compare_kv(compare, kv)))
}

/// etcd's `compareKV`. A target union of another kind than the target compares against zero
/// (or the empty value); an unknown target compares equal; an unknown result holds.
fn compare_kv(compare: &Compare, kv: &KeyValueRef<'_>) -> bool {
    let union = compare.target_union.as_ref();
    let ordering = match CompareTarget::try_from(compare.target) {
        Ok(CompareTarget::Value) => {
            let value: &[u8] = match union {
                Some(TargetUnion::Value(value)) => value,
                _ => &[],
            };
            kv.value.cmp(value)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&match union {
            Some(TargetUnion::CreateRevision(rev)) => *rev,
            _ => 0,
        }),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&match union {
            Some(TargetUnion::ModRevision(rev)) => *rev,
            _ => 0,
        }),
        Ok(CompareTarget::Version) => kv.version.cmp(&match union {
            Some(TargetUnion::Version(version)) => *version,
            _ => 0,
        }),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&match union {
            Some(TargetUnion::Lease(lease)) => *lease,
            _ => 0,
        }),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => true,
    }
}
