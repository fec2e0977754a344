//! Watch under load against the real binary: 1,000 watchers over 10 gRPC streams on one prefix
//! while a few hundred puts land, plus one stream that reads nothing until the others are done.
//! Every watcher must see every event exactly once, in revision order; the stalled stream must
//! not hold back the others, and once it reads it must get everything too (caught up from the
//! store, since its buffers overflowed).
//!
//! Sized to finish in seconds on a small CI machine; it must never assert timings beyond "the
//! fast streams finished while the slow one was stalled".

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Kind, Server};
use futures_util::StreamExt;
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tonic::Streaming;

const STREAMS: usize = 10;
const WATCHERS_PER_STREAM: usize = 100;
const PUTS: usize = 200;
/// Bytes of each value: enough that the stalled stream's events exceed what the client's HTTP/2
/// windows and the server's buffers hold, so it really falls behind.
const VALUE_BYTES: usize = 512;
/// Distinct keys the puts cycle through.
const KEYS: usize = 17;
/// Generous bound for any one step, so a broken server fails the test instead of hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens a stream with `count` prefix watchers on `s/` and waits for every created response.
async fn open(endpoint: &str, count: usize) -> Streaming<WatchResponse> {
    let channel = common::connect(endpoint).await.unwrap();
    let creates: Vec<WatchRequest> = (0..count)
        .map(|_| WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"s/".to_vec(),
                range_end: b"s0".to_vec(),
                ..WatchCreateRequest::default()
            })),
        })
        .collect();
    // The request side stays open (pending) so the stream is never half-closed.
    let requests = futures_util::stream::iter(creates).chain(futures_util::stream::pending());
    let mut responses = WatchClient::new(channel)
        .watch(requests)
        .await
        .unwrap()
        .into_inner();
    let mut created = 0;
    while created < count {
        let response = responses.message().await.unwrap().expect("stream open");
        assert!(response.created && !response.canceled, "{response:?}");
        created += 1;
    }
    responses
}

/// Reads until every watcher of the stream has `PUTS` events; returns each watcher's revisions
/// and how many responses carried them.
async fn read_all(
    mut responses: Streaming<WatchResponse>,
    watchers: usize,
) -> (HashMap<i64, Vec<i64>>, usize) {
    let mut seen: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut complete = 0;
    let mut count = 0;
    while complete < watchers {
        let response = responses.message().await.unwrap().expect("stream open");
        count += 1;
        assert!(!response.canceled, "{response:?}");
        let revs = seen.entry(response.watch_id).or_default();
        let before = revs.len();
        revs.extend(
            response
                .events
                .iter()
                .map(|e| e.kv.as_ref().unwrap().mod_revision),
        );
        if before < PUTS && revs.len() >= PUTS {
            complete += 1;
        }
    }
    (seen, count)
}

fn check(seen: &HashMap<i64, Vec<i64>>, first_rev: i64, what: &str) {
    let want: Vec<i64> = (first_rev..first_rev + PUTS as i64).collect();
    assert_eq!(
        seen.len(),
        WATCHERS_PER_STREAM,
        "{what}: watchers with events"
    );
    for (id, revs) in seen {
        assert_eq!(revs, &want, "{what}: watcher {id}");
    }
}

#[test]
fn every_watcher_sees_every_event_once_in_order_and_a_stalled_stream_stalls_nobody() {
    let server = Server::start(Kind::Keelson);
    let endpoint = server.endpoint();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let started = Instant::now();
        let mut fast = Vec::new();
        for _ in 0..STREAMS {
            fast.push(open(&endpoint, WATCHERS_PER_STREAM).await);
        }
        let slow = open(&endpoint, WATCHERS_PER_STREAM).await;
        let readers: Vec<_> = fast
            .into_iter()
            .map(|s| tokio::spawn(read_all(s, WATCHERS_PER_STREAM)))
            .collect();
        let mut kv = KvClient::new(common::connect(&endpoint).await.unwrap());
        let mut first_rev = 0;
        for i in 0..PUTS {
            let put = PutRequest {
                key: format!("s/{}", i % KEYS).into_bytes(),
                value: format!("{i:0>VALUE_BYTES$}").into_bytes(),
                ..PutRequest::default()
            };
            let rev = kv
                .put(put)
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .revision;
            if i == 0 {
                first_rev = rev;
            }
        }
        for (n, reader) in readers.into_iter().enumerate() {
            let (seen, _) = tokio::time::timeout(STEP_TIMEOUT, reader)
                .await
                .expect("a fast stream stalled")
                .unwrap();
            check(&seen, first_rev, &format!("fast stream {n}"));
        }
        // Only now does the stalled stream read: everything is still there, once, in order.
        let (seen, responses) =
            tokio::time::timeout(STEP_TIMEOUT, read_all(slow, WATCHERS_PER_STREAM))
                .await
                .expect("the stalled stream never caught up");
        check(&seen, first_rev, "stalled stream");
        // Fewer responses than events: its buffers overflowed and the store filled the gap.
        assert!(
            responses < WATCHERS_PER_STREAM * PUTS,
            "the stalled stream never fell behind ({responses} responses)"
        );
        eprintln!("watch stress: {:?}", started.elapsed());
    });
}
