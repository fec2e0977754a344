//! Watch workloads: `watch-latency` (one key, every client watching with
//! its own stream, puts one at a time) and `watch` (many watchers over many
//! streams, concurrent puts, event throughput).
//!
//! Event latency is measured two ways: from the put's acknowledgement (the
//! client received the put's answer) to a watcher receiving its event, and
//! from the moment the put was sent, which includes the put's own commit. An
//! event that arrives before its put's answer counts as 0 after the
//! acknowledgement. Each value carries its put's sequence number, which is
//! how a watcher finds the put's times.
//!
//! Watchers read their streams through [`LiteCodec`], which decodes only
//! what the measurement needs (created/canceled and each event's value)
//! without building prost messages: at hundreds of thousands of events per
//! second the generator's own decoding would otherwise compete with the
//! server for the same cores. Every server is read with the same decoder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use prost::Message;
use prost::bytes::Buf;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::args::{Global, WatchLatencyOpts, WatchOpts};
use crate::conn::{self, Pool, request_stream, status_line};
use crate::driver::{self, Plan, REQUEST_TIMEOUT, Worker, drive};
use crate::hist::{Latency, Samples};
use crate::keys::{self, Rng};
use crate::progress::ProgressLine;
use crate::report::RunResult;

/// How long puts' events may take to arrive after the last put.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Watch streams being opened at once.
const OPENING_AT_ONCE: usize = 64;

/// What the workloads need of a `WatchResponse`.
#[derive(Debug, Default, PartialEq)]
pub struct LiteResponse {
    pub created: bool,
    pub canceled: bool,
    pub cancel_reason: String,
    /// The sequence number in each event's value, in order (values that carry none are left
    /// out).
    pub seqs: Vec<u64>,
}

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// One field's value as read off the wire.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    prost::encoding::decode_varint(buf).map_err(|e| e.to_string())
}

/// The next field of `buf`: its number and value.
fn field<'a>(buf: &mut &'a [u8]) -> Result<(u64, Value<'a>), String> {
    let key = varint(buf)?;
    let take = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(format!("field {} truncated", key >> 3));
        }
        let (body, rest) = buf.split_at(n);
        *buf = rest;
        Ok(body)
    };
    let value = match key & 7 {
        VARINT => Value::Varint(varint(buf)?),
        FIXED64 => take(buf, 8).map(|_| Value::Fixed)?,
        FIXED32 => take(buf, 4).map(|_| Value::Fixed)?,
        LEN => {
            let n = usize::try_from(varint(buf)?).map_err(|e| e.to_string())?;
            Value::Bytes(take(buf, n)?)
        }
        other => return Err(format!("unsupported wire type {other}")),
    };
    Ok((key >> 3, value))
}

