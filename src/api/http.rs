//! etcd's plain-HTTP endpoints beside the gRPC API: `/health`, `/version` and `/metrics` on the
//! client URLs (HTTP/1.1 on the same ports, as etcd serves them there), and `/health` and
//! `/metrics` alone on `--listen-metrics-urls`. Load balancers, monitoring and Kubernetes
//! liveness probes use them; etcdctl does not.
//!
//! Statuses, bodies and content types are etcd 3.4.23's (tests/http_endpoints.rs compares them
//! side by side). `/metrics` is etcd's metric set, from `crate::metrics`.
//!
//! This module only answers these paths, and hands `/v3/...` to the JSON gateway
//! (`api::gateway`): every other request on a client URL goes to the gRPC services untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use keelson_proto::etcdserverpb::AlarmType;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tower_layer::Layer;

use crate::api::gateway::Gateway;
use crate::api::gateway::routes::is_gateway_path;
use crate::api::maintenance::ETCD_API_VERSION;
use crate::metrics::Scrape;
use crate::node::NodeHandle;
use crate::server::alarm;

/// The cluster version `/version` and `/metrics` report: etcd reports major.minor.0.
const ETCD_CLUSTER_VERSION: &str = "3.4.0";
/// How long a linearizable health check waits for the read barrier (etcd's one second).
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    /// A client URL: the three endpoints, everything else to gRPC.
    Client,
    /// A `--listen-metrics-urls` URL: `/health` and `/metrics`, 404 for the rest.
    Metrics,
}

/// Wraps the gRPC router of one kind of listener.
#[derive(Clone)]
pub struct HttpLayer {
    node: NodeHandle,
    endpoints: Endpoints,
    gateway: Option<Arc<Gateway>>,
}

impl HttpLayer {
    pub fn new(node: NodeHandle, endpoints: Endpoints) -> HttpLayer {
        HttpLayer {
            node,
            endpoints,
            gateway: None,
        }
    }

    /// Also serves etcd's JSON gateway (`/v3/...`); client URLs only.
    pub fn with_gateway(mut self, gateway: Arc<Gateway>) -> HttpLayer {
        self.gateway = Some(gateway);
        self
    }
}

impl<S> Layer<S> for HttpLayer {
    type Service = Http<S>;

