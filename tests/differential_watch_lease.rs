//! Differential test of Watch and Lease: one seeded random sequence of lease grants (client-chosen
//! ids and server-chosen ones), revokes, TimeToLive and Leases calls, puts with and without
//! leases, deletes, txns and a compaction, sent to Keelson and to a real etcd 3.4.23 in the same
//! order, while several watch streams (opened at the start, plus watchers created and canceled
//! along the way) see the writes. Every unary answer (or status code and message) is compared at
//! once; every watcher's whole history (created, events, canceled, compact revision) at the end.
//!
//! Only these differences are tolerated, because they are not the servers' behaviour:
//! - header cluster id, member id and raft term;
//! - the ids of leases granted with id 0 (each server picks its own; they are mapped to one
//!   placeholder per grant before comparing);
//! - the remaining TTL of TimeToLive, which counts down (within `TTL_TOLERANCE`);
//! - how a watcher's events are split into responses, the header revision of event responses
//!   (a catch-up answers with the revision it read up to), and the order of responses across
//!   the watchers of one stream: histories are compared per watcher, event by event.
//!
//! Timing is kept out of the comparison: leases live far longer than the run, a watcher is
//! created (its `created` answer read) before the next write, and the test waits for both
//! servers' streams to go quiet before a cancel or the compaction, so no event is in flight when
//! the watcher it belongs to goes away.

mod common;

