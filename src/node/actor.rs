//! The node loop, alone on its glommio executor: it owns the raft-rs node, the WAL and the MVCC
//! write side.
//!
//! One turn of the loop waits for one event (requests in the inbox, a tick, a WAL write that
//! became durable, or idle time for a compaction step), handles it, then handles every raft-rs
//! `Ready` until none is left:
//! - new entries (and the hard state when term or vote changed) go into the in-memory log and
//!   into one WAL append, which is enqueued at once and awaited in the background: while one
//!   fdatasync runs the next batch is gathered and queued behind it (async persistence: raft-rs
//!   learns of each with `on_persist_ready`, in order);
//! - committed entries (raft-rs hands out only persisted ones) are applied in one `StoreWrite`
//!   per batch that also records the last index, committed unsynced; then the proposers waiting
//!   on them are answered.
//!
//! Never: acknowledges a write before its WAL append resolved, applies past what the WAL holds,
//! or blocks the executor on anything but the B+tree's own unsynced commit (and, at stop, the
//! final B+tree sync).

use super::durability::{Syncer, sync_once};
use super::members::Membership;
use super::{Command, NodeConfig, NodeError, NodeStatus, Shared, codec};
use crate::errors::EtcdError;
use crate::raft::{self as core, ConfState, Entry, EntryType, HardState, LogStore, RawNode};
use crate::server::apply::{self, ApplyError};
use crate::server::lessor::{Lessor, min_ttl_seconds};
use crate::server::watch::WatchHub;
use crate::server::{WriteRequest, WriteResponse};
use futures::future::{FutureExt, LocalBoxFuture};
use futures::stream::{FuturesOrdered, StreamExt};
use glommio::{LocalExecutorBuilder, Placement};
use keelson_proto::etcdserverpb::{LeaseCheckpointRequest, LeaseRevokeRequest, ResponseHeader};
use keelson_storage::btree::Database;
use keelson_storage::io::{GlommioDirectory, LogDirectory};
use keelson_storage::mvcc::{CompactionJob, Store};
use keelson_storage::schema;
use keelson_storage::wal::{self, Record, RecoveryReport, Replay, Wal, WalConfig, WalError};
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Poll;

/// Bytes of a WAL entry body besides its data: type, index and term.
const ENTRY_BODY_FIXED_BYTES: usize = 1 + 8 + 8;

/// A WAL write in flight: the number of the `Ready` it persists, and its outcome.
type Persist = LocalBoxFuture<'static, (u64, Result<(), WalError>)>;

type ProposeReply = super::answer::Answer<Result<WriteResponse, EtcdError>>;
type ReadReply = super::answer::Answer<Result<(), EtcdError>>;

/// Opens the B+tree and membership here, then runs the loop on a new pinned executor thread.
/// Returns once the node has elected itself and applied everything the log had committed.
pub(crate) fn spawn(config: NodeConfig) -> Result<Arc<Shared>, NodeError> {
    spawn_with(
        config,
        |path| async move { GlommioDirectory::open(&path).await },
    )
}

