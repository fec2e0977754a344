//! HashKV side by side with etcd 3.4.23: one seeded sequence of puts, overwrites, deletes and
//! transactions applied to both, then HashKV at the newest revision, at every revision of the
//! history, in the future and below the compaction, before and after compactions. Keelson keeps
//! etcd's record bytes in its key tree, so the hashes themselves must be equal, not just stable.

mod common;

use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keelson_proto::etcdserverpb::request_op::Request as Op;
use keelson_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, HashKvRequest, PutRequest, RequestOp, TxnRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

const SEED: u64 = 0x6861_7368_6b76;
const WRITES: usize = 120;
const KEYS: u32 = 10;

/// One seeded write: a put (sometimes with a longer value), a delete of a key or a prefix, or a
/// txn of two puts.
async fn write(kv: &mut KvClient<Channel>, rng: &mut StdRng) {
    let key = format!("k{}", rng.random_range(0..KEYS)).into_bytes();
    let value = format!("v{}", rng.random_range(0..1000)).repeat(rng.random_range(1..4));
    let put = |key: Vec<u8>| PutRequest {
        key,
        value: value.clone().into_bytes(),
        ..Default::default()
    };
    match rng.random_range(0..10) {
        0..=5 => {
            kv.put(put(key)).await.unwrap();
        }
        6 | 7 => {
            kv.delete_range(DeleteRangeRequest {
                key,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        8 => {
            kv.delete_range(DeleteRangeRequest {
                key: b"k1".to_vec(),
                range_end: b"k2".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        _ => {
            let other = format!("t{}", rng.random_range(0..KEYS)).into_bytes();
            let ops = [key, other]
                .into_iter()
                .map(|key| RequestOp {
                    request: Some(Op::RequestPut(put(key))),
                })
                .collect();
            kv.txn(TxnRequest {
                success: ops,
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
}

/// HashKV at `revision`: the hash, the compact revision and the header revision, or the error.
async fn hash_kv(maintenance: &mut MaintenanceClient<Channel>, revision: i64) -> String {
    match maintenance.hash_kv(HashKvRequest { revision }).await {
        Ok(response) => {
            let response = response.into_inner();
            let header_rev = response.header.map_or(0, |h| h.revision);
            format!(
                "hash {:08x} compact {} header rev {header_rev}",
                response.hash, response.compact_revision
            )
        }
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

/// Applies the sequence to `endpoint` and returns every HashKV answer, labelled.
async fn run(endpoint: &str) -> Vec<String> {
    let channel = common::connect(endpoint).await.unwrap();
    let mut kv = KvClient::new(channel.clone());
    let mut maintenance = MaintenanceClient::new(channel);
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut out = Vec::new();
    let hash_all = async |maintenance: &mut MaintenanceClient<Channel>, stage: &str| {
        let mut lines = Vec::new();
        for revision in [0, -1, 1_000_000] {
            lines.push(format!(
                "{stage} at {revision}: {}",
                hash_kv(maintenance, revision).await
            ));
        }
        // Every revision of the history, compacted ones included.
        for revision in 1..=(WRITES as i64 + 2) {
            lines.push(format!(
                "{stage} at {revision}: {}",
                hash_kv(maintenance, revision).await
            ));
        }
        lines
    };
    for _ in 0..WRITES {
        write(&mut kv, &mut rng).await;
    }
    out.extend(hash_all(&mut maintenance, "written").await);
    for (compact, physical) in [(40, true), (41, false), (90, true)] {
        kv.compact(CompactionRequest {
            revision: compact,
            physical,
        })
        .await
        .unwrap();
        out.extend(hash_all(&mut maintenance, &format!("compacted at {compact}")).await);
    }
    for _ in 0..10 {
        write(&mut kv, &mut rng).await;
    }
    out.extend(hash_all(&mut maintenance, "written again").await);
    out
}

#[test]
fn hash_kv_equals_etcds() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keelson = common::Server::start(common::Kind::Keelson);
    let got = runtime.block_on(run(&keelson.endpoint()));
    // What holds without etcd: one hash per history point, and the errors etcd gives.
    assert!(got[0].starts_with("written at 0: hash "), "{}", got[0]);
    assert_eq!(
        got[2],
        "written at 1000000: OutOfRange: etcdserver: mvcc: required revision is a future revision"
    );
    let below = got
        .iter()
        .find(|line| line.starts_with("compacted at 40 at 40:"))
        .unwrap();
    assert!(
        below.ends_with("OutOfRange: etcdserver: mvcc: required revision has been compacted"),
        "{below}"
    );
    let distinct: std::collections::HashSet<&str> = got
        .iter()
        .filter(|line| line.starts_with("written at") && line.contains("hash "))
        .map(|line| line.split(": ").nth(1).unwrap())
        .collect();
    assert!(distinct.len() > WRITES / 2, "{distinct:?}");

    if common::require_programs("hash_kv_equals_etcds", &["etcd"]).is_none() {
        return;
    }
    let etcd = common::Server::start(common::Kind::Etcd);
    let want = runtime.block_on(run(&etcd.endpoint()));
    assert_eq!(want.len(), got.len());
    let differing = common::differing_steps(&want, &got);
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}
