//! Applies one committed [`WriteRequest`] to the store (etcd 3.4's `applierV3backend`: Put,
//! DeleteRange, Txn, Compaction).
//!
//! Owns the apply-time semantics: lease and key existence checks, prev_kv, ignore_value and
//! ignore_lease, the txn's single main revision and per-op response revisions, and scheduling
//! compactions. It must never change the store before every check that can fail with an etcd
//! error has passed (a rejected request leaves revision and data as they were), and never commit:
//! the caller owns the B+tree transaction and commits a whole batch.

use super::error::Error;
use super::range::{range_in_write, to_proto};
use super::txn::{Path, branch};
use super::{WriteRequest, WriteResponse};
use crate::errors::EtcdError;
use keelson_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
    request_op, response_op,
};
use keelson_storage::mvcc::{Change, KeyRange, RangeOptions, StoreWrite};

pub use super::error::Error as ApplyError;
pub use super::validate::{Limits, validate};

/// Which leases exist, as the lessor knows them when the entry is applied.
pub trait LeaseLookup {
    fn exists(&self, id: i64) -> bool;
    /// The keys attached to lease `id`, in key order (what its revocation deletes).
    fn keys(&self, id: i64) -> Vec<Vec<u8>>;
    /// The smallest TTL a grant gets, in seconds.
    fn min_ttl(&self) -> i64;
}

/// The outcome of applying one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// Header revision set; cluster id, member id and raft term left 0 for the caller.
    pub response: WriteResponse,
    /// What changed, in order, for watchers and the lessor (empty if nothing did).
    pub changes: Vec<Change>,
    /// A compaction scheduled at this revision: once the batch is committed, start its physical
    /// part with `Store::compaction_job`.
    pub compaction: Option<i64>,
}

/// The lease id meaning "no lease".
const NO_LEASE: i64 = 0;

/// Applies `request` in its own store request (one main revision if it changes anything).
///
/// On `Err(Error::Etcd(_))` nothing was changed and the store request is closed: the caller
/// answers the client and goes on. On `Err(Error::Fatal(_))` the store failed, possibly part-way:
/// drop `write` without committing and stop the node (see [`Error`]).
pub fn apply(
    write: &mut StoreWrite<'_>,
    request: &WriteRequest,
    leases: &dyn LeaseLookup,
) -> Result<Applied, Error> {
    if let WriteRequest::Compaction(compaction) = request {
        return apply_compaction(write, compaction);
    }
    if let WriteRequest::Alarm(alarm) = request {
        return Ok(Applied {
            response: WriteResponse::Alarm(super::alarm::apply_alarm(write, alarm)?),
            changes: Vec::new(),
            compaction: None,
        });
    }
    // Before any other check, as etcd's capped applier wraps the whole applier.
    super::alarm::check_capped(write, request)?;
    if let Some(applied) = super::lease_apply::apply_lease(write, request, leases) {
        return applied;
    }
    write.begin_request();
    let response = match request {
        WriteRequest::Put(put) => check_put(write, put, leases)
            .and_then(|()| put_op(write, put))
            .map(WriteResponse::Put),
        WriteRequest::DeleteRange(delete) => {
            delete_op(write, delete, false).map(WriteResponse::DeleteRange)
        }
        WriteRequest::Txn(txn) => apply_txn(write, txn, leases).map(WriteResponse::Txn),
        WriteRequest::Compaction(_)
        | WriteRequest::LeaseGrant(_)
        | WriteRequest::LeaseRevoke(_)
        | WriteRequest::LeaseCheckpoint(_)
        | WriteRequest::Alarm(_) => unreachable!("handled above"),
    };
    // Closed on success and on an etcd error alike (nothing was written then, so the revision
    // does not move); after a fatal error the write is abandoned anyway.
    let (changes, revision) = write.end_request();
    let mut response = response?;
    set_revision(&mut response, revision);
    Ok(Applied {
        response,
        changes,
        compaction: None,
    })
}

fn set_revision(response: &mut WriteResponse, revision: i64) {
    let header = match response {
        WriteResponse::Put(put) => &mut put.header,
        WriteResponse::DeleteRange(delete) => &mut delete.header,
        WriteResponse::Txn(txn) => &mut txn.header,
        WriteResponse::Compaction(compaction) => &mut compaction.header,
        WriteResponse::LeaseGrant(grant) => &mut grant.header,
        WriteResponse::LeaseRevoke(revoke) => &mut revoke.header,
        WriteResponse::LeaseCheckpoint(checkpoint) => &mut checkpoint.header,
        // etcd's AlarmResponse has no header.
        WriteResponse::Alarm(_) => return,
    };
    *header = Some(header_at(revision));
}

