//! The Watch service: etcd 3.4's bidirectional watch stream (`etcdserver/api/v3rpc/watch.go`).
//!
//! Each stream gets two tasks: one reads the client's requests eagerly (so a create or cancel is
//! seen even while responses are being written), the other owns the stream's watchers and is the
//! only writer of responses: created and canceled answers, events the hub queued, catch-ups read
//! from the store, compaction cancels, progress notifications. Because one task writes, a
//! watcher's created response always precedes its events, and its events go out in revision
//! order. Events go out as the hub's shared encoding with this watcher's header and id around
//! it ([`crate::api::watch_wire`]), everything pending handed to the transport in one batch.
//!
//! This module must never make the node wait (the hub only queues; a slow client only slows its
//! own stream) and never change the store.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{ResponseHeader, WatchRequest, WatchResponse};
use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tonic::{Request, Status, Streaming};

use crate::api::header::fill_header;
use crate::api::watch_wire::{ResponseStream, WatchOut};
use crate::node::NodeHandle;
use crate::server::watch::feed::{self, Output};
use crate::server::watch::{Delivery, StreamHandle, WatchHub, WatchSpec};

/// Client requests read ahead of the stream task.
const REQUEST_QUEUE: usize = 64;
/// Batches of responses written ahead of the transport; when full the stream task waits (that
/// stream only).
const RESPONSE_QUEUE: usize = 16;
/// The watch id of a response that belongs to no watcher (etcd 3.4's progress-request answer).
const NO_WATCH_ID: i64 = -1;
/// The field number of `WatchResponse.header`.
const HEADER_FIELD: u32 = 1;

/// etcd's Watch service over a node.
pub struct WatchService {
    node: NodeHandle,
    /// The hub's dispatch task is started by the first stream (on the runtime that serves).
    dispatching: std::sync::Once,
    progress_interval: Duration,
    max_request_bytes: usize,
}

impl WatchService {
    /// `progress_interval` is `--experimental-watch-progress-notify-interval`; responses of
    /// watchers that asked for fragments are split at `max_request_bytes`.
    pub fn new(
        node: NodeHandle,
        progress_interval: Duration,
        max_request_bytes: usize,
    ) -> WatchService {
        WatchService {
            node,
            dispatching: std::sync::Once::new(),
            progress_interval,
            max_request_bytes,
        }
    }

    /// Serves one Watch stream: starts its reader and writer tasks and returns the responses.
    pub fn watch(&self, request: Request<Streaming<WatchRequest>>) -> ResponseStream {
        let mut incoming = request.into_inner();
        let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
        tokio::spawn(async move {
            // A half-closed or broken request stream ends only the reading: etcd keeps sending
            // events to a client that stopped sending requests.
            while let Some(Ok(request)) = incoming.next().await {
                if request_tx.send(request).await.is_err() {
                    break;
                }
            }
        });
        let (response_tx, response_rx) = mpsc::channel(RESPONSE_QUEUE);
        let hub = self.node.watch_hub().clone();
        self.dispatching.call_once(|| {
            tokio::spawn(WatchHub::dispatch(Arc::downgrade(&hub)));
        });
        let handle = hub.open_stream();
        let session = Session {
            node: self.node.clone(),
            stream: Registered {
                hub,
                handle: handle.clone(),
            },
            specs: HashMap::new(),
            progress: HashMap::new(),
            out: response_tx,
            pending: Vec::new(),
            heads: HeadCache::default(),
            max_request_bytes: self.max_request_bytes,
        };
        tokio::spawn(session.run(request_rx, self.progress_interval));
        Box::pin(Responses {
            rx: response_rx,
            current: Vec::new().into_iter(),
        })
    }
}

type Item = Result<WatchOut, Status>;

/// The session's batches flattened into one response per item: tonic encodes every item that is
/// ready into one buffer, so a batch leaves in as few writes as its size allows.
struct Responses {
    rx: mpsc::Receiver<Vec<Item>>,
    current: std::vec::IntoIter<Item>,
}

