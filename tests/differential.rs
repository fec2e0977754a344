//! Differential test: one seeded random sequence of Range, Put, DeleteRange, Txn and Compact
//! requests sent over gRPC to Keelson and to a real etcd 3.4.23, every response (or status code
//! and message) compared. Only the header's cluster id, member id and raft term may differ.
//!
//! This file must never skip a request's comparison or generate requests etcd 3.4.23 answers by
//! crashing (an unknown sort target panics it); everything else is fair game.

mod common;

use common::{Kind, Server, random_range_end, scrub, scrub_txn};
use keelson_proto::etcdserverpb::compare::{CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::request_op::Request as Op;
use keelson_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

/// Fixed so a failure reproduces; `KEELSON_DIFF_SEED=<n>` explores others.
const SEED: u64 = 0x006b_6565_6c73_6f6e;
const SEED_VAR: &str = "KEELSON_DIFF_SEED";
const OPS: usize = 400;
/// A small key space so ranges, compares and deletes hit existing keys often.
const KEYS: u32 = 12;

fn key(rng: &mut StdRng) -> Vec<u8> {
    format!("k{:02}", rng.random_range(0..KEYS)).into_bytes()
}

fn value(rng: &mut StdRng) -> Vec<u8> {
    format!("v{}", rng.random_range(0..5)).into_bytes()
}

/// Revision 0 (latest), or one around the current revision: below the compaction, inside the
/// history, or in the future.
fn revision(rng: &mut StdRng, current: i64) -> i64 {
    if rng.random_bool(0.5) {
        0
    } else {
        rng.random_range(1..current + 3)
    }
}

fn range(rng: &mut StdRng, current: i64) -> RangeRequest {
    let key = if rng.random_bool(0.03) {
        Vec::new()
    } else {
        key(rng)
    };
    RangeRequest {
        range_end: random_range_end(rng, &key),
        key,
        limit: if rng.random_bool(0.3) {
            rng.random_range(1..4)
        } else {
            0
        },
        revision: revision(rng, current),
        sort_order: rng.random_range(0..3),
        sort_target: rng.random_range(0..5),
        serializable: rng.random_bool(0.3),
        keys_only: rng.random_bool(0.2),
        count_only: rng.random_bool(0.1),
        min_mod_revision: if rng.random_bool(0.1) { 3 } else { 0 },
        max_mod_revision: 0,
        min_create_revision: 0,
        max_create_revision: if rng.random_bool(0.1) { 20 } else { 0 },
    }
}

fn put(rng: &mut StdRng) -> PutRequest {
    let key = if rng.random_bool(0.03) {
        Vec::new()
    } else {
        key(rng)
    };
    let ignore_value = rng.random_bool(0.05);
    PutRequest {
        key,
        value: if ignore_value { Vec::new() } else { value(rng) },
        lease: 0,
        prev_kv: rng.random_bool(0.5),
        ignore_value,
        ignore_lease: false,
    }
}

fn delete(rng: &mut StdRng) -> DeleteRangeRequest {
    let key = key(rng);
    DeleteRangeRequest {
        range_end: random_range_end(rng, &key),
        key,
        prev_kv: rng.random_bool(0.5),
    }
}

fn compare(rng: &mut StdRng) -> Compare {
    let key = key(rng);
    let (target, union) = match rng.random_range(0..4) {
        0 => (
            CompareTarget::Version,
            TargetUnion::Version(rng.random_range(0..3)),
        ),
        1 => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(rng.random_range(0..30)),
        ),
        2 => (
            CompareTarget::Mod,
            TargetUnion::ModRevision(rng.random_range(0..30)),
        ),
        _ => (CompareTarget::Value, TargetUnion::Value(value(rng))),
    };
    Compare {
        result: rng.random_range(0..4),
        target: target as i32,
        range_end: if rng.random_bool(0.2) {
            random_range_end(rng, &key)
        } else {
            Vec::new()
        },
        key,
        target_union: Some(union),
    }
}

fn ops(rng: &mut StdRng, current: i64, depth: u32) -> Vec<RequestOp> {
    (0..rng.random_range(0..4))
        .map(|_| {
            let op = match rng.random_range(0..if depth < 1 { 4 } else { 3 }) {
                0 => Op::RequestRange(RangeRequest {
                    revision: 0,
                    ..range(rng, current)
                }),
                1 => Op::RequestPut(put(rng)),
                2 => Op::RequestDeleteRange(delete(rng)),
                _ => Op::RequestTxn(txn(rng, current, depth + 1)),
            };
            RequestOp { request: Some(op) }
        })
        .collect()
}

