//! Outbound: the streams that carry this member's Raft messages to each other member.
//!
//! Each other member gets two links, each a queue and a task on the gRPC runtime that keeps one
//! `Peer.Messages` stream open and writes whatever its queue holds as one batch at a time:
//! - the append link carries `MsgAppend`s (the large ones);
//! - the priority link carries everything else (heartbeats, votes, responses, read index), so
//!   they never wait behind appends, as etcd's rafthttp keeps its `msgappv2` stream apart from
//!   its `message` stream.
//!
//! Back-pressure: a stream writes no faster than HTTP/2 flow control lets it; a full queue drops
//! what the node hands it and tells the node the member is unreachable, so raft-rs stops
//! streaming to it and probes instead. A broken or refused stream is reconnected with
//! exponential backoff. Raft tolerates lost, repeated and late messages; it needs only that
//! messages of one link arrive in order, which one stream gives.
//!
//! Owns: the links, their queues and tasks. Never: blocks the node (every hand-off is
//! `try_send`), reorders a link's messages, or decides anything about Raft.

use super::wire::{self, Route};
use crate::node::transport::Transport;
use crate::node::{MemberInfo, PeerEvent};
use keelson_proto::keelsonpeerpb::Batch;
use keelson_proto::keelsonpeerpb::peer_client::PeerClient;
use keelson_storage::mvcc::View;
use raft::eraftpb::{Message, MessageType};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// Messages queued for one member's append link before new ones are dropped.
pub const APPEND_QUEUE_MESSAGES_MAX: usize = 4096;
/// Messages queued for one member's priority link before new ones are dropped.
pub const PRIORITY_QUEUE_MESSAGES_MAX: usize = 1024;
/// Bytes of encoded messages gathered into one batch (a single larger message still goes alone).
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// Batches written into a stream and not yet taken by HTTP/2.
pub const STREAM_BATCHES_MAX: usize = 8;
/// Largest message a member sends or accepts on the peer service: a batch, or one entry of the
/// largest request etcd allows with room to spare.
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 << 20;
/// First wait before reconnecting a broken link, doubled up to [`RECONNECT_BACKOFF_MAX`].
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on idle links, so a member that stopped answering (a hung process, a cut
/// network) is noticed without waiting for TCP.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The two kinds of link to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Append,
    Priority,
}

impl Class {
    /// The name etcd's logs give the matching rafthttp stream.
    fn name(self) -> &'static str {
        match self {
            Class::Append => "stream MsgApp v2",
            Class::Priority => "stream Message",
        }
    }

    fn of(message: &Message) -> Class {
        match message.get_msg_type() {
            MessageType::MsgAppend => Class::Append,
            _ => Class::Priority,
        }
    }
}

/// The links to one member.
struct Link {
    urls: Vec<String>,
    appends: mpsc::Sender<Message>,
    priority: mpsc::Sender<Message>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The snapshot being streamed to the member, if any (one at a time).
    snapshot: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(&self.snapshot) {
            task.abort();
        }
    }
}

/// The node's transport to the other members of its cluster.
pub struct PeerTransport {
    runtime: tokio::runtime::Handle,
    events: flume::Sender<PeerEvent>,
    own: u64,
    cluster_id: u64,
    links: HashMap<u64, Link>,
}

impl PeerTransport {
    /// A transport whose links run on `runtime` and report into `events` (the node's peer
    /// channel). It has no links until the node names the members.
    pub fn new(runtime: tokio::runtime::Handle, events: flume::Sender<PeerEvent>) -> PeerTransport {
        PeerTransport {
            runtime,
            events,
            own: 0,
            cluster_id: 0,
            links: HashMap::new(),
        }
    }

    fn open(&self, to: u64, urls: Vec<String>) -> Link {
        let route = Route {
            cluster_id: self.cluster_id,
            from: self.own,
            to,
        };
        let (appends, append_queue) = mpsc::channel(APPEND_QUEUE_MESSAGES_MAX);
        let (priority, priority_queue) = mpsc::channel(PRIORITY_QUEUE_MESSAGES_MAX);
        let tasks = vec![
            self.runtime.spawn(run(
                Class::Append,
                route,
                urls.clone(),
                append_queue,
                self.events.clone(),
            )),
            self.runtime.spawn(run(
                Class::Priority,
                route,
                urls.clone(),
                priority_queue,
                self.events.clone(),
            )),
        ];
        Link {
            urls,
            appends,
            priority,
            tasks,
            snapshot: None,
        }
    }
}

