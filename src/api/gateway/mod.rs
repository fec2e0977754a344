//! etcd's gRPC gateway: the v3 API as JSON over HTTP/1.1 POSTs on the client URLs
//! (`/v3/kv/range`, `/v3/watch`, ...), as grpc-gateway v1 serves it in etcd 3.4.23 and as
//! clients such as Patroni use it.
//!
//! Every route calls the very service objects the gRPC server runs (in process, through their
//! tonic traits), so the two APIs cannot answer differently; this module only translates: JSON
//! to request ([`json`]), the `Authorization` header to the `token` metadata, the answer or the
//! status back to JSON with grpc-gateway's HTTP statuses, and streams to newline-separated
//! `{"result":...}` chunks ([`streams`]).
//!
//! Owns the HTTP side of those calls. Never touches the store or the node.

pub mod json;
pub mod routes;
mod streams;

use std::sync::Arc;

use http_body_util::BodyExt;
use keelson_proto::etcdserverpb::cluster_server::Cluster;
use keelson_proto::etcdserverpb::kv_server::Kv;
use keelson_proto::etcdserverpb::lease_server::Lease;
use keelson_proto::etcdserverpb::maintenance_server::Maintenance;
use keelson_proto::v3electionpb::election_server::Election;
use keelson_proto::v3lockpb::lock_server::Lock;
use tonic::body::Body;
use tonic::codegen::{Bytes, http};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::errors::MessageTooLarge;

use self::routes::Rpc;

const APPLICATION_JSON: &str = "application/json";

/// The services the gateway calls: the same objects the gRPC server serves.
pub struct Services {
    pub kv: Arc<KvService>,
    pub lease: Arc<LeaseService>,
    pub maintenance: Arc<MaintenanceService>,
    pub cluster: Arc<ClusterService>,
    pub watch: Arc<WatchService>,
    pub lock: Arc<LockService>,
    pub election: Arc<ElectionService>,
}

/// The gateway of one server.
pub struct Gateway {
    services: Services,
    /// The largest request body, as the gRPC receive limit (`--max-request-bytes` + overhead).
    body_bytes_max: usize,
}

/// The metadata key etcd reads an auth token from.
const TOKEN_METADATA: &str = "token";

impl Gateway {
    pub fn new(services: Services, body_bytes_max: usize) -> Gateway {
        Gateway {
            services,
            body_bytes_max,
        }
    }