fn txn(rng: &mut StdRng, current: i64, depth: u32) -> TxnRequest {
    TxnRequest {
        compare: (0..rng.random_range(0..3)).map(|_| compare(rng)).collect(),
        success: ops(rng, current, depth),
        failure: ops(rng, current, depth),
    }
}

/// A response or a status, as comparable text.
type Outcome = Result<String, (tonic::Code, String)>;

fn outcome<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    scrubbed: impl FnOnce(&mut T),
) -> Outcome
where
    T: std::fmt::Debug,
{
    match result {
        Ok(response) => {
            let mut response = response.into_inner();
            scrubbed(&mut response);
            Ok(format!("{response:?}"))
        }
        Err(status) => Err((status.code(), status.message().to_string())),
    }
}

/// The request kinds, with their share of the sequence.
enum Request {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
}

async fn send(client: &mut KvClient<Channel>, request: &Request) -> Outcome {
    match request.clone_request() {
        Request::Range(r) => outcome(client.range(r).await, |r| scrub(&mut r.header)),
        Request::Put(r) => outcome(client.put(r).await, |r| scrub(&mut r.header)),
        Request::Delete(r) => outcome(client.delete_range(r).await, |r| scrub(&mut r.header)),
        Request::Txn(r) => outcome(client.txn(r).await, scrub_txn),
        Request::Compact(r) => outcome(client.compact(r).await, |r| scrub(&mut r.header)),
    }
}

impl Request {
    fn clone_request(&self) -> Request {
        match self {
            Request::Range(r) => Request::Range(r.clone()),
            Request::Put(r) => Request::Put(r.clone()),
            Request::Delete(r) => Request::Delete(r.clone()),
            Request::Txn(r) => Request::Txn(r.clone()),
            Request::Compact(r) => Request::Compact(*r),
        }
    }

    fn describe(&self) -> String {
        match self {
            Request::Range(r) => format!("{r:?}"),
            Request::Put(r) => format!("{r:?}"),
            Request::Delete(r) => format!("{r:?}"),
            Request::Txn(r) => format!("{r:?}"),
            Request::Compact(r) => format!("{r:?}"),
        }
    }
}

/// The current revision, from a serializable range's header.
async fn current_rev(client: &mut KvClient<Channel>) -> i64 {
    let probe = RangeRequest {
        key: b"k".to_vec(),
        serializable: true,
        count_only: true,
        ..Default::default()
    };
    client
        .range(probe)
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
}

#[test]
fn random_requests_answer_as_etcd_does() {
    if common::require_programs("random_requests_answer_as_etcd_does", &["etcd"]).is_none() {
        return;
    }
    let etcd = Server::start(Kind::Etcd);
    let keelson = Server::start(Kind::Keelson);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut expected = KvClient::new(common::connect(&etcd.endpoint()).await.unwrap());
        let mut actual = KvClient::new(common::connect(&keelson.endpoint()).await.unwrap());
        let seed = std::env::var(SEED_VAR)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(SEED);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut errors = 0;
        for i in 0..OPS {
            let current = current_rev(&mut expected).await;
            let request = match rng.random_range(0..100) {
                0..30 => Request::Range(range(&mut rng, current)),
                30..60 => Request::Put(put(&mut rng)),
                60..70 => Request::Delete(delete(&mut rng)),
                70..96 => Request::Txn(txn(&mut rng, current, 0)),
                _ => Request::Compact(CompactionRequest {
                    revision: rng.random_range(1..current + 2),
                    physical: rng.random_bool(0.5),
                }),
            };
            let want = send(&mut expected, &request).await;
            let got = send(&mut actual, &request).await;
            errors += usize::from(want.is_err());
            assert_eq!(
                got,
                want,
                "request {i} of seed {seed} differs: {}",
                request.describe()
            );
        }
        // Errors are compared too, but a sequence of mostly errors would compare little.
        assert!(errors < OPS / 2, "{errors} of {OPS} requests failed");
        println!("seed {seed}: {OPS} requests, {errors} errors, all as etcd");
    });
}
