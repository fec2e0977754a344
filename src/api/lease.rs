//! The Lease service (etcd 3.4's `v3rpc/lease.go` with the `EtcdServer` lease calls behind it).
//!
//! LeaseGrant and LeaseRevoke are proposed through the node, so they are answered only once
//! applied. LeaseKeepAlive renews in the lessor directly, like etcd's leader (no log entry);
//! LeaseTimeToLive and LeaseLeases read the lessor. This module must never change the store, nor
//! change a lease except by a renewal or a proposal.

use std::pin::Pin;
use std::time::Instant;

use futures::Stream;
use keelson_proto::etcdserverpb::lease_server::Lease;
use keelson_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use tonic::{Request, Response, Status, Streaming};

use crate::api::header::fill_header;
use crate::api::quota::Quota;
use crate::api::status::etcd_status;
use crate::node::NodeHandle;
use crate::peer::Forwarder;
use crate::server::lessor::RenewError;
use crate::server::quota::lease_grant_cost;
use crate::server::{WriteRequest, WriteResponse};
use std::sync::Arc;

/// Keep-alive responses buffered per stream before reading more requests waits for the client.
const KEEPALIVE_RESPONSE_BUFFER: usize = 256;
/// etcd's Lease service over a node.
pub struct LeaseService {
    node: NodeHandle,
    quota: Quota,
    forwarder: Arc<Forwarder>,
}

impl LeaseService {
    pub fn new(node: NodeHandle, quota: Quota, forwarder: Arc<Forwarder>) -> LeaseService {
        LeaseService {
            node,
            quota,
            forwarder,
        }
    }
}

/// A response of the wrong kind means the node broke its contract.
fn mismatched(expected: &str) -> Status {
    Status::internal(format!(
        "keelson: the node answered a {expected} with another kind"
    ))
}

/// Proposes clearing lease `id`'s checkpointed remaining TTL, as etcd's leader does when it
/// renews a checkpointed lease (a restart must not cut the renewed lease short).
pub async fn clear_checkpoint(node: &NodeHandle, id: i64) -> Result<(), Status> {
    let clear = WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id,
            remaining_ttl: 0,
        }],
    });
    node.propose(clear).await.map_err(etcd_status)?;
    Ok(())
}

/// Renews `id` and builds its keep-alive response (TTL 0 for a lease that is gone, as etcd
/// answers). A follower forwards the renewal to its leader, which alone keeps expiries.
async fn keep_alive(
    node: &NodeHandle,
    forwarder: &Forwarder,
    id: i64,
) -> Result<LeaseKeepAliveResponse, Status> {
    let renewed = node.lessor().lock().renew(id, Instant::now());
    let ttl = match renewed {
        Ok(renewed) => {
            if renewed.clear_checkpoint {
                clear_checkpoint(node, id).await?;
            }
            renewed.ttl
        }
        Err(RenewError::NotFound) => 0,
        Err(RenewError::NotPrimary) => match forwarder.lease_renew(id).await {
            Ok(response) => response.ttl,
            Err(status) if status.code() == tonic::Code::NotFound => 0,
            Err(status) => return Err(status),
        },
    };
    let mut response = LeaseKeepAliveResponse {
        header: None,
        id,
        ttl,
    };
    fill_header(node, &mut response.header, node.store().view().rev());
    Ok(response)
}

/// `LeaseTimeToLive` answered from this member's lessor (TTL -1 for an unknown lease, as etcd).
pub fn time_to_live(
    node: &NodeHandle,
    request: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, Status> {
    let status = node.lessor().lock().status(request.id, Instant::now());
    let mut response = match status {
        Some(status) => LeaseTimeToLiveResponse {
            header: None,
            id: request.id,
            ttl: status.remaining,
            granted_ttl: status.granted_ttl,
            keys: if request.keys {
                status.keys
            } else {
                Vec::new()
            },
        },
        None => LeaseTimeToLiveResponse {
            header: None,
            id: request.id,
            ttl: -1,
            granted_ttl: 0,
            keys: Vec::new(),
        },
    };
    fill_header(node, &mut response.header, node.store().view().rev());
    Ok(response)
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut request = request.into_inner();
        // etcd's quotaLeaseServer checks the space quota before anything else.
        self.quota
            .check(lease_grant_cost())
            .await
            .map_err(etcd_status)?;
        // etcd picks the id before proposing, so every member applies the same one.
        while request.id == 0 {
            request.id = self.node.ids().next_lease_id();
        }
        match self
            .node
            .propose(WriteRequest::LeaseGrant(request))
            .await
            .map_err(etcd_status)?
        {
            WriteResponse::LeaseGrant(response) => Ok(Response::new(response)),
            _ => Err(mismatched("LeaseGrant")),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        match self
            .node
            .propose(WriteRequest::LeaseRevoke(request.into_inner()))
            .await
            .map_err(etcd_status)?
        {
            WriteResponse::LeaseRevoke(response) => Ok(Response::new(response)),
            _ => Err(mismatched("LeaseRevoke")),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    /// The request stream is read in its own task, each request answered as it arrives; the
    /// handler returns at once (h2 drops connections whose handler stalls on tiny frames).
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let (responses, receiver) = tokio::sync::mpsc::channel(KEEPALIVE_RESPONSE_BUFFER);
        let node = self.node.clone();
        let forwarder = self.forwarder.clone();
        tokio::spawn(async move {
            loop {
                let next = match requests.message().await {
                    Ok(Some(request)) => keep_alive(&node, &forwarder, request.id).await,
                    // The client closed its side: the stream ends.
                    Ok(None) => break,
                    Err(status) => Err(status),
                };
                let failed = next.is_err();
                if responses.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    /// An unknown lease is not an error: etcd answers TTL -1 (etcdctl prints "already
    /// expired"). A follower asks its leader, whose lessor keeps the expiries.
    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        if self.node.lessor().lock().is_primary() {
            return Ok(Response::new(time_to_live(&self.node, request)?));
        }
        match self.forwarder.lease_time_to_live(request).await {
            Ok(mut response) => {
                // The leader's header names the leader; this member answers.
                fill_header(
                    &self.node,
                    &mut response.header,
                    self.node.store().view().rev(),
                );
                Ok(Response::new(response))
            }
            Err(status) => Err(status),
        }
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let ids = self.node.lessor().lock().ids();
        let mut response = LeaseLeasesResponse {
            header: None,
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        };
        fill_header(
            &self.node,
            &mut response.header,
            self.node.store().view().rev(),
        );
        Ok(Response::new(response))
    }
}
