//! The in-process client the Lock and Election services use, as etcd's use clientv3: KV calls go
//! through the same KV and Lease service code a gRPC client reaches (quota, validation, the log),
//! and watches register directly in the node's watch hub.
//!
//! Owns the translation of errors into what etcd's services answer for a failed clientv3 call.
//! Never writes except through the KV and Lease services.

use std::sync::Arc;

use keelson_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::kv_server::Kv;
use keelson_proto::etcdserverpb::lease_server::Lease;
use keelson_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keelson_proto::etcdserverpb::request_op::Request as Op;
use keelson_proto::etcdserverpb::response_op::Response as OpResponse;
use keelson_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use keelson_proto::mvccpb::Event;
use keelson_proto::mvccpb::event::EventType;
use tonic::{Request, Status};

use crate::api::header::fill_header;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::errors::EtcdError;
use crate::node::NodeHandle;
use crate::server::watch::feed::{self, Output};
use crate::server::watch::{StreamHandle, WatchHub, WatchSpec};

/// The TTL of the lease etcd's services grant when a request names none (clientv3
/// concurrency's default session TTL).
pub const SESSION_TTL_SECONDS: i64 = 60;
/// etcd's watch ids start here when the client lets the server choose.
const AUTO_WATCH_ID: i64 = -1;

/// KV, Lease and Watch calls made from inside the server.
#[derive(Clone)]
pub struct LocalClient {
    node: NodeHandle,
    kv: Arc<KvService>,
    lease: Arc<LeaseService>,
}

/// What etcd's Lock and Election services answer when a call fails: they return clientv3's
/// error, which for etcd's own errors is a plain Go error (`rpctypes.EtcdError`) that grpc-go
/// sends as UNKNOWN with the same message; other statuses pass unchanged.
pub fn client_error(status: Status) -> Status {
    match EtcdError::from_message(status.message()) {
        Some(_) => Status::unknown(status.message()),
        None => status,
    }
}

/// The end of the range of every key starting with `prefix` (clientv3's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff: the range runs to the end of the keyspace.
    vec![0]
}

/// A compare of `key`'s create revision with `revision`.
pub fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

pub fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        })),
    }
}

pub fn get_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(range)),
    }
}

pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        })),
    }
}

/// The oldest (`Ascend`) or newest (`Descend`) key by create revision under `prefix`,
/// optionally created at or before `max_create_revision` (clientv3's `WithFirstCreate`,
/// `WithLastCreate`, `WithMaxCreateRev`).
pub fn by_create(prefix: &[u8], order: SortOrder, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision,
        ..RangeRequest::default()
    }
}

/// The range answer of the op at `index` of a txn answer, if it is one.
pub fn range_of(response: &TxnResponse, index: usize) -> Option<&RangeResponse> {
    match response.responses.get(index)?.response.as_ref()? {
        OpResponse::ResponseRange(range) => Some(range),
        _ => None,
    }
}

impl LocalClient {
    pub fn new(node: NodeHandle, kv: Arc<KvService>, lease: Arc<LeaseService>) -> LocalClient {
        LocalClient { node, kv, lease }
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Status> {
        self.kv
            .txn(Request::new(request))
            .await
            .map(|r| r.into_inner())
            .map_err(client_error)
    }

    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Status> {
        self.kv
            .range(Request::new(request))
            .await
            .map(|r| r.into_inner())
            .map_err(client_error)
    }

    pub async fn delete(&self, key: &[u8]) -> Result<DeleteRangeResponse, Status> {
        let request = DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        };
        self.kv
            .delete_range(Request::new(request))
            .await
            .map(|r| r.into_inner())
            .map_err(client_error)
    }

    /// Grants a lease of `ttl` seconds with a server-chosen id.
    pub async fn grant(&self, ttl: i64) -> Result<i64, Status> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        self.lease
            .lease_grant(Request::new(request))
            .await
            .map(|r| r.into_inner().id)
            .map_err(client_error)
    }

    /// Watches `key` (and with `prefix`, every key under it) from `start_revision`.
    pub fn watch(
        &self,
        key: &[u8],
        prefix: bool,
        start_revision: i64,
    ) -> Result<LocalWatch, Status> {
        let hub = self.node.watch_hub().clone();
        let handle = hub.open_stream();
        let watch = LocalWatch {
            node: self.node.clone(),
            hub,
            handle,
        };
        let spec = WatchSpec {
            key: key.to_vec(),
            range_end: prefix.then(|| prefix_end(key)),
            no_put: false,
            no_delete: false,
            prev_kv: false,
            progress_notify: false,
            fragment: false,
        };
        watch
            .hub
            .add_watcher(watch.handle.id, AUTO_WATCH_ID, spec, start_revision)
            .map_err(|why| Status::internal(why.reason()))?;
        Ok(watch)
    }

    /// Waits until `key` is deleted at `revision` or later (clientv3 concurrency's
    /// `waitDelete`).
    pub async fn wait_delete(&self, key: &[u8], revision: i64) -> Result<(), Status> {
        let mut watch = self.watch(key, false, revision)?;
        loop {
            let (_, events) = watch.next().await?;
            if events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                return Ok(());
            }
        }
    }

    /// Waits until no key under `prefix` created at or before `max_create_revision` is left;
    /// answers the header of the range that found none (clientv3 concurrency's `waitDeletes`).
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_revision: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let newest = by_create(prefix, SortOrder::Descend, max_create_revision);
            let found = self.range(newest).await?;
            let Some(last) = found.kvs.first() else {
                return Ok(found.header);
            };
            let revision = found.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(&last.key, revision).await?;
        }
    }

    /// A response header as the node fills it, at `revision`.
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let mut header = None;
        fill_header(&self.node, &mut header, revision);
        header
    }
}

/// One in-process watcher on its own hub stream, removed when dropped.
pub struct LocalWatch {
    node: NodeHandle,
    hub: Arc<WatchHub>,
    handle: StreamHandle,
}

impl LocalWatch {
    /// The next events (in revision order) and the revision of the response carrying them.
    pub async fn next(&mut self) -> Result<(i64, Vec<Event>), Status> {
        let mut outputs = Vec::new();
        loop {
            feed::next_batch(&self.hub, &self.node.store(), self.handle.id, &mut outputs);
            let mut events = Vec::new();
            let mut revision = 0;
            for output in outputs.drain(..) {
                match output {
                    Output::Events(delivery) => {
                        revision = delivery.rev;
                        events.extend_from_slice(delivery.events());
                    }
                    Output::Compacted { .. } => {
                        return Err(Status::unknown(EtcdError::Compacted.message().to_string()));
                    }
                    Output::Broken(why) => {
                        return Err(Status::internal(format!("keelson: watch history: {why}")));
                    }
                }
            }
            if !events.is_empty() {
                return Ok((revision, events));
            }
            // A wake-up sent since the batch was taken is kept as a permit: none is lost.
            self.handle.wake.notified().await;
        }
    }
}

impl Drop for LocalWatch {
    fn drop(&mut self) {
        self.hub.close_stream(self.handle.id);
    }
}