/// [`spawn`] with the WAL in the directory `open_dir` opens on the node thread (tests use an
/// in-memory directory that can fail syncs).
pub(crate) fn spawn_with<D, F, Fut>(
    config: NodeConfig,
    open_dir: F,
) -> Result<Arc<Shared>, NodeError>
where
    D: LogDirectory + 'static,
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<D>> + 'static,
{
    let db_path = config.data_dir.join(schema::DB_FILE);
    if let Some(parent) = db_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| NodeError::Storage(format!("create {}: {e}", parent.display())))?;
    }
    let db = Database::open_file(&db_path)
        .map_err(|e| NodeError::Storage(format!("open {}: {e}", db_path.display())))?;
    // The WAL needs only the B+tree's durable applied index, so the node thread opens it while
    // this thread rebuilds the store's key index; the node checks the store agrees.
    let applied = Store::consistent_index_in(&db).map_err(|e| NodeError::Storage(e.to_string()))?;
    let placement = match config.node_core {
        Some(core) => Placement::Fixed(core),
        None => Placement::Unbound,
    };
    let (setup_sender, setup) = flume::bounded::<Setup>(1);
    let (ready, started) = std::sync::mpsc::channel();
    let node_config = config.clone();
    let mut builder = LocalExecutorBuilder::new(placement).name("keelson-node");
    if !config.busy_poll.is_zero() {
        builder = builder.spin_before_park(config.busy_poll);
    }
    let executor = builder
        .spawn(move || async move {
            let config = node_config;
            let opened = match open_dir(config.wal_dir.clone()).await {
                Ok(dir) => Wal::open_from(dir, wal_config(&config), applied)
                    .await
                    .map_err(wal_error),
                Err(e) => Err(NodeError::Wal(format!(
                    "open {}: {e}",
                    config.wal_dir.display()
                ))),
            };
            // No setup means the store failed to open; the caller reports that.
            let Ok(setup) = setup.recv_async().await else {
                return;
            };
            let node = match opened {
                Ok(opened) => Node::open(config, opened, applied, setup).await,
                Err(e) => Err(e),
            };
            match node {
                Ok(node) => node.serve(ready).await,
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })
        .map_err(|e| NodeError::Thread(format!("start the node executor: {e}")))?;
    let shared = match open_store(db, &config) {
        Ok((shared, commands, membership)) => {
            let setup = Setup {
                shared: shared.clone(),
                commands,
                membership,
            };
            // If the node thread is already gone, `started` below finds out why.
            let _ = setup_sender.send(setup);
            shared
        }
        Err(e) => {
            drop(setup_sender);
            let _ = executor.join();
            return Err(e);
        }
    };
    let outcome = started.recv();
    match outcome {
        Ok(Ok(())) => {
            *shared.thread.lock() = Some(executor);
            Ok(shared)
        }
        Ok(Err(e)) => {
            let _ = executor.join();
            Err(e)
        }
        Err(_) => {
            let why = match executor.join() {
                Ok(()) => "exited during start".to_string(),
                Err(e) => format!("failed during start: {e}"),
            };
            Err(NodeError::Thread(why))
        }
    }
}

/// What the node thread gets once the store is open.
struct Setup {
    shared: Arc<Shared>,
    commands: flume::Receiver<Command>,
    membership: Membership,
}

/// Opens the store (rebuilding its key index), the membership and the lessor.
fn open_store(
    db: Database,
    config: &NodeConfig,
) -> Result<(Arc<Shared>, flume::Receiver<Command>, Membership), NodeError> {
    let store = Arc::new(Store::open(db).map_err(|e| NodeError::Storage(e.to_string()))?);
    let membership = super::members::load_or_bootstrap(&store, config)?;
    let (inbox, commands) = flume::bounded(config.inbox_capacity.max(1));
    // Before the WAL replay, which brings the lessor up to date like any other apply.
    let min_ttl = min_ttl_seconds(config.election_ticks, config.tick_interval);
    let lessor =
        Lessor::restore(&store, min_ttl, std::time::Instant::now()).map_err(NodeError::Storage)?;
    let store_rev = store.current_rev();
    let shared = Arc::new(Shared {
        inbox,
        store,
        status: Mutex::new(NodeStatus {
            member_id: membership.member_id,
            cluster_id: membership.cluster_id,
            ..NodeStatus::default()
        }),
        members: Mutex::new(membership.members.clone()),
        poisoned: AtomicBool::new(false),
        thread: Mutex::new(None),
        lessor: Mutex::new(lessor),
        watch: Arc::new(WatchHub::new(store_rev)),
    });
    Ok((shared, commands, membership))
}

fn wal_config(config: &NodeConfig) -> WalConfig {
    WalConfig {
        segment_bytes: config.wal_segment_bytes,
        segments_kept: config.max_wals.max(1),
    }
}

/// A physical compaction running between apply batches.
struct Compaction {
    job: CompactionJob,
    /// The proposer of a `physical: true` compaction, answered when the job finishes.
    reply: Option<(ProposeReply, WriteResponse)>,
}