    /// Answers one request on a gateway path ([`routes::is_gateway_path`]).
    pub async fn handle(self: Arc<Self>, request: http::Request<Body>) -> http::Response<Body> {
        let Some(rpc) = routes::rpc(request.uri().path()) else {
            return plain(http::StatusCode::NOT_FOUND, "Not Found");
        };
        if request.method() != http::Method::POST {
            return plain(http::StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| MetadataValue::try_from(v.as_bytes()).ok());
        let body = request.into_body();
        if streams::is_stream(rpc) {
            return streams::handle(&self, rpc, token, body).await;
        }
        let bytes = match read_body(body, self.body_bytes_max).await {
            Ok(bytes) => bytes,
            Err(status) => return error(&status),
        };
        match self.unary(rpc, token, &bytes).await {
            Ok(json) => {
                let mut response = respond(http::StatusCode::OK, json);
                response.headers_mut().insert(
                    "grpc-metadata-content-type",
                    http::HeaderValue::from_static("application/grpc"),
                );
                response
            }
            Err(status) => error(&status),
        }
    }

    async fn unary(
        &self,
        rpc: Rpc,
        token: Option<MetadataValue<tonic::metadata::Ascii>>,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let services = &self.services;
        // Each arm: decode the request, call the service, write its answer.
        macro_rules! call {
            ($service:expr, $method:ident, $package:literal, $request:literal, $response:literal) => {{
                let request = json::request(concat!($package, ".", $request), body)?;
                let response = $service
                    .$method(with_token(request, token))
                    .await?
                    .into_inner();
                json::response(concat!($package, ".", $response), &response)
            }};
        }
        match rpc {
            Rpc::Range => call!(
                services.kv,
                range,
                "etcdserverpb",
                "RangeRequest",
                "RangeResponse"
            ),
            Rpc::Put => call!(
                services.kv,
                put,
                "etcdserverpb",
                "PutRequest",
                "PutResponse"
            ),
            Rpc::DeleteRange => call!(
                services.kv,
                delete_range,
                "etcdserverpb",
                "DeleteRangeRequest",
                "DeleteRangeResponse"
            ),
            Rpc::Txn => call!(
                services.kv,
                txn,
                "etcdserverpb",
                "TxnRequest",
                "TxnResponse"
            ),
            Rpc::Compact => call!(
                services.kv,
                compact,
                "etcdserverpb",
                "CompactionRequest",
                "CompactionResponse"
            ),
            Rpc::LeaseGrant => call!(
                services.lease,
                lease_grant,
                "etcdserverpb",
                "LeaseGrantRequest",
                "LeaseGrantResponse"
            ),
            Rpc::LeaseRevoke => call!(
                services.lease,
                lease_revoke,
                "etcdserverpb",
                "LeaseRevokeRequest",
                "LeaseRevokeResponse"
            ),
            Rpc::LeaseTimeToLive => call!(
                services.lease,
                lease_time_to_live,
                "etcdserverpb",
                "LeaseTimeToLiveRequest",
                "LeaseTimeToLiveResponse"
            ),
            Rpc::LeaseLeases => call!(
                services.lease,
                lease_leases,
                "etcdserverpb",
                "LeaseLeasesRequest",
                "LeaseLeasesResponse"
            ),
            Rpc::MemberAdd => call!(
                services.cluster,
                member_add,
                "etcdserverpb",
                "MemberAddRequest",
                "MemberAddResponse"
            ),
            Rpc::MemberRemove => call!(
                services.cluster,
                member_remove,
                "etcdserverpb",
                "MemberRemoveRequest",
                "MemberRemoveResponse"
            ),
            Rpc::MemberUpdate => call!(
                services.cluster,
                member_update,
                "etcdserverpb",
                "MemberUpdateRequest",
                "MemberUpdateResponse"
            ),
            Rpc::MemberList => call!(
                services.cluster,
                member_list,
                "etcdserverpb",
                "MemberListRequest",
                "MemberListResponse"
            ),
            Rpc::MemberPromote => call!(
                services.cluster,
                member_promote,
                "etcdserverpb",
                "MemberPromoteRequest",
                "MemberPromoteResponse"
            ),
            Rpc::Alarm => call!(
                services.maintenance,
                alarm,
                "etcdserverpb",
                "AlarmRequest",
                "AlarmResponse"
            ),
            Rpc::Status => call!(
                services.maintenance,
                status,
                "etcdserverpb",
                "StatusRequest",
                "StatusResponse"
            ),
            Rpc::Defragment => call!(
                services.maintenance,
                defragment,
                "etcdserverpb",
                "DefragmentRequest",
                "DefragmentResponse"
            ),
            Rpc::Hash => call!(
                services.maintenance,
                hash,
                "etcdserverpb",
                "HashRequest",
                "HashResponse"
            ),
            Rpc::MoveLeader => call!(
                services.maintenance,
                move_leader,
                "etcdserverpb",
                "MoveLeaderRequest",
                "MoveLeaderResponse"
            ),
            // Keelson serves no Auth service yet; its gRPC answer is tonic's for an unknown
            // service, and the gateway gives the same.
            Rpc::Auth(_) => Err(Status::unimplemented("")),
            Rpc::Lock => call!(
                services.lock,
                lock,
                "v3lockpb",
                "LockRequest",
                "LockResponse"
            ),
            Rpc::Unlock => call!(
                services.lock,
                unlock,
                "v3lockpb",
                "UnlockRequest",
                "UnlockResponse"
            ),
            Rpc::Campaign => call!(
                services.election,
                campaign,
                "v3electionpb",
                "CampaignRequest",
                "CampaignResponse"
            ),
            Rpc::Proclaim => call!(
                services.election,
                proclaim,
                "v3electionpb",
                "ProclaimRequest",
                "ProclaimResponse"
            ),
            Rpc::Leader => call!(
                services.election,
                leader,
                "v3electionpb",
                "LeaderRequest",
                "LeaderResponse"
            ),
            Rpc::Resign => call!(
                services.election,
                resign,
                "v3electionpb",
                "ResignRequest",
                "ResignResponse"
            ),
            Rpc::Watch | Rpc::LeaseKeepAlive | Rpc::Snapshot | Rpc::Observe => {
                unreachable!("streams are answered by streams::handle")
            }
        }
    }
}

/// `message` as a request carrying the caller's token, as etcd's gateway forwards it.
fn with_token<T>(message: T, token: Option<MetadataValue<tonic::metadata::Ascii>>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert(TOKEN_METADATA, token);
    }
    request
}

/// The whole request body, refused past `limit` bytes as the gRPC server refuses a message.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Status> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(crate::api::status::too_large_status(MessageTooLarge {
                size: limit as u64 + 1,
                limit: limit as u64,
            }))
        }
        Err(e) => Err(Status::invalid_argument(e.to_string())),
    }
}

fn respond(status: http::StatusCode, body: Vec<u8>) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(APPLICATION_JSON),
    );
    response
}

/// A failed call: grpc-gateway's error body and HTTP status.
fn error(status: &Status) -> http::Response<Body> {
    let code = http::StatusCode::from_u16(json::http_status(status.code()))
        .expect("grpc-gateway's statuses are valid");
    respond(code, json::error_body(status))
}

/// Go's `http.Error`, as grpc-gateway answers an unknown path or method.
fn plain(status: http::StatusCode, text: &str) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(
        format!("{text}\n"),
    ))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    response
}