use common::{random_range_end, scrub, scrub_txn};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb::compare::{CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::lease_client::LeaseClient;
use keelson_proto::etcdserverpb::request_op::Request as TxnOp;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_create_request::FilterType;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// Fixed so a failure reproduces; `KEELSON_DIFF_SEED=<n>` explores others.
const SEED: u64 = 0x7761_7463_685f_6c73;
const SEED_VAR: &str = "KEELSON_DIFF_SEED";
/// Random operations after the prelude; the compaction comes at the middle.
const OPS: usize = 260;
/// Puts before the streams open, so watchers can start in the past.
const PRELUDE_PUTS: usize = 10;
/// A small key space so watchers, leases and deletes meet often.
const KEYS: u32 = 12;
/// Watch streams open from the start, each with the sentinel watcher and a few random ones.
const STREAMS: usize = 3;
/// The key every stream watches (its first watcher, id 0): its event ends the run.
const SENTINEL: &[u8] = b"sentinel";
/// Lease TTLs far longer than the run, so nothing expires by time.
const TTLS: [i64; 3] = [600, 900, 3600];
/// One more than etcd's largest TTL (9,000,000,000 s).
const TOO_LARGE_TTL: i64 = 9_000_000_001;
/// Client-chosen lease ids; some are granted often, some rarely, so "missing" comes up too.
const LEASE_IDS: [i64; 5] = [1, 2, 3, 77, i64::MAX];
/// Stands for the n-th lease granted with id 0 (`AUTO_BASE + n`), in requests and in compared
/// text; each side maps it to the id it chose. No server picks ids this close together.
const AUTO_BASE: i64 = 0x4155_544f_0000_0000;
/// Client-chosen watch ids; auto ids must skip those in use.
const WATCH_IDS: [i64; 4] = [2, 3, 5, 40];
/// A watch id no stream reaches: canceling it is answered by nothing.
const UNKNOWN_WATCH_ID: i64 = 777;
/// How far two servers' remaining TTLs may be apart (requests are seconds apart at most).
const TTL_TOLERANCE: i64 = 5;
/// Streams are quiet when no response arrived for this long: longer than etcd's 100 ms loop
/// that moves watchers catching up from history.
const QUIET: Duration = Duration::from_millis(300);
/// Bound on any wait for a response, so a broken server fails the test instead of hanging it.
const WAIT_LIMIT: Duration = Duration::from_secs(20);

fn key(rng: &mut StdRng) -> Vec<u8> {
    format!("k{:02}", rng.random_range(0..KEYS)).into_bytes()
}

fn value(rng: &mut StdRng) -> Vec<u8> {
    format!("v{}", rng.random_range(0..5)).into_bytes()
}

/// A lease for a request: a client-chosen id (granted or not) or a server-chosen one.
fn lease_ref(rng: &mut StdRng, autos: usize) -> i64 {
    if autos > 0 && rng.random_bool(0.3) {
        AUTO_BASE + i64::try_from(rng.random_range(0..autos)).unwrap()
    } else {
        LEASE_IDS[rng.random_range(0..LEASE_IDS.len())]
    }
}

fn put(rng: &mut StdRng, autos: usize) -> PutRequest {
    let ignore_lease = rng.random_bool(0.08);
    let ignore_value = rng.random_bool(0.05);
    // ignore_lease with a lease is refused ("lease is provided"); keep that case rare.
    let lease = if rng.random_bool(0.5) && (!ignore_lease || rng.random_bool(0.2)) {
        lease_ref(rng, autos)
    } else {
        0
    };
    PutRequest {
        key: key(rng),
        value: if ignore_value { Vec::new() } else { value(rng) },
        lease,
        prev_kv: rng.random_bool(0.5),
        ignore_value,
        ignore_lease,
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

fn compare(rng: &mut StdRng, autos: usize) -> Compare {
    let (target, union) = match rng.random_range(0..4) {
        0 => (
            CompareTarget::Version,
            TargetUnion::Version(rng.random_range(0..3)),
        ),
        1 => (
            CompareTarget::Mod,
            TargetUnion::ModRevision(rng.random_range(0..40)),
        ),
        2 => (CompareTarget::Value, TargetUnion::Value(value(rng))),
        _ => (
            CompareTarget::Lease,
            TargetUnion::Lease(if rng.random_bool(0.3) {
                0
            } else {
                lease_ref(rng, autos)
            }),
        ),
    };
    Compare {
        // Equal is the useful one for leases; the others still compare numbers.
        result: rng.random_range(0..4),
        target: target as i32,
        key: key(rng),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

fn txn_ops(rng: &mut StdRng, autos: usize) -> Vec<RequestOp> {
    (0..rng.random_range(0..4))
        .map(|_| {
            let op = match rng.random_range(0..5) {
                0 | 1 => TxnOp::RequestPut(put(rng, autos)),
                2 | 3 => TxnOp::RequestDeleteRange(delete(rng)),
                _ => TxnOp::RequestRange(RangeRequest {
                    key: key(rng),
                    range_end: b"l".to_vec(),
                    ..RangeRequest::default()
                }),
            };
            RequestOp { request: Some(op) }
        })
        .collect()
}

fn txn(rng: &mut StdRng, autos: usize) -> TxnRequest {
    TxnRequest {
        compare: (0..rng.random_range(0..3))
            .map(|_| compare(rng, autos))
            .collect(),
        success: txn_ops(rng, autos),
        failure: txn_ops(rng, autos),
    }
}

/// A watcher on a key, a range, a prefix, everything after a key, or (rarely) an empty range,
/// starting now, at revision 1, in the past, or in the future.
fn watch_create(rng: &mut StdRng, current: i64) -> WatchCreateRequest {
    let (key, range_end) = match rng.random_range(0..20) {
        0 => (b"k05".to_vec(), b"k02".to_vec()),
        1 => (vec![0], vec![0]),
        2..5 => {
            let prefix = format!("k{}", rng.random_range(0..2));
            let end = format!("k{}", rng.random_range(1..3));
            (prefix.into_bytes(), end.into_bytes())
        }
        _ => {
            let key = key(rng);
            let end = random_range_end(rng, &key);
            (key, end)
        }
    };
    let start_revision = match rng.random_range(0..10) {
        0..4 => 0,
        4 => 1,
        5..8 => rng.random_range(1..=current),
        _ => current + rng.random_range(1..20),
    };
    let mut filters = Vec::new();
    if rng.random_bool(0.15) {
        filters.push(FilterType::Noput as i32);
    }
    if rng.random_bool(0.15) {
        filters.push(FilterType::Nodelete as i32);
    }
    WatchCreateRequest {
        key,
        range_end,
        start_revision,
        progress_notify: false,
        filters,
        prev_kv: rng.random_bool(0.5),
        watch_id: if rng.random_bool(0.3) {
            WATCH_IDS[rng.random_range(0..WATCH_IDS.len())]
        } else {
            0
        },
        fragment: false,
    }
}

fn sentinel_watch() -> WatchCreateRequest {
    WatchCreateRequest {
        key: SENTINEL.to_vec(),
        ..WatchCreateRequest::default()
    }
}

/// One step of the sequence, as sent to both servers (lease placeholders resolved per side).
#[derive(Debug)]
enum Op {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Range(RangeRequest),
    Grant(LeaseGrantRequest),
    Revoke(i64),
    TimeToLive { id: i64, keys: bool },
    Leases,
    Compact(i64),
    Watch(usize, WatchCreateRequest),
    Cancel(usize, i64),
}

fn random_op(rng: &mut StdRng, current: i64, autos: usize) -> Op {
    match rng.random_range(0..100) {
        0..28 => Op::Put(put(rng, autos)),
        28..35 => Op::Delete(delete(rng)),
        35..47 => Op::Txn(txn(rng, autos)),
        47..50 => Op::Range(RangeRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            ..RangeRequest::default()
        }),
        50..60 => Op::Grant(LeaseGrantRequest {
            ttl: if rng.random_bool(0.08) {
                TOO_LARGE_TTL
            } else {
                TTLS[rng.random_range(0..TTLS.len())]
            },
            id: if rng.random_bool(0.3) {
                0
            } else {
                LEASE_IDS[rng.random_range(0..LEASE_IDS.len())]
            },
        }),
        60..66 => Op::Revoke(lease_ref(rng, autos)),
        66..73 => Op::TimeToLive {
            id: lease_ref(rng, autos),
            keys: rng.random_bool(0.6),
        },
        73..76 => Op::Leases,
        76..91 => Op::Watch(rng.random_range(0..STREAMS), watch_create(rng, current)),
        _ => {
            let watch_id = match rng.random_range(0..10) {
                0 => UNKNOWN_WATCH_ID,
                1..4 => WATCH_IDS[rng.random_range(0..WATCH_IDS.len())],
                _ => rng.random_range(1..10),
            };
            Op::Cancel(rng.random_range(0..STREAMS), watch_id)
        }
    }
}

/// The lease cases every run covers, before the random sequence (the watchers see their
/// writes). Cases 1, 2, 7, 8, 13 and 17 must fail, the rest succeed.
fn lease_cases() -> Vec<Op> {
    let put = |key: &str, lease: i64| {
        Op::Put(PutRequest {
            key: key.into(),
            value: b"leased".to_vec(),
            lease,
            prev_kv: true,
            ..PutRequest::default()
        })
    };
    let grant = |id: i64, ttl: i64| Op::Grant(LeaseGrantRequest { ttl, id });
    let lease_of = |key: &str, id: i64| Compare {
        result: 0, // EQUAL
        target: CompareTarget::Lease as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::Lease(id)),
    };
    let put_op = |key: &str, lease: i64| RequestOp {
        request: Some(TxnOp::RequestPut(PutRequest {
            key: key.into(),
            value: b"txn".to_vec(),
            lease,
            ..PutRequest::default()
        })),
    };
    vec![
        /* 0 */ grant(1, TTLS[0]),
        /* 1: the id is taken */ grant(1, TTLS[1]),
        /* 2 */ grant(0, TOO_LARGE_TTL),
        /* 3: the server picks the id */ grant(0, TTLS[0]),
        /* 4 */ grant(2, TTLS[2]),
        /* 5 */ put("k00", 1),
        /* 6 */ put("k01", AUTO_BASE),
        /* 7: no such lease */ put("k02", 1234),
        /* 8: ignore_lease with a lease */
        Op::Put(PutRequest {
            key: b"k00".to_vec(),
            lease: 2,
            ignore_lease: true,
            ..PutRequest::default()
        }),
        /* 9: keeps lease 1 */
        Op::Put(PutRequest {
            key: b"k00".to_vec(),
            value: b"kept".to_vec(),
            ignore_lease: true,
            prev_kv: true,
            ..PutRequest::default()
        }),
        /* 10: moves k01 to lease 2 and attaches k03 to it, as k00 has lease 1 */
        Op::Txn(TxnRequest {
            compare: vec![lease_of("k00", 1)],
            success: vec![put_op("k01", 2), put_op("k03", 2)],
            failure: vec![put_op("k04", 0)],
        }),
        /* 11 */ Op::TimeToLive { id: 2, keys: true },
        /* 12 */ Op::TimeToLive {
            id: AUTO_BASE,
            keys: true,
        },
        /* 13: the branch taken names a missing lease */
        Op::Txn(TxnRequest {
            compare: vec![lease_of("k03", 2)],
            success: vec![put_op("k05", 1234)],
            failure: Vec::new(),
        }),
        /* 14: deletes k01 and k03 in one revision */ Op::Revoke(2),
        /* 15 */ Op::Leases,
        /* 16 */ Op::TimeToLive { id: 2, keys: true },
        /* 17: no such lease: an error */ Op::Revoke(2),
        /* 18: a leased key deleted */
        Op::Delete(DeleteRangeRequest {
            key: b"k00".to_vec(),
            prev_kv: true,
            ..DeleteRangeRequest::default()
        }),
        /* 19 */ Op::TimeToLive { id: 1, keys: true },
    ]
}

/// A response or a status, as comparable text, plus the remaining TTL a TimeToLive answer had
/// before it was masked.
type Outcome = (Result<String, (tonic::Code, String)>, Option<i64>);

/// One watch stream and everything it has answered so far (read by a background task).
struct Stream {
    requests: mpsc::UnboundedSender<WatchRequest>,
    log: Arc<Mutex<Vec<WatchResponse>>>,
    /// Why the response stream ended, if it did.
    ended: Arc<Mutex<Option<String>>>,
}

/// A progress answer: for no watcher, nothing else in it.
fn is_progress(r: &WatchResponse) -> bool {
    r.watch_id == -1 && !r.created && !r.canceled && r.events.is_empty()
}

impl Stream {
    /// Opens a stream whose first request creates the sentinel watcher (grpc-go sends response
    /// headers only with the first response, so a request must be queued first).
    async fn open(channel: Channel) -> Stream {
        let (requests, rx) = mpsc::unbounded_channel();
        let first = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(sentinel_watch())),
        };
        requests.send(first).unwrap();
        let outgoing =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let mut responses = WatchClient::new(channel)
            .watch(outgoing)
            .await
            .unwrap()
            .into_inner();
        let log = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(None));
        let (sink, end) = (log.clone(), ended.clone());
        tokio::spawn(async move {
            let reason = loop {
                match responses.message().await {
                    Ok(Some(r)) => sink.lock().unwrap().push(r),
                    Ok(None) => break "closed by the server".to_string(),
                    Err(status) => break format!("{status:?}"),
                }
            };
            *end.lock().unwrap() = Some(reason);
        });
        let stream = Stream {
            requests,
            log,
            ended,
        };
        stream
            .wait_for("the sentinel's created", |log| log.len() == 1)
            .await;
        stream
    }

    /// The id of the last watcher created (-1 if it was refused).
    fn last_created(&self) -> i64 {
        let log = self.log.lock().unwrap();
        log.iter()
            .rev()
            .find(|r| r.created)
            .map_or(-1, |r| r.watch_id)
    }

    fn send(&self, request: RequestUnion) {
        let request = WatchRequest {
            request_union: Some(request),
        };
        self.requests.send(request).unwrap();
    }

    fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn count(&self, what: impl Fn(&WatchResponse) -> bool) -> usize {
        self.log.lock().unwrap().iter().filter(|r| what(r)).count()
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&[WatchResponse]) -> bool) {
        let started = Instant::now();
        loop {
            if done(&self.log.lock().unwrap()) {
                return;
            }
            let ended = self.ended.lock().unwrap().clone();
            assert!(
                ended.is_none(),
                "waiting for {what}: stream ended: {ended:?}"
            );
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "no {what} in {WAIT_LIMIT:?}; responses: {:#?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Creates a watcher and waits for its `created` answer, so the watcher exists (or was
    /// refused) before the next write.
    async fn create(&self, create: WatchCreateRequest) {
        let before = self.count(|r| r.created);
        self.send(RequestUnion::CreateRequest(create));
        self.wait_for("a created answer", |log| {
            log.iter().filter(|r| r.created).count() > before
        })
        .await;
    }

    /// Sends a progress request and waits for its answer: requests of a stream are handled in
    /// order, so everything sent before (a cancel) has taken effect.
    async fn barrier(&self) {
        let before = self.count(is_progress);
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}));
        self.wait_for("a progress answer", |log| {
            log.iter().filter(|r| is_progress(r)).count() > before
        })
        .await;
    }
}

