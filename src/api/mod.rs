//! The etcd v3 gRPC API over a node: tonic services, the listeners and the serving loop.
//!
//! - [`kv`]: Range from a store view, writes proposed through the node.
//! - [`maintenance`], [`cluster`]: Status, Alarm, HashKV and MemberList; other calls
//!   UNIMPLEMENTED.
//! - [`lease`]: grant and revoke through the node, keep-alive and reads from its lessor.
//! - [`lock`], [`election`]: etcd's Lock and Election services over [`local`], the in-process
//!   client of the KV, Lease and Watch code.
//! - [`watch`]: the Watch stream over the node's watch hub; [`watch_wire`]: its codec and route.
//! - Auth is not served yet: tonic answers UNIMPLEMENTED for every call of a
//!   service that is not registered, which is exactly what they must answer for now.
//! - [`quota`]: the space quota checked before proposing a write (raises NOSPACE).
//! - [`status`]: the only conversion of Keelson's errors into gRPC statuses.
//! - [`size_limit`]: grpc-go's receive limit; [`threads`]: the pinned gRPC runtime.
//! - [`authority`]: accepts any HTTP/2 `:authority` from clients, as etcd does.
//! - [`gateway`]: etcd's JSON gateway (`/v3/...`) over the same service objects.
//! - [`http`]: etcd's `/health`, `/version` and `/metrics` over HTTP/1.1, on the client URLs and
//!   on `--listen-metrics-urls`.
//!
//! This module must never touch the store except through the node, and never answer a client
//! before the node has applied what it asked for.

pub mod authority;
pub mod cluster;
pub mod election;
pub mod gateway;
pub mod header;
pub mod http;
pub mod kv;
pub mod lease;
pub mod local;
pub mod lock;
pub mod maintenance;
pub mod quota;
pub mod size_limit;
pub mod status;
pub mod threads;
pub mod watch;
pub mod watch_wire;

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use keelson_proto::etcdserverpb::cluster_server::ClusterServer;
use keelson_proto::etcdserverpb::kv_server::KvServer;
use keelson_proto::etcdserverpb::lease_server::LeaseServer;
use keelson_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use keelson_proto::v3electionpb::election_server::ElectionServer;
use keelson_proto::v3lockpb::lock_server::LockServer;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, Url};
use crate::errors::GRPC_OVERHEAD_BYTES;
use crate::metrics::grpc::GrpcMetricsLayer;
use crate::node::NodeHandle;
use crate::server::apply::Limits;

use self::authority::AuthorityFix;
use self::cluster::ClusterService;
use self::election::ElectionService;
use self::gateway::{Gateway, Services};
use self::http::{Endpoints, HttpLayer};
use self::kv::KvService;
use self::lease::LeaseService;
use self::local::LocalClient;
use self::lock::LockService;
use self::maintenance::MaintenanceService;
use self::size_limit::SizeLimit;
use self::watch::WatchService;
use self::watch_wire::WatchServer;

/// Why the API could not be served.
#[derive(Debug)]
pub enum ServeError {
    /// A `--listen-client-urls` entry Keelson cannot listen on.
    Url(String),
    /// Binding or serving failed.
    Io(String),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Url(m) | ServeError::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ServeError {}

/// The socket address a client URL listens on. Only http: TLS is not supported yet, and an https
/// URL is refused rather than served in clear text.
pub fn listen_addr(url: &Url) -> Result<SocketAddr, ServeError> {
    if url.scheme.is_tls() {
        return Err(ServeError::Url(format!(
            "keelson: cannot listen on {url}: TLS (https) client URLs are not supported yet"
        )));
    }
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| ServeError::Url(format!("keelson: cannot resolve {url}: {e}")))?
        .collect();
    // Like Go's net.Listen, a name that resolves to several addresses listens on the first IPv4.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| ServeError::Url(format!("keelson: {url} resolves to no address")))
}

