//! The Watch stream at the gRPC level against a real etcd 3.4.23: the same requests on one
//! stream to both servers, responses compared field by field (header ids and raft term masked):
//! server and client watch ids, a duplicate id, an empty range, events to several watchers,
//! prev_kv, progress requests, cancels (of a live and of an unknown watcher), a watch from a
//! compacted revision, and timed progress notifications.
//!
//! etcd hands one revision's events to several watchers in map order, so responses of one step
//! are compared sorted by watch id; nothing else is loosened.

mod common;

use std::time::Duration;

use common::{Kind, Server};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{
    CompactionRequest, PutRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
use tokio::sync::mpsc;
use tonic::Streaming;

/// How long to wait for a response that must come.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The progress notification interval both servers run with.
const PROGRESS_INTERVAL: &str = "--experimental-watch-progress-notify-interval=1s";

struct Client {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
    kv: KvClient<tonic::transport::Channel>,
}

impl Client {
    /// Opens a stream whose first request is `first`: grpc-go sends the response headers only
    /// with the first response, so the call cannot complete before a request is queued.
    async fn connect(endpoint: &str, first: WatchCreateRequest) -> Client {
        let channel = common::connect(endpoint).await.unwrap();
        let (requests, rx) = mpsc::channel(16);
        let first = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(first)),
        };
        requests.send(first).await.unwrap();
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let responses = WatchClient::new(channel.clone())
            .watch(stream)
            .await
            .unwrap()
            .into_inner();
        Client {
            requests,
            responses,
            kv: KvClient::new(channel),
        }
    }

    async fn send(&self, request: RequestUnion) {
        let request = WatchRequest {
            request_union: Some(request),
        };
        self.requests.send(request).await.unwrap();
    }

    async fn create(&self, create: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(create)).await;
    }

    /// The next `n` responses, sorted by watch id, with the server's ids masked.
    async fn next(&mut self, n: usize) -> Vec<WatchResponse> {
        let mut out = Vec::new();
        for _ in 0..n {
            let response = tokio::time::timeout(RESPONSE_TIMEOUT, self.responses.message())
                .await
                .expect("a response in time")
                .unwrap()
                .expect("stream open");
            out.push(masked(response));
        }
        out.sort_by_key(|r| r.watch_id);
        out
    }

    async fn put(&mut self, key: &str, value: &str) {
        let put = PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        };
        self.kv.put(put).await.unwrap();
    }
}

fn masked(mut response: WatchResponse) -> WatchResponse {
    if let Some(header) = response.header.as_mut() {
        header.cluster_id = 0;
        header.member_id = 0;
        header.raft_term = 0;
    }
    response
}

fn create(key: &str, range_end: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..WatchCreateRequest::default()
    }
}

/// Runs the scenario and returns every step's responses.
async fn scenario(endpoint: &str) -> Vec<Vec<WatchResponse>> {
    let channel = common::connect(endpoint).await.unwrap();
    let put = PutRequest {
        key: b"foo".to_vec(),
        value: b"1".to_vec(),
        ..PutRequest::default()
    };
    KvClient::new(channel).put(put).await.unwrap();
    // A server id, a client id with prev_kv, the same client id again, an empty range.
    let mut c = Client::connect(endpoint, create("foo", "")).await;
    let mut steps = Vec::new();
    steps.push(c.next(1).await);
    c.create(WatchCreateRequest {
        watch_id: 7,
        prev_kv: true,
        ..create("fo", "fp")
    })
    .await;
    steps.push(c.next(1).await);
    c.create(WatchCreateRequest {
        watch_id: 7,
        ..create("foo", "")
    })
    .await;
    steps.push(c.next(1).await);
    c.create(create("b", "a")).await;
    steps.push(c.next(1).await);
    // One event to both watchers.
    c.put("foo", "2").await;
    steps.push(c.next(2).await);
    // A progress request is answered at once, for no watcher.
    c.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    steps.push(c.next(1).await);
    // Canceling a live watcher is answered; an unknown one is not (the progress answer that
    // follows is the very next response).
    c.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 7,
    }))
    .await;
    steps.push(c.next(1).await);
    c.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 99,
    }))
    .await;
    c.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    steps.push(c.next(1).await);
    // A watch from below the compaction: created, then canceled with the compact revision.
    c.put("foo", "3").await;
    c.put("foo", "4").await;
    steps.push(c.next(2).await);
    let compact = CompactionRequest {
        revision: 4,
        physical: true,
    };
    c.kv.compact(compact).await.unwrap();
    c.create(WatchCreateRequest {
        start_revision: 2,
        ..create("foo", "")
    })
    .await;
    steps.push(c.next(2).await);
    // Progress notifications: an idle watcher that asked gets one per interval.
    c.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 0,
    }))
    .await;
    steps.push(c.next(1).await);
    c.create(WatchCreateRequest {
        progress_notify: true,
        ..create("idle", "")
    })
    .await;
    steps.push(c.next(1).await);
    steps.push(c.next(1).await);
    steps
}

#[test]
fn watch_stream_matches_etcd() {
    if common::require_programs("watch_stream_matches_etcd", &["etcd"]).is_none() {
        return;
    }
    let etcd = Server::start_with(Kind::Etcd, &[PROGRESS_INTERVAL]);
    let keelson = Server::start_with(Kind::Keelson, &[PROGRESS_INTERVAL]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let want = runtime.block_on(scenario(&etcd.endpoint()));
    let got = runtime.block_on(scenario(&keelson.endpoint()));
    for (i, (want, got)) in want.iter().zip(&got).enumerate() {
        assert_eq!(got, want, "step {i}");
    }
    assert_eq!(got.len(), want.len());
}