/// One server: its clients, its watch streams, and the ids it chose for leases granted with 0.
struct Side {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    channel: Channel,
    streams: Vec<Stream>,
    autos: Vec<i64>,
}

impl Side {
    async fn connect(endpoint: &str) -> Side {
        let channel = common::connect(endpoint).await.unwrap();
        Side {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            channel,
            streams: Vec::new(),
            autos: Vec::new(),
        }
    }

    /// The id this server knows for a lease id or placeholder.
    fn resolve(&self, id: i64) -> i64 {
        id.checked_sub(AUTO_BASE)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| self.autos.get(n).copied())
            .unwrap_or(id)
    }

    /// `text` with every id this server chose replaced by its placeholder.
    fn unresolve(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (n, id) in self.autos.iter().enumerate() {
            out = out.replace(&id.to_string(), &(AUTO_BASE + n as i64).to_string());
        }
        out
    }

    fn resolve_put(&self, put: &mut PutRequest) {
        put.lease = self.resolve(put.lease);
    }

    fn resolve_txn(&self, txn: &mut TxnRequest) {
        for compare in &mut txn.compare {
            if let Some(TargetUnion::Lease(id)) = &mut compare.target_union {
                *id = self.resolve(*id);
            }
        }
        for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
            match &mut op.request {
                Some(TxnOp::RequestPut(put)) => self.resolve_put(put),
                Some(TxnOp::RequestTxn(inner)) => self.resolve_txn(inner),
                _ => {}
            }
        }
    }

    fn outcome<T: std::fmt::Debug>(
        &self,
        result: Result<tonic::Response<T>, tonic::Status>,
        scrubbed: impl FnOnce(&mut T),
    ) -> Result<String, (tonic::Code, String)> {
        match result {
            Ok(response) => {
                let mut response = response.into_inner();
                scrubbed(&mut response);
                Ok(self.unresolve(&format!("{response:?}")))
            }
            Err(status) => Err((status.code(), status.message().to_string())),
        }
    }

    /// Sends a unary request and returns its outcome; a watch step returns `None` (watch
    /// histories are compared at the end).
    async fn apply(&mut self, op: &Op) -> Option<Outcome> {
        let result = match op {
            Op::Put(put) => {
                let mut put = put.clone();
                self.resolve_put(&mut put);
                let r = self.kv.clone().put(put).await;
                self.outcome(r, |r| scrub(&mut r.header))
            }
            Op::Delete(delete) => {
                let r = self.kv.clone().delete_range(delete.clone()).await;
                self.outcome(r, |r| scrub(&mut r.header))
            }
            Op::Txn(txn) => {
                let mut txn = txn.clone();
                self.resolve_txn(&mut txn);
                let r = self.kv.clone().txn(txn).await;
                self.outcome(r, scrub_txn)
            }
            Op::Range(range) => {
                let r = self.kv.clone().range(range.clone()).await;
                self.outcome(r, |r| scrub(&mut r.header))
            }
            Op::Compact(revision) => {
                let compact = CompactionRequest {
                    revision: *revision,
                    physical: true,
                };
                let r = self.kv.clone().compact(compact).await;
                self.outcome(r, |r| scrub(&mut r.header))
            }
            Op::Grant(grant) => {
                let r = self.lease.clone().lease_grant(*grant).await;
                if let Ok(granted) = &r
                    && grant.id == 0
                {
                    // Each server picks its own id; from now on it stands for the placeholder.
                    assert!(granted.get_ref().id > 0, "{granted:?}");
                    self.autos.push(granted.get_ref().id);
                }
                self.outcome(r, |r| scrub(&mut r.header))
            }
            Op::Revoke(id) => {
                let revoke = LeaseRevokeRequest {
                    id: self.resolve(*id),
                };
                let r = self.lease.clone().lease_revoke(revoke).await;
                self.outcome(r, |r| scrub(&mut r.header))
            }
            Op::TimeToLive { id, keys } => {
                let request = LeaseTimeToLiveRequest {
                    id: self.resolve(*id),
                    keys: *keys,
                };
                let r = self.lease.clone().lease_time_to_live(request).await;
                let mut remaining = None;
                let text = self.outcome(r, |r| {
                    scrub(&mut r.header);
                    // etcd lists keys from a Go map: compare them as a set.
                    r.keys.sort();
                    if r.ttl > 0 {
                        remaining = Some(r.ttl);
                        r.ttl = 0;
                    }
                });
                return Some((text, remaining));
            }
            Op::Leases => {
                let r = self.lease.clone().lease_leases(LeaseLeasesRequest {}).await;
                // A set: ordered by the ids both sides agree on (placeholders for chosen ids).
                let canon = |id: i64| {
                    self.autos
                        .iter()
                        .position(|a| *a == id)
                        .map_or(id, |n| AUTO_BASE + n as i64)
                };
                self.outcome(r, |r| {
                    scrub(&mut r.header);
                    r.leases.sort_by_key(|l| canon(l.id));
                })
            }
            Op::Watch(stream, create) => {
                self.streams[*stream].create(create.clone()).await;
                return None;
            }
            Op::Cancel(stream, watch_id) => {
                let stream = &self.streams[*stream];
                stream.send(RequestUnion::CancelRequest(WatchCancelRequest {
                    watch_id: *watch_id,
                }));
                stream.barrier().await;
                return None;
            }
        };
        Some((result, None))
    }

    /// Each watcher's history on each stream: its created/canceled/progress answers whole (ids
    /// masked) and its events one by one, whatever responses carried them.
    fn histories(&self, name: &str) -> Vec<BTreeMap<i64, Vec<String>>> {
        self.streams
            .iter()
            .map(|stream| {
                let mut watchers: BTreeMap<i64, Vec<String>> = BTreeMap::new();
                for response in stream.log.lock().unwrap().iter() {
                    let mut response = response.clone();
                    scrub(&mut response.header);
                    let history = watchers.entry(response.watch_id).or_default();
                    let revision = response.header.as_ref().map_or(0, |h| h.revision);
                    for event in std::mem::take(&mut response.events) {
                        let modified = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                        assert!(
                            revision >= modified,
                            "{name}: a response at revision {revision} carries {event:?}"
                        );
                        history.push(self.unresolve(&format!("{event:?}")));
                    }
                    if response.created || response.canceled || is_progress(&response) {
                        history.push(self.unresolve(&format!("{response:?}")));
                    }
                }
                watchers
            })
            .collect()
    }
}

