//! The node: the one thread that owns Raft, the WAL and the write side of the MVCC store, and the
//! handle other threads use to talk to it.
//!
//! - [`spawn`]: opening the data dir, restoring raft-rs, starting the thread.
//! - [`actor`]: the loop on a pinned glommio executor, the shell that does the I/O.
//! - [`core`]: the state machine the actor drives: raft-rs and everything waiting on it, split
//!   by concern into [`ready`] (the `Ready` loop), [`apply_batch`], [`reads`], [`waiters`],
//!   [`compaction`], [`wal_release`] and [`leases`].
//! - [`transport`]: the seam where Raft messages leave for other members.
//! - [`codec`]: the bytes of an entry carrying a write request.
//! - [`members`]: the member and cluster ids and the member list, stored in the B+tree.
//! - [`durability`]: the background B+tree sync that lets the WAL release old segments.
//! - [`config`]: the node's settings from the server's flags.
//!
//! Everything outside the node reaches it through [`NodeHandle`]: requests travel over a bounded
//! channel, replies over oneshots ([`answer`], which also tells an idle gRPC thread whether an
//! answer is due), so gRPC threads on any runtime can await them. Readers use
//! [`NodeHandle::store`] directly (views are lock-free snapshots). Nothing here serves gRPC or
//! decides apply semantics (`crate::server::apply` does).

mod actor;
pub mod answer;
mod apply_batch;
pub mod codec;
mod compaction;
pub mod config;
pub mod core;
pub mod durability;
mod leases;
pub mod members;
mod reads;
mod ready;
mod snapshots;
mod spawn;
pub mod transport;
mod waiters;
mod wal_release;

pub use config::{INBOX_REQUESTS_MAX, NodeConfig, SYNC_INTERVAL};
pub use reads::READS_PENDING_MAX;
pub use snapshots::CATCH_UP_ENTRIES;
pub use waiters::PROPOSALS_PENDING_MAX;

#[cfg(test)]
mod tests;

use crate::errors::EtcdError;
use crate::server::{WriteRequest, WriteResponse};
use keelson_storage::mvcc::Store;
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why the node could not start (or stopped).
#[derive(Debug)]
pub enum NodeError {
    /// The B+tree or the MVCC store failed to open or write.
    Storage(String),
    /// The WAL failed to open or replay (corruption names the file and offset).
    Wal(String),
    /// The WAL and the B+tree disagree (e.g. the B+tree applied past the end of the log).
    Inconsistent(String),
    /// Raft refused the restored state.
    Raft(String),
    /// The node thread could not be started or died.
    Thread(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Storage(why) => write!(f, "storage: {why}"),
            NodeError::Wal(why) => write!(f, "{why}"),
            NodeError::Inconsistent(why) => write!(f, "data dir inconsistent: {why}"),
            NodeError::Raft(why) => write!(f, "raft: {why}"),
            NodeError::Thread(why) => write!(f, "node thread: {why}"),
        }
    }
}

impl std::error::Error for NodeError {}

/// A member as `MemberList` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// What `Status` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The leader's member id; 0 when there is none.
    pub leader: u64,
    pub raft_term: u64,
    /// The last index in the Raft log.
    pub raft_index: u64,
    pub raft_applied_index: u64,
    /// Bytes of the B+tree file.
    pub db_size: u64,
    /// Bytes of the B+tree in use (the file size until the B+tree reports free pages).
    pub db_size_in_use: u64,
}

/// A message to the node thread.
pub(crate) enum Command {
    Propose {
        request: WriteRequest,
        reply: answer::Answer<Result<WriteResponse, EtcdError>>,
    },
    ReadIndex {
        reply: answer::Answer<Result<(), EtcdError>>,
    },
    /// Finish what is in flight, sync, exit.
    Stop,
    /// Tests: exit at once, without the final B+tree sync (a crash as far as the B+tree knows).
    #[cfg(test)]
    Abort,
    /// Tests: run this on the node thread, in inbox order (e.g. to arm a fault).
    #[cfg(test)]
    Run(Box<dyn FnOnce() + Send>),
}

