//! lease-keepalive: each client holds one lease and refreshes it over its
//! own long-lived LeaseKeepAlive stream, one request and one reply per call,
//! which is how real clients keep leases alive.

use keelson_proto::etcdserverpb::lease_client::LeaseClient;
use keelson_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
};
use tokio::sync::mpsc;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::conn::{request_stream, status_line};
use crate::driver::Worker;

/// TTL of the benchmark leases, in seconds: etcd's benchmark uses 100, long
/// enough that none expires during a run.
const LEASE_TTL_SECS: i64 = 100;

pub struct KeepaliveWorker {
    id: i64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    replies: Streaming<LeaseKeepAliveResponse>,
    /// Set while a call awaits its reply. Still set at the next call means
    /// the driver abandoned that call on timeout, so replies are out of step.
    in_flight: bool,
}

impl KeepaliveWorker {
    /// Grants a lease and opens its keepalive stream. The first keepalive is
    /// sent before the call starts, because gRPC servers send response
    /// headers only with their first reply; its answer is not measured.
    pub async fn setup(channel: Channel) -> Result<Self, String> {
        let mut lease = LeaseClient::new(channel);
        let grant = lease
            .lease_grant(LeaseGrantRequest {
                ttl: LEASE_TTL_SECS,
                id: 0,
            })
            .await
            .map_err(|s| format!("lease grant: {}", status_line(&s)))?
            .into_inner();
        let (tx, stream) = request_stream();
        tx.send(LeaseKeepAliveRequest { id: grant.id })
            .await
            .map_err(|_| "keepalive stream closed".to_string())?;
        let mut replies = lease
            .lease_keep_alive(stream)
            .await
            .map_err(|s| format!("lease keepalive: {}", status_line(&s)))?
            .into_inner();
        next_reply(&mut replies, grant.id).await?;
        Ok(KeepaliveWorker {
            id: grant.id,
            tx,
            replies,
            in_flight: false,
        })
    }

    pub fn lease_id(&self) -> i64 {
        self.id
    }
}

/// Reads one keepalive reply and checks it refreshed lease `id`.
async fn next_reply(
    replies: &mut Streaming<LeaseKeepAliveResponse>,
    id: i64,
) -> Result<(), String> {
    let reply = replies
        .message()
        .await
        .map_err(|s| status_line(&s))?
        .ok_or("keepalive stream ended")?;
    if reply.id != id || reply.ttl <= 0 {
        return Err(format!(
            "keepalive of lease {id:x} answered id {:x} ttl {}",
            reply.id, reply.ttl
        ));
    }
    Ok(())
}

impl Worker for KeepaliveWorker {
    async fn call(&mut self, _seq: u64) -> Result<usize, String> {
        if self.in_flight {
            return Err("keepalive stream out of step after an earlier timeout".into());
        }
        self.in_flight = true;
        self.tx
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| "keepalive stream closed".to_string())?;
        let result = next_reply(&mut self.replies, self.id).await;
        self.in_flight = false;
        result.map(|()| 0)
    }
}

/// Revokes the benchmark's leases so they do not linger for their TTL.
/// Best effort: the measurement is already done.
pub async fn revoke(channel: Channel, ids: &[i64]) {
    let mut lease = LeaseClient::new(channel);
    for &id in ids {
        let _ = lease.lease_revoke(LeaseRevokeRequest { id }).await;
    }
}