/// The current revision, from a serializable range's header.
async fn current_rev(kv: &mut KvClient<Channel>) -> i64 {
    let probe = RangeRequest {
        key: b"k".to_vec(),
        serializable: true,
        count_only: true,
        ..RangeRequest::default()
    };
    let header = kv.range(probe).await.unwrap().into_inner().header;
    header.unwrap().revision
}

/// Waits until no watch response arrives on either server for `QUIET`: every event of the
/// writes so far, and every catch-up from history, has been delivered.
async fn settle(sides: &[Side]) {
    let total = || -> usize { sides.iter().flat_map(|s| &s.streams).map(Stream::len).sum() };
    let started = Instant::now();
    let mut last = total();
    loop {
        tokio::time::sleep(QUIET).await;
        let now = total();
        if now == last {
            return;
        }
        last = now;
        assert!(started.elapsed() < WAIT_LIMIT, "watch streams never quiet");
    }
}

/// Sends `op` to both servers and compares their answers.
async fn step(sides: &mut [Side; 2], op: &Op, what: &str) -> bool {
    if matches!(op, Op::Cancel(..) | Op::Compact(_)) {
        settle(sides).await;
    }
    let want = sides[0].apply(op).await;
    let got = sides[1].apply(op).await;
    let (Some((want, want_ttl)), Some((got, got_ttl))) = (want, got) else {
        return false;
    };
    assert_eq!(got, want, "{what} differs: {op:?}");
    assert_eq!(
        got_ttl.is_some(),
        want_ttl.is_some(),
        "{what}: remaining TTL {got_ttl:?}, etcd {want_ttl:?}: {op:?}"
    );
    if let (Some(got), Some(want)) = (got_ttl, want_ttl) {
        assert!(
            (got - want).abs() <= TTL_TOLERANCE,
            "{what}: remaining TTL {got}, etcd {want}: {op:?}"
        );
    }
    want.is_err()
}

