//! The KV service: Range is answered here from a store view, every other call is validated and
//! proposed through the node, so it is applied only after Raft made it durable.
//!
//! This module must never change the store itself nor answer a write before the node has
//! applied it: a write's only way into the store is `NodeHandle::propose`.

use keelson_proto::etcdserverpb::kv_server::Kv;
use keelson_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use crate::api::header::fill_header;
use crate::api::quota::Quota;
use crate::api::status::{etcd_status, server_status};
use crate::node::NodeHandle;
use crate::server::apply::{Limits, validate};
use crate::server::range::{range, validate_range};
use crate::server::{WriteRequest, WriteResponse};

/// etcd's KV service over a node.
pub struct KvService {
    node: NodeHandle,
    limits: Limits,
    quota: Quota,
}

impl KvService {
    pub fn new(node: NodeHandle, limits: Limits, quota: Quota) -> KvService {
        KvService {
            node,
            limits,
            quota,
        }
    }

    /// Checks the space quota, then validates a write before it reaches the log (etcd's order:
    /// its quotaKVServer wraps the validating server), then waits until the node has applied it.
    async fn write(&self, request: WriteRequest) -> Result<WriteResponse, Status> {
        self.quota
            .check_write(&request)
            .await
            .map_err(etcd_status)?;
        validate(&request, &self.limits).map_err(etcd_status)?;
        self.node.propose(request).await.map_err(etcd_status)
    }
}

/// A response of the wrong kind means the node broke its contract; the client sees an internal
/// error rather than a made-up answer.
fn mismatched(expected: &str) -> Status {
    Status::internal(format!(
        "keelson: the node answered a {expected} with another kind"
    ))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        // etcd checks the request in its API layer, before any read-index wait.
        validate_range(&request).map_err(etcd_status)?;
        // A linearizable read must see every write acknowledged before it started: wait until
        // the node confirms leadership and has applied up to the commit index of that moment.
        if !request.serializable {
            self.node.read_index().await.map_err(etcd_status)?;
        }
        let store = self.node.store();
        let view = store.view();
        let mut response = range(&store, &view, &request).map_err(server_status)?;
        fill_header(&self.node, &mut response.header, view.rev());
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        match self.write(WriteRequest::Put(request.into_inner())).await? {
            WriteResponse::Put(response) => Ok(Response::new(response)),
            _ => Err(mismatched("Put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        match self
            .write(WriteRequest::DeleteRange(request.into_inner()))
            .await?
        {
            WriteResponse::DeleteRange(response) => Ok(Response::new(response)),
            _ => Err(mismatched("DeleteRange")),
        }
    }

    /// Every Txn goes through the log, read-only ones included. etcd 3.4 answers a read-only
    /// txn locally after a read index; through the log the answer is the same (same revision,
    /// same compares), one log entry dearer, and the compares are evaluated in exactly one place.
    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        match self.write(WriteRequest::Txn(request.into_inner())).await? {
            WriteResponse::Txn(response) => Ok(Response::new(response)),
            _ => Err(mismatched("Txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        match self
            .write(WriteRequest::Compaction(request.into_inner()))
            .await?
        {
            WriteResponse::Compaction(response) => Ok(Response::new(response)),
            _ => Err(mismatched("Compaction")),
        }
    }
}