struct Node<D: LogDirectory> {
    config: NodeConfig,
    shared: Arc<Shared>,
    raw: RawNode<LogStore>,
    wal: Wal<D>,
    commands: flume::Receiver<Command>,
    member_id: u64,
    cluster_id: u64,
    /// Proposers waiting for their entry, by request id. Only this node's own proposals.
    waiters: HashMap<u64, ProposeReply>,
    next_request_id: u64,
    /// Read barriers not yet handed to raft-rs (it drops them until the leader has committed
    /// an entry of its term).
    reads_unsent: Vec<ReadReply>,
    /// Read barriers handed to raft-rs, by request context, with the tick they were sent at.
    reads_sent: HashMap<u64, (u64, Vec<ReadReply>)>,
    /// Ticks since start: the age of read barriers.
    ticks_seen: u64,
    next_read_ctx: u64,
    /// Read barriers whose index is known, waiting for the applied index to reach it.
    reads_ready: Vec<(u64, Vec<ReadReply>)>,
    persists: FuturesOrdered<Persist>,
    /// A commit-index-only hard state, written with the next append instead of costing its own
    /// fdatasync (a restart recovers the commit index from the B+tree and by re-election).
    unwritten_hard_state: Option<HardState>,
    compactions: VecDeque<Compaction>,
    syncer: Syncer,
    /// Index of the newest WAL snapshot marker decided (segments before it may be released).
    marker_index: u64,
    /// A marker waiting to ride on the next WAL append (it needs no fdatasync of its own).
    unwritten_marker: Option<wal::SnapshotMarker>,
    /// The `Ready` number whose append carries a marker, and the marker's index.
    marker_in_flight: Option<(u64, u64)>,
    /// Largest entry data a WAL record can hold.
    entry_data_max: usize,
    /// Set while a segment release runs (releases must not overlap).
    releasing: Rc<Cell<bool>>,
    applied: u64,
    ticks: Option<Pin<Box<glommio::timer::Timer>>>,
}

enum Event {
    Command(Command),
    Closed,
    Tick,
    Persisted(u64, Result<(), WalError>),
    Idle,
}

fn wal_error(e: WalError) -> NodeError {
    NodeError::Wal(e.to_string())
}