/// Peer events waiting for the node before the transport's receivers wait.
pub const PEER_EVENTS_MAX: usize = 4096;

/// What the peer transport brings to the node.
#[derive(Debug)]
pub enum PeerEvent {
    /// A Raft message from another member.
    Message(raft::eraftpb::Message),
    /// Messages to this member could not be delivered: raft-rs probes it until it answers.
    Unreachable(u64),
    /// A snapshot from the leader, received whole into `path` (durable), with its message.
    Snapshot {
        message: raft::eraftpb::Message,
        path: std::path::PathBuf,
    },
    /// This member's stream of a snapshot to `to` ended, delivered or not.
    SnapshotSent { to: u64, delivered: bool },
}

/// The node's side of the transport: the transport that carries Raft messages out, and the
/// channel that brings messages and reports in (the sender is cloned into the transport and the
/// peer service).
pub struct Peers {
    pub transport: Box<dyn transport::Transport + Send>,
    pub events: flume::Sender<PeerEvent>,
    pub(crate) inbox: flume::Receiver<PeerEvent>,
}

impl Peers {
    /// A channel for peer events, before the transport that will report into it exists.
    pub fn channel() -> (flume::Sender<PeerEvent>, flume::Receiver<PeerEvent>) {
        flume::bounded(PEER_EVENTS_MAX)
    }

    pub fn new(
        transport: Box<dyn transport::Transport + Send>,
        (events, inbox): (flume::Sender<PeerEvent>, flume::Receiver<PeerEvent>),
    ) -> Peers {
        Peers {
            transport,
            events,
            inbox,
        }
    }

    /// A member alone: no transport, nobody to hear from.
    pub fn none() -> Peers {
        Peers::new(Box::new(transport::NoPeers), Peers::channel())
    }
}

/// State the node thread publishes for every handle.
pub(crate) struct Shared {
    pub inbox: flume::Sender<Command>,
    /// Where the peer service delivers what other members send.
    pub peer_events: flume::Sender<PeerEvent>,
    pub data_dir: std::path::PathBuf,
    /// The store readers use. Swapped whole when a Raft snapshot is installed; a reader holds
    /// the store (and view) it loaded until it is done.
    pub store: arc_swap::ArcSwap<Store>,
    pub status: Mutex<NodeStatus>,
    pub members: Mutex<Vec<MemberInfo>>,
    /// This member's request and lease ids (etcd's `idutil`).
    pub ids: Arc<crate::raft::ids::IdGenerator>,
    /// Set when a WAL or B+tree sync failed: no write is accepted or acknowledged again.
    pub poisoned: AtomicBool,
    pub thread: Mutex<Option<glommio::ExecutorJoinHandle<()>>>,
    /// The leases: updated by the apply loop, renewed and read by the Lease service.
    pub lessor: Mutex<crate::server::lessor::Lessor>,
    /// The watchers; the node hands it every applied batch's changes.
    pub watch: Arc<crate::server::watch::WatchHub>,
}

impl Shared {
    pub fn poison(&self, why: &str) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(reason = why, "storage failed; refusing writes");
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}

/// The way into a running node. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("status", &self.status())
            .finish()
    }
}

/// Opens the data dir, replays the WAL and applies everything committed, on a new thread pinned
/// to `config.node_core`, for a member alone in its cluster. Returns once the node serves.
pub fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    start_with_peers(config, Peers::none())
}

/// [`start`] for a member that talks to others through `peers`.
pub fn start_with_peers(config: NodeConfig, peers: Peers) -> Result<NodeHandle, NodeError> {
    let shared = spawn::spawn(config, peers)?;
    Ok(NodeHandle { shared })
}

