//! Calls a follower forwards to its leader: lease renewals and TimeToLive, which only the
//! leader's lessor can answer (etcd's `LeaseRenew` and `LeaseTimeToLive` over its peer URLs).
//!
//! As etcd does, a forwarded call is retried (every [`RETRY_PAUSE`], against whoever leads
//! then) until it succeeds, the lease is not found, or the request timeout passes ("request
//! timed out"; "no leader" if no leader appeared at all).
//!
//! Owns: one lazily connected channel per member, the retry loop. Never: answers on the leader's
//! behalf.

use super::links::{CONNECT_TIMEOUT, PEER_MESSAGE_BYTES_MAX};
use super::wire::Route;
use crate::api::status::etcd_status;
use crate::errors::EtcdError;
use crate::node::NodeHandle;
use keelson_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use keelson_proto::keelsonpeerpb::peer_client::PeerClient;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Wait between attempts of a forwarded call (etcd's throttle).
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

pub struct Forwarder {
    node: NodeHandle,
    request_timeout: Duration,
    /// By member: its peer URLs when the channel was made, and the channel.
    channels: Mutex<HashMap<u64, (Vec<String>, Channel)>>,
}

impl Forwarder {
    pub fn new(node: NodeHandle, request_timeout: Duration) -> Forwarder {
        Forwarder {
            node,
            request_timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The leader's answer to a keep-alive of lease `id`.
    pub async fn lease_renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        self.retry(|mut client, route| async move {
            let mut request = tonic::Request::new(LeaseKeepAliveRequest { id });
            route.write(request.metadata_mut());
            client.lease_renew(request).await.map(|r| r.into_inner())
        })
        .await
    }

    /// The leader's answer to `request`.
    pub async fn lease_time_to_live(
        &self,
        request: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        self.retry(|mut client, route| async move {
            let mut request = tonic::Request::new(request);
            route.write(request.metadata_mut());
            client
                .lease_time_to_live(request)
                .await
                .map(|r| r.into_inner())
        })
        .await
    }

    async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(PeerClient<Channel>, Route) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        let mut saw_leader = false;
        while Instant::now() < deadline {
            if let Some((client, route)) = self.leader_client() {
                saw_leader = true;
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, call(client, route)).await {
                    Ok(Ok(answer)) => return Ok(answer),
                    Ok(Err(status)) if status.code() == Code::NotFound => return Err(status),
                    // Not (or no longer) the leader, or unreachable: ask again.
                    Ok(Err(_)) | Err(_) => {}
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(etcd_status(if saw_leader {
            EtcdError::Timeout
        } else {
            EtcdError::NoLeader
        }))
    }

    /// A client to the current leader, if it is another member this one knows.
    fn leader_client(&self) -> Option<(PeerClient<Channel>, Route)> {
        let status = self.node.status();
        if status.leader == 0 || status.leader == status.member_id {
            return None;
        }
        let member = self
            .node
            .members()
            .into_iter()
            .find(|m| m.id == status.leader)?;
        let channel = {
            let mut channels = self.channels.lock();
            match channels.get(&member.id) {
                Some((urls, channel)) if *urls == member.peer_urls => channel.clone(),
                _ => {
                    let url = member.peer_urls.first()?.clone();
                    let channel = Endpoint::from_shared(url)
                        .ok()?
                        .connect_timeout(CONNECT_TIMEOUT)
                        .tcp_nodelay(true)
                        .connect_lazy();
                    channels.insert(member.id, (member.peer_urls.clone(), channel.clone()));
                    channel
                }
            }
        };
        let client = PeerClient::new(channel)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX);
        let route = Route {
            cluster_id: status.cluster_id,
            from: status.member_id,
            to: member.id,
        };
        Some((client, route))
    }
}
