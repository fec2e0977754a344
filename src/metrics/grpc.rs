//! The `grpc_server_*` families of go-grpc-prometheus, as etcd exports them: calls started and
//! handled (by code), messages received and sent, labelled `grpc_service`, `grpc_method`,
//! `grpc_type` (and `grpc_code`); with `--metrics extensive`, the handling-time histogram.
//! Every known method's series exist from the start at zero, as etcd initializes them.
//!
//! A tower layer on the gRPC server counts: for a unary call, one message each way and the
//! code from the response headers (tonic answers errors as trailers-only responses, success
//! with OK in the trailers); a streaming call's bodies are wrapped to count messages by their
//! 5-byte gRPC frame headers and read the code from the trailers. Per call: a path lookup and
//! atomic additions; only streams allocate (their body wrappers, once per stream).
//!
//! Owns: those families and the layer. Never: changes a request or a response.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tower_layer::Layer;

type Labels = Vec<(&'static str, &'static str)>;

/// How a method streams, as go-grpc-prometheus names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl CallType {
    fn label(self) -> &'static str {
        match self {
            CallType::Unary => "unary",
            CallType::ClientStream => "client_stream",
            CallType::ServerStream => "server_stream",
            CallType::BidiStream => "bidi_stream",
        }
    }

    fn streams_requests(self) -> bool {
        matches!(self, CallType::ClientStream | CallType::BidiStream)
    }

    fn streams_responses(self) -> bool {
        matches!(self, CallType::ServerStream | CallType::BidiStream)
    }
}

use CallType::{BidiStream, ServerStream, Unary};