fn header_at(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..ResponseHeader::default()
    }
}

/// etcd's `Compaction` apply: schedule, then report the current revision (a compaction makes no
/// revision of its own).
fn apply_compaction(
    write: &mut StoreWrite<'_>,
    request: &CompactionRequest,
) -> Result<Applied, Error> {
    write
        .schedule_compaction(request.revision)
        .map_err(Error::from_store)?;
    Ok(Applied {
        response: WriteResponse::Compaction(CompactionResponse {
            header: Some(header_at(write.current_rev())),
        }),
        changes: Vec::new(),
        compaction: Some(request.revision),
    })
}

/// The checks etcd's Put makes before writing: the lease first (a top-level Put checks it before
/// anything else), then that ignore_value / ignore_lease have a key to take from.
fn check_put(
    write: &StoreWrite<'_>,
    put: &PutRequest,
    leases: &dyn LeaseLookup,
) -> Result<(), Error> {
    if put.lease != NO_LEASE && !leases.exists(put.lease) {
        return Err(EtcdError::LeaseNotFound.into());
    }
    if (put.ignore_value || put.ignore_lease) && current(write, &put.key)?.is_none() {
        return Err(EtcdError::KeyNotFound.into());
    }
    Ok(())
}

/// The live record of `key` as the open request sees it (its own writes included).
fn current(
    write: &StoreWrite<'_>,
    key: &[u8],
) -> Result<Option<keelson_proto::mvccpb::KeyValue>, Error> {
    let result = write
        .range(KeyRange::Single(key), RangeOptions::default())
        .map_err(Error::from_store)?;
    Ok(result.kvs.first().map(|kv| to_proto(kv, false)))
}

/// Writes one put whose checks passed. Its header revision is the request's main revision.
fn put_op(write: &mut StoreWrite<'_>, put: &PutRequest) -> Result<PutResponse, Error> {
    crate::metrics::count_put(put.key.len() + put.value.len());
    let previous = if put.ignore_value || put.ignore_lease || put.prev_kv {
        current(write, &put.key)?
    } else {
        None
    };
    let (value, lease) = match &previous {
        // The checks made sure the key exists when either flag is set.
        Some(previous) => (
            if put.ignore_value {
                previous.value.as_slice()
            } else {
                put.value.as_slice()
            },
            if put.ignore_lease {
                previous.lease
            } else {
                put.lease
            },
        ),
        None => (put.value.as_slice(), put.lease),
    };
    let record = write
        .put(&put.key, value, lease)
        .map_err(Error::from_store)?;
    Ok(PutResponse {
        header: Some(header_at(record.mod_revision)),
        prev_kv: if put.prev_kv { previous } else { None },
    })
}

/// Deletes a range. Its header revision is the request's main revision if the request has
/// changed anything by now, else the store's current one (etcd's `storeTxnWrite.DeleteRange`).
/// `changed_before` says whether earlier ops of the same txn changed something.
fn delete_op(
    write: &mut StoreWrite<'_>,
    delete: &DeleteRangeRequest,
    changed_before: bool,
) -> Result<DeleteRangeResponse, Error> {
    crate::metrics::count_delete();
    let range = KeyRange::from_request(&delete.key, &delete.range_end);
    let prev_kvs = if delete.prev_kv {
        let result = write
            .range(range, RangeOptions::default())
            .map_err(Error::from_store)?;
        result.kvs.iter().map(|kv| to_proto(kv, false)).collect()
    } else {
        Vec::new()
    };
    let deleted = write.delete_range(range).map_err(Error::from_store)?.len();
    let revision = if deleted > 0 || changed_before {
        write.current_rev() + 1
    } else {
        write.current_rev()
    };
    Ok(DeleteRangeResponse {
        header: Some(header_at(revision)),
        deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
        prev_kvs,
    })
}

/// etcd's `Txn` apply: decide every branch against the state before the txn, check the ops on
/// the chosen paths, then run them at one main revision.
fn apply_txn(
    write: &mut StoreWrite<'_>,
    txn: &TxnRequest,
    leases: &dyn LeaseLookup,
) -> Result<TxnResponse, Error> {
    crate::metrics::count_txn();
    let path = Path::evaluate(write, txn)?;
    let mut deletes = Vec::new();
    check_puts(write, txn, &path, leases, &mut deletes)?;
    check_ranges(write, txn, &path)?;
    let mut changed = false;
    run_txn(write, txn, &path, &mut changed)
}

