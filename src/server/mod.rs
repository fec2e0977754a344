//! What the server does with a request, independent of how it arrived or how it was made
//! durable: the write requests that go through Raft, their responses, and the etcd semantics of
//! applying them to the MVCC store.
//!
//! - [`apply`]: applies one [`WriteRequest`] to a [`StoreWrite`](keelson_storage::mvcc::StoreWrite)
//!   (etcd's `applierV3`): Put, DeleteRange, Txn (compares, branches, nested txns), Compaction.
//! - [`range`]: etcd's server-level Range over a store view or inside a write (sort, filters,
//!   limit and `more`, keys_only, count_only).
//! - [`txn`]: a txn's compares and the branch each (nested) txn takes.
//! - [`validate`]: the stateless checks etcd makes before proposing ([`apply::validate`]).
//! - [`error`]: [`Error`], an etcd error for the client or a fatal store failure for the node.
//! - [`lessor`]: the leases in memory (expiry, attached keys, checkpoints); [`lease_apply`]:
//!   LeaseGrant / LeaseRevoke / LeaseCheckpoint applied to the store.
//! - [`watch`]: the watch hub fed by the node, watchers and their catch-up from the store.
//! - [`alarm`]: the active alarms (the `alarm` tree) and what NOSPACE refuses; [`quota`]: etcd's
//!   cost estimate of a write against the space quota.
//!
//! Requests are validated before they are proposed ([`apply::validate`]): a request that reaches
//! the log is applied whole or, for errors only known at apply time (lease not found, compacted
//! revision), not at all. Nothing is ever half-applied. A store failure is never an etcd error:
//! it is [`Error::Fatal`], and the node stops applying (see [`error`]).

pub mod alarm;
pub mod apply;
pub mod error;
pub mod lease_apply;
pub mod lessor;
pub mod quota;
pub mod range;
pub mod txn;
pub mod validate;
pub mod watch;

#[cfg(test)]
mod tests;

pub use error::Error;

use keelson_proto::etcdserverpb::{AlarmRequest, AlarmResponse};
use keelson_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, TxnRequest, TxnResponse,
};
use keelson_proto::etcdserverpb::{
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse,
};

/// A request that changes state, so it goes through the Raft log.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteRequest {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compaction(CompactionRequest),
    /// Its id is never 0 in the log: the API picks one before proposing.
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    /// Remaining TTLs the leader persists, so a restart does not extend leases.
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// Raise, clear or list alarms (etcd proposes all three through the log).
    Alarm(AlarmRequest),
}

/// The response to a [`WriteRequest`], of the matching kind. Its header carries the revision;
/// the caller fills in cluster id, member id and raft term.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// Carries no header, as in etcd.
    Alarm(AlarmResponse),
}
