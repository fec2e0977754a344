//! Watch workloads: `watch-latency` (one key, every client watching, puts
//! one at a time) and `watch` (many watchers over many streams, concurrent
//! puts, event throughput).
//!
//! Event latency is measured from the moment the put is sent to the moment
//! a watcher receives its event, so it includes the put's own commit; the
//! put latency alone is reported beside it. Each value carries its put's
//! sequence number, which is how a watcher finds the put's start time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tonic::Streaming;
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

/// What every watcher reader shares: put start times and what arrived.
struct EventSink {
    base: Instant,
    /// Nanoseconds after `base` at which put `seq` was sent.
    put_started: Vec<AtomicU64>,
    latency: Mutex<Latency>,
    received: AtomicU64,
    arrived: Notify,
}

impl EventSink {
    fn new(puts: u64) -> Arc<Self> {
        Arc::new(EventSink {
            base: Instant::now(),
            put_started: (0..puts).map(|_| AtomicU64::new(0)).collect(),
            latency: Mutex::new(Latency::default()),
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

    fn on_response(&self, resp: &WatchResponse) {
        let now = self.now_ns();
        let mut arrived = 0;
        {
            let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            for kv in resp.events.iter().filter_map(|e| e.kv.as_ref()) {
                let Some(started) = keys::parse_seq(&kv.value)
                    .and_then(|seq| self.put_started.get(usize::try_from(seq).ok()?))
                else {
                    continue;
                };
                let started = started.load(Ordering::Relaxed);
                latency.record(Duration::from_nanos(now.saturating_sub(started)));
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

    fn latency(&self) -> Latency {
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
    replies: Streaming<WatchResponse>,
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
        let replies = WatchClient::new(channel)
            .watch(stream)
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

    /// Feeds every later reply into `sink` until the stream ends. Returns
    /// the request sender, which must stay alive as long as the stream should.
    fn read_into(self, sink: Arc<EventSink>) -> (mpsc::Sender<WatchRequest>, JoinHandle<()>) {
        let WatchStream { tx, mut replies } = self;
        let task = tokio::spawn(async move {
            while let Ok(Some(resp)) = replies.message().await {
                if resp.canceled {
                    break;
                }
                sink.on_response(&resp);
            }
        });
        (tx, task)
    }
}

/// Ends every watcher: closing the request side half-closes each stream,
/// and aborting the readers drops whatever is still in flight.
fn shut_down(streams: Vec<(mpsc::Sender<WatchRequest>, JoinHandle<()>)>) {
    for (tx, task) in streams {
        drop(tx);
        task.abort();
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
    let mut streams = Vec::with_capacity(g.clients);
    for i in 0..g.clients {
        let ws = WatchStream::open(pool.for_client(i), key.clone()).await?;
        streams.push(ws.read_into(sink.clone()));
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
            Ok(Ok(_)) => put_latency.record(t0.elapsed()),
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
    shut_down(streams);

    result.latency = sink.latency();
    result.ok = result.latency.count();
    // Events owed by every put sent, failed puts included, that never came.
    result.errors = (attempted * watchers).saturating_sub(result.ok);
    result.breakdown = vec![("put".into(), put_latency)];
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
    let mut streams = Vec::with_capacity(creating.len());
    let mut failure = None;
    for task in creating {
        match task.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((ws, samples)) => {
                create_latency.add_samples(&samples);
                streams.push(ws.read_into(sink.clone()));
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        shut_down(streams);
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
    shut_down(streams);

    let mut result = RunResult::new(label, command, planned);
    result.elapsed = elapsed;
    result.timed_out = puts.timed_out;
    result.latency = sink.latency();
    result.ok = result.latency.count();
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
        ("put".into(), puts.latency),
        ("watch-create".into(), create_latency),
    ];
    Ok(result)
}