impl Stream for Responses {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        loop {
            if let Some(item) = self.current.next() {
                return Poll::Ready(Some(item));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.current = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A stream registered in the hub, removed with all its watchers when the session ends.
struct Registered {
    hub: Arc<WatchHub>,
    handle: StreamHandle,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.close_stream(self.handle.id);
    }
}

/// The encoded header field of the last revision answered, reused by every watcher's response
/// at that revision. Refilled per flush, so a new raft term is picked up.
#[derive(Default)]
struct HeadCache {
    rev: i64,
    head: Option<Bytes>,
}

/// The client is gone: stop the session.
struct Gone;

struct Session {
    node: NodeHandle,
    stream: Registered,
    /// This stream's live watchers.
    specs: HashMap<i64, WatchSpec>,
    /// etcd's `progress` map: watchers that asked for progress notifications, and whether the
    /// next tick should notify them (no event was sent to them since the last tick).
    progress: HashMap<i64, bool>,
    out: mpsc::Sender<Vec<Item>>,
    /// Responses made but not yet handed to the transport, in order.
    pending: Vec<Item>,
    heads: HeadCache,
    max_request_bytes: usize,
}

impl Session {
    async fn run(mut self, mut requests: mpsc::Receiver<WatchRequest>, interval: Duration) {
        let wake = self.stream.handle.wake.clone();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut reading = true;
        loop {
            if self.flush().await.is_err() || self.ship().await.is_err() {
                return;
            }
            let outcome = tokio::select! {
                biased;
                () = self.out.closed() => Err(Gone),
                request = requests.recv(), if reading => match request {
                    Some(request) => self.handle(request),
                    None => {
                        reading = false;
                        Ok(())
                    }
                },
                () = wake.notified() => Ok(()),
                _ = ticker.tick() => {
                    self.progress_tick();
                    Ok(())
                }
            };
            if outcome.is_err() {
                return;
            }
        }
    }

    fn hub(&self) -> &WatchHub {
        &self.stream.hub
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader {
            revision,
            ..ResponseHeader::default()
        });
        fill_header(&self.node, &mut header, revision);
        header
    }

    /// The encoded header field for a response at `revision`.
    fn head(&mut self, revision: i64) -> Bytes {
        if let Some(head) = &self.heads.head
            && self.heads.rev == revision
        {
            return head.clone();
        }
        let header = self.header(revision).expect("fill_header sets it");
        let mut buf = Vec::with_capacity(header.encoded_len() + 2);
        prost::encoding::message::encode(HEADER_FIELD, &header, &mut buf);
        let head = Bytes::from(buf);
        self.heads = HeadCache {
            rev: revision,
            head: Some(head.clone()),
        };
        head
    }

    /// Queues a response behind everything made before it.
    fn send(&mut self, response: WatchResponse) {
        self.pending.push(Ok(WatchOut::Message(response)));
    }

    /// Hands the pending responses to the transport as one batch.
    async fn ship(&mut self) -> Result<(), Gone> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.out.send(batch).await.map_err(|_| Gone)
    }