/// Reads a WatchResponse's created (3), canceled (4), cancel_reason (6) and each event's kv
/// value (`WatchResponse.events` 11, `Event.kv` 2, `KeyValue.value` 5), skipping the rest.
pub fn decode_lite(mut buf: &[u8]) -> Result<LiteResponse, String> {
    let mut out = LiteResponse::default();
    while !buf.is_empty() {
        match field(&mut buf)? {
            (3, Value::Varint(v)) => out.created = v != 0,
            (4, Value::Varint(v)) => out.canceled = v != 0,
            (6, Value::Bytes(reason)) => {
                out.cancel_reason = String::from_utf8_lossy(reason).into_owned();
            }
            (11, Value::Bytes(mut event)) => {
                while !event.is_empty() {
                    let (2, Value::Bytes(mut kv)) = field(&mut event)? else {
                        continue;
                    };
                    while !kv.is_empty() {
                        if let (5, Value::Bytes(value)) = field(&mut kv)?
                            && let Some(seq) = parse_seq(value)
                        {
                            out.seqs.push(seq);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// [`keys::parse_seq`] for the values [`keys::seq_value`] writes (ASCII digits only), without
/// the UTF-8 check and generic parse it does: this runs once per event received.
fn parse_seq(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return keys::parse_seq(value);
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The Watch call's codec: requests encoded by prost, responses read by [`decode_lite`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LiteCodec;

impl Codec for LiteCodec {
    type Encode = WatchRequest;
    type Decode = LiteResponse;
    type Encoder = LiteCodec;
    type Decoder = LiteCodec;

    fn encoder(&mut self) -> LiteCodec {
        LiteCodec
    }

    fn decoder(&mut self) -> LiteCodec {
        LiteCodec
    }
}

impl Encoder for LiteCodec {
    type Item = WatchRequest;
    type Error = tonic::Status;

    fn encode(&mut self, item: WatchRequest, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for LiteCodec {
    type Item = LiteResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<LiteResponse>, Self::Error> {
        let len = src.remaining();
        // tonic hands over one whole message; it is contiguous unless the buffer wrapped.
        let decoded = if src.chunk().len() == len {
            decode_lite(src.chunk())
        } else {
            decode_lite(&src.copy_to_bytes(len))
        };
        src.advance(src.remaining());
        decoded.map(Some).map_err(tonic::Status::internal)
    }
}

/// What every watcher reader shares: put times and what arrived.
struct EventSink {
    base: Instant,
    /// Nanoseconds after `base` at which put `seq` was sent.
    put_started: Vec<AtomicU64>,
    /// Nanoseconds after `base` at which put `seq` was acknowledged; 0 while it is not.
    put_acked: Vec<AtomicU64>,
    arrivals: Mutex<Arrivals>,
    received: AtomicU64,
    arrived: Notify,
}

#[derive(Default)]
struct Arrivals {
    from_send: Latency,
    from_ack: Latency,
    /// (seq, arrival ns) of events that came before their put's acknowledgement was noted.
    early: Vec<(u64, u64)>,
}

impl EventSink {
    fn new(puts: u64) -> Arc<Self> {
        Arc::new(EventSink {
            base: Instant::now(),
            put_started: (0..puts).map(|_| AtomicU64::new(0)).collect(),
            put_acked: (0..puts).map(|_| AtomicU64::new(0)).collect(),
            arrivals: Mutex::new(Arrivals::default()),
            received: AtomicU64::new(0),
            arrived: Notify::new(),
        })
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn mark_put(&self, seq: u64) {
        self.put_started[seq as usize].store(self.now_ns(), Ordering::Relaxed);
    }

    fn mark_acked(&self, seq: u64) {
        self.put_acked[seq as usize].store(self.now_ns().max(1), Ordering::Relaxed);
    }

    fn on_events(&self, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        let now = self.now_ns();
        let mut arrived = 0;
        {
            let mut a = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
            for &seq in seqs {
                let Some(started) = usize::try_from(seq)
                    .ok()
                    .and_then(|i| self.put_started.get(i))
                else {
                    continue;
                };
                let started = started.load(Ordering::Relaxed);
                a.from_send
                    .record(Duration::from_nanos(now.saturating_sub(started)));
                match self.put_acked[seq as usize].load(Ordering::Relaxed) {
                    0 => a.early.push((seq, now)),
                    acked => a
                        .from_ack
                        .record(Duration::from_nanos(now.saturating_sub(acked))),
                }
                arrived += 1;
            }
        }
        if arrived > 0 {
            self.received.fetch_add(arrived, Ordering::Relaxed);
            self.arrived.notify_one();
        }
    }

    /// Waits until at least `target` events arrived or `timeout` passed.
    async fn wait_for(&self, target: u64, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if self.received.load(Ordering::Relaxed) >= target {
                return true;
            }
            if tokio::time::timeout_at(until, self.arrived.notified())
                .await
                .is_err()
            {
                return self.received.load(Ordering::Relaxed) >= target;
            }
        }
    }

    /// The latencies from the put's send and from its acknowledgement. Events that beat their
    /// acknowledgement count as 0; those of puts never acknowledged have no acknowledgement
    /// latency.
    fn latencies(&self) -> (Latency, Latency) {
        let mut a = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let early = std::mem::take(&mut a.early);
        for (seq, at) in early {
            match self.put_acked[seq as usize].load(Ordering::Relaxed) {
                0 => {}
                acked => a
                    .from_ack
                    .record(Duration::from_nanos(at.saturating_sub(acked))),
            }
        }
        (a.from_send.clone(), a.from_ack.clone())
    }
}

fn create_request(key: Vec<u8>) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key,
            ..Default::default()
        })),
    }
}

/// One open Watch stream: its request side and its replies.
struct WatchStream {
    tx: mpsc::Sender<WatchRequest>,
    replies: Streaming<LiteResponse>,
}

impl WatchStream {
    /// Opens a stream whose first request creates a watcher on `key`. The
    /// create is queued before the call starts because gRPC servers send
    /// response headers only with their first reply.
    async fn open(channel: Channel, key: Vec<u8>) -> Result<Self, String> {
        let (tx, stream) = request_stream();
        tx.send(create_request(key))
            .await
            .map_err(|_| "watch stream closed".to_string())?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| format!("watch: connection not ready: {e}"))?;
        let replies = grpc
            .streaming(
                tonic::Request::new(stream),
                PathAndQuery::from_static("/etcdserverpb.Watch/Watch"),
                LiteCodec,
            )
            .await
            .map_err(|s| format!("watch: {}", status_line(&s)))?
            .into_inner();
        let mut ws = WatchStream { tx, replies };
        ws.expect_created().await?;
        Ok(ws)
    }

    /// Adds a watcher on `key` to this stream and waits for its confirmation.
    async fn add(&mut self, key: Vec<u8>) -> Result<(), String> {
        self.tx
            .send(create_request(key))
            .await
            .map_err(|_| "watch stream closed".to_string())?;
        self.expect_created().await
    }

    async fn expect_created(&mut self) -> Result<(), String> {
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, self.replies.message())
            .await
            .map_err(|_| format!("watch create not confirmed within {REQUEST_TIMEOUT:?}"))?
            .map_err(|s| format!("watch: {}", status_line(&s)))?
            .ok_or("watch stream ended before the watcher was created")?;
        if !reply.created || reply.canceled {
            return Err(format!("watch create refused: {}", reply.cancel_reason));
        }
        Ok(())
    }
}

/// The readers of every open stream. Streams are read in groups, one task per group polling all
/// of its streams, so a put seen by 10,000 watchers wakes a few tasks rather than 10,000.
struct Readers {
    /// The request sides, which must stay alive as long as the streams should.
    senders: Vec<mpsc::Sender<WatchRequest>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Feeds every later reply of `streams` into `sink`, stream `i` read by task `i % groups`.
    fn start(streams: Vec<WatchStream>, groups: usize, sink: &Arc<EventSink>) -> Readers {
        let groups = groups.clamp(1, streams.len().max(1));
        let mut senders = Vec::with_capacity(streams.len());
        let mut grouped: Vec<Vec<Streaming<LiteResponse>>> =
            (0..groups).map(|_| Vec::new()).collect();
        for (i, ws) in streams.into_iter().enumerate() {
            senders.push(ws.tx);
            grouped[i % groups].push(ws.replies);
        }
        let tasks = grouped
            .into_iter()
            .map(|replies| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut all = futures_util::stream::select_all(replies);
                    // A canceled or failed stream carries no events; the others go on.
                    while let Some(reply) = all.next().await {
                        if let Ok(reply) = reply {
                            sink.on_events(&reply.seqs);
                        }
                    }
                })
            })
            .collect();
        Readers { senders, tasks }
    }

    /// Ends every watcher: closing the request side half-closes each stream,
    /// and aborting the readers drops whatever is still in flight.
    fn shut_down(self) {
        drop(self.senders);
        for task in self.tasks {
            task.abort();
        }
    }
}

