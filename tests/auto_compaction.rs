//! Periodic auto-compaction end to end: the binary started with a two-second retention compacts
//! on etcd's schedule, through the log, and a read below the compacted revision then fails with
//! etcd's error. Real etcd 3.4.23 is run the same way when it is installed, and must agree.
//! (Revision mode checks every five minutes; its schedule is covered by the unit tests with a
//! simulated clock.)

mod common;

use std::time::{Duration, Instant};

use common::{Kind, Server};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::{PutRequest, RangeRequest};

const RETENTION: &str = "2s";
/// Long enough for the first compaction (at one retention) and the second (one retention after
/// it), which compacts to a revision sampled after the puts; with margin for a loaded machine.
const COMPACTED_WITHIN: Duration = Duration::from_secs(15);

/// Puts three revisions, then waits until a read of revision 2 fails as compacted; returns that
/// error's code and message.
async fn compacts(server: &Server) -> (tonic::Code, String) {
    let mut kv = KvClient::new(common::connect(&server.endpoint()).await.unwrap());
    for value in ["a", "b", "c"] {
        kv.put(PutRequest {
            key: b"k".to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let started = Instant::now();
    loop {
        let read = kv
            .range(RangeRequest {
                key: b"k".to_vec(),
                revision: 2,
                ..Default::default()
            })
            .await;
        if let Err(status) = read {
            return (status.code(), status.message().to_string());
        }
        assert!(
            started.elapsed() < COMPACTED_WITHIN,
            "{:?}: revision 2 still readable after {COMPACTED_WITHIN:?}; log:\n{}",
            server.kind,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn periodic_retention_compacts_like_etcd() {
    let args = ["--auto-compaction-retention", RETENTION];
    let keelson = Server::start_with(Kind::Keelson, &args);
    // Both servers run at once: the schedule is the slow part.
    let etcd = common::require_programs("periodic_retention_compacts_like_etcd", &["etcd"])
        .map(|_| Server::start_with(Kind::Etcd, &args));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (got, want) = runtime.block_on(async {
        let want = async {
            match &etcd {
                Some(etcd) => Some(compacts(etcd).await),
                None => None,
            }
        };
        tokio::join!(compacts(&keelson), want)
    });
    assert_eq!(
        got,
        (
            tonic::Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".to_string()
        )
    );
    assert!(
        keelson.log().contains("auto periodic compaction"),
        "{}",
        keelson.log()
    );
    if let Some(want) = want {
        assert_eq!(got, want);
    }
}