/// Runs the whole sequence on both servers; returns the sides for the final comparison and
/// how many unary requests failed (on both, identically).
async fn run(seed: u64, etcd: &str, keelson: &str) -> ([Side; 2], usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sides = [Side::connect(etcd).await, Side::connect(keelson).await];
    let mut errors = 0;
    for i in 0..PRELUDE_PUTS {
        let op = Op::Put(PutRequest {
            key: key(&mut rng),
            value: value(&mut rng),
            ..PutRequest::default()
        });
        step(&mut sides, &op, &format!("prelude put {i}")).await;
    }
    // The streams open with the sentinel watcher (id 0) and a few random watchers; stream 0
    // also asks twice for one client-chosen id.
    for side in sides.iter_mut() {
        for _ in 0..STREAMS {
            let stream = Stream::open(side.channel.clone()).await;
            side.streams.push(stream);
        }
    }
    let current = current_rev(&mut sides[0].kv).await;
    let mut opening = Vec::new();
    for stream in 0..STREAMS {
        for _ in 0..rng.random_range(2..5) {
            opening.push(Op::Watch(stream, watch_create(&mut rng, current)));
        }
    }
    // The first is a plain watcher, so the second is a duplicate whatever its range.
    opening.push(Op::Watch(
        0,
        WatchCreateRequest {
            key: b"k00".to_vec(),
            watch_id: 40,
            ..WatchCreateRequest::default()
        },
    ));
    opening.push(Op::Watch(
        0,
        WatchCreateRequest {
            watch_id: 40,
            ..watch_create(&mut rng, current)
        },
    ));
    for (n, op) in opening.iter().enumerate() {
        step(&mut sides, op, &format!("opening watch {n}")).await;
    }
    // Every lease case at least once whatever the seed; the random part then mixes them.
    for (n, op) in lease_cases().iter().enumerate() {
        let failed = step(&mut sides, op, &format!("lease case {n}")).await;
        let should_fail = [1, 2, 7, 8, 13, 17].contains(&n);
        assert_eq!(failed, should_fail, "lease case {n}: {op:?}");
    }
    // Watchers that start below the compaction, per stream. Their ids stay taken after the
    // compaction cancel until the client cancels them (checked on its own by
    // `a_compacted_watcher_keeps_its_id_until_the_client_cancels_it`); this sequence keeps to
    // live watchers: it never cancels these ids nor asks for them again, and numbers such
    // watchers automatically (auto ids only grow, so none is met again).
    let mut compacted_ids: Vec<Vec<i64>> = vec![Vec::new(); STREAMS];
    let mut compact_rev = 0;
    for i in 0..OPS {
        let current = current_rev(&mut sides[0].kv).await;
        let autos = sides[0].autos.len();
        let ops = if i == OPS / 2 {
            // The compaction, then one watcher below it (created, then canceled with the
            // compact revision) and one exactly at it (replays from there).
            let at = rng.random_range(current / 2..=current);
            let stream = rng.random_range(0..STREAMS);
            let everything = WatchCreateRequest {
                key: vec![0],
                range_end: vec![0],
                prev_kv: true,
                ..WatchCreateRequest::default()
            };
            vec![
                Op::Compact(at),
                Op::Watch(
                    stream,
                    WatchCreateRequest {
                        start_revision: rng.random_range(1..at),
                        ..everything.clone()
                    },
                ),
                Op::Watch(
                    (stream + 1) % STREAMS,
                    WatchCreateRequest {
                        start_revision: at,
                        ..everything
                    },
                ),
            ]
        } else {
            vec![random_op(&mut rng, current, autos)]
        };
        for mut op in ops {
            let mut below_compaction = None;
            match &mut op {
                Op::Watch(stream, create) => {
                    if create.start_revision > 0 && create.start_revision < compact_rev {
                        create.watch_id = 0;
                        below_compaction = Some(*stream);
                    } else if compacted_ids[*stream].contains(&create.watch_id) {
                        create.watch_id = 0;
                    }
                }
                Op::Cancel(stream, watch_id) if compacted_ids[*stream].contains(watch_id) => {
                    *watch_id = UNKNOWN_WATCH_ID;
                }
                _ => {}
            }
            let what = format!("request {i} of seed {seed}");
            errors += usize::from(step(&mut sides, &op, &what).await);
            if let Op::Compact(at) = op {
                compact_rev = at;
            }
            if let Some(stream) = below_compaction {
                compacted_ids[stream].push(sides[0].streams[stream].last_created());
            }
        }
    }
    // Let catch-ups finish, then one last write every stream sees.
    settle(&sides).await;
    let sentinel = Op::Put(PutRequest {
        key: SENTINEL.to_vec(),
        value: b"end".to_vec(),
        ..PutRequest::default()
    });
    step(&mut sides, &sentinel, "the sentinel put").await;
    for side in &sides {
        for stream in &side.streams {
            let is_sentinel = |r: &WatchResponse| {
                r.watch_id == 0
                    && r.events
                        .iter()
                        .any(|e| e.kv.as_ref().is_some_and(|kv| kv.key == SENTINEL))
            };
            stream
                .wait_for("the sentinel event", |log| log.iter().any(is_sentinel))
                .await;
        }
    }
    settle(&sides).await;
    (sides, errors)
}

