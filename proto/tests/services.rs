//! Checks the embedded descriptor set for the exact gRPC surface etcd
//! clients call: package, service and method names, request and response
//! types, and which side of each RPC streams.
//!
//! Clients build request paths as "/<package>.<Service>/<Method>", so a
//! misspelt name or a lost `stream` keyword breaks them with UNIMPLEMENTED or
//! a framing error, not with anything the compiler could catch.

use std::collections::BTreeMap;

use keelson_proto::FILE_DESCRIPTOR_SET;
use prost::Message;

// Just enough of google/protobuf/descriptor.proto to read services back.
// Field numbers are descriptor.proto's; everything else is skipped as
// unknown.

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceDescriptorProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct MethodDescriptorProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    input_type: String,
    #[prost(string, tag = "3")]
    output_type: String,
    #[prost(bool, tag = "5")]
    client_streaming: bool,
    #[prost(bool, tag = "6")]
    server_streaming: bool,
}

/// How an RPC streams, from the client's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Unary,
    ServerStream,
    Bidi,
}

/// One expected RPC: full service name, method, request and response
/// message (without the package), and streaming shape.
type Rpc = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Shape,
);

#[rustfmt::skip]
const EXPECTED: &[Rpc] = &[
    ("etcdserverpb.KV", "Range", "RangeRequest", "RangeResponse", Shape::Unary),
    ("etcdserverpb.KV", "Put", "PutRequest", "PutResponse", Shape::Unary),
    ("etcdserverpb.KV", "DeleteRange", "DeleteRangeRequest", "DeleteRangeResponse", Shape::Unary),
    ("etcdserverpb.KV", "Txn", "TxnRequest", "TxnResponse", Shape::Unary),
    ("etcdserverpb.KV", "Compact", "CompactionRequest", "CompactionResponse", Shape::Unary),

    ("etcdserverpb.Watch", "Watch", "WatchRequest", "WatchResponse", Shape::Bidi),

    ("etcdserverpb.Lease", "LeaseGrant", "LeaseGrantRequest", "LeaseGrantResponse", Shape::Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", "LeaseRevokeRequest", "LeaseRevokeResponse", Shape::Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "LeaseKeepAliveRequest", "LeaseKeepAliveResponse", Shape::Bidi),
    ("etcdserverpb.Lease", "LeaseTimeToLive", "LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse", Shape::Unary),
    ("etcdserverpb.Lease", "LeaseLeases", "LeaseLeasesRequest", "LeaseLeasesResponse", Shape::Unary),

    ("etcdserverpb.Cluster", "MemberAdd", "MemberAddRequest", "MemberAddResponse", Shape::Unary),
    ("etcdserverpb.Cluster", "MemberRemove", "MemberRemoveRequest", "MemberRemoveResponse", Shape::Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", "MemberUpdateRequest", "MemberUpdateResponse", Shape::Unary),
    ("etcdserverpb.Cluster", "MemberList", "MemberListRequest", "MemberListResponse", Shape::Unary),
    ("etcdserverpb.Cluster", "MemberPromote", "MemberPromoteRequest", "MemberPromoteResponse", Shape::Unary),

    ("etcdserverpb.Maintenance", "Alarm", "AlarmRequest", "AlarmResponse", Shape::Unary),
    ("etcdserverpb.Maintenance", "Status", "StatusRequest", "StatusResponse", Shape::Unary),
    ("etcdserverpb.Maintenance", "Defragment", "DefragmentRequest", "DefragmentResponse", Shape::Unary),
    ("etcdserverpb.Maintenance", "Hash", "HashRequest", "HashResponse", Shape::Unary),
    ("etcdserverpb.Maintenance", "HashKV", "HashKVRequest", "HashKVResponse", Shape::Unary),
    ("etcdserverpb.Maintenance", "Snapshot", "SnapshotRequest", "SnapshotResponse", Shape::ServerStream),
    ("etcdserverpb.Maintenance", "MoveLeader", "MoveLeaderRequest", "MoveLeaderResponse", Shape::Unary),

    ("etcdserverpb.Auth", "AuthEnable", "AuthEnableRequest", "AuthEnableResponse", Shape::Unary),
    ("etcdserverpb.Auth", "AuthDisable", "AuthDisableRequest", "AuthDisableResponse", Shape::Unary),
    ("etcdserverpb.Auth", "AuthStatus", "AuthStatusRequest", "AuthStatusResponse", Shape::Unary),
    ("etcdserverpb.Auth", "Authenticate", "AuthenticateRequest", "AuthenticateResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserAdd", "AuthUserAddRequest", "AuthUserAddResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserGet", "AuthUserGetRequest", "AuthUserGetResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserList", "AuthUserListRequest", "AuthUserListResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserDelete", "AuthUserDeleteRequest", "AuthUserDeleteResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserChangePassword", "AuthUserChangePasswordRequest", "AuthUserChangePasswordResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserGrantRole", "AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse", Shape::Unary),
    ("etcdserverpb.Auth", "UserRevokeRole", "AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse", Shape::Unary),
    ("etcdserverpb.Auth", "RoleAdd", "AuthRoleAddRequest", "AuthRoleAddResponse", Shape::Unary),
    ("etcdserverpb.Auth", "RoleGet", "AuthRoleGetRequest", "AuthRoleGetResponse", Shape::Unary),
    ("etcdserverpb.Auth", "RoleList", "AuthRoleListRequest", "AuthRoleListResponse", Shape::Unary),
    ("etcdserverpb.Auth", "RoleDelete", "AuthRoleDeleteRequest", "AuthRoleDeleteResponse", Shape::Unary),
    ("etcdserverpb.Auth", "RoleGrantPermission", "AuthRoleGrantPermissionRequest", "AuthRoleGrantPermissionResponse", Shape::Unary),
    ("etcdserverpb.Auth", "RoleRevokePermission", "AuthRoleRevokePermissionRequest", "AuthRoleRevokePermissionResponse", Shape::Unary),

    ("v3lockpb.Lock", "Lock", "LockRequest", "LockResponse", Shape::Unary),
    ("v3lockpb.Lock", "Unlock", "UnlockRequest", "UnlockResponse", Shape::Unary),

    ("v3electionpb.Election", "Campaign", "CampaignRequest", "CampaignResponse", Shape::Unary),
    ("v3electionpb.Election", "Proclaim", "ProclaimRequest", "ProclaimResponse", Shape::Unary),
    ("v3electionpb.Election", "Leader", "LeaderRequest", "LeaderResponse", Shape::Unary),
    ("v3electionpb.Election", "Observe", "LeaderRequest", "LeaderResponse", Shape::ServerStream),
    ("v3electionpb.Election", "Resign", "ResignRequest", "ResignResponse", Shape::Unary),
];

/// Every RPC in the embedded descriptor set, keyed by its gRPC path.
fn actual_rpcs() -> BTreeMap<String, (String, String, Shape)> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut rpcs = BTreeMap::new();
    // Keelson's own peer protocol is not part of etcd's API.
    for file in set.file.iter().filter(|f| f.package != "keelsonpeerpb") {
        for service in &file.service {
            for method in &service.method {
                let shape = match (method.client_streaming, method.server_streaming) {
                    (false, false) => Shape::Unary,
                    (false, true) => Shape::ServerStream,
                    (true, true) => Shape::Bidi,
                    (true, false) => panic!("no etcd RPC streams only from the client"),
                };
                let path = format!("/{}.{}/{}", file.package, service.name, method.name);
                let value = (method.input_type.clone(), method.output_type.clone(), shape);
                assert!(rpcs.insert(path.clone(), value).is_none(), "{path} twice");
            }
        }
    }
    rpcs
}

#[test]
fn every_etcd_rpc_is_present_with_its_types_and_streaming() {
    let mut actual = actual_rpcs();
    for &(service, method, input, output, shape) in EXPECTED {
        let path = format!("/{service}/{method}");
        let (got_in, got_out, got_shape) = actual
            .remove(&path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        let package = service.split('.').next().unwrap();
        assert_eq!(got_in, format!(".{package}.{input}"), "{path} request");
        assert_eq!(got_out, format!(".{package}.{output}"), "{path} response");
        assert_eq!(got_shape, shape, "{path} streaming");
    }
    // Anything left over is an RPC etcd 3.4 does not define; in particular
    // 3.5's Maintenance.Downgrade is deliberately absent (see rpc.proto).
    assert!(actual.is_empty(), "unexpected RPCs: {:?}", actual.keys());
}

#[test]
fn descriptor_set_holds_the_etcd_packages_and_the_peer_protocol() {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut packages: Vec<&str> = set.file.iter().map(|f| f.package.as_str()).collect();
    packages.sort_unstable();
    assert_eq!(
        packages,
        [
            "authpb",
            "etcdserverpb",
            "keelsonpeerpb",
            "mvccpb",
            "v3electionpb",
            "v3lockpb"
        ]
    );
}

#[test]
fn generated_service_names_match_the_descriptor() {
    // The tonic servers route on these constants, independently of the
    // descriptor set; both must agree with etcd.
    use keelson_proto::etcdserverpb::{
        auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
    };
    assert_eq!(kv_server::SERVICE_NAME, "etcdserverpb.KV");
    assert_eq!(watch_server::SERVICE_NAME, "etcdserverpb.Watch");
    assert_eq!(lease_server::SERVICE_NAME, "etcdserverpb.Lease");
    assert_eq!(cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
    assert_eq!(maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance");
    assert_eq!(auth_server::SERVICE_NAME, "etcdserverpb.Auth");
}