/// Every method of the services etcd 3.4 serves on its client URLs.
const METHODS: &[(&str, &str, CallType)] = &[
    ("etcdserverpb.KV", "Range", Unary),
    ("etcdserverpb.KV", "Put", Unary),
    ("etcdserverpb.KV", "DeleteRange", Unary),
    ("etcdserverpb.KV", "Txn", Unary),
    ("etcdserverpb.KV", "Compact", Unary),
    ("etcdserverpb.Watch", "Watch", BidiStream),
    ("etcdserverpb.Lease", "LeaseGrant", Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", BidiStream),
    ("etcdserverpb.Lease", "LeaseTimeToLive", Unary),
    ("etcdserverpb.Lease", "LeaseLeases", Unary),
    ("etcdserverpb.Cluster", "MemberAdd", Unary),
    ("etcdserverpb.Cluster", "MemberRemove", Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", Unary),
    ("etcdserverpb.Cluster", "MemberList", Unary),
    ("etcdserverpb.Cluster", "MemberPromote", Unary),
    ("etcdserverpb.Maintenance", "Alarm", Unary),
    ("etcdserverpb.Maintenance", "Status", Unary),
    ("etcdserverpb.Maintenance", "Defragment", Unary),
    ("etcdserverpb.Maintenance", "Hash", Unary),
    ("etcdserverpb.Maintenance", "HashKV", Unary),
    ("etcdserverpb.Maintenance", "Snapshot", ServerStream),
    ("etcdserverpb.Maintenance", "MoveLeader", Unary),
    ("etcdserverpb.Auth", "AuthEnable", Unary),
    ("etcdserverpb.Auth", "AuthDisable", Unary),
    ("etcdserverpb.Auth", "Authenticate", Unary),
    ("etcdserverpb.Auth", "UserAdd", Unary),
    ("etcdserverpb.Auth", "UserGet", Unary),
    ("etcdserverpb.Auth", "UserList", Unary),
    ("etcdserverpb.Auth", "UserDelete", Unary),
    ("etcdserverpb.Auth", "UserChangePassword", Unary),
    ("etcdserverpb.Auth", "UserGrantRole", Unary),
    ("etcdserverpb.Auth", "UserRevokeRole", Unary),
    ("etcdserverpb.Auth", "RoleAdd", Unary),
    ("etcdserverpb.Auth", "RoleGet", Unary),
    ("etcdserverpb.Auth", "RoleList", Unary),
    ("etcdserverpb.Auth", "RoleDelete", Unary),
    ("etcdserverpb.Auth", "RoleGrantPermission", Unary),
    ("etcdserverpb.Auth", "RoleRevokePermission", Unary),
    ("v3lockpb.Lock", "Lock", Unary),
    ("v3lockpb.Lock", "Unlock", Unary),
    ("v3electionpb.Election", "Campaign", Unary),
    ("v3electionpb.Election", "Proclaim", Unary),
    ("v3electionpb.Election", "Leader", Unary),
    ("v3electionpb.Election", "Observe", ServerStream),
    ("v3electionpb.Election", "Resign", Unary),
    ("grpc.health.v1.Health", "Check", Unary),
    ("grpc.health.v1.Health", "Watch", ServerStream),
];

/// gRPC's codes by number, as go-grpc-prometheus names them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CODE_CANCELED: usize = 1;
const CODE_UNKNOWN: usize = 2;

/// The series of one method, created at startup.
struct MethodCounters {
    call_type: CallType,
    started: Counter,
    received: Counter,
    sent: Counter,
    handled: [Counter; 17],
    handling_seconds: Option<Histogram>,
}

/// The `grpc_server_*` families.
pub struct GrpcMetrics {
    started: Family<Labels, Counter>,
    handled: Family<Labels, Counter>,
    received: Family<Labels, Counter>,
    sent: Family<Labels, Counter>,
    handling_seconds: Family<Labels, Histogram>,
}

impl GrpcMetrics {
    pub(super) fn register(registry: &mut Registry) -> GrpcMetrics {
        let metrics = GrpcMetrics {
            started: Family::default(),
            handled: Family::default(),
            received: Family::default(),
            sent: Family::default(),
            handling_seconds: Family::new_with_constructor(|| {
                Histogram::new(HANDLING_SECONDS_BUCKETS)
            }),
        };
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            metrics.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            metrics.handled.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            metrics.received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            metrics.sent.clone(),
        );
        if super::extensive() {
            registry.register(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
                metrics.handling_seconds.clone(),
            );
        }
        metrics
    }
}

/// Prometheus's default buckets, which go-grpc-prometheus uses.
const HANDLING_SECONDS_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The client API versions whose `etcd_server_client_requests_total` series are made at
/// startup; any other version is counted as `unknown`.
const CLIENT_API_VERSIONS: [&str; 8] = ["3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "unknown"];

/// The per-method series by path (`/etcdserverpb.KV/Range`), built once.
struct Table {
    by_path: HashMap<String, MethodCounters>,
    extensive: bool,
    /// `[unary, stream]` per entry of [`CLIENT_API_VERSIONS`].
    client_requests: Vec<[Counter; 2]>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let metrics = &super::get().grpc;
    let extensive = super::extensive();
    let by_path = METHODS
        .iter()
        .map(|&(service, method, call_type)| {
            let labels: Labels = vec![
                ("grpc_method", method),
                ("grpc_service", service),
                ("grpc_type", call_type.label()),
            ];
            let with_code = |code: &'static str| {
                let mut l = vec![("grpc_code", code)];
                l.extend(labels.iter().copied());
                l
            };
            let counters = MethodCounters {
                call_type,
                started: metrics.started.get_or_create(&labels).clone(),
                received: metrics.received.get_or_create(&labels).clone(),
                sent: metrics.sent.get_or_create(&labels).clone(),
                handled: CODES.map(|code| metrics.handled.get_or_create(&with_code(code)).clone()),
                handling_seconds: extensive
                    .then(|| metrics.handling_seconds.get_or_create(&labels).clone()),
            };
            (format!("/{service}/{method}"), counters)
        })
        .collect();
    let family = &super::server().client_requests;
    let client_requests = CLIENT_API_VERSIONS
        .iter()
        .map(|version| {
            ["unary", "stream"].map(|kind| {
                let labels = vec![
                    ("client_api_version", version.to_string()),
                    ("type", kind.to_string()),
                ];
                family.get_or_create(&labels).clone()
            })
        })
        .collect();
    Table {
        by_path,
        extensive,
        client_requests,
    }
});

/// Creates every method's series now, so a scrape before the first call shows them at zero.
pub fn initialize() {
    LazyLock::force(&TABLE);
}

fn lookup(path: &str) -> Option<&'static MethodCounters> {
    TABLE.by_path.get(path)
}

/// The gRPC status code of a `grpc-status` header value.
fn code_index(value: Option<&http::HeaderValue>) -> Option<usize> {
    let code: usize = value?.to_str().ok()?.parse().ok()?;
    Some(if code < CODES.len() {
        code
    } else {
        CODE_UNKNOWN
    })
}