#[test]
fn random_watches_and_leases_behave_as_in_etcd() {
    let Some(servers) = common::side_by_side("random_watches_and_leases_behave_as_in_etcd") else {
        return;
    };
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    println!("seed {seed} ({SEED_VAR}=<n> to change it)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let (sides, errors) = runtime.block_on(run(
        seed,
        &servers.etcd.endpoint(),
        &servers.keelson.endpoint(),
    ));
    let want = sides[0].histories("etcd");
    let got = sides[1].histories("keelson");
    let mut mismatches = Vec::new();
    let (mut events, mut compacted, mut refused) = (0, 0, 0);
    for (stream, (want, got)) in want.iter().zip(&got).enumerate() {
        let ids: std::collections::BTreeSet<&i64> = want.keys().chain(got.keys()).collect();
        for id in ids {
            let (w, g) = (want.get(id), got.get(id));
            if w != g {
                mismatches.push(format!(
                    "stream {stream}, watch id {id}:\n  etcd:    {w:#?}\n  keelson: {g:#?}"
                ));
            }
        }
        for history in want.values() {
            events += history.iter().filter(|h| h.starts_with("Event")).count();
            compacted += history
                .iter()
                .filter(|h| h.contains("compact_revision: ") && !h.contains("compact_revision: 0"))
                .count();
            refused += history
                .iter()
                .filter(|h| h.contains("watch_id: -1, created: true, canceled: true"))
                .count();
        }
    }
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} watcher histories differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The comparison must have had something to compare: a sequence that produced few events, no
    // compacted watcher or no refused one would prove little.
    assert!(events > 100, "seed {seed}: only {events} events");
    assert!(compacted >= 1, "seed {seed}: no watcher was compacted");
    assert!(refused >= 1, "seed {seed}: no watch was refused");
    assert!(
        errors < OPS / 2,
        "seed {seed}: {errors} of {OPS} requests failed"
    );
    println!(
        "seed {seed}: {OPS} requests ({errors} errors), {events} events, {compacted} compacted and \
         {refused} refused watches, all as etcd, in {:?}",
        started.elapsed()
    );
}