pub async fn watch_latency(
    pool: &Pool,
    put_endpoint: &str,
    g: &Global,
    o: &WatchLatencyOpts,
    label: &str,
    command: &str,
) -> Result<RunResult, String> {
    let key = keys::key(0, o.key_size);
    let watchers = g.clients as u64;
    let sink = EventSink::new(o.total);
    // Every client is one stream with one watcher on the key (etcd's benchmark), opened a few
    // dozen at a time so 10,000 of them take seconds, not minutes.
    let mut opening = futures_util::stream::iter(0..g.clients)
        .map(|i| WatchStream::open(pool.for_client(i), key.clone()))
        .buffer_unordered(OPENING_AT_ONCE);
    let mut opened = Vec::with_capacity(g.clients);
    let mut failure = None;
    while let Some(stream) = opening.next().await {
        match stream {
            Ok(ws) => opened.push(ws),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    drop(opening);
    let streams = Readers::start(opened, g.conns, &sink);
    if let Some(e) = failure {
        streams.shut_down();
        return Err(e);
    }
    // Puts go over their own connection, as in etcd's benchmark, so they do
    // not queue behind event traffic.
    let mut kv = KvClient::new(conn::connect_one(put_endpoint).await?);

    let mut result = RunResult::new(label, command, o.total * watchers);
    let mut put_latency = Latency::default();
    let line = ProgressLine::start(label, o.total);
    let progress = line.counter();
    let start = Instant::now();
    let end_by = start + g.timeout;
    let (mut attempted, mut expected) = (0, 0);
    for seq in 0..o.total {
        let at = driver::slot(start, seq, o.put_rate);
        if at >= end_by || Instant::now() >= end_by {
            result.timed_out = true;
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        sink.mark_put(seq);
        attempted += 1;
        let t0 = Instant::now();
        let request = PutRequest {
            key: key.clone(),
            value: keys::seq_value(seq, o.val_size),
            ..Default::default()
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(request)).await {
            Ok(Ok(_)) => {
                sink.mark_acked(seq);
                put_latency.record(t0.elapsed());
            }
            Ok(Err(s)) => {
                result.note_error(format!("put: {}", status_line(&s)));
                continue;
            }
            Err(_) => {
                result.note_error(format!("put: no answer within {REQUEST_TIMEOUT:?}"));
                continue;
            }
        }
        // One put at a time: every watcher sees this event before the next
        // put, so each latency is for an idle pipeline.
        expected += watchers;
        if !sink.wait_for(expected, EVENT_TIMEOUT).await {
            result.note_error(format!(
                "events of put {seq} missing after {EVENT_TIMEOUT:?}"
            ));
            break;
        }
        progress.inc();
    }
    result.elapsed = start.elapsed();
    line.finish();
    streams.shut_down();

    let (from_send, from_ack) = sink.latencies();
    result.ok = from_send.count();
    result.latency = from_ack;
    // Events owed by every put sent, failed puts included, that never came.
    result.errors = (attempted * watchers).saturating_sub(result.ok);
    result.breakdown = vec![("from-send".into(), from_send), ("put".into(), put_latency)];
    Ok(result)
}

/// The put side of `watch`: counts the events each put should produce.
struct WatchPutWorker {
    kv: KvClient<Channel>,
    o: Arc<WatchOpts>,
    watchers_on: Arc<Vec<u64>>,
    sink: Arc<EventSink>,
    /// Events owed by puts that were sent, whether or not they succeeded.
    planned: Arc<AtomicU64>,
    rng: Rng,
}

impl Worker for WatchPutWorker {
    async fn call(&mut self, seq: u64) -> Result<usize, String> {
        let space = self.o.keys.key_space_size;
        let index = if self.o.keys.sequential {
            seq % space
        } else {
            self.rng.below(space)
        };
        self.planned
            .fetch_add(self.watchers_on[index as usize], Ordering::Relaxed);
        self.sink.mark_put(seq);
        let request = PutRequest {
            key: keys::key(index, self.o.keys.key_size),
            value: keys::seq_value(seq, self.o.val_size),
            ..Default::default()
        };
        self.kv.put(request).await.map_err(|s| status_line(&s))?;
        self.sink.mark_acked(seq);
        Ok(0)
    }
}

pub async fn watch(
    pool: &Pool,
    g: &Global,
    o: &WatchOpts,
    label: &str,
    command: &str,
) -> Result<RunResult, String> {
    let space = o.keys.key_space_size;
    let total_watchers = o.streams * o.watch_per_stream;
    // Watcher number w watches key w mod key-space-size.
    let mut watchers_on = vec![0u64; space as usize];
    for w in 0..total_watchers {
        watchers_on[(w % space) as usize] += 1;
    }
    let sink = EventSink::new(o.put_total);

    // Streams are created in parallel; watchers on one stream one by one,
    // each create timed from send to confirmation.
    let mut creating = Vec::with_capacity(o.streams as usize);
    for s in 0..o.streams {
        let channel = pool.for_client(s as usize);
        let (key_size, per_stream) = (o.keys.key_size, o.watch_per_stream);
        creating.push(tokio::spawn(async move {
            let mut samples = Samples::with_capacity(per_stream as usize);
            let first = s * per_stream;
            let t0 = Instant::now();
            let mut ws = WatchStream::open(channel, keys::key(first % space, key_size)).await?;
            samples.record(t0.elapsed());
            for w in first + 1..first + per_stream {
                let t0 = Instant::now();
                ws.add(keys::key(w % space, key_size)).await?;
                samples.record(t0.elapsed());
            }
            Ok::<_, String>((ws, samples))
        }));
    }
    let mut create_latency = Latency::default();
    let mut opened = Vec::with_capacity(creating.len());
    let mut failure = None;
    for task in creating {
        match task.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((ws, samples)) => {
                create_latency.add_samples(&samples);
                opened.push(ws);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let streams = Readers::start(opened, g.conns, &sink);
    if let Some(e) = failure {
        streams.shut_down();
        return Err(e);
    }

    let planned = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(o.clone());
    let watchers_on = Arc::new(watchers_on);
    let workers: Vec<WatchPutWorker> = (0..g.clients)
        .map(|i| WatchPutWorker {
            kv: KvClient::new(pool.for_client(i)),
            o: shared.clone(),
            watchers_on: watchers_on.clone(),
            sink: sink.clone(),
            planned: planned.clone(),
            rng: Rng::new(i as u64),
        })
        .collect();
    let plan = Plan {
        label: format!("{label} (puts)"),
        command: command.into(),
        total: o.put_total,
        rate: o.put_rate,
        deadline: g.timeout,
        classes: Vec::new(),
    };
    let start = Instant::now();
    let puts = drive(&plan, workers).await;
    let planned = planned.load(Ordering::Relaxed);
    let drained = sink.wait_for(planned, EVENT_TIMEOUT).await;
    let elapsed = start.elapsed();
    streams.shut_down();

    let mut result = RunResult::new(label, command, planned);
    result.elapsed = elapsed;
    result.timed_out = puts.timed_out;
    let (from_send, from_ack) = sink.latencies();
    result.ok = from_send.count();
    result.latency = from_ack;
    result.errors = planned.saturating_sub(result.ok);
    for e in puts.error_samples {
        result.note_error(format!("put: {e}"));
    }
    if !drained {
        result.note_error(format!(
            "events still missing {EVENT_TIMEOUT:?} after the last put"
        ));
    }
    result.breakdown = vec![
        ("from-send".into(), from_send),
        ("put".into(), puts.latency),
        ("watch-create".into(), create_latency),
    ];
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::etcdserverpb::{ResponseHeader, WatchResponse};
    use keelson_proto::mvccpb::{Event, KeyValue};

    fn event(value: &[u8]) -> Event {
        Event {
            kv: Some(KeyValue {
                key: b"key".to_vec(),
                value: value.to_vec(),
                create_revision: 2,
                mod_revision: 300,
                version: 7,
                lease: 9,
            }),
            prev_kv: Some(KeyValue {
                value: b"00000000000000000000000000000001".to_vec(),
                ..KeyValue::default()
            }),
            ..Event::default()
        }
    }

    #[test]
    fn lite_decoding_reads_the_flags_and_each_events_sequence_number() {
        let response = WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: u64::MAX,
                member_id: 1,
                revision: 300,
                raft_term: 2,
            }),
            watch_id: 12,
            created: true,
            compact_revision: 5,
            events: vec![
                event(&keys::seq_value(41, 32)),
                event(b"not a number"),
                event(&keys::seq_value(42, 32)),
            ],
            ..WatchResponse::default()
        };
        let lite = decode_lite(&response.encode_to_vec()).unwrap();
        // prev_kv's value is not the event's value: it must not be counted.
        assert_eq!(
            lite,
            LiteResponse {
                created: true,
                canceled: false,
                cancel_reason: String::new(),
                seqs: vec![41, 42],
            }
        );
        let refused = WatchResponse {
            canceled: true,
            cancel_reason: "mvcc: required revision has been compacted".into(),
            ..WatchResponse::default()
        };
        let lite = decode_lite(&refused.encode_to_vec()).unwrap();
        assert!(lite.canceled && !lite.created);
        assert_eq!(lite.cancel_reason, refused.cancel_reason);
        // A truncated message is an error, not a silent partial read.
        let bytes = response.encode_to_vec();
        assert!(decode_lite(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn fast_sequence_parse_agrees_with_the_general_one() {
        for value in [
            keys::seq_value(0, 32),
            keys::seq_value(987_654_321, 12),
            keys::seq_value(u64::MAX, 20),
            b"12a".to_vec(),
            b"".to_vec(),
            b"-1".to_vec(),
        ] {
            assert_eq!(parse_seq(&value), keys::parse_seq(&value), "{value:?}");
        }
    }

    #[test]
    fn events_before_their_acknowledgement_count_as_zero_after_it() {
        let sink = EventSink::new(2);
        sink.mark_put(0);
        sink.mark_put(1);
        sink.on_events(&[0]);
        sink.mark_acked(0);
        sink.mark_acked(1);
        std::thread::sleep(Duration::from_millis(20));
        sink.on_events(&[1]);
        let (from_send, from_ack) = sink.latencies();
        assert_eq!((from_send.count(), from_ack.count()), (2, 2));
        let summary = from_ack.summary();
        assert!(summary.p50_us <= 1, "{summary:?}");
        assert!(summary.max_us >= 20_000, "{summary:?}");
    }
}