/// How long requests in flight at shutdown get to be answered before their connections close.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// The bound client, metrics and peer listeners, ready to serve.
pub struct Listeners {
    incomings: Vec<TcpIncoming>,
    metrics: Vec<TcpIncoming>,
    peers: Vec<TcpIncoming>,
}

/// Binds every `--listen-client-urls` entry. Called before the node starts, so a bad URL or a
/// port in use fails the start before anything touches the data dir. Must run inside the gRPC
/// runtime.
pub fn bind(config: &Config) -> Result<Listeners, ServeError> {
    let bind_all = |urls: &[Url]| -> Result<Vec<TcpIncoming>, ServeError> {
        let mut incomings = Vec::new();
        for url in urls {
            let addr = listen_addr(url)?;
            let incoming = TcpIncoming::bind(addr)
                .map_err(|e| ServeError::Io(format!("keelson: listen on {url}: {e}")))?
                // Requests are small and latency-bound: never wait to coalesce a response.
                .with_nodelay(Some(true));
            incomings.push(incoming);
        }
        Ok(incomings)
    };
    Ok(Listeners {
        incomings: bind_all(&config.listen_client_urls)?,
        metrics: bind_all(&config.listen_metrics_urls)?,
        peers: bind_all(&config.listen_peer_urls)?,
    })
}