    fn handle(&mut self, request: WatchRequest) -> Result<(), Gone> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                let spec = WatchSpec::from_request(&create);
                let added = self.hub().add_watcher(
                    self.stream.handle.id,
                    create.watch_id,
                    spec.clone(),
                    create.start_revision,
                );
                let response = match added {
                    Ok((id, rev)) => {
                        if spec.progress_notify {
                            self.progress.insert(id, true);
                        }
                        self.specs.insert(id, spec);
                        WatchResponse {
                            header: self.header(rev),
                            watch_id: id,
                            created: true,
                            ..WatchResponse::default()
                        }
                    }
                    Err(why) => WatchResponse {
                        header: self.header(self.hub().rev()),
                        watch_id: NO_WATCH_ID,
                        created: true,
                        canceled: true,
                        cancel_reason: why.reason().to_string(),
                        ..WatchResponse::default()
                    },
                };
                self.send(response);
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                let id = cancel.watch_id;
                // etcd answers only a cancel of a watcher that exists, which includes one it
                // canceled for the compaction: that one is answered a second time, as here
                // (no compact revision), and only then is its id free again.
                if self.hub().cancel(self.stream.handle.id, id) {
                    self.specs.remove(&id);
                    self.progress.remove(&id);
                    let response = WatchResponse {
                        header: self.header(self.hub().rev()),
                        watch_id: id,
                        canceled: true,
                        ..WatchResponse::default()
                    };
                    self.send(response);
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let response = WatchResponse {
                    header: self.header(self.hub().rev()),
                    watch_id: NO_WATCH_ID,
                    ..WatchResponse::default()
                };
                self.send(response);
            }
            None => {}
        }
        Ok(())
    }

    /// Sends everything pending: what the hub queued, then catch-ups read from the store. Each
    /// round (everything queued at once, or one catch-up step) leaves as one batch.
    async fn flush(&mut self) -> Result<(), Gone> {
        let store = self.node.store().clone();
        self.heads = HeadCache::default();
        let mut outputs = Vec::new();
        loop {
            feed::next_batch(self.hub(), &store, self.stream.handle.id, &mut outputs);
            if outputs.is_empty() {
                return Ok(());
            }
            for output in outputs.drain(..) {
                match output {
                    Output::Events(delivery) => self.send_events(delivery),
                    Output::Compacted {
                        watch_id,
                        compact_rev,
                        ..
                    } => {
                        // The hub keeps only the id, until the client cancels it.
                        self.specs.remove(&watch_id);
                        self.progress.remove(&watch_id);
                        // etcd cancels a compacted watcher with the compact revision set, and
                        // its header revision is 0 (the watcher's response carries no store
                        // revision); checked against etcd 3.4.23 in tests/watch_grpc.rs.
                        let response = WatchResponse {
                            header: self.header(0),
                            watch_id,
                            canceled: true,
                            compact_revision: compact_rev,
                            ..WatchResponse::default()
                        };
                        self.send(response);
                    }
                    Output::Broken(why) => {
                        let status = Status::internal(format!("keelson: watch history: {why}"));
                        self.pending.push(Err(status));
                        let _ = self.ship().await;
                        return Err(Gone);
                    }
                }
            }
            self.ship().await?;
        }
    }

    /// Queues one watcher's events: prev_kv filled in if it asked, split into fragments if it
    /// asked and the response is too large. Otherwise the shared encoding is written as is.
    fn send_events(&mut self, delivery: Delivery) {
        let Some(spec) = self.specs.get(&delivery.watch_id) else {
            // Canceled after the hub queued this; etcd drops such events too.
            return;
        };
        let (fragment, prev_kv) = (spec.fragment, spec.prev_kv);
        if let Some(flag) = self.progress.get_mut(&delivery.watch_id) {
            // An event is progress too: skip the next notification (etcd elides it).
            *flag = false;
        }
        let head = self.head(delivery.rev);
        let (events, encoded) = if prev_kv {
            delivery.batch.with_prev_kv(&self.node.store())
        } else {
            (delivery.batch.events(), delivery.batch.encoded())
        };
        // The whole response is under the limit when its events are with room to spare for the
        // header and watch id: no need to ask for fragments.
        if !fragment || encoded.len() + head.len() + 16 < self.max_request_bytes {
            let out = WatchOut::Events {
                head,
                watch_id: delivery.watch_id,
                events: encoded.clone(),
            };
            self.pending.push(Ok(out));
            return;
        }
        let response = WatchResponse {
            header: self.header(delivery.rev),
            watch_id: delivery.watch_id,
            events: events.to_vec(),
            ..WatchResponse::default()
        };
        for part in fragments(response, self.max_request_bytes) {
            self.send(part);
        }
    }

    fn progress_tick(&mut self) {
        let mut due: Vec<i64> = self
            .progress
            .iter()
            .filter(|(_, due)| **due)
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        for flag in self.progress.values_mut() {
            *flag = true;
        }
        for id in due {
            if let Some(rev) = self.hub().progress(self.stream.handle.id, id) {
                let response = WatchResponse {
                    header: self.header(rev),
                    watch_id: id,
                    ..WatchResponse::default()
                };
                self.send(response);
            }
        }
    }
}

/// etcd's `sendFragments`: a response at or over `limit` bytes with more than one event is split
/// into parts under the limit (each at least one event), all but the last marked `fragment`.
pub fn fragments(response: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < limit || response.events.len() < 2 {
        return vec![response];
    }
    let mut parts = Vec::new();
    let mut template = response.clone();
    template.events = Vec::new();
    template.fragment = true;
    let mut current = template.clone();
    for event in response.events {
        current.events.push(event);
        if current.events.len() > 1 && current.encoded_len() >= limit {
            let last = current.events.pop().expect("just pushed");
            parts.push(std::mem::replace(&mut current, template.clone()));
            current.events.push(last);
        }
    }
    current.fragment = false;
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::mvccpb::{Event, KeyValue};

    fn event(value_bytes: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: vec![b'v'; value_bytes],
                ..KeyValue::default()
            }),
            ..Event::default()
        }
    }

    #[test]
    fn fragments_split_under_the_limit_and_mark_all_but_the_last() {
        let response = WatchResponse {
            watch_id: 3,
            events: (0..10).map(|_| event(100)).collect(),
            ..WatchResponse::default()
        };
        let parts = fragments(response.clone(), 350);
        assert!(parts.len() > 1);
        let flags: Vec<bool> = parts.iter().map(|p| p.fragment).collect();
        assert_eq!(flags.last(), Some(&false));
        assert!(flags[..flags.len() - 1].iter().all(|f| *f));
        assert!(
            parts
                .iter()
                .all(|p| p.encoded_len() < 350 || p.events.len() == 1)
        );
        let joined: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, response.events);
        // Small enough, or a single event: sent whole.
        assert_eq!(fragments(response.clone(), 1 << 20), vec![response]);
        let single = WatchResponse {
            events: vec![event(1000)],
            ..WatchResponse::default()
        };
        assert_eq!(fragments(single.clone(), 10), vec![single]);
    }
}