impl<D: LogDirectory + 'static> Node<D> {
    /// Starts the node on the WAL opened from the B+tree's durable applied index `applied`.
    async fn open(
        config: NodeConfig,
        (wal, report, replay): (Wal<D>, RecoveryReport, Replay),
        applied: u64,
        setup: Setup,
    ) -> Result<Node<D>, NodeError> {
        let Setup {
            shared,
            commands,
            membership,
        } = setup;
        let entry_data_max = wal_config(&config).record_body_max() - ENTRY_BODY_FIXED_BYTES;
        // The B+tree holds everything up to its consistent index; the WAL, opened from there,
        // the rest.
        let store_applied = shared.store.view().consistent_index();
        if store_applied != applied {
            return Err(NodeError::Inconsistent(format!(
                "the store opened at applied index {store_applied}, the B+tree said {applied}"
            )));
        }
        if let Some(torn) = &report.torn_tail {
            eprintln!(
                "keelson node: WAL tail torn in {} at offset {}: {} bytes discarded",
                torn.file, torn.offset, torn.bytes_discarded
            );
        }
        glommio::spawn_local(wal.clone().prepare_segments()).detach();

        let marker = replay.snapshot.unwrap_or_default();
        let applied_term = if applied == 0 {
            0
        } else if let Some(e) = replay.entries.iter().find(|e| e.index == applied) {
            e.term
        } else if marker.index == applied {
            marker.term
        } else {
            return Err(NodeError::Inconsistent(format!(
                "the B+tree applied index {applied} is not in the WAL (last index {})",
                wal.last_index()
            )));
        };
        let mut hard_state = HardState::default();
        if let Some(hs) = replay.hard_state {
            hard_state.term = hs.term;
            hard_state.vote = hs.vote;
            hard_state.commit = hs.commit;
        }
        // Applied entries were committed, even if the hard state saying so was not written.
        hard_state.commit = hard_state.commit.max(applied);
        let voters: Vec<u64> = membership
            .members
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect();
        let learners: Vec<u64> = membership
            .members
            .iter()
            .filter(|m| m.is_learner)
            .map(|m| m.id)
            .collect();
        let mut log = LogStore::new(
            hard_state,
            ConfState::from((voters, learners)),
            applied,
            applied_term,
        );
        let entries: Vec<Entry> = replay
            .entries
            .into_iter()
            .filter(|e| e.index > applied)
            .map(|e| Entry {
                index: e.index,
                term: e.term,
                data: e.data.into(),
                ..Entry::default()
            })
            .collect();
        log.append(&entries);
        let logger = match config.raft_log_level {
            Some(level) => core::stderr_logger(level),
            None => core::discard_logger(),
        };
        let settings = core::RaftSettings {
            id: membership.member_id,
            election_ticks: config.election_ticks,
            heartbeat_ticks: 1,
            applied,
        };
        let raw =
            core::raw_node(&settings, log, &logger).map_err(|e| NodeError::Raft(e.to_string()))?;
        let syncer = Syncer::spawn(shared.clone(), config.sync_interval, applied);
        Ok(Node {
            member_id: membership.member_id,
            cluster_id: membership.cluster_id,
            config,
            shared,
            raw,
            wal,
            commands,
            waiters: HashMap::new(),
            // Ids only need to be unique among entries not yet applied. Every entry of an earlier
            // run is applied before `start` returns, so the ids of this run are on their own.
            next_request_id: 1,
            reads_unsent: Vec::new(),
            reads_sent: HashMap::new(),
            ticks_seen: 0,
            next_read_ctx: 0,
            reads_ready: Vec::new(),
            persists: FuturesOrdered::new(),
            unwritten_hard_state: None,
            compactions: VecDeque::new(),
            syncer,
            marker_index: marker.index,
            unwritten_marker: None,
            entry_data_max,
            marker_in_flight: None,
            releasing: Rc::new(Cell::new(false)),
            applied,
            ticks: None,
        })
    }

    async fn serve(mut self, ready: std::sync::mpsc::Sender<Result<(), NodeError>>) {
        // A single voter need not wait for an election timeout.
        let voters = self.raw.raft.prs().conf().voters().ids().len();
        if voters == 1 && self.raw.raft.prs().conf().voters().contains(self.member_id) {
            let _ = self.raw.campaign();
        }
        let mut ready = Some(ready);
        let mut stopping = false;
        loop {
            self.handle_readies();
            self.publish_status();
            if let Some(signal) = ready.take() {
                if self.shared.is_poisoned() {
                    let _ = signal.send(Err(NodeError::Storage(
                        "a write failed while starting".to_string(),
                    )));
                    self.finish().await;
                    return;
                }
                if self.serving() {
                    let _ = signal.send(Ok(()));
                } else {
                    ready = Some(signal);
                }
            }
            if stopping && self.persists.is_empty() && self.compactions.is_empty() {
                break;
            }
            match self.next_event(stopping).await {
                Event::Command(Command::Stop) | Event::Closed => stopping = true,
                #[cfg(test)]
                Event::Command(Command::Abort) => return,
                Event::Command(command) => {
                    self.handle(command, stopping);
                    while let Ok(command) = self.commands.try_recv() {
                        match command {
                            Command::Stop => stopping = true,
                            #[cfg(test)]
                            Command::Abort => return,
                            command => self.handle(command, stopping),
                        }
                    }
                    self.send_reads();
                }
                Event::Tick => {
                    self.raw.tick();
                    self.ticks_seen += 1;
                    self.retry_reads();
                    self.send_reads();
                    self.mark_durable();
                    self.lease_tick();
                }
                Event::Persisted(number, Ok(())) => {
                    self.raw.on_persist_ready(number);
                    self.release_wal(number);
                }
                Event::Persisted(_, Err(e)) => {
                    self.shared.poison(&format!("WAL append failed: {e}"));
                    self.fail_all();
                }
                Event::Idle => self.compaction_step(),
            }
        }
        self.finish().await;
    }

    /// Ready to serve: leader, and everything committed before is applied (so reads see it).
    fn serving(&self) -> bool {
        self.raw.raft.state == core::StateRole::Leader
            && self.raw.raft.commit_to_current_term()
            && self.applied >= self.raw.raft.raft_log.committed
    }

    async fn next_event(&mut self, stopping: bool) -> Event {
        let tick = self.config.tick_interval;
        let idle = !self.compactions.is_empty();
        let timer = self
            .ticks
            .get_or_insert_with(|| Box::pin(glommio::timer::Timer::new(tick)));
        let persists = &mut self.persists;
        // After a stop, commands wait in the inbox; `finish` refuses them.
        let mut recv = (!stopping).then(|| Box::pin(self.commands.recv_async()));
        let event = futures::future::poll_fn(|cx| {
            // Durable writes first: they unblock commits and replies.
            if !persists.is_empty()
                && let Poll::Ready(Some((number, result))) = persists.poll_next_unpin(cx)
            {
                return Poll::Ready(Event::Persisted(number, result));
            }
            if let Some(recv) = recv.as_mut() {
                match recv.as_mut().poll(cx) {
                    Poll::Ready(Ok(command)) => return Poll::Ready(Event::Command(command)),
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Closed),
                    Poll::Pending => {}
                }
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Tick);
            }
            if idle {
                return Poll::Ready(Event::Idle);
            }
            Poll::Pending
        })
        .await;
        if matches!(event, Event::Tick) {
            self.ticks = None;
        }
        event
    }

    fn handle(&mut self, command: Command, stopping: bool) {
        match command {
            Command::Propose { request, reply } => {
                if stopping {
                    let _ = reply.send(Err(EtcdError::Stopped));
                } else {
                    self.propose(request, reply);
                }
            }
            Command::ReadIndex { reply } => {
                if stopping {
                    let _ = reply.send(Err(EtcdError::Stopped));
                } else {
                    self.reads_unsent.push(reply);
                }
            }
            Command::Stop => {}
            #[cfg(test)]
            Command::Abort => {}
            #[cfg(test)]
            Command::Run(f) => f(),
        }
    }

    fn propose(&mut self, request: WriteRequest, reply: ProposeReply) {
        if self.shared.is_poisoned() {
            let _ = reply.send(Err(EtcdError::Stopped));
            return;
        }
        if self.raw.raft.state != core::StateRole::Leader {
            let _ = reply.send(Err(EtcdError::NoLeader));
            return;
        }
        let id = self.next_request_id;
        self.next_request_id += 1;
        let data = codec::encode(id, &request);
        if data.len() > self.entry_data_max {
            // The WAL would refuse the record, which must never happen to a proposed entry.
            let _ = reply.send(Err(EtcdError::RequestTooLarge));
            return;
        }
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                self.waiters.insert(id, reply);
            }
            Err(_) => {
                let _ = reply.send(Err(EtcdError::TooManyRequests));
            }
        }
    }

    /// Hands waiting read barriers to raft-rs, once it can answer them.
    fn send_reads(&mut self) {
        if self.reads_unsent.is_empty()
            || self.raw.raft.state != core::StateRole::Leader
            || !self.raw.raft.commit_to_current_term()
        {
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.reads_sent.insert(
            ctx,
            (self.ticks_seen, std::mem::take(&mut self.reads_unsent)),
        );
        self.raw.read_index(ctx.to_be_bytes().to_vec());
    }

    /// Read barriers raft-rs has not answered within an election timeout (a leader change
    /// dropped them) are sent again under a new context.
    fn retry_reads(&mut self) {
        let timeout = self.config.election_ticks as u64;
        let now = self.ticks_seen;
        let stale: Vec<u64> = self
            .reads_sent
            .iter()
            .filter(|(_, (sent, _))| now - sent >= timeout)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in stale {
            if let Some((_, replies)) = self.reads_sent.remove(&ctx) {
                self.reads_unsent.extend(replies);
            }
        }
    }

    fn handle_readies(&mut self) {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            if !rd.snapshot().is_empty() {
                // Only a leader's snapshot can arrive, and a single voter has none.
                self.shared
                    .poison("received a Raft snapshot, which a single voter cannot");
                self.raw.advance_append_async(rd);
                return;
            }
            if let Some(ss) = rd.ss() {
                let mut status = self.shared.status.lock();
                status.leader = ss.leader_id;
            }
            // No peers yet: messages (to other members) have nowhere to go.
            drop(rd.take_messages());
            let number = rd.number();
            let committed = rd.take_committed_entries();
            let read_states = rd.take_read_states();
            let entries = rd.take_entries();
            let hard_state = rd.hs().cloned();
            let must_sync = rd.must_sync();
            self.raw.mut_store().append(&entries);
            if let Some(hs) = &hard_state {
                self.raw.mut_store().set_hard_state(hs.clone());
            }
            self.raw.advance_append_async(rd);

            let mut records: Vec<Record> = entries
                .iter()
                .map(|e| {
                    Record::Entry(wal::Entry {
                        index: e.index,
                        term: e.term,
                        data: e.data.to_vec(),
                    })
                })
                .collect();
            if let Some(hs) = hard_state {
                self.unwritten_hard_state = Some(hs);
            }
            if must_sync || !records.is_empty() {
                if let Some(hs) = self.unwritten_hard_state.take() {
                    records.push(hard_state_record(&hs));
                }
                if let Some(marker) = self.unwritten_marker.take() {
                    records.push(Record::Snapshot(marker));
                    self.marker_in_flight = Some((number, marker.index));
                }
                self.persist(number, records);
            }

            if !committed.is_empty() {
                self.apply(committed);
            }
            for state in read_states {
                let ctx = state
                    .request_ctx
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .unwrap_or(u64::MAX);
                if let Some((_, waiting)) = self.reads_sent.remove(&ctx) {
                    self.reads_ready.push((state.index, waiting));
                }
            }
            self.resolve_reads();
        }
    }

    /// Enqueues a WAL append now (the WAL orders appends by first poll) and keeps its future to
    /// learn when it is durable.
    fn persist(&mut self, number: u64, records: Vec<Record>) {
        let wal = self.wal.clone();
        let mut write: Persist = async move { (number, wal.append(&records).await) }.boxed_local();
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        // The first poll enqueues the records; the real waker is registered when the loop polls
        // the queue of persists.
        if let Poll::Ready(done) = write.as_mut().poll(&mut cx) {
            write = futures::future::ready(done).boxed_local();
        }
        self.persists.push_back(write);
    }

    /// Applies committed entries in one B+tree transaction, then answers their proposers.
    fn apply(&mut self, committed: Vec<Entry>) {
        let Some(last) = committed.last().map(|e| e.index) else {
            return;
        };
        if self.shared.is_poisoned() {
            return;
        }
        let store = self.shared.store.clone();
        let shared = self.shared.clone();
        // Held for the batch: apply decides from the lessor and updates it entry by entry.
        let mut lessor = shared.lessor.lock();
        let now = std::time::Instant::now();
        let mut write = match store.begin_write() {
            Ok(write) => write,
            Err(e) => {
                self.shared.poison(&format!("begin a B+tree write: {e}"));
                self.fail_all();
                return;
            }
        };
        let mut answers = Vec::new();
        let mut started = Vec::new();
        // Every change of the batch, in revision order, for the watch hub.
        let mut changes = Vec::new();
        for entry in &committed {
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                // Leader no-ops and (for now, never proposed) conf changes only move the index.
                continue;
            }
            let (id, request) = match codec::decode(&entry.data) {
                Ok(decoded) => decoded,
                Err(why) => {
                    drop(write);
                    self.shared
                        .poison(&format!("entry {} in the log: {why}", entry.index));
                    self.fail_all();
                    return;
                }
            };
            match apply::apply(&mut write, &request, &*lessor) {
                Ok(applied) => {
                    lessor.applied(&request, &applied.changes, now);
                    changes.extend(applied.changes);
                    let physical = matches!(&request, WriteRequest::Compaction(c) if c.physical);
                    if let Some(rev) = applied.compaction {
                        started.push((rev, physical.then_some(id), applied.response.clone()));
                    }
                    if !(physical && applied.compaction.is_some()) {
                        answers.push((id, Ok(applied.response)));
                    }
                }
                Err(ApplyError::Etcd(error)) => answers.push((id, Err(error))),
                Err(ApplyError::Fatal(e)) => {
                    drop(write);
                    self.shared
                        .poison(&format!("apply entry {}: {e}", entry.index));
                    self.fail_all();
                    return;
                }
            }
        }
        let committed_ok = write
            .set_consistent_index(last)
            .and_then(|()| write.commit_deferred());
        if let Err(e) = committed_ok {
            self.shared.poison(&format!("commit applied entries: {e}"));
            self.fail_all();
            return;
        }
        self.applied = last;
        self.raw.advance_apply_to(last);
        // Before any reply, so a caller that saw its write applied sees it in the status too.
        self.publish_status();
        // After the view showing the batch is published, so a watcher catching up from the store
        // and the hub agree on what exists; one call per batch keeps the hub's lock cheap.
        self.shared.watch.notify(store.current_rev(), &changes);
        let term = self.raw.raft.term;
        for (id, answer) in answers {
            if let Some(reply) = self.waiters.remove(&id) {
                let _ = reply.send(answer.map(|r| self.with_header(r, term)));
            }
        }
        for (rev, physical_id, response) in started {
            let reply = physical_id
                .and_then(|id| self.waiters.remove(&id))
                .map(|reply| (reply, self.with_header(response, term)));
            self.compactions.push_back(Compaction {
                job: store.compaction_job(rev),
                reply,
            });
        }
    }

    fn with_header(&self, mut response: WriteResponse, term: u64) -> WriteResponse {
        let header = match &mut response {
            WriteResponse::Put(r) => &mut r.header,
            WriteResponse::DeleteRange(r) => &mut r.header,
            WriteResponse::Txn(r) => &mut r.header,
            WriteResponse::Compaction(r) => &mut r.header,
            WriteResponse::LeaseGrant(r) => &mut r.header,
            WriteResponse::LeaseRevoke(r) => &mut r.header,
            WriteResponse::LeaseCheckpoint(r) => &mut r.header,
            // etcd answers alarms without a header.
            WriteResponse::Alarm(_) => return response,
        };
        let header = header.get_or_insert_with(ResponseHeader::default);
        header.cluster_id = self.cluster_id;
        header.member_id = self.member_id;
        header.raft_term = term;
        response
    }

    /// The leader's lease duties, decided from its clock: expired leases are revoked and due
    /// checkpoints written, both by proposing through the log (never by changing the store
    /// here). Nobody waits for these proposals; an expired lease not revoked in time is handed
    /// out again by the lessor.
    fn lease_tick(&mut self) {
        if self.raw.raft.state != core::StateRole::Leader || self.shared.is_poisoned() {
            return;
        }
        let now = std::time::Instant::now();
        let (expired, checkpoints) = {
            let mut lessor = self.shared.lessor.lock();
            (lessor.expired(now), lessor.checkpoints_due(now))
        };
        let mut requests: Vec<WriteRequest> = expired
            .into_iter()
            .map(|id| WriteRequest::LeaseRevoke(LeaseRevokeRequest { id }))
            .collect();
        if !checkpoints.is_empty() {
            requests.push(WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints,
            }));
        }
        for request in requests {
            let (reply, _unwatched) = super::answer::channel();
            self.propose(request, reply);
        }
    }

    /// One batch of the oldest physical compaction, in its own transaction.
    fn compaction_step(&mut self) {
        let Some(compaction) = self.compactions.front_mut() else {
            return;
        };
        let store = self.shared.store.clone();
        let step = store.begin_write().and_then(|mut write| {
            let done = write.compaction_step(&mut compaction.job)?;
            write.commit_deferred()?;
            Ok(done)
        });
        match step {
            Ok(false) => {}
            Ok(true) => {
                if let Some((reply, response)) = self.compactions.pop_front().and_then(|c| c.reply)
                {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                self.shared.poison(&format!("compaction step: {e}"));
                self.fail_all();
            }
        }
    }

    fn resolve_reads(&mut self) {
        let applied = self.applied;
        self.reads_ready.retain_mut(|(index, waiting)| {
            if *index > applied {
                return true;
            }
            for reply in waiting.drain(..) {
                let _ = reply.send(Ok(()));
            }
            false
        });
    }

    /// After a fatal failure: every waiter gets an error, none an acknowledgement.
    fn fail_all(&mut self) {
        for (_, reply) in self.waiters.drain() {
            let _ = reply.send(Err(EtcdError::Stopped));
        }
        for compaction in self.compactions.drain(..) {
            if let Some((reply, _)) = compaction.reply {
                let _ = reply.send(Err(EtcdError::Stopped));
            }
        }
        let reads = self
            .reads_unsent
            .drain(..)
            .chain(self.reads_sent.drain().flat_map(|(_, (_, r))| r))
            .chain(self.reads_ready.drain(..).flat_map(|(_, r)| r));
        for reply in reads {
            let _ = reply.send(Err(EtcdError::Stopped));
        }
    }

    /// Once the B+tree holds more applied entries durably, decides a WAL snapshot marker at its
    /// index (written with the next append) and drops those entries from the cache.
    fn mark_durable(&mut self) {
        let durable = self.syncer.durable_index();
        if durable <= self.marker_index
            || self.unwritten_marker.is_some()
            || self.marker_in_flight.is_some()
            || self.shared.is_poisoned()
        {
            return;
        }
        let Some(term) = self.raw.store().term_of(durable) else {
            return;
        };
        self.unwritten_marker = Some(wal::SnapshotMarker {
            index: durable,
            term,
        });
        self.marker_index = durable;
        self.raw.mut_store().compact_to(durable);
    }

    /// After the append carrying a marker is durable, releases the segments it covers (keeping
    /// `--max-wals`), in the background.
    fn release_wal(&mut self, persisted: u64) {
        let Some((number, index)) = self.marker_in_flight else {
            return;
        };
        if number > persisted || self.releasing.get() {
            return;
        }
        self.marker_in_flight = None;
        self.releasing.set(true);
        let releasing = self.releasing.clone();
        let wal = self.wal.clone();
        glommio::spawn_local(async move {
            if let Err(e) = wal.release(index).await {
                eprintln!("keelson node: releasing WAL segments failed: {e}");
            }
            releasing.set(false);
        })
        .detach();
    }

    fn publish_status(&self) {
        let mut status = self.shared.status.lock();
        status.leader = self.raw.raft.leader_id;
        status.raft_term = self.raw.raft.term;
        status.raft_index = self.raw.raft.raft_log.last_index();
        status.raft_applied_index = self.applied;
    }

    /// Clean stop: the last hard state to the WAL, the B+tree synced, the sync thread joined.
    async fn finish(mut self) {
        if let Some(hs) = self.unwritten_hard_state.take()
            && !self.shared.is_poisoned()
        {
            let _ = self.wal.append(&[hard_state_record(&hs)]).await;
        }
        self.fail_all();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Propose { reply, .. } => {
                    let _ = reply.send(Err(EtcdError::Stopped));
                }
                Command::ReadIndex { reply } => {
                    let _ = reply.send(Err(EtcdError::Stopped));
                }
                _ => {}
            }
        }
        let durable = std::sync::atomic::AtomicU64::new(0);
        let Node {
            syncer,
            shared,
            wal,
            ..
        } = self;
        syncer.stop();
        sync_once(&shared.store, &shared, &durable);
        wal.close();
    }
}

fn hard_state_record(hs: &HardState) -> Record {
    Record::HardState(wal::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    })
}
