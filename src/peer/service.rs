//! Inbound: the `Peer` gRPC service other members call on `--listen-peer-urls`.
//!
//! Every call is first checked to come from this cluster and to be meant for this member
//! ([`Route::check`]); then Raft messages are handed to the node in the order they arrived
//! (waiting while the node is behind, which slows the sender's stream through HTTP/2 flow
//! control), and the leader answers the lease calls its followers forward.
//!
//! Owns: the service. Never: changes state except through the node (messages) or the lessor's
//! renewal (as the Lease service does on the leader).

use super::wire::{self, Route};
use crate::api::status::etcd_status;
use crate::errors::EtcdError;
use crate::node::{NodeHandle, PeerEvent};
use crate::server::lessor::RenewError;
use keelson_proto::etcdserverpb::{
    HashKvRequest, HashKvResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use keelson_proto::keelsonpeerpb::peer_server::Peer;
use keelson_proto::keelsonpeerpb::{Ack, Batch, SnapshotChunk};
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};

pub struct PeerService {
    node: NodeHandle,
}

impl PeerService {
    pub fn new(node: NodeHandle) -> PeerService {
        PeerService { node }
    }

    /// The caller's route, if it is a member of this cluster calling this member.
    fn admit<T>(&self, request: &Request<T>) -> Result<Route, Status> {
        let route = Route::read(request.metadata()).map_err(Status::invalid_argument)?;
        let (own, cluster_id) = self.node.ids_of_member();
        route
            .check(cluster_id, own)
            .map_err(Status::failed_precondition)?;
        Ok(route)
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn messages(&self, request: Request<Streaming<Batch>>) -> Result<Response<Ack>, Status> {
        let route = self.admit(&request)?;
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            for bytes in batch.messages {
                let message = wire::decode(&bytes).map_err(Status::invalid_argument)?;
                if message.from != route.from || message.to != route.to {
                    return Err(Status::invalid_argument(format!(
                        "a message from {:x} to {:x} on the stream from {:x} to {:x}",
                        message.from, message.to, route.from, route.to
                    )));
                }
                self.node
                    .deliver(PeerEvent::Message(message))
                    .await
                    .map_err(etcd_status)?;
            }
        }
        Ok(Response::new(Ack {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Ack>, Status> {
        self.admit(&request)?;
        super::snapshot::receive(&self.node, request.into_inner()).await?;
        Ok(Response::new(Ack {}))
    }

    async fn lease_renew(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        self.admit(&request)?;
        let id = request.into_inner().id;
        let renewed = self.node.lessor().lock().renew(id, Instant::now());
        let ttl = match renewed {
            Ok(renewed) => {
                if renewed.clear_checkpoint {
                    crate::api::lease::clear_checkpoint(&self.node, id).await?;
                }
                renewed.ttl
            }
            Err(RenewError::NotFound) => return Err(etcd_status(EtcdError::LeaseNotFound)),
            Err(RenewError::NotPrimary) => return Err(etcd_status(EtcdError::NotLeader)),
        };
        let mut response = LeaseKeepAliveResponse {
            header: None,
            id,
            ttl,
        };
        crate::api::header::fill_header(
            &self.node,
            &mut response.header,
            self.node.store().view().rev(),
        );
        Ok(Response::new(response))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.admit(&request)?;
        if !self.node.lessor().lock().is_primary() {
            return Err(etcd_status(EtcdError::NotLeader));
        }
        let response = crate::api::lease::time_to_live(&self.node, request.into_inner())?;
        Ok(Response::new(response))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.admit(&request)?;
        let response = crate::api::maintenance::hash_kv(&self.node, request.into_inner()).await?;
        Ok(Response::new(response))
    }
}