/// Serves the API on `listeners` until `shutdown` completes. Must run inside the gRPC runtime.
pub async fn serve(
    node: NodeHandle,
    config: &Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let limits = Limits {
        max_txn_ops: usize::try_from(config.max_txn_ops).unwrap_or(usize::MAX),
        max_request_bytes: usize::try_from(config.max_request_bytes).unwrap_or(usize::MAX),
    };
    let receive_limit = config.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES);
    // tonic's own check stays as a backstop at the same size; SizeLimit answers first, with
    // grpc-go's message.
    let tonic_limit = usize::try_from(receive_limit).unwrap_or(usize::MAX);
    let quota = quota::Quota::new(node.clone(), config.quota_backend_bytes);
    // One object per service, shared by the gRPC server and the JSON gateway.
    let kv = Arc::new(KvService::new(node.clone(), limits, quota.clone()));
    let forwarder = Arc::new(crate::peer::Forwarder::new(
        node.clone(),
        crate::node::config::request_timeout(config.election_timeout),
    ));
    let lease = Arc::new(LeaseService::new(node.clone(), quota.clone(), forwarder));
    let local = LocalClient::new(node.clone(), kv.clone(), lease.clone());
    let services = Services {
        kv,
        lease,
        maintenance: Arc::new(MaintenanceService::new(node.clone())),
        cluster: Arc::new(ClusterService::new(node.clone())),
        watch: Arc::new(WatchService::new(
            node.clone(),
            config.watch_progress_notify_interval,
            limits.max_request_bytes,
        )),
        lock: Arc::new(LockService::new(local.clone())),
        election: Arc::new(ElectionService::new(local)),
    };
    let kv = KvServer::from_arc(services.kv.clone()).max_decoding_message_size(tonic_limit);
    let maintenance = MaintenanceServer::from_arc(services.maintenance.clone())
        .max_decoding_message_size(tonic_limit);
    let watch = WatchServer::from_arc(services.watch.clone(), tonic_limit);
    let lease =
        LeaseServer::from_arc(services.lease.clone()).max_decoding_message_size(tonic_limit);
    let lock = LockServer::from_arc(services.lock.clone()).max_decoding_message_size(tonic_limit);
    let election =
        ElectionServer::from_arc(services.election.clone()).max_decoding_message_size(tonic_limit);
    let cluster =
        ClusterServer::from_arc(services.cluster.clone()).max_decoding_message_size(tonic_limit);
    let gateway = Arc::new(Gateway::new(services, tonic_limit));
    // Both servers stop on the same shutdown.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = (!listeners.metrics.is_empty()).then(|| {
        let server = Server::builder()
            .accept_http1(true)
            .layer(HttpLayer::new(node.clone(), Endpoints::Metrics))
            .add_routes(Routes::default())
            .serve_with_incoming_shutdown(
                stream::select_all(listeners.metrics.into_iter().map(|i| i.boxed())),
                async {
                    let _ = metrics_stopped.await;
                },
            );
        tokio::spawn(server)
    });
    // Other members, on the peer URLs: stop with the rest.
    let (stop_peers, peers_stopped) = tokio::sync::oneshot::channel::<()>();
    let peer_service = keelson_proto::keelsonpeerpb::peer_server::PeerServer::new(
        crate::peer::PeerService::new(node.clone()),
    )
    .max_decoding_message_size(crate::peer::links::PEER_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(crate::peer::links::PEER_MESSAGE_BYTES_MAX);
    let peers = tokio::spawn(
        Server::builder()
            .add_service(peer_service)
            .serve_with_incoming_shutdown(
                stream::select_all(listeners.peers.into_iter().map(|i| i.boxed())),
                async {
                    let _ = peers_stopped.await;
                },
            ),
    );
    let keepalive = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    // Once `shutdown` fires, requests in flight get SHUTDOWN_GRACE to be answered; then the
    // connections still open (watch and keep-alive streams, slow calls) are dropped, which
    // fails their calls at the client instead of holding the exit for them.
    let (signalled, stopping) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let graceful = Server::builder()
        // HTTP/1.1 beside HTTP/2 for etcd's `/health`, `/version`, `/metrics` and `/v3/...`.
        .accept_http1(true)
        .http2_keepalive_interval(keepalive(config.grpc_keepalive_interval))
        .http2_keepalive_timeout(keepalive(config.grpc_keepalive_timeout))
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        .layer(HttpLayer::new(node, Endpoints::Client).with_gateway(gateway))
        .layer(GrpcMetricsLayer)
        .add_service(SizeLimit::new(kv, receive_limit))
        .add_service(SizeLimit::new(maintenance, receive_limit))
        .add_service(SizeLimit::new(cluster, receive_limit))
        .add_service(SizeLimit::new(lease, receive_limit))
        .add_service(SizeLimit::new(watch, receive_limit))
        .add_service(SizeLimit::new(lock, receive_limit))
        .add_service(SizeLimit::new(election, receive_limit))
        .serve_with_incoming_shutdown(
            stream::select_all(
                listeners
                    .incomings
                    .into_iter()
                    .map(|i| i.map(|accepted| accepted.map(AuthorityFix::new)).boxed()),
            ),
            shutdown,
        );
    let served = tokio::select! {
        served = graceful => served,
        _ = async {
            let _ = stopping.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
    .map_err(|e| ServeError::Io(format!("keelson: serving the client API: {e}")));
    let _ = stop_metrics.send(());
    let _ = stop_peers.send(());
    // Members keep their streams open: not waited for past the grace.
    match tokio::time::timeout(SHUTDOWN_GRACE, peers)
        .await
        .unwrap_or(Ok(Ok(())))
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(ServeError::Io(format!(
                "keelson: serving the peer URLs: {e}"
            )));
        }
        Err(e) => {
            return Err(ServeError::Io(format!(
                "keelson: serving the peer URLs: {e}"
            )));
        }
    }
    if let Some(metrics) = metrics {
        // Its scrapes are short; a connection left open is not waited for.
        let metrics = tokio::time::timeout(SHUTDOWN_GRACE, metrics);
        let Ok(metrics) = metrics.await else {
            return served;
        };
        match metrics {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(ServeError::Io(format!(
                    "keelson: serving the metrics URLs: {e}"
                )));
            }
            Err(e) => {
                return Err(ServeError::Io(format!(
                    "keelson: serving the metrics URLs: {e}"
                )));
            }
        }
    }
    served
}