/// A watch answer reduced to what the compaction case is about.
type Answer = (i64, bool, bool, i64, String);

/// On a fresh server: two watchers (ids 5 and 6) start below a compaction and are canceled for
/// it; then the client cancels 5 and asks for id 6 again. Returns the answers to those two
/// requests (with the progress answer that follows the cancel).
async fn compacted_watcher_answers(endpoint: &str) -> Vec<Answer> {
    let channel = common::connect(endpoint).await.unwrap();
    let mut kv = KvClient::new(channel.clone());
    for value in ["1", "2", "3"] {
        let put = PutRequest {
            key: b"a".to_vec(),
            value: value.into(),
            ..PutRequest::default()
        };
        kv.put(put).await.unwrap();
    }
    let compact = CompactionRequest {
        revision: 4,
        physical: true,
    };
    kv.compact(compact).await.unwrap();
    let stream = Stream::open(channel).await;
    for watch_id in [5, 6] {
        stream
            .create(WatchCreateRequest {
                key: b"a".to_vec(),
                start_revision: 2,
                watch_id,
                ..WatchCreateRequest::default()
            })
            .await;
    }
    stream
        .wait_for("two compacted watchers", |log| {
            log.iter().filter(|r| r.compact_revision == 4).count() == 2
        })
        .await;
    let seen = stream.len();
    stream.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 5,
    }));
    stream.barrier().await;
    stream
        .create(WatchCreateRequest {
            key: b"a".to_vec(),
            watch_id: 6,
            ..WatchCreateRequest::default()
        })
        .await;
    let log = stream.log.lock().unwrap();
    log[seen..]
        .iter()
        .map(|r| {
            let answer = (r.watch_id, r.created, r.canceled, r.compact_revision);
            (
                answer.0,
                answer.1,
                answer.2,
                answer.3,
                r.cancel_reason.clone(),
            )
        })
        .collect()
}

/// etcd 3.4.23 keeps a watcher it canceled for the compaction on the stream, id and all, until
/// the client cancels it: that cancel is answered (a second `canceled`, without the compact
/// revision) and the id is refused as a duplicate meanwhile. Keelson must answer the same.
#[test]
fn a_compacted_watcher_keeps_its_id_until_the_client_cancels_it() {
    let Some(servers) =
        common::side_by_side("a_compacted_watcher_keeps_its_id_until_the_client_cancels_it")
    else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = runtime.block_on(compacted_watcher_answers(&servers.etcd.endpoint()));
    let keelson = runtime.block_on(compacted_watcher_answers(&servers.keelson.endpoint()));
    let progress: Answer = (-1, false, false, 0, String::new());
    let duplicate = "mvcc: duplicate watch ID provided on the WatchStream".to_string();
    assert_eq!(
        etcd,
        [
            (5, false, true, 0, String::new()),
            progress,
            (-1, true, true, 0, duplicate),
        ],
        "etcd 3.4.23"
    );
    assert_eq!(keelson, etcd, "Keelson against etcd 3.4.23");
}
