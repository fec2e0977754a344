//! SIGTERM and SIGINT stop the real binary in well under a second when it is idle, and with a
//! watch stream open: the stream ends (it is not left hanging) and the process exits as fast.

mod common;

use std::time::{Duration, Instant};

use common::{Kind, Server};
use futures_util::StreamExt;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};

/// Generous for a loaded CI machine; the server used to take 1 to 4 seconds.
const EXIT_WITHIN: Duration = Duration::from_millis(900);

fn timed_stop(server: &mut Server, signal: libc::c_int) -> Duration {
    let started = Instant::now();
    let status = server.signal_and_wait(signal);
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        server.log()
    );
    took
}

#[test]
fn idle_server_stops_fast_on_sigterm_and_sigint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(Kind::Keelson);
        // A client stays connected, idle, as clients of an idle server do.
        let endpoint = server.endpoint();
        let _channel = runtime.block_on(common::connect(&endpoint)).unwrap();
        let took = timed_stop(&mut server, signal);
        assert!(took < EXIT_WITHIN, "signal {signal}: took {took:?}");
    }
}

#[test]
fn open_watch_stream_ends_and_does_not_hold_the_exit() {
    let mut server = Server::start(Kind::Keelson);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let endpoint = server.endpoint();
    let mut stream = runtime.block_on(async {
        let channel = common::connect(&endpoint).await.unwrap();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        };
        // The request side stays open, as a real watcher's does.
        let requests = futures_util::stream::iter([create]).chain(futures_util::stream::pending());
        let mut responses = WatchClient::new(channel)
            .watch(requests)
            .await
            .unwrap()
            .into_inner();
        let created = responses.message().await.unwrap().unwrap();
        assert!(created.created);
        responses
    });
    let took = timed_stop(&mut server, libc::SIGTERM);
    assert!(took < EXIT_WITHIN, "took {took:?} with a watch open");
    let ended = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), stream.message()).await });
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "the watch stream must end, not hang: {ended:?}"
    );
}
