//! Watch under load at full size, against the real binary: 10,000 watchers over 100 gRPC streams,
//! all inside one hot prefix, while several writers put, delete and run multi-key txns at a
//! paced 1,000 writes/s. Each stream holds a watcher on the whole prefix and the rest on single
//! keys or small sub-ranges (a few with prev_kv), so each write reaches one to two hundred
//! watchers. Beside them: one watcher that reads slowly, and one stream of whole-prefix watchers
//! that reads nothing until every other watcher has been checked.
//!
//! The expected events of every watcher are computed from the acknowledged writes (each
//! response's header revision is its events' revision) and compared whole: exactly those events,
//! in revision order, no duplicates, no gaps, and a revision never split over two responses. The
//! writers must keep at least 90% of the paced rate (nobody stalled them), the fast streams must
//! finish while the stalled one has read nothing, and the stalled one must then catch up
//! completely, from the store since its buffers overflowed.
//!
//! Choices are seeded (`KEELSON_WATCH_STRESS_SEED=<n>` tries others); the interleaving of the
//! writers is not, so a failure prints the seed and every difference it found. Every wait is
//! bounded, so a broken server fails the test instead of hanging it.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Kind, Server};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::request_op::Request as Op;
use keelson_proto::etcdserverpb::response_op::Response as OpResponse;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use keelson_proto::mvccpb::Event;
use keelson_proto::mvccpb::event::EventType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

/// Fixed so the watchers and writes reproduce; the environment variable explores others.
const SEED: u64 = 0x7761_7463_6873_7472;
const SEED_VAR: &str = "KEELSON_WATCH_STRESS_SEED";

/// The hot prefix: every watcher and every write lies inside `[PREFIX, PREFIX_END)`.
const PREFIX: &str = "hot/";
const PREFIX_END: &str = "hot0";
/// Keys in the prefix, `hot/0000` .. `hot/0499`.
const KEYS: u16 = 500;

const STREAMS: usize = 100;
const WATCHERS_PER_STREAM: usize = 100;
/// Whole-prefix watchers in each stream; these alone get every write.
const WHOLE_PREFIX_PER_STREAM: usize = 1;
/// Share (in percent) of the other watchers that watch one key; the rest watch `[k, k + span)`.
const SINGLE_KEY_PERCENT: u32 = 60;
/// Widest sub-range a watcher takes, in keys.
const MAX_SPAN: u16 = 8;

/// Paced writes per second, over all writers together.
const RATE: u32 = 1_000;
const WRITE_SECONDS: u32 = 5;
/// Concurrent writer tasks, each on its own connection.
const WRITERS: usize = 4;
/// Unanswered writes a writer may have: far above what 1,000/s needs at a normal fsync latency
/// (about 20 at 20 ms), so reaching it means the server stalled.
const MAX_IN_FLIGHT: usize = 64;
/// Share of the paced rate the writers must achieve.
const MIN_RATE_SHARE: f64 = 0.9;

/// Share (in percent) of the single-key and sub-range watchers that ask for prev_kv.
const PREV_KV_PERCENT: u32 = 5;

/// Whole-prefix watchers on the stalled stream, and how many of them ask for prev_kv.
const STALLED_WATCHERS: usize = 50;
const STALLED_PREV_KV: usize = 5;
/// The slow watcher's pause after each message it reads.
const SLOW_PAUSE: Duration = Duration::from_millis(10);
/// HTTP/2 stream window of the slow and the stalled stream, in bytes.
const SMALL_WINDOW: u32 = 16 * 1024;
/// Their connection window: the client library (h2) closes a connection whose peer has more small
/// DATA frames waiting unread than a budget of half this window allows (its guard against a
/// flood of tiny frames), and a lagging watch stream is exactly many small frames. Half of this
/// is far above what one 16 KiB stream window can hold in frames of any size.
const SLOW_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Opening every stream and creating its watchers.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Any one write request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack for the writers past their paced schedule.
const WRITE_SLACK: Duration = Duration::from_secs(30);
/// For a group of streams to receive everything, from the moment it is asked to.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a complete stream must stay quiet: anything arriving is a duplicate or a stray.
const QUIET: Duration = Duration::from_millis(300);
/// Problems listed per stream and in the final message; the rest are counted.
const SHOWN: usize = 12;

/// The keys a watcher watches, by key number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    Key(u16),
    /// `[start, end)`; `end == KEYS` is the prefix end.
    Span(u16, u16),
    All,
}