/// etcd's `checkRequestPut` over the chosen ops, in execution order: ignore_value/ignore_lease
/// need the key, a lease must exist. etcd checks the key against the state before the txn; a put
/// whose key an earlier "from key" delete of the same txn removed (the one overlap
/// `checkIntervals` lets through) would make etcd panic mid-txn, so it is rejected here with the
/// error etcd's Put gives, before anything is written.
fn check_puts(
    write: &StoreWrite<'_>,
    txn: &TxnRequest,
    path: &Path,
    leases: &dyn LeaseLookup,
    deletes: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), Error> {
    let mut nested = path.nested.iter();
    for op in branch(txn, path.succeeded) {
        match &op.request {
            Some(request_op::Request::RequestTxn(inner)) => {
                let inner_path = nested.next().expect("a path for every nested txn taken");
                check_puts(write, inner, inner_path, leases, deletes)?;
            }
            Some(request_op::Request::RequestPut(put)) => {
                if put.ignore_value || put.ignore_lease {
                    let deleted = deletes
                        .iter()
                        .any(|(key, end)| KeyRange::from_request(key, end).contains(&put.key));
                    if deleted || current(write, &put.key)?.is_none() {
                        return Err(EtcdError::KeyNotFound.into());
                    }
                }
                if put.lease != NO_LEASE && !leases.exists(put.lease) {
                    return Err(EtcdError::LeaseNotFound.into());
                }
            }
            Some(request_op::Request::RequestDeleteRange(delete)) => {
                deletes.push((delete.key.clone(), delete.range_end.clone()));
            }
            Some(request_op::Request::RequestRange(_)) | None => {}
        }
    }
    Ok(())
}

/// etcd's `checkRequestRange`: a txn read at a fixed revision must be neither in the future nor
/// below the compaction. Compared as etcd does, so a negative revision is "compacted" once it is
/// below the compact revision (-1 before any compaction).
fn check_ranges(write: &StoreWrite<'_>, txn: &TxnRequest, path: &Path) -> Result<(), Error> {
    let mut nested = path.nested.iter();
    for op in branch(txn, path.succeeded) {
        match &op.request {
            Some(request_op::Request::RequestTxn(inner)) => {
                let inner_path = nested.next().expect("a path for every nested txn taken");
                check_ranges(write, inner, inner_path)?;
            }
            Some(request_op::Request::RequestRange(range)) if range.revision != 0 => {
                if range.revision > write.current_rev() {
                    return Err(EtcdError::FutureRev.into());
                }
                if range.revision < write.compact_rev() {
                    return Err(EtcdError::Compacted.into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs the chosen ops of `txn`. A nested txn's own header carries revision 0, as etcd leaves it
/// (only the outer header is filled); each op's response carries the revision etcd gives it.
fn run_txn(
    write: &mut StoreWrite<'_>,
    txn: &TxnRequest,
    path: &Path,
    changed: &mut bool,
) -> Result<TxnResponse, Error> {
    let mut nested = path.nested.iter();
    let ops: &[RequestOp] = branch(txn, path.succeeded);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(range)) => Some(
                response_op::Response::ResponseRange(txn_range(write, range)?),
            ),
            Some(request_op::Request::RequestPut(put)) => {
                let response = put_op(write, put)?;
                *changed = true;
                Some(response_op::Response::ResponsePut(response))
            }
            Some(request_op::Request::RequestDeleteRange(delete)) => {
                let response = delete_op(write, delete, *changed)?;
                *changed |= response.deleted > 0;
                Some(response_op::Response::ResponseDeleteRange(response))
            }
            Some(request_op::Request::RequestTxn(inner)) => {
                let inner_path = nested.next().expect("a path for every nested txn taken");
                Some(response_op::Response::ResponseTxn(run_txn(
                    write, inner, inner_path, changed,
                )?))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader::default()),
        succeeded: path.succeeded,
        responses,
    })
}

/// A txn's read. Its revision was checked before the first write, so a revision error here is
/// the store contradicting itself: fatal, as etcd panics on it.
fn txn_range(
    write: &StoreWrite<'_>,
    range: &RangeRequest,
) -> Result<keelson_proto::etcdserverpb::RangeResponse, Error> {
    range_in_write(write, range).map_err(|error| match error {
        Error::Etcd(etcd) => Error::Fatal(keelson_storage::mvcc::store::Error::Corrupt(format!(
            "txn range failed after its checks passed: {etcd}"
        ))),
        fatal => fatal,
    })
}
