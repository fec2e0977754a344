//! Applies the lease requests that go through the log (etcd 3.4's `applierV3backend`
//! LeaseGrant, LeaseRevoke, LeaseCheckpoint) to the store: the `lease` tree records and, for a
//! revoke, the deletion of every attached key in one revision.
//!
//! Decides from the lessor's state as it was before the request ([`LeaseLookup`]), and must never
//! change the store before every check that can fail has passed, nor change the lessor itself:
//! the node tells the lessor what was applied afterwards (`Lessor::applied`).

use super::apply::{Applied, LeaseLookup};
use super::error::Error;
use super::lessor::{LeaseRecord, MAX_LEASE_TTL, lease_key};
use super::{WriteRequest, WriteResponse};
use crate::errors::EtcdError;
use keelson_proto::etcdserverpb::{
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, ResponseHeader,
};
use keelson_storage::mvcc::{KeyRange, StoreWrite};
use keelson_storage::schema;
use prost::Message;

/// The lease id meaning "no lease".
const NO_LEASE: i64 = 0;

/// Applies `request` if it is a lease request; `None` for every other kind.
pub fn apply_lease(
    write: &mut StoreWrite<'_>,
    request: &WriteRequest,
    leases: &dyn LeaseLookup,
) -> Option<Result<Applied, Error>> {
    Some(match request {
        WriteRequest::LeaseGrant(grant) => apply_grant(write, grant, leases),
        WriteRequest::LeaseRevoke(revoke) => apply_revoke(write, revoke, leases),
        WriteRequest::LeaseCheckpoint(checkpoint) => apply_checkpoint(write, checkpoint, leases),
        _ => return None,
    })
}

fn header_at(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

fn unchanged(response: WriteResponse) -> Applied {
    Applied {
        response,
        changes: Vec::new(),
        compaction: None,
    }
}

/// etcd's `lessor.Grant`: too large a TTL, id 0 and a taken id fail; the TTL is raised to the
/// minimum; the record starts without a checkpoint. Makes no revision.
fn apply_grant(
    write: &mut StoreWrite<'_>,
    grant: &LeaseGrantRequest,
    leases: &dyn LeaseLookup,
) -> Result<Applied, Error> {
    if grant.ttl > MAX_LEASE_TTL {
        return Err(EtcdError::LeaseTtlTooLarge.into());
    }
    // The API picks an id for 0 before proposing; a 0 here is what etcd's lessor refuses.
    if grant.id == NO_LEASE {
        return Err(EtcdError::LeaseNotFound.into());
    }
    if leases.exists(grant.id) {
        return Err(EtcdError::LeaseExist.into());
    }
    let ttl = grant.ttl.max(leases.min_ttl());
    let record = LeaseRecord {
        id: grant.id,
        ttl,
        remaining_ttl: 0,
    };
    write
        .txn()
        .put(
            schema::TREE_LEASE,
            &lease_key(grant.id),
            &record.encode_to_vec(),
        )
        .map_err(|e| Error::from_store(e.into()))?;
    Ok(unchanged(WriteResponse::LeaseGrant(LeaseGrantResponse {
        header: header_at(write.current_rev()),
        id: grant.id,
        ttl,
        error: String::new(),
    })))
}

/// etcd's `lessor.Revoke`: every attached key deleted in one request (one revision, keys in
/// order), then the record.
fn apply_revoke(
    write: &mut StoreWrite<'_>,
    revoke: &LeaseRevokeRequest,
    leases: &dyn LeaseLookup,
) -> Result<Applied, Error> {
    if !leases.exists(revoke.id) {
        return Err(EtcdError::LeaseNotFound.into());
    }
    write.begin_request();
    let mut deleted = Ok(());
    for key in leases.keys(revoke.id) {
        if let Err(e) = write.delete_range(KeyRange::Single(&key)) {
            deleted = Err(Error::from_store(e));
            break;
        }
    }
    let deleted = deleted.and_then(|()| {
        write
            .txn()
            .delete(schema::TREE_LEASE, &lease_key(revoke.id))
            .map(|_| ())
            .map_err(|e| Error::from_store(e.into()))
    });
    let (changes, revision) = write.end_request();
    deleted?;
    Ok(Applied {
        response: WriteResponse::LeaseRevoke(LeaseRevokeResponse {
            header: header_at(revision),
        }),
        changes,
        compaction: None,
    })
}

/// etcd's `lessor.Checkpoint`, persisted (as etcd 3.5 does; 3.4 kept it in memory only, which
/// a restart lost): each known lease's record gets the remaining TTL. Unknown ids are skipped.
fn apply_checkpoint(
    write: &mut StoreWrite<'_>,
    checkpoint: &LeaseCheckpointRequest,
    leases: &dyn LeaseLookup,
) -> Result<Applied, Error> {
    for cp in &checkpoint.checkpoints {
        if !leases.exists(cp.id) {
            continue;
        }
        let key = lease_key(cp.id);
        let stored = write
            .txn()
            .get(schema::TREE_LEASE, &key)
            .map_err(|e| Error::from_store(e.into()))?
            .map(LeaseRecord::decode);
        let mut record = match stored {
            Some(Ok(record)) => record,
            Some(Err(e)) => {
                return Err(Error::Fatal(keelson_storage::mvcc::store::Error::Corrupt(
                    format!("lease record {:016x} does not decode: {e}", cp.id),
                )));
            }
            None => continue,
        };
        record.remaining_ttl = cp.remaining_ttl;
        write
            .txn()
            .put(schema::TREE_LEASE, &key, &record.encode_to_vec())
            .map_err(|e| Error::from_store(e.into()))?;
    }
    Ok(unchanged(WriteResponse::LeaseCheckpoint(
        LeaseCheckpointResponse {
            header: header_at(write.current_rev()),
        },
    )))
}