impl Range {
    fn contains(self, key: u16) -> bool {
        match self {
            Range::Key(k) => key == k,
            Range::Span(start, end) => start <= key && key < end,
            Range::All => true,
        }
    }

    fn keys(self) -> std::ops::Range<u16> {
        match self {
            Range::Key(k) => k..k + 1,
            Range::Span(start, end) => start..end,
            Range::All => 0..KEYS,
        }
    }
}

/// One watcher: its keys, and whether it asks for each event's previous key-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spec {
    range: Range,
    prev_kv: bool,
}

impl Spec {
    fn create(self) -> WatchRequest {
        let (key, range_end) = match self.range {
            Range::Key(k) => (key_bytes(k), Vec::new()),
            Range::Span(start, end) => (key_bytes(start), end_bytes(end)),
            Range::All => (PREFIX.as_bytes().to_vec(), PREFIX_END.as_bytes().to_vec()),
        };
        WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key,
                range_end,
                prev_kv: self.prev_kv,
                ..WatchCreateRequest::default()
            })),
        }
    }
}

fn key_bytes(k: u16) -> Vec<u8> {
    format!("{PREFIX}{k:04}").into_bytes()
}

fn end_bytes(end: u16) -> Vec<u8> {
    if end >= KEYS {
        PREFIX_END.as_bytes().to_vec()
    } else {
        key_bytes(end)
    }
}

fn parse_key(key: &[u8]) -> Option<u16> {
    std::str::from_utf8(key.strip_prefix(PREFIX.as_bytes())?)
        .ok()?
        .parse()
        .ok()
        .filter(|k| *k < KEYS)
}

/// The specs of one fast stream.
fn stream_specs(rng: &mut StdRng) -> Vec<Spec> {
    (0..WATCHERS_PER_STREAM)
        .map(|i| {
            if i < WHOLE_PREFIX_PER_STREAM {
                return Spec {
                    range: Range::All,
                    prev_kv: false,
                };
            }
            let range = if rng.random_range(0..100) < SINGLE_KEY_PERCENT {
                Range::Key(rng.random_range(0..KEYS))
            } else {
                let start = rng.random_range(0..KEYS - 1);
                let span = rng.random_range(2..=MAX_SPAN);
                Range::Span(start, (start + span).min(KEYS))
            };
            Spec {
                range,
                prev_kv: rng.random_range(0..100) < PREV_KV_PERCENT,
            }
        })
        .collect()
}

/// One event as compared: its revision, key and, for a put, the value's tag (`None`: a delete);
/// `prev` is the tag of the previous value when the watcher asked for it and the key existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rec {
    rev: i64,
    key: u16,
    value: Option<u32>,
    prev: Option<u32>,
}

