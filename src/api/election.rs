//! etcd's Election service (`v3election`): clientv3 concurrency's election run inside the server.
//! A campaigner puts `name/<lease hex>` with its value and lease and leads once every older key
//! under `name/` is gone; the leader's value is its key's value; Observe follows the oldest key.
//!
//! Owns only the protocol of keys and waits; every read and write is a KV call or a watch through
//! [`LocalClient`]. Errors are etcd's: clientv3's plain errors arrive as UNKNOWN with their text.

use std::pin::Pin;

use futures_util::Stream;
use keelson_proto::etcdserverpb::range_request::SortOrder;
use keelson_proto::etcdserverpb::{RangeRequest, ResponseHeader, TxnRequest};
use keelson_proto::mvccpb::event::EventType;
use keelson_proto::v3electionpb::election_server::Election;
use keelson_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::api::local::{
    LocalClient, by_create, create_revision_is, delete_op, get_op, put_op, range_of,
};
use crate::api::lock::{DeleteOnDrop, lease_key, session_lease};

/// clientv3 concurrency's errors, sent by etcd as UNKNOWN with these texts.
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// Observed values buffered ahead of a slow observer.
const OBSERVE_BUFFER: usize = 16;

pub struct ElectionService {
    client: LocalClient,
}

impl ElectionService {
    pub fn new(client: LocalClient) -> ElectionService {
        ElectionService { client }
    }
}

fn with_slash(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// Deletes the leader key if it is still the one created at `revision` (clientv3's `Resign`).
fn resign_txn(key: &[u8], revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, revision)],
        success: vec![delete_op(key)],
        failure: Vec::new(),
    }
}

/// Replaces the leader key's value if it is still the one created at `leader.rev`; fails with
/// etcd's "not leader" when it is not (clientv3's `Proclaim`).
async fn proclaim(
    client: &LocalClient,
    leader: &LeaderKey,
    value: &[u8],
) -> Result<Option<ResponseHeader>, Status> {
    let txn = TxnRequest {
        compare: vec![create_revision_is(&leader.key, leader.rev)],
        success: vec![put_op(&leader.key, value, leader.lease)],
        failure: Vec::new(),
    };
    let response = client.txn(txn).await?;
    if !response.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(response.header)
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

/// Sends every leader's values to `out` until the observer leaves or a read fails (clientv3's
/// `observe`: the oldest key, or the first put under the name when there is none, then that
/// key's puts until it is deleted).
async fn observe(client: LocalClient, name: Vec<u8>, out: mpsc::Sender<LeaderResponse>) {
    let prefix = with_slash(&name);
    loop {
        let Ok(found) = client.range(by_create(&prefix, SortOrder::Ascend, 0)).await else {
            return;
        };
        let (mut header, kv) = match found.kvs.into_iter().next() {
            Some(kv) => (found.header, kv),
            None => {
                let revision = found.header.as_ref().map_or(0, |h| h.revision);
                let Ok(mut watch) = client.watch(&prefix, true, revision) else {
                    return;
                };
                loop {
                    let Ok((_, events)) = watch.next().await else {
                        return;
                    };
                    let put = events
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = put {
                        // clientv3 reports the put's own revision, not the response's.
                        break (client.header(kv.mod_revision), kv);
                    }
                }
            }
        };
        let key = kv.key.clone();
        let from = header.as_ref().map_or(0, |h| h.revision) + 1;
        if out
            .send(LeaderResponse {
                header: header.take(),
                kv: Some(kv),
            })
            .await
            .is_err()
        {
            return;
        }
        let Ok(mut watch) = client.watch(&key, false, from) else {
            return;
        };
        'leader: loop {
            let Ok((at, events)) = watch.next().await else {
                return;
            };
            for event in events {
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                let response = LeaderResponse {
                    header: client.header(at),
                    kv: event.kv,
                };
                if out.send(response).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let request = request.into_inner();
        let client = &self.client;
        let lease = session_lease(client, request.lease).await?;
        let prefix = with_slash(&request.name);
        let key = lease_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, &request.value, lease)],
            failure: vec![get_op(RangeRequest {
                key: key.clone(),
                ..RangeRequest::default()
            })],
        };
        let response = client.txn(txn).await?;
        let mut leader = LeaderKey {
            name: request.name,
            key,
            rev: response.header.as_ref().map_or(0, |h| h.revision),
            lease,
        };
        if !response.succeeded
            && let Some(existing) = range_of(&response, 0).and_then(|r| r.kvs.first())
        {
            leader.rev = existing.create_revision;
            if existing.value != request.value
                && let Err(e) = proclaim(client, &leader, &request.value).await
            {
                let _ = client.txn(resign_txn(&leader.key, leader.rev)).await;
                return Err(e);
            }
        }
        // A campaigner that goes away while waiting resigns, as etcd's does when its context
        // ends; a wait failing otherwise leaves the key, as in etcd.
        let mut resign = DeleteOnDrop::new(client, resign_txn(&leader.key, leader.rev));
        let waited = client.wait_deletes(&prefix, leader.rev - 1).await;
        resign.disarm();
        waited?;
        Ok(Response::new(CampaignResponse {
            header: response.header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let request = request.into_inner();
        let mut leader = request
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        // etcd resumes the election in a session of the leader's lease, granting a new one when
        // the request names none; the value is then put with that lease.
        leader.lease = session_lease(&self.client, leader.lease).await?;
        let header = proclaim(&self.client, &leader, &request.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let prefix = with_slash(&request.into_inner().name);
        let found = self
            .client
            .range(by_create(&prefix, SortOrder::Ascend, 0))
            .await?;
        let kv = found
            .kvs
            .into_iter()
            .next()
            .ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header: found.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let name = request.into_inner().name;
        let (out, received) = mpsc::channel(OBSERVE_BUFFER);
        let task = tokio::spawn(observe(self.client.clone(), name, out)).abort_handle();
        Ok(Response::new(Box::pin(Observed { received, task })))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        // As etcd: a session of the leader's lease, granted anew when the request names none.
        session_lease(&self.client, leader.lease).await?;
        let response = self.client.txn(resign_txn(&leader.key, leader.rev)).await?;
        Ok(Response::new(ResignResponse {
            header: response.header,
        }))
    }
}

/// The observed values; dropping it ends the observing task, even one waiting on a watch.
struct Observed {
    received: mpsc::Receiver<LeaderResponse>,
    task: tokio::task::AbortHandle,
}

impl Stream for Observed {
    type Item = Result<LeaderResponse, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.received.poll_recv(cx).map(|r| r.map(Ok))
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.task.abort();
    }
}