/// The layer counting calls on the gRPC server.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for Counted<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(method) = lookup(request.uri().path()) else {
            return CountedFuture {
                inner: self.inner.call(request),
                method: None,
                started: None,
            };
        };
        method.started.inc();
        let version = request
            .headers()
            .get("client-api-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| CLIENT_API_VERSIONS.iter().position(|known| *known == v))
            .unwrap_or(CLIENT_API_VERSIONS.len() - 1);
        TABLE.client_requests[version][usize::from(method.call_type != Unary)].inc();
        let request = if method.call_type.streams_requests() {
            request.map(|body| {
                Body::new(MessageCounting {
                    inner: body,
                    frames: FrameCounter::default(),
                    method,
                    direction: Direction::Received,
                    status: None,
                    started: None,
                })
            })
        } else {
            method.received.inc();
            request
        };
        CountedFuture {
            inner: self.inner.call(request),
            method: Some(method),
            started: TABLE.extensive.then(Instant::now),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct CountedFuture<F> {
        #[pin]
        inner: F,
        method: Option<&'static MethodCounters>,
        started: Option<Instant>,
    }
}

impl<F, E> Future for CountedFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let Some(method) = *this.method else {
            return Poll::Ready(result);
        };
        let started = *this.started;
        let Ok(response) = result else {
            method.handled[CODE_UNKNOWN].inc();
            return Poll::Ready(result);
        };
        // A trailers-only answer carries its status in the headers: no message was sent.
        if let Some(code) = code_index(response.headers().get("grpc-status")) {
            finish(method, code, started);
            return Poll::Ready(Ok(response));
        }
        if !method.call_type.streams_responses() {
            method.sent.inc();
            finish(method, 0, started);
            return Poll::Ready(Ok(response));
        }
        Poll::Ready(Ok(response.map(|body| {
            Body::new(MessageCounting {
                inner: body,
                frames: FrameCounter::default(),
                method,
                direction: Direction::Sent,
                status: None,
                started,
            })
        })))
    }
}

fn finish(method: &MethodCounters, code: usize, started: Option<Instant>) {
    method.handled[code].inc();
    if let (Some(histogram), Some(started)) = (&method.handling_seconds, started) {
        histogram.observe(started.elapsed().as_secs_f64());
    }
}

/// Counts gRPC messages in a byte stream by their 5-byte headers (flag, 4-byte length).
#[derive(Clone, Copy, Debug, Default)]
struct FrameCounter {
    header: [u8; 5],
    header_len: usize,
    body_left: u64,
}

impl FrameCounter {
    /// Feeds bytes; returns the number of messages whose header completed.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut messages = 0;
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let skip = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.body_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (5 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == 5 {
                messages += 1;
                let length = [
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ];
                self.body_left = u64::from(u32::from_be_bytes(length));
                self.header_len = 0;
            }
        }
        messages
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Received,
    Sent,
}

pin_project_lite::pin_project! {
    /// A streaming body whose messages are counted; a sent one also records the call's code
    /// from its trailers (or Canceled when dropped before them).
    struct MessageCounting {
        #[pin]
        inner: Body,
        frames: FrameCounter,
        method: &'static MethodCounters,
        direction: Direction,
        status: Option<usize>,
        started: Option<Instant>,
    }

    impl PinnedDrop for MessageCounting {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.direction == Direction::Sent && this.status.is_none() {
                finish(this.method, CODE_CANCELED, *this.started);
            }
        }
    }
}

impl HttpBody for MessageCounting {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                let messages = this.frames.feed(data);
                let counter = match this.direction {
                    Direction::Received => &this.method.received,
                    Direction::Sent => &this.method.sent,
                };
                counter.inc_by(messages);
            } else if let Some(trailers) = frame.trailers_ref()
                && *this.direction == Direction::Sent
                && this.status.is_none()
            {
                let code = code_index(trailers.get("grpc-status")).unwrap_or(CODE_UNKNOWN);
                *this.status = Some(code);
                finish(this.method, code, *this.started);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_across_chunks() {
        let mut counter = FrameCounter::default();
        // Two messages of 3 and 0 bytes, split at awkward places.
        let stream = [0u8, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0];
        assert_eq!(counter.feed(&stream[..2]), 0);
        assert_eq!(counter.feed(&stream[2..6]), 1);
        assert_eq!(counter.feed(&stream[6..]), 1);
        assert_eq!(counter.body_left, 0);
    }

    #[test]
    fn every_method_has_every_code_at_zero() {
        initialize();
        let text = super::super::render(&super::super::Scrape::default());
        assert!(text.contains("# TYPE grpc_server_handled_total counter"));
        assert!(text.contains(
            "grpc_server_handled_total{grpc_code=\"Unimplemented\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 0"
        ));
        assert!(text.contains(
            "grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 0"
        ));
    }
}