    fn layer(&self, inner: S) -> Http<S> {
        Http {
            inner,
            node: self.node.clone(),
            endpoints: self.endpoints,
            gateway: self.gateway.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Http<S> {
    inner: S,
    node: NodeHandle,
    endpoints: Endpoints,
    gateway: Option<Arc<Gateway>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for Http<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    /// gRPC calls pass through unboxed; only the endpoints' answers are boxed.
    type Future = Either<S::Future, BoxFuture<Result<http::Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(route) = route(&request, self.endpoints) else {
            return Either::Left(self.inner.call(request));
        };
        if route == Route::Gateway
            && let Some(gateway) = self.gateway.clone()
        {
            return Either::Right(Box::pin(async move {
                let mut response = gateway.handle(request).await;
                add_cors(response.headers_mut());
                Ok(response)
            }));
        }
        let node = self.node.clone();
        let endpoints = self.endpoints;
        let query = request.uri().query().map(str::to_owned);
        let method_is_get = request.method() == http::Method::GET;
        Either::Right(Box::pin(async move {
            let mut response = match route {
                Route::NotFound | Route::Gateway => {
                    error(http::StatusCode::NOT_FOUND, "404 page not found")
                }
                _ if !method_is_get => method_not_allowed(),
                Route::Health => health(&node, query.as_deref()).await,
                Route::Version => version(),
                Route::Metrics => metrics(&node),
            };
            if endpoints == Endpoints::Client {
                add_cors(response.headers_mut());
            }
            Ok(response)
        }))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Health,
    Version,
    Metrics,
    /// etcd's JSON gateway (`/v3/...`), on client URLs.
    Gateway,
    NotFound,
}

/// Which endpoint a request is for; `None`: a gRPC call for the services.
fn route(request: &http::Request<Body>, endpoints: Endpoints) -> Option<Route> {
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let path = request.uri().path();
    match (endpoints, path) {
        (Endpoints::Client, _) if is_grpc => None,
        (_, "/health") => Some(Route::Health),
        (_, "/metrics") => Some(Route::Metrics),
        (Endpoints::Client, "/version") => Some(Route::Version),
        (Endpoints::Client, path) if is_gateway_path(path) => Some(Route::Gateway),
        _ => Some(Route::NotFound),
    }
}

fn respond(status: http::StatusCode, content_type: &str, body: String) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(
        tonic::codegen::Bytes::from(body),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type).expect("a valid content type"),
    );
    response
}

/// Go's `http.Error`: the text and a newline, never sniffed.
fn error(status: http::StatusCode, text: &str) -> http::Response<Body> {
    let mut response = respond(status, TEXT_PLAIN, format!("{text}\n"));
    response.headers_mut().insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

fn method_not_allowed() -> http::Response<Body> {
    let mut response = error(http::StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
    response
}

/// The headers etcd's client handlers add to every answer.
fn add_cors(headers: &mut http::HeaderMap) {
    for (name, value) in [
        ("access-control-allow-origin", "*"),
        (
            "access-control-allow-methods",
            "POST, GET, OPTIONS, PUT, DELETE",
        ),
        (
            "access-control-allow-headers",
            "accept, content-type, authorization",
        ),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
}

/// What `/health?...` asks: alarms to ignore, and whether a local read is enough.
#[derive(Debug, Default, PartialEq, Eq)]
struct HealthQuery {
    exclude: Vec<AlarmType>,
    serializable: bool,
}

impl HealthQuery {
    fn parse(query: Option<&str>) -> HealthQuery {
        // Go's `url.Query()`: percent-decoded, `+` as a space.
        let mut parsed = HealthQuery::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "exclude" => {
                    if let Some(alarm) = AlarmType::from_str_name(&value) {
                        parsed.exclude.push(alarm);
                    }
                }
                "serializable" => parsed.serializable = value == "true",
                _ => {}
            }
        }
        parsed
    }
}

/// etcd's health check: no alarm (but the excluded ones), a leader, and a read that completes
/// within a second (linearizable unless `serializable=true`).
async fn healthy(node: &NodeHandle, query: &HealthQuery) -> bool {
    let alarms = match alarm::active(node.store().view().txn(), AlarmType::None) {
        Ok(alarms) => alarms,
        Err(_) => return false,
    };
    if alarms.iter().any(|member| {
        AlarmType::try_from(member.alarm).map_or(true, |alarm| !query.exclude.contains(&alarm))
    }) {
        return false;
    }
    if node.status().leader == 0 {
        return false;
    }
    if query.serializable {
        return true;
    }
    matches!(
        tokio::time::timeout(HEALTH_READ_TIMEOUT, node.read_index()).await,
        Ok(Ok(()))
    )
}

async fn health(node: &NodeHandle, query: Option<&str>) -> http::Response<Body> {
    if healthy(node, &HealthQuery::parse(query)).await {
        crate::metrics::server().health_success.inc();
        respond(
            http::StatusCode::OK,
            TEXT_PLAIN,
            r#"{"health":"true"}"#.to_string(),
        )
    } else {
        crate::metrics::server().health_failures.inc();
        error(
            http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"health":"false"}"#,
        )
    }
}

fn version() -> http::Response<Body> {
    respond(
        http::StatusCode::OK,
        "application/json",
        format!(r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}"}}"#),
    )
}

fn metrics(node: &NodeHandle) -> http::Response<Body> {
    let status = node.status();
    let store = node.store();
    let watch = node.watch_hub().stats();
    let scrape = Scrape {
        member_id: status.member_id,
        leader: status.leader,
        raft_index: status.raft_index,
        raft_applied_index: status.raft_applied_index,
        db_size: status.db_size,
        db_size_in_use: status.db_size_in_use,
        keys: store.key_count() as u64,
        current_revision: store.current_rev(),
        compact_revision: store.view().compact_rev(),
        watch_streams: watch.streams,
        watchers: watch.watchers,
        slow_watchers: watch.unsynced,
        pending_events: watch.pending_events,
        server_version: ETCD_API_VERSION,
        cluster_version: ETCD_CLUSTER_VERSION
            .rsplit_once('.')
            .map_or(ETCD_CLUSTER_VERSION, |(minor, _)| minor),
    };
    respond(
        http::StatusCode::OK,
        PROMETHEUS_TEXT,
        crate::metrics::render(&scrape),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, content_type: Option<&str>) -> http::Request<Body> {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        builder.body(Body::empty()).expect("a request")
    }

    #[test]
    fn routes_leave_grpc_to_the_services() {
        let grpc = request("POST", "/etcdserverpb.KV/Range", Some("application/grpc"));
        assert_eq!(route(&grpc, Endpoints::Client), None);
        let health = request("GET", "/health?exclude=NOSPACE", None);
        assert_eq!(route(&health, Endpoints::Client), Some(Route::Health));
        assert_eq!(route(&health, Endpoints::Metrics), Some(Route::Health));
        let version = request("GET", "/version", None);
        assert_eq!(route(&version, Endpoints::Client), Some(Route::Version));
        assert_eq!(route(&version, Endpoints::Metrics), Some(Route::NotFound));
        let gateway = request("POST", "/v3/kv/range", None);
        assert_eq!(route(&gateway, Endpoints::Client), Some(Route::Gateway));
        assert_eq!(route(&gateway, Endpoints::Metrics), Some(Route::NotFound));
        let other = request("GET", "/v2/keys", None);
        assert_eq!(route(&other, Endpoints::Client), Some(Route::NotFound));
        assert_eq!(route(&grpc, Endpoints::Metrics), Some(Route::NotFound));
    }

    #[test]
    fn health_queries_parse_like_etcd() {
        assert_eq!(HealthQuery::parse(None), HealthQuery::default());
        assert_eq!(
            HealthQuery::parse(Some("exclude=NOSPACE&serializable=true&exclude=BOGUS")),
            HealthQuery {
                exclude: vec![AlarmType::Nospace],
                serializable: true,
            }
        );
        assert!(!HealthQuery::parse(Some("serializable=1")).serializable);
        assert_eq!(
            HealthQuery::parse(Some("ex%63lude=NO%53PACE&serializable=%74rue")),
            HealthQuery {
                exclude: vec![AlarmType::Nospace],
                serializable: true,
            }
        );
    }
}