impl Transport for PeerTransport {
    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            let Some(link) = self.links.get(&to) else {
                // A member raft-rs knows and the membership does not (yet): nowhere to send.
                continue;
            };
            let queue = match Class::of(&message) {
                Class::Append => &link.appends,
                Class::Priority => &link.priority,
            };
            if queue.try_send(message).is_err() {
                let _ = self.events.try_send(PeerEvent::Unreachable(to));
            }
        }
    }

    fn send_snapshot(&mut self, message: Message, view: Arc<View>) {
        let to = message.to;
        let route = Route {
            cluster_id: self.cluster_id,
            from: self.own,
            to,
        };
        let events = self.events.clone();
        let Some(link) = self.links.get_mut(&to) else {
            let _ = events.try_send(PeerEvent::SnapshotSent {
                to,
                delivered: false,
            });
            return;
        };
        if link.snapshot.as_ref().is_some_and(|t| !t.is_finished()) {
            // One at a time: raft-rs asks again once it hears how the running one ended.
            let _ = events.try_send(PeerEvent::SnapshotSent {
                to,
                delivered: false,
            });
            return;
        }
        let urls = link.urls.clone();
        link.snapshot = Some(self.runtime.spawn(async move {
            let index = message.get_snapshot().get_metadata().index;
            let sent = super::snapshot::send(route, urls, message, view).await;
            if let Err(why) = &sent {
                tracing::warn!(
                    remote_peer_id = %format_args!("{to:x}"),
                    snapshot_index = index,
                    error = %why,
                    "failed to send database snapshot"
                );
            }
            // Blocking: the node must hear the outcome, or raft-rs waits on it for good.
            let _ = events
                .send_async(PeerEvent::SnapshotSent {
                    to,
                    delivered: sent.is_ok(),
                })
                .await;
        }));
    }

    fn set_members(&mut self, own: u64, cluster_id: u64, members: &[MemberInfo]) {
        self.own = own;
        self.cluster_id = cluster_id;
        self.links
            .retain(|id, _| members.iter().any(|m| m.id == *id && m.id != own));
        for member in members.iter().filter(|m| m.id != own) {
            let stale = self
                .links
                .get(&member.id)
                .is_some_and(|link| link.urls != member.peer_urls);
            if stale || !self.links.contains_key(&member.id) {
                let link = self.open(member.id, member.peer_urls.clone());
                self.links.insert(member.id, link);
            }
        }
    }
}

/// A channel to the first of `urls` that accepts a connection.
pub(crate) async fn connect(urls: &[String]) -> Result<tonic::transport::Channel, String> {
    let mut last = String::from("the member has no peer URLs");
    for url in urls {
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("bad peer URL {url}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => last = format!("dial {url}: {e}"),
        }
    }
    Err(last)
}

/// One link's task: keeps a stream open to `route.to` and writes its queue into it.
async fn run(
    class: Class,
    route: Route,
    urls: Vec<String>,
    mut queue: mpsc::Receiver<Message>,
    events: flume::Sender<PeerEvent>,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    // Log a link's state changes, not every failed attempt.
    let mut was_up = true;
    loop {
        let channel = match connect(&urls).await {
            Ok(channel) => channel,
            Err(why) => {
                if was_up {
                    tracing::warn!(
                        stream_type = class.name(),
                        remote_peer_id = %format_args!("{:x}", route.to),
                        error = %why,
                        "peer became inactive (message send to peer failed)"
                    );
                    was_up = false;
                }
                // What waited for this member is stale by the time it comes back.
                while queue.try_recv().is_ok() {}
                let _ = events.try_send(PeerEvent::Unreachable(route.to));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                continue;
            }
        };
        let (batches, stream) = mpsc::channel::<Batch>(STREAM_BATCHES_MAX);
        let mut request = tonic::Request::new(ReceiverStream::new(stream));
        route.write(request.metadata_mut());
        let mut client = PeerClient::new(channel)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX);
        let mut call = Box::pin(async move { client.messages(request).await });
        if !was_up {
            tracing::info!(
                stream_type = class.name(),
                remote_peer_id = %format_args!("{:x}", route.to),
                "peer became active"
            );
        }
        backoff = RECONNECT_BACKOFF_MIN;
        let ended = loop {
            tokio::select! {
                biased;
                ended = &mut call => break ended,
                next = queue.recv() => {
                    let Some(first) = next else {
                        // The transport dropped this link: the member left the cluster.
                        return;
                    };
                    let batch = gather(first, &mut queue);
                    if batches.send(batch).await.is_err() {
                        // The call ended; its outcome says why.
                        break (&mut call).await;
                    }
                }
            }
        };
        let why = match ended {
            Ok(_) => "the member closed the stream".to_string(),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                // Another cluster, or not the member we think: etcd logs and keeps refusing.
                format!("refused: {}", status.message())
            }
            Err(status) => status.message().to_string(),
        };
        tracing::warn!(
            stream_type = class.name(),
            remote_peer_id = %format_args!("{:x}", route.to),
            error = %why,
            "lost TCP streaming connection with remote peer"
        );
        was_up = false;
        let _ = events.try_send(PeerEvent::Unreachable(route.to));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// `first` and whatever else the queue holds, up to [`BATCH_BYTES_MAX`], in order.
fn gather(first: Message, queue: &mut mpsc::Receiver<Message>) -> Batch {
    let mut bytes = 0;
    let mut messages = Vec::new();
    let mut next = Some(first);
    while let Some(message) = next {
        let encoded = wire::encode(&message);
        bytes += encoded.len();
        messages.push(encoded);
        if bytes >= BATCH_BYTES_MAX {
            break;
        }
        next = queue.try_recv().ok();
    }
    Batch { messages }
}
