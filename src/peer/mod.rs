//! The peer transport: how the members of a cluster talk to each other on `--listen-peer-urls`
//! (Keelson's own protocol, `proto/keelson/peer.proto`, gRPC on the same runtime as the client
//! API).
//!
//! - [`links`]: outbound, one append stream and one priority stream per member, batching,
//!   back-pressure, reconnect with backoff; the node's [`Transport`](crate::node::transport).
//! - [`service`]: inbound, the `Peer` service: the cluster-id check, messages to the node, the
//!   lease calls the leader answers for its followers.
//! - [`snapshot`]: Raft snapshots streamed from a store view and built into a file.
//! - [`forward`]: a follower's lease calls to its leader.
//! - [`wire`]: the identity metadata and raft-rs's message encoding.
//!
//! Never: decides anything about Raft; the node gives messages to send and takes what arrives.

pub mod forward;
pub mod links;
pub mod service;
pub mod snapshot;
pub mod wire;

pub use forward::Forwarder;
pub use links::PeerTransport;
pub use service::PeerService;