/// A watched event as a [`Rec`], or why it is not one of ours.
fn rec(event: &Event) -> Result<Rec, String> {
    let kv = event.kv.as_ref().ok_or("event without kv")?;
    let key = parse_key(&kv.key).ok_or_else(|| format!("stray key {:?}", kv.key))?;
    let tag = |value: &[u8]| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("stray value {value:?}"))
    };
    let prev = match &event.prev_kv {
        Some(prev) if prev.key != kv.key => {
            return Err(format!("prev_kv of another key: {event:?}"));
        }
        Some(prev) => Some(tag(&prev.value)?),
        None => None,
    };
    let value = match EventType::try_from(event.r#type) {
        Ok(EventType::Put) => Some(tag(&kv.value)?),
        Ok(EventType::Delete) => None,
        Err(_) => return Err(format!("event type {}", event.r#type)),
    };
    Ok(Rec {
        rev: kv.mod_revision,
        key,
        value,
        prev,
    })
}

/// One operation inside a txn.
#[derive(Clone, Copy, Debug)]
enum TxnOp {
    Put(u16),
    Delete(u16),
}

/// One write request.
#[derive(Clone, Debug)]
enum Write {
    Put(u16),
    Delete(u16),
    /// `[start, end)`, with prev_kv so the response names the deleted keys.
    DeleteSpan(u16, u16),
    /// Distinct keys, at least two puts, so it always makes a revision.
    Txn(Vec<TxnOp>),
}

fn choose_write(rng: &mut StdRng) -> Write {
    let key = rng.random_range(0..KEYS);
    match rng.random_range(0..100) {
        0..80 => Write::Put(key),
        80..90 => Write::Delete(key),
        90..95 => Write::DeleteSpan(key, (key + rng.random_range(2..=4)).min(KEYS)),
        _ => {
            let mut keys: Vec<u16> = Vec::new();
            let len = rng.random_range(3..=5);
            while keys.len() < len {
                let k = rng.random_range(0..KEYS);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            // The last key is deleted about half the time, somewhere among the puts.
            let mut ops: Vec<TxnOp> = keys.iter().map(|k| TxnOp::Put(*k)).collect();
            if rng.random_bool(0.5) {
                let at = rng.random_range(0..len);
                ops[len - 1] = TxnOp::Delete(keys[len - 1]);
                ops.swap(at, len - 1);
            }
            Write::Txn(ops)
        }
    }
}

/// An acknowledged write that made a revision: the events every matching watcher must get.
#[derive(Clone, Debug)]
struct Acked {
    rev: i64,
    events: Vec<Rec>,
}

/// What one writer did.
#[derive(Debug, Default)]
struct WriterLog {
    acked: Vec<Acked>,
    /// Each request's latency, and how late it was sent against its slot.
    latencies: Vec<Duration>,
    max_lateness: Duration,
    /// When its last response arrived.
    finished: Option<Instant>,
}

/// Sends one write; `tag` makes its values unique. Returns the revision it made, if any.
async fn send_write(
    kv: &mut KvClient<Channel>,
    write: &Write,
    tag: u32,
) -> Result<Option<Acked>, String> {
    let err = |e: tonic::Status| format!("{write:?}: {e}");
    let value = |j: u32| (tag * 8 + j).to_string().into_bytes();
    match write {
        Write::Put(k) => {
            let put = PutRequest {
                key: key_bytes(*k),
                value: value(0),
                ..PutRequest::default()
            };
            let rev = kv
                .put(put)
                .await
                .map_err(err)?
                .into_inner()
                .header
                .unwrap()
                .revision;
            let events = vec![Rec {
                rev,
                key: *k,
                value: Some(tag * 8),
                prev: None,
            }];
            Ok(Some(Acked { rev, events }))
        }
        Write::Delete(_) | Write::DeleteSpan(..) => {
            let (key, range_end) = match write {
                Write::Delete(k) => (key_bytes(*k), Vec::new()),
                Write::DeleteSpan(start, end) => (key_bytes(*start), end_bytes(*end)),
                _ => unreachable!(),
            };
            let delete = DeleteRangeRequest {
                key,
                range_end,
                prev_kv: true,
            };
            let response = kv.delete_range(delete).await.map_err(err)?.into_inner();
            if response.deleted == 0 {
                return Ok(None);
            }
            let rev = response.header.unwrap().revision;
            let mut events = Vec::new();
            for prev in &response.prev_kvs {
                let key = parse_key(&prev.key).ok_or(format!("{write:?}: deleted {prev:?}"))?;
                events.push(Rec {
                    rev,
                    key,
                    value: None,
                    prev: None,
                });
            }
            if events.len() as i64 != response.deleted {
                return Err(format!("{write:?}: deleted {response:?}"));
            }
            Ok(Some(Acked { rev, events }))
        }
        Write::Txn(ops) => {
            let success = ops
                .iter()
                .enumerate()
                .map(|(j, op)| RequestOp {
                    request: Some(match op {
                        TxnOp::Put(k) => Op::RequestPut(PutRequest {
                            key: key_bytes(*k),
                            value: value(j as u32),
                            ..PutRequest::default()
                        }),
                        TxnOp::Delete(k) => Op::RequestDeleteRange(DeleteRangeRequest {
                            key: key_bytes(*k),
                            ..DeleteRangeRequest::default()
                        }),
                    }),
                })
                .collect();
            let txn = TxnRequest {
                success,
                ..TxnRequest::default()
            };
            let response = kv.txn(txn).await.map_err(err)?.into_inner();
            if !response.succeeded || response.responses.len() != ops.len() {
                return Err(format!("{write:?}: {response:?}"));
            }
            let rev = response.header.unwrap().revision;
            let mut events = Vec::new();
            for (j, (op, answer)) in ops.iter().zip(&response.responses).enumerate() {
                match (op, &answer.response) {
                    (TxnOp::Put(k), Some(OpResponse::ResponsePut(_))) => events.push(Rec {
                        rev,
                        key: *k,
                        value: Some(tag * 8 + j as u32),
                        prev: None,
                    }),
                    (TxnOp::Delete(k), Some(OpResponse::ResponseDeleteRange(d))) => {
                        if d.deleted == 1 {
                            events.push(Rec {
                                rev,
                                key: *k,
                                value: None,
                                prev: None,
                            });
                        }
                    }
                    _ => return Err(format!("{write:?}: {response:?}")),
                }
            }
            Ok(Some(Acked { rev, events }))
        }
    }
}

/// One writer: write `n` of writer `w` is sent at `start + (n * WRITERS + w) / RATE` whether or
/// not the earlier ones were answered (an open loop, so the rate does not depend on the latency),
/// with at most [`MAX_IN_FLIGHT`] unanswered; a write that has to wait for that goes late, and a
/// stalled server shows as a lower achieved rate.
async fn writer(
    endpoint: String,
    w: usize,
    writes: Vec<Write>,
    start: Instant,
) -> Result<WriterLog, String> {
    let channel = common::connect(&endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let kv = KvClient::new(channel);
    let mut log = WriterLog::default();
    let mut in_flight = FuturesUnordered::new();
    let answered = |log: &mut WriterLog, (sent, write, answer)| -> Result<(), String> {
        let acked = match answer {
            Ok(acked) => acked?,
            Err(_) => {
                return Err(format!(
                    "writer {w}: {write:?} unanswered after {REQUEST_TIMEOUT:?}"
                ));
            }
        };
        log.latencies.push(Instant::now() - sent);
        log.acked.extend(acked);
        Ok(())
    };
    for (n, write) in writes.into_iter().enumerate() {
        let slot = (n * WRITERS + w) as u32;
        let due = start + Duration::from_secs(1) * slot / RATE;
        // Take the answers that arrive before the slot, without waiting past it.
        loop {
            tokio::select! {
                biased;
                () = sleep_until(due) => break,
                Some(done) = in_flight.next() => answered(&mut log, done)?,
            }
        }
        while in_flight.len() >= MAX_IN_FLIGHT {
            let done = in_flight.next().await.unwrap();
            answered(&mut log, done)?;
        }
        let sent = Instant::now();
        log.max_lateness = log.max_lateness.max(sent - due);
        let mut kv = kv.clone();
        in_flight.push(async move {
            let answer = timeout(REQUEST_TIMEOUT, send_write(&mut kv, &write, slot)).await;
            (sent, write, answer)
        });
    }
    while let Some(done) = in_flight.next().await {
        answered(&mut log, done)?;
    }
    log.finished = Some(Instant::now());
    Ok(log)
}

/// What every stream must receive, and by when; sent to the readers once the writes are done.
#[derive(Debug)]
struct Targets {
    /// Per stream, per watcher: how many events it must get.
    counts: Vec<Vec<usize>>,
    deadline: Instant,
}

/// What one stream received.
#[derive(Debug, Default)]
struct StreamLog {
    /// Per watcher (by position in the stream), its events as received.
    events: Vec<Vec<Rec>>,
    responses: usize,
    problems: Vec<String>,
    problem_count: usize,
    /// When every watcher had its target count.
    complete_at: Option<Instant>,
}

impl StreamLog {
    fn problem(&mut self, what: String) {
        self.problem_count += 1;
        if self.problems.len() < SHOWN {
            self.problems.push(what);
        }
    }
}

/// Opens a stream on its own connection (a stalled stream must not hold a shared connection's
/// window), creates one watcher per spec and waits for every created answer. Returns the stream
/// and the watch ids, in spec order (etcd answers creates in order). `small_window` gives the
/// stream a small HTTP/2 window, so a reader that lags pushes back on the server within a few
/// hundred responses instead of the client library buffering megabytes for it.
async fn open(
    endpoint: String,
    specs: Vec<Spec>,
    small_window: bool,
) -> Result<(Streaming<WatchResponse>, Vec<i64>), String> {
    let channel = if small_window {
        Endpoint::from_shared(endpoint)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .initial_stream_window_size(SMALL_WINDOW)
            .initial_connection_window_size(SLOW_CONNECTION_WINDOW)
            .connect()
            .await
    } else {
        common::connect(&endpoint).await
    }
    .map_err(|e| e.to_string())?;
    let creates: Vec<WatchRequest> = specs.iter().map(|s| s.create()).collect();
    // The request side stays open (pending) so the stream is never half-closed.
    let requests = futures_util::stream::iter(creates).chain(futures_util::stream::pending());
    let mut responses = WatchClient::new(channel)
        .watch(requests)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut ids = Vec::with_capacity(specs.len());
    while ids.len() < specs.len() {
        let response = responses
            .message()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("stream closed while creating")?;
        if !response.created || response.canceled || ids.contains(&response.watch_id) {
            return Err(format!("create {} answered {response:?}", ids.len()));
        }
        ids.push(response.watch_id);
    }
    Ok((responses, ids))
}

/// Reads stream `no` until every watcher has its target count (known once the targets arrive),
/// then until it has been quiet for [`QUIET`]; records everything and every protocol problem.
/// Stops at the targets' deadline, or if the targets never come. `pause` slows the reader down.
async fn read_stream(
    mut responses: Streaming<WatchResponse>,
    ids: Vec<i64>,
    no: usize,
    mut targets: watch::Receiver<Option<Arc<Targets>>>,
    pause: Duration,
) -> StreamLog {
    let position: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut log = StreamLog {
        events: vec![Vec::new(); ids.len()],
        ..StreamLog::default()
    };
    // The highest revision of each watcher's previous response: the next must start above it.
    let mut last_rev = vec![0i64; ids.len()];
    let mut want: Option<(Vec<usize>, Instant)> = None;
    let mut remaining = 0;
    loop {
        if want.is_none() {
            let arrived = targets.borrow_and_update().clone();
            if let Some(t) = arrived {
                let counts = t.counts[no].clone();
                remaining = (0..ids.len())
                    .filter(|w| log.events[*w].len() < counts[*w])
                    .count();
                if remaining == 0 {
                    log.complete_at = Some(Instant::now());
                }
                want = Some((counts, t.deadline));
            }
        }
        let message = match &want {
            None => tokio::select! {
                message = responses.message() => message,
                changed = targets.changed() => {
                    if changed.is_err() {
                        log.problem("abandoned before the writes were done".into());
                        break;
                    }
                    continue;
                }
            },
            Some(_) if remaining == 0 => match timeout(QUIET, responses.message()).await {
                Err(_) => break,
                Ok(message) => message,
            },
            Some((_, deadline)) => match timeout_at(*deadline, responses.message()).await {
                Err(_) => {
                    log.problem(format!("{remaining} watchers incomplete at the deadline"));
                    break;
                }
                Ok(message) => message,
            },
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                log.problem("stream closed".into());
                break;
            }
            Err(status) => {
                log.problem(format!("stream failed: {status}"));
                break;
            }
        };
        log.responses += 1;
        let Some(&w) = position.get(&response.watch_id) else {
            log.problem(format!("response for unknown watch id: {response:?}"));
            continue;
        };
        if response.created || response.canceled || response.fragment || response.events.is_empty()
        {
            log.problem(format!("watcher {w}: unexpected response {response:?}"));
            continue;
        }
        let header_rev = response.header.as_ref().map_or(0, |h| h.revision);
        let before = log.events[w].len();
        let mut previous = last_rev[w];
        for event in &response.events {
            match rec(event) {
                Ok(r) => {
                    if r.rev < previous || (r.rev == previous && previous == last_rev[w]) {
                        log.problem(format!(
                            "watcher {w}: revision {} after {previous} (response boundary at {})",
                            r.rev, last_rev[w]
                        ));
                    }
                    if r.rev > header_rev {
                        log.problem(format!(
                            "watcher {w}: event at {} in a response with header revision \
                             {header_rev}",
                            r.rev
                        ));
                    }
                    previous = previous.max(r.rev);
                    log.events[w].push(r);
                }
                Err(why) => log.problem(format!("watcher {w}: {why}")),
            }
        }
        last_rev[w] = previous;
        if let Some((counts, _)) = &want
            && before < counts[w]
            && log.events[w].len() >= counts[w]
        {
            remaining -= 1;
            if remaining == 0 {
                log.complete_at = Some(Instant::now());
            }
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    log
}

/// Compares what each watcher of a stream received with what it should have; returns one line
/// per difference (the log's protocol problems first).
fn verify(label: &str, log: &StreamLog, specs: &[Spec], expected: &[Vec<Rec>]) -> Vec<String> {
    let mut out: Vec<String> = log
        .problems
        .iter()
        .map(|p| format!("{label}: {p}"))
        .collect();
    if log.problem_count > log.problems.len() {
        out.push(format!(
            "{label}: {} more problems",
            log.problem_count - log.problems.len()
        ));
    }
    for (w, (got, want)) in log.events.iter().zip(expected).enumerate() {
        if got == want {
            continue;
        }
        let count = |recs: &[Rec]| {
            let mut by_rev: HashMap<i64, usize> = HashMap::new();
            for r in recs {
                *by_rev.entry(r.rev).or_default() += 1;
            }
            by_rev
        };
        let (got_revs, want_revs) = (count(got), count(want));
        let mut missing: Vec<i64> = want_revs
            .iter()
            .filter(|(rev, n)| got_revs.get(rev).copied().unwrap_or(0) < **n)
            .map(|(rev, _)| *rev)
            .collect();
        let mut extra: Vec<i64> = got_revs
            .iter()
            .filter(|(rev, n)| want_revs.get(rev).copied().unwrap_or(0) < **n)
            .map(|(rev, _)| *rev)
            .collect();
        missing.sort_unstable();
        extra.sort_unstable();
        let first = got.iter().zip(want).position(|(g, w)| g != w);
        out.push(format!(
            "{label} watcher {w} ({:?}): got {} events, want {}; revisions missing {:?}{}, \
             duplicated or stray {:?}{}; first difference at {first:?}: got {:?} want {:?}",
            specs[w],
            got.len(),
            want.len(),
            &missing[..missing.len().min(SHOWN)],
            if missing.len() > SHOWN { " ..." } else { "" },
            &extra[..extra.len().min(SHOWN)],
            if extra.len() > SHOWN { " ..." } else { "" },
            first.map(|i| got[i]),
            first.map(|i| want[i]),
        ));
    }
    out
}

/// Counts the distinct revisions of each watcher's expected events: as many responses as a
/// watcher would get if it were never behind.
fn distinct_revisions(expected: &[Vec<Rec>]) -> usize {
    expected
        .iter()
        .map(|recs| {
            let mut revs: Vec<i64> = recs.iter().map(|r| r.rev).collect();
            revs.dedup();
            revs.len()
        })
        .sum()
}

fn fail(seed: u64, problems: &[String]) -> ! {
    let shown: Vec<&str> = problems
        .iter()
        .take(3 * SHOWN)
        .map(String::as_str)
        .collect();
    panic!(
        "seed {seed}: {} problems:\n{}",
        problems.len(),
        shown.join("\n")
    );
}

#[test]
fn ten_thousand_watchers_on_a_hot_prefix_get_every_write_once_in_order_and_nobody_stalls() {
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let server = Server::start(Kind::Keelson);
    let endpoint = server.endpoint();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(endpoint, server.pid(), seed));
}

/// CPU seconds (user + system) used so far by the process or thread whose `/proc` directory is
/// `dir`: printed beside the write rate so a slow run shows who had the CPU.
fn cpu_seconds(dir: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3, state.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    (ticks(11) + ticks(12)) as f64 / per_second as f64
}

/// CPU seconds of the server process, of its node thread (the one thread that applies every
/// write and feeds every watcher), and of this test process.
fn cpu_split(server_pid: u32) -> [f64; 3] {
    let server = format!("/proc/{server_pid}");
    let node = std::fs::read_dir(format!("{server}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|task| task.path().display().to_string())
        .filter(|task| {
            std::fs::read_to_string(format!("{task}/comm"))
                .is_ok_and(|name| name.starts_with("keelson-node"))
        })
        .map(|task| cpu_seconds(&task))
        .sum();
    [
        cpu_seconds(&server),
        node,
        cpu_seconds(&format!("/proc/{}", std::process::id())),
    ]
}

/// The machine's 1-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

async fn run(endpoint: String, server_pid: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Streams 0..STREAMS are the fast ones, then the slow watcher's, then the stalled one.
    let slow_no = STREAMS;
    let stalled_no = STREAMS + 1;
    let mut specs: Vec<Vec<Spec>> = (0..STREAMS).map(|_| stream_specs(&mut rng)).collect();
    let all = |prev_kv| Spec {
        range: Range::All,
        prev_kv,
    };
    specs.push(vec![all(true)]);
    specs.push(
        (0..STALLED_WATCHERS)
            .map(|i| all(i < STALLED_PREV_KV))
            .collect(),
    );
    let total_writes = (RATE * WRITE_SECONDS) as usize;
    let mut writes: Vec<Vec<Write>> = vec![Vec::new(); WRITERS];
    for slot in 0..total_writes {
        writes[slot % WRITERS].push(choose_write(&mut rng));
    }

    let began = Instant::now();
    let opening: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(no, s)| tokio::spawn(open(endpoint.clone(), s.clone(), no >= STREAMS)))
        .collect();
    let mut opened = Vec::new();
    for (no, handle) in opening.into_iter().enumerate() {
        match timeout(SETUP_TIMEOUT, handle).await {
            Ok(Ok(Ok(stream))) => opened.push(stream),
            Ok(Ok(Err(why))) => fail(seed, &[format!("stream {no}: {why}")]),
            other => fail(seed, &[format!("stream {no} not open: {other:?}")]),
        }
    }
    let setup = began.elapsed();
    let (stalled, stalled_ids) = opened.pop().unwrap();

    let (publish, targets) = watch::channel(None::<Arc<Targets>>);
    let readers: Vec<_> = opened
        .into_iter()
        .enumerate()
        .map(|(no, (stream, ids))| {
            let pause = if no == slow_no {
                SLOW_PAUSE
            } else {
                Duration::ZERO
            };
            tokio::spawn(read_stream(stream, ids, no, targets.clone(), pause))
        })
        .collect();

    let cpu_before = cpu_split(server_pid);
    // A little head start so every writer's first write is on schedule.
    let start = Instant::now() + Duration::from_millis(50);
    let writers: Vec<_> = writes
        .into_iter()
        .enumerate()
        .map(|(w, ws)| tokio::spawn(writer(endpoint.clone(), w, ws, start)))
        .collect();
    let write_deadline = start + Duration::from_secs(WRITE_SECONDS.into()) + WRITE_SLACK;
    let mut acked: Vec<Acked> = Vec::new();
    let mut latencies = Vec::new();
    let mut max_lateness = Duration::ZERO;
    let mut finished = start;
    for (w, handle) in writers.into_iter().enumerate() {
        match timeout_at(write_deadline, handle).await {
            Ok(Ok(Ok(log))) => {
                acked.extend(log.acked);
                latencies.extend(log.latencies);
                max_lateness = max_lateness.max(log.max_lateness);
                finished = finished.max(log.finished.unwrap());
            }
            Ok(Ok(Err(why))) => fail(seed, &[why]),
            other => fail(seed, &[format!("writer {w}: {other:?}")]),
        }
    }
    let write_time = finished - start;
    let cpu_after = cpu_split(server_pid);
    let used = |i: usize| cpu_after[i] - cpu_before[i];
    let cpu = format!(
        "CPU during the writes: server {:.1} s (node thread {:.1} s), this test {:.1} s; load \
         average {}",
        used(0),
        used(1),
        used(2),
        load_average()
    );
    let requests = latencies.len();
    latencies.sort_unstable();
    let percentile = |p: usize| latencies[(requests - 1) * p / 100];
    let latency = format!(
        "latency p50 {:?} p99 {:?} max {:?}, at most {max_lateness:?} behind schedule",
        percentile(50),
        percentile(99),
        percentile(100)
    );
    let achieved = requests as f64 / write_time.as_secs_f64();

    // Every revision from the first write on is one of ours, made by exactly one request.
    acked.sort_by_key(|a| a.rev);
    let first_rev = acked[0].rev;
    for (i, a) in acked.iter().enumerate() {
        assert_eq!(
            a.rev,
            first_rev + i as i64,
            "seed {seed}: acknowledged revisions are not one per write request"
        );
    }

    // Expected events per stream and watcher, by walking the writes in revision order.
    let mut by_key: Vec<Vec<(usize, usize)>> = vec![Vec::new(); KEYS.into()];
    for (no, stream) in specs.iter().enumerate() {
        for (w, spec) in stream.iter().enumerate() {
            for k in spec.range.keys() {
                by_key[usize::from(k)].push((no, w));
            }
        }
    }
    let mut expected: Vec<Vec<Vec<Rec>>> =
        specs.iter().map(|s| vec![Vec::new(); s.len()]).collect();
    // Each key's current value tag (`None`: absent), for prev_kv; the prefix starts empty.
    let mut current: Vec<Option<u32>> = vec![None; KEYS.into()];
    let mut events = 0;
    for a in &acked {
        for r in &a.events {
            events += 1;
            let prev = std::mem::replace(&mut current[usize::from(r.key)], r.value);
            for (no, w) in &by_key[usize::from(r.key)] {
                let spec = specs[*no][*w];
                debug_assert!(spec.range.contains(r.key));
                let prev = if spec.prev_kv { prev } else { None };
                expected[*no][*w].push(Rec { prev, ..*r });
            }
        }
    }
    let fast_deliveries: usize = expected[..STREAMS].iter().flatten().map(Vec::len).sum();
    let counts = expected
        .iter()
        .map(|s| s.iter().map(Vec::len).collect())
        .collect();
    let asked = Instant::now();
    publish.send_replace(Some(Arc::new(Targets {
        counts,
        deadline: asked + DELIVERY_TIMEOUT,
    })));

    let mut problems = Vec::new();
    let mut logs = Vec::new();
    for (no, handle) in readers.into_iter().enumerate() {
        match timeout(
            DELIVERY_TIMEOUT + 2 * QUIET + Duration::from_secs(5),
            handle,
        )
        .await
        {
            Ok(Ok(log)) => logs.push(log),
            other => problems.push(format!("stream {no} reader: {other:?}")),
        }
    }
    if !problems.is_empty() {
        fail(seed, &problems);
    }
    let slow_log = logs.pop().unwrap();
    let mut fast_done = asked;
    for (no, log) in logs.iter().enumerate() {
        problems.extend(verify(
            &format!("stream {no}"),
            log,
            &specs[no],
            &expected[no],
        ));
        fast_done = fast_done.max(log.complete_at.unwrap_or(asked));
    }
    problems.extend(verify(
        "slow watcher",
        &slow_log,
        &specs[slow_no],
        &expected[slow_no],
    ));
    // Fewer responses than revisions: it fell behind far enough to be caught up from the store.
    let slow_live = distinct_revisions(&expected[slow_no]);
    if slow_log.responses >= slow_live {
        problems.push(format!(
            "the slow watcher never fell behind: {} responses for {slow_live} revisions",
            slow_log.responses
        ));
    }
    if !problems.is_empty() {
        fail(seed, &problems);
    }
    let fast_lag = fast_done.saturating_duration_since(finished);
    let slow_lag = slow_log
        .complete_at
        .unwrap_or(asked)
        .saturating_duration_since(finished);

    // Only now does the stalled stream read: everything is still there, once, in order.
    let (publish_stalled, targets_stalled) = watch::channel(None::<Arc<Targets>>);
    let catching_up = Instant::now();
    publish_stalled.send_replace(Some(Arc::new(Targets {
        counts: expected
            .iter()
            .map(|s| s.iter().map(Vec::len).collect())
            .collect(),
        deadline: catching_up + DELIVERY_TIMEOUT,
    })));
    let stalled_log = read_stream(
        stalled,
        stalled_ids,
        stalled_no,
        targets_stalled,
        Duration::ZERO,
    )
    .await;
    let catch_up = stalled_log.complete_at.unwrap_or(catching_up) - catching_up;
    problems.extend(verify(
        "stalled stream",
        &stalled_log,
        &specs[stalled_no],
        &expected[stalled_no],
    ));
    // Fewer responses than revisions: it fell behind and was caught up from the store.
    let live = distinct_revisions(&expected[stalled_no]);
    if stalled_log.responses >= live {
        problems.push(format!(
            "the stalled stream never fell behind: {} responses for {live} watcher-revisions",
            stalled_log.responses
        ));
    }
    if !problems.is_empty() {
        fail(seed, &problems);
    }

    eprintln!(
        "watch stress (seed {seed}): setup {setup:?}; {requests} writes ({} revisions, {events} \
         events) in {write_time:?} = {achieved:.0}/s (paced {RATE}/s), {latency}; {cpu}; \
         {fast_deliveries} events to {} fast watchers ({:.0} per write), all in {fast_lag:?} \
         after the last write; slow watcher {} responses, complete {slow_lag:?} after the last \
         write; stalled stream {} responses, caught \
         up in {catch_up:?}",
        acked.len(),
        STREAMS * WATCHERS_PER_STREAM,
        fast_deliveries as f64 / requests as f64,
        slow_log.responses,
        stalled_log.responses,
    );
    assert!(
        achieved >= MIN_RATE_SHARE * f64::from(RATE),
        "seed {seed}: the writers achieved {achieved:.0}/s of a paced {RATE}/s ({requests} in \
         {write_time:?}, {latency}; {cpu})"
    );
}