impl NodeHandle {
    /// Proposes `request` and resolves with its response once it is committed (durable in the
    /// WAL) and applied. The header carries cluster id, member id, revision and raft term.
    pub async fn propose(&self, request: WriteRequest) -> Result<WriteResponse, EtcdError> {
        if self.shared.is_poisoned() {
            return Err(EtcdError::Stopped);
        }
        // Counted down when this call ends, even if its caller drops it.
        let _pending = crate::metrics::PendingProposal::start();
        let (reply, answer) = answer::channel();
        let sent = self
            .shared
            .inbox
            .send_async(Command::Propose { request, reply })
            .await;
        let answered = match sent {
            Ok(()) => answer.await.map_err(|_| EtcdError::Stopped).and_then(|r| r),
            Err(_) => Err(EtcdError::Stopped),
        };
        // etcd counts proposals that never got an answer from the state machine: stopped,
        // timed out, dropped; an etcd error of the request itself is an answer.
        if matches!(answered, Err(EtcdError::Stopped)) {
            crate::metrics::server().proposals_failed.inc();
        }
        answered
    }

    /// Hands what a member sent to the node; waits while the node is behind (back-pressure on
    /// the member's stream).
    pub async fn deliver(&self, event: PeerEvent) -> Result<(), EtcdError> {
        self.shared
            .peer_events
            .send_async(event)
            .await
            .map_err(|_| EtcdError::Stopped)
    }

    /// Where snapshots from the leader are received.
    pub fn snap_dir(&self) -> std::path::PathBuf {
        self.shared.data_dir.join(keelson_storage::schema::SNAP_DIR)
    }

    /// This member's own id and its cluster's.
    pub fn ids_of_member(&self) -> (u64, u64) {
        let status = self.shared.status.lock();
        (status.member_id, status.cluster_id)
    }

    /// Linearizable barrier: resolves once the applied index reaches the commit index the leader
    /// had when the call arrived (raft-rs's ReadIndex).
    pub async fn read_index(&self) -> Result<(), EtcdError> {
        let (reply, answer) = answer::channel();
        self.shared
            .inbox
            .send_async(Command::ReadIndex { reply })
            .await
            .map_err(|_| EtcdError::Stopped)?;
        answer.await.map_err(|_| EtcdError::Stopped)?
    }

    /// This member's id generator, shared by request ids and lease ids as in etcd.
    pub fn ids(&self) -> &crate::raft::ids::IdGenerator {
        &self.shared.ids
    }

    /// The current store. Hold it for one request only: a snapshot install replaces it.
    pub fn store(&self) -> Arc<Store> {
        self.shared.store.load_full()
    }

    /// The watch hub the node feeds with every applied batch.
    pub fn watch_hub(&self) -> &Arc<crate::server::watch::WatchHub> {
        &self.shared.watch
    }

    /// The lessor. Keep-alives renew here directly, as etcd renews without a log entry; every
    /// other lease change must be proposed.
    pub fn lessor(&self) -> &Mutex<crate::server::lessor::Lessor> {
        &self.shared.lessor
    }

    pub fn status(&self) -> NodeStatus {
        let mut status = *self.shared.status.lock();
        let size = self.db_size();
        status.db_size = size;
        status.db_size_in_use = size;
        status
    }

    /// Bytes of the B+tree file as of the newest commit: the size the quota is checked against.
    pub fn db_size(&self) -> u64 {
        self.shared.store.load().database().file_bytes()
    }

    /// What every response header needs: cluster id, member id and raft term. Unlike
    /// [`NodeHandle::status`] it does no I/O, so the read path can call it per request.
    pub fn header_ids(&self) -> (u64, u64, u64) {
        let status = self.shared.status.lock();
        (status.cluster_id, status.member_id, status.raft_term)
    }

    pub fn members(&self) -> Vec<MemberInfo> {
        self.shared.members.lock().clone()
    }

    /// Stops accepting, finishes what is in flight, syncs the B+tree and joins the node thread.
    pub fn stop(self) {
        self.finish(Command::Stop);
    }

    /// Tests: ends the node thread without its final B+tree sync.
    #[cfg(test)]
    pub(crate) fn abort(self) {
        self.finish(Command::Abort);
    }

    /// Tests: runs `f` on the node thread after the commands already sent.
    #[cfg(test)]
    pub(crate) fn run_on_node(&self, f: impl FnOnce() + Send + 'static) {
        let _ = self.shared.inbox.send(Command::Run(Box::new(f)));
    }

    fn finish(self, command: Command) {
        // A send error means the thread is already gone; joining still reaps it.
        let _ = self.shared.inbox.send(command);
        let thread = self.shared.thread.lock().take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
