//! The Watch service: etcd 3.4's bidirectional watch stream (`etcdserver/api/v3rpc/watch.go`).
//!
//! Each stream gets two tasks: one reads the client's requests eagerly (so a create or cancel is
//! seen even while responses are being written), the other owns the stream's watchers and is the
//! only writer of responses: created and canceled answers, events the hub queued, catch-ups read
//! from the store, compaction cancels, progress notifications. Because one task writes, a
//! watcher's created response always precedes its events, and its events go out in revision
//! order.
//!
//! This module must never make the node wait (the hub only queues; a slow client only slows its
//! own stream) and never change the store.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::watch_server::Watch;
use keelson_proto::etcdserverpb::{ResponseHeader, WatchRequest, WatchResponse};
use prost::Message;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::api::header::fill_header;
use crate::node::NodeHandle;
use crate::server::watch::feed::{self, Output};
use crate::server::watch::{Delivery, StreamHandle, WatchHub, WatchSpec};

/// Client requests read ahead of the stream task.
const REQUEST_QUEUE: usize = 64;
/// Responses written ahead of the transport; when full the stream task waits (that stream only).
const RESPONSE_QUEUE: usize = 64;
/// The watch id of a response that belongs to no watcher (etcd 3.4's progress-request answer).
const NO_WATCH_ID: i64 = -1;

/// etcd's Watch service over a node.
pub struct WatchService {
    node: NodeHandle,
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
            progress_interval,
            max_request_bytes,
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
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
            max_request_bytes: self.max_request_bytes,
        };
        tokio::spawn(session.run(request_rx, self.progress_interval));
        let stream = futures_util::stream::unfold(response_rx, |mut rx| async move {
            rx.recv().await.map(|response| (response, rx))
        });
        Ok(Response::new(Box::pin(stream)))
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
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    max_request_bytes: usize,
}

impl Session {
    async fn run(mut self, mut requests: mpsc::Receiver<WatchRequest>, interval: Duration) {
        let wake = self.stream.handle.wake.clone();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut reading = true;
        loop {
            if self.flush().await.is_err() {
                return;
            }
            let outcome = tokio::select! {
                biased;
                () = self.out.closed() => Err(Gone),
                request = requests.recv(), if reading => match request {
                    Some(request) => self.handle(request).await,
                    None => {
                        reading = false;
                        Ok(())
                    }
                },
                () = wake.notified() => Ok(()),
                _ = ticker.tick() => self.progress_tick().await,
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

    async fn send(&self, response: WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(response)).await.map_err(|_| Gone)
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Gone> {
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
                self.send(response).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                let id = cancel.watch_id;
                // etcd answers only a cancel of a watcher that exists.
                if self.hub().cancel(self.stream.handle.id, id) {
                    self.specs.remove(&id);
                    self.progress.remove(&id);
                    let response = WatchResponse {
                        header: self.header(self.hub().rev()),
                        watch_id: id,
                        canceled: true,
                        ..WatchResponse::default()
                    };
                    self.send(response).await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let response = WatchResponse {
                    header: self.header(self.hub().rev()),
                    watch_id: NO_WATCH_ID,
                    ..WatchResponse::default()
                };
                self.send(response).await
            }
            None => Ok(()),
        }
    }

    /// Sends everything pending: what the hub queued, then catch-ups read from the store.
    async fn flush(&mut self) -> Result<(), Gone> {
        let store = self.node.store().clone();
        while let Some(output) = feed::next(self.hub(), &store, self.stream.handle.id) {
            match output {
                Output::Events(delivery) => self.send_events(delivery).await?,
                Output::Compacted {
                    watch_id,
                    compact_rev,
                    ..
                } => {
                    self.specs.remove(&watch_id);
                    self.progress.remove(&watch_id);
                    // etcd cancels a compacted watcher with the compact revision set, and its
                    // header revision is 0 (the watcher's response carries no store revision);
                    // checked against etcd 3.4.23 in tests/watch_grpc.rs.
                    let response = WatchResponse {
                        header: self.header(0),
                        watch_id,
                        canceled: true,
                        compact_revision: compact_rev,
                        ..WatchResponse::default()
                    };
                    self.send(response).await?;
                }
                Output::Broken(why) => {
                    let status = Status::internal(format!("keelson: watch history: {why}"));
                    let _ = self.out.send(Err(status)).await;
                    return Err(Gone);
                }
            }
        }
        Ok(())
    }

    /// Sends one watcher's events: prev_kv filled in if it asked, split into fragments if it
    /// asked and the response is too large.
    async fn send_events(&mut self, delivery: Delivery) -> Result<(), Gone> {
        let Some(spec) = self.specs.get(&delivery.watch_id) else {
            // Canceled after the hub queued this; etcd drops such events too.
            return Ok(());
        };
        let fragment = spec.fragment;
        let mut delivery = delivery;
        if spec.prev_kv {
            feed::with_prev_kv(self.node.store(), &mut delivery);
        }
        if let Some(flag) = self.progress.get_mut(&delivery.watch_id) {
            // An event is progress too: skip the next notification (etcd elides it).
            *flag = false;
        }
        let response = WatchResponse {
            header: self.header(delivery.rev),
            watch_id: delivery.watch_id,
            events: delivery.events,
            ..WatchResponse::default()
        };
        if !fragment {
            return self.send(response).await;
        }
        for part in fragments(response, self.max_request_bytes) {
            self.send(part).await?;
        }
        Ok(())
    }

    async fn progress_tick(&mut self) -> Result<(), Gone> {
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
                self.send(response).await?;
            }
        }
        Ok(())
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
