//! Crash test: Keelson killed with SIGKILL while several clients write, then restarted on the same
//! data dir. Every acknowledged write must be there with its value, and nothing may be
//! half-applied: each two-key txn is there whole or not at all, acknowledged or not.
//!
//! This file must never stop the server gracefully before the check: the point is a crash.
//!
//! Regression: the writers share one log, and an earlier version marked "the last txn pushed" as
//! acknowledged when a txn returned. With four writers that was sometimes another writer's txn,
//! still in flight at the kill, so the check reported an acknowledged txn lost that the server
//! had never acknowledged. Each txn is now marked by its own name.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Kind, Server};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::request_op::Request as Op;
use keelson_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};

/// Concurrent writers, each on its own connection and keys.
const WRITERS: usize = 4;
/// How long the writers run before the kill.
const WRITE_FOR: Duration = Duration::from_millis(1500);
/// Every this many writes, a writer sends a two-key txn instead of a put.
const TXN_EVERY: usize = 3;

/// What one writer sent: the put keys acknowledged, and every txn attempted with whether it was
/// acknowledged.
#[derive(Default)]
struct Log {
    acked_puts: Vec<String>,
    attempted_puts: Vec<String>,
    txns: Vec<(String, bool)>,
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// The value every key gets, derived from the key so a check needs no other record.
fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

async fn writer(endpoint: String, id: usize, log: Arc<Mutex<Log>>) {
    let Ok(channel) = common::connect(&endpoint).await else {
        return;
    };
    let mut kv = KvClient::new(channel);
    for i in 0.. {
        if i % TXN_EVERY == 0 {
            let name = format!("txn/{id}/{i}");
            log.lock().unwrap().txns.push((name.clone(), false));
            let ops = ["a", "b"]
                .iter()
                .map(|half| {
                    let key = format!("{name}/{half}");
                    RequestOp {
                        request: Some(Op::RequestPut(put(&key, &value_of(&key)))),
                    }
                })
                .collect();
            let txn = TxnRequest {
                compare: Vec::new(),
                success: ops,
                failure: Vec::new(),
            };
            if kv.txn(txn).await.is_err() {
                return;
            }
            // The log is shared by every writer: mark this txn by name, never "the last one",
            // which may be another writer's txn still in flight.
            let mut log = log.lock().unwrap();
            let entry = log.txns.iter_mut().rev().find(|(n, _)| *n == name).unwrap();
            entry.1 = true;
        } else {
            let key = format!("put/{id}/{i}");
            log.lock().unwrap().attempted_puts.push(key.clone());
            if kv.put(put(&key, &value_of(&key))).await.is_err() {
                return;
            }
            log.lock().unwrap().acked_puts.push(key);
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_and_txns_stay_whole() {
    let mut server = Server::start(Kind::Keelson);
    let log = Arc::new(Mutex::new(Log::default()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| runtime.spawn(writer(server.endpoint(), id, log.clone())))
        .collect();
    std::thread::sleep(WRITE_FOR);
    server.kill();
    runtime.block_on(async {
        for w in writers {
            w.await.unwrap();
        }
    });
    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    assert!(
        log.acked_puts.len() > 10,
        "too few writes acknowledged before the kill: {}",
        log.acked_puts.len()
    );

    server.spawn();
    let stored: BTreeMap<String, String> = runtime.block_on(async {
        let mut kv = KvClient::new(common::connect(&server.endpoint()).await.unwrap());
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        kv.range(all)
            .await
            .unwrap()
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key).unwrap(),
                    String::from_utf8(kv.value).unwrap(),
                )
            })
            .collect()
    });

    for key in &log.acked_puts {
        assert_eq!(stored.get(key), Some(&value_of(key)), "acknowledged {key}");
    }
    // Unacknowledged puts may or may not have landed, but never with another value.
    for key in &log.attempted_puts {
        if let Some(value) = stored.get(key) {
            assert_eq!(value, &value_of(key));
        }
    }
    let mut whole_txns = 0;
    for (name, acked) in &log.txns {
        let halves: Vec<Option<&String>> = ["a", "b"]
            .iter()
            .map(|h| stored.get(&format!("{name}/{h}")))
            .collect();
        assert_eq!(
            halves[0].is_some(),
            halves[1].is_some(),
            "txn {name} half-applied"
        );
        if *acked {
            assert!(halves[0].is_some(), "acknowledged txn {name} lost");
        }
        whole_txns += usize::from(halves[0].is_some());
    }
    // Nothing appeared that nobody wrote.
    let written = log.attempted_puts.len() + 2 * log.txns.len();
    assert!(stored.len() <= written);
    println!(
        "{} puts acknowledged, {whole_txns} whole txns, {} keys after restart",
        log.acked_puts.len(),
        stored.len()
    );
}
