//! The etcd v3 wire protocol as Rust types.
//!
//! This crate owns Keelson's protobuf definitions and nothing else: the
//! `.proto` files under `proto/etcd/` (etcd v3.4.23's client API plus the
//! wire-compatible v3.5 additions listed at the top of `rpc.proto`), the
//! prost messages generated from them, and the tonic client and server
//! scaffolding for the six etcd services and the Lock and Election services. Behaviour lives elsewhere; servers
//! implement the generated `*_server` traits.
//!
//! Module names match the protobuf packages so generated cross-package paths
//! (`super::mvccpb::KeyValue`) resolve, and so the gRPC service names are
//! exactly etcd's (`etcdserverpb.KV`, `etcdserverpb.Watch`, ...), which real
//! etcd clients require.

/// Storage records shared by KV and Watch: `KeyValue` and `Event`.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Auth records: users, roles and permissions.
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// The client API: request and response messages, plus a `*_client` and
/// `*_server` module per service.
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// Keelson's peer protocol: Raft messages, snapshots and forwarded lease calls between members
/// of one cluster (`proto/keelson/peer.proto`).
pub mod keelsonpeerpb {
    include!(concat!(env!("OUT_DIR"), "/keelsonpeerpb.rs"));
}

/// etcd's Lock service (`v3lockpb`).
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// etcd's Election service (`v3electionpb`).
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of every file in this crate,
/// dependencies included, with source comments.
///
/// gRPC server reflection and a JSON gateway both need descriptors at run
/// time; embedding them at build time keeps those in sync with the types.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
