//! etcd's Lock service (`v3lock`): clientv3 concurrency's mutex run inside the server. The holder
//! of lock `name` is the owner of the oldest key under `name/`; a caller puts `name/<lease hex>`
//! with its lease (a new 60-second lease when it names none) and waits until every older key is
//! deleted. Unlock deletes the key.
//!
//! Owns only the protocol of keys and waits; every read and write is a KV call through
//! [`LocalClient`], and a caller that goes away while waiting has its key deleted, as etcd does.

use keelson_proto::etcdserverpb::range_request::SortOrder;
use keelson_proto::etcdserverpb::{RangeRequest, TxnRequest};
use keelson_proto::v3lockpb::lock_server::Lock;
use keelson_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use crate::api::local::{
    self, LocalClient, SESSION_TTL_SECONDS, by_create, create_revision_is, get_op, put_op, range_of,
};

pub struct LockService {
    client: LocalClient,
}

impl LockService {
    pub fn new(client: LocalClient) -> LockService {
        LockService { client }
    }
}

/// The lease a session uses: the one asked for, or a new one with the session TTL.
pub async fn session_lease(client: &LocalClient, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    client.grant(SESSION_TTL_SECONDS).await
}

/// The key a lease holds under `prefix`: the lease id in lowercase hex, as Go's `%x` writes it.
pub fn lease_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// Deletes a key when dropped unless disarmed: a caller that stopped waiting leaves no key
/// behind to block the others.
pub struct DeleteOnDrop {
    pending: Option<(LocalClient, TxnRequest)>,
}

impl DeleteOnDrop {
    pub fn new(client: &LocalClient, release: TxnRequest) -> DeleteOnDrop {
        DeleteOnDrop {
            pending: Some((client.clone(), release)),
        }
    }

    pub fn disarm(&mut self) {
        self.pending = None;
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some((client, release)) = self.pending.take() {
            tokio::spawn(async move {
                if let Err(e) = client.txn(release).await {
                    eprintln!("keelson: releasing an abandoned lock or election key failed: {e}");
                }
            });
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let request = request.into_inner();
        let client = &self.client;
        let lease = session_lease(client, request.lease).await?;
        let mut prefix = request.name;
        prefix.push(b'/');
        let key = lease_key(&prefix, lease);
        let owner = by_create(&prefix, SortOrder::Ascend, 0);
        let mine = RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        };
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, b"", lease), get_op(owner.clone())],
            failure: vec![get_op(mine), get_op(owner)],
        };
        let response = client.txn(txn).await?;
        let mut revision = response.header.as_ref().map_or(0, |h| h.revision);
        if !response.succeeded {
            revision = range_of(&response, 0)
                .and_then(|r| r.kvs.first())
                .map_or(revision, |kv| kv.create_revision);
        }
        let oldest = range_of(&response, 1).and_then(|r| r.kvs.first());
        if oldest.is_none_or(|kv| kv.create_revision == revision) {
            return Ok(Response::new(LockResponse {
                header: response.header,
                key,
            }));
        }
        let mut release = DeleteOnDrop::new(
            client,
            TxnRequest {
                success: vec![local::delete_op(&key)],
                ..TxnRequest::default()
            },
        );
        // Dropped on an error too: etcd's mutex unlocks when its wait fails.
        let header = client.wait_deletes(&prefix, revision - 1).await?;
        release.disarm();
        Ok(Response::new(LockResponse { header, key }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let deleted = self.client.delete(&request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: deleted.header,
        }))
    }
}
