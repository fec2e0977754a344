//! The node thread's loop, alone on its glommio executor: the shell that carries out what the
//! [`Core`] decides.
//!
//! One turn of the loop waits for one event (requests in the inbox, a tick, a WAL append that
//! became durable, or idle time for a compaction step), hands it to the core, lets the core
//! handle every raft-rs `Ready`, then does what the core asked: enqueues its WAL appends at once
//! (the WAL gathers what is queued into one write and one fdatasync, and the next batch gathers
//! while that fdatasync runs: group commit, pipelined) and sends its messages.
//!
//! Owns: the executor's futures (WAL appends in flight, the tick timer, WAL releases), the
//! background B+tree sync and the transport. Never: decides anything about Raft or apply, and
//! never blocks the executor on anything but the B+tree's own unsynced commit (and, at stop,
//! the final B+tree sync).

use super::core::Core;
use super::durability::{Syncer, sync_once};
use super::transport::Transport;
use super::{Command, NodeConfig, NodeError, PeerEvent, Shared};
use crate::errors::EtcdError;
use futures::future::{FutureExt, LocalBoxFuture};
use futures::stream::{FuturesOrdered, StreamExt};
use keelson_storage::io::LogDirectory;
use keelson_storage::wal::{Record, Wal, WalError};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

/// A WAL write in flight: the number of the `Ready` it persists, and its outcome.
type Persist = LocalBoxFuture<'static, (u64, Result<(), WalError>)>;

pub(super) struct Actor<D: LogDirectory> {
    config: NodeConfig,
    core: Core,
    wal: Wal<D>,
    commands: flume::Receiver<Command>,
    /// What other members sent, taken before client commands.
    peer_inbox: flume::Receiver<PeerEvent>,
    shared: Arc<Shared>,
    transport: Box<dyn Transport + Send>,
    persists: FuturesOrdered<Persist>,
    syncer: Syncer,
    /// Set while a segment release runs (releases must not overlap).
    releasing: Rc<Cell<bool>>,
    ticks: Option<Pin<Box<glommio::timer::Timer>>>,
}

enum Event {
    Peer(PeerEvent),
    Command(Command),
    Closed,
    Tick,
    Persisted(u64, Result<(), WalError>),
    Idle,
}

impl<D: LogDirectory + 'static> Actor<D> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: NodeConfig,
        core: Core,
        wal: Wal<D>,
        commands: flume::Receiver<Command>,
        peer_inbox: flume::Receiver<PeerEvent>,
        mut transport: Box<dyn Transport + Send>,
        shared: Arc<Shared>,
        durable_index: u64,
    ) -> Actor<D> {
        let syncer = Syncer::spawn(shared.clone(), config.sync_interval, durable_index);
        let (member_id, cluster_id) = (core.member_id, core.cluster_id);
        transport.set_members(member_id, cluster_id, &shared.members.lock());
        Actor {
            config,
            core,
            wal,
            commands,
            peer_inbox,
            shared,
            transport,
            persists: FuturesOrdered::new(),
            syncer,
            releasing: Rc::new(Cell::new(false)),
            ticks: None,
        }
    }

    pub async fn serve(
        mut self,
        ready: std::sync::mpsc::Sender<Result<(), NodeError>>,
        marker: Option<Record>,
    ) {
        // A store installed from a snapshot that the WAL never recorded (a crash in between):
        // recorded now, before anything follows it in the log.
        if let Some(marker) = marker
            && let Err(e) = self.wal.append(&[marker]).await
        {
            let _ = ready.send(Err(NodeError::Wal(format!(
                "record the installed snapshot in the WAL: {e}"
            ))));
            return;
        }
        self.core.campaign_if_alone();
        let mut ready = Some(ready);
        let mut stopping = false;
        loop {
            self.core.handle_readies();
            self.core.offer_snapshot();
            self.carry_out();
            self.core.publish_status();
            if let Some(signal) = ready.take() {
                if self.shared.is_poisoned() {
                    let _ = signal.send(Err(NodeError::Storage(
                        "a write failed while starting".to_string(),
                    )));
                    self.finish().await;
                    return;
                }
                if self.core.serving() {
                    let _ = signal.send(Ok(()));
                } else {
                    ready = Some(signal);
                }
            }
            if stopping && self.persists.is_empty() && !self.core.has_compactions() {
                break;
            }
            match self.next_event(stopping).await {
                Event::Peer(event) => {
                    self.peer(event);
                    while let Ok(event) = self.peer_inbox.try_recv() {
                        self.peer(event);
                    }
                }
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
                    self.core.send_reads();
                }
                Event::Tick => self.core.tick(self.syncer.durable_index()),
                Event::Persisted(number, Ok(())) => {
                    if let Some(index) = self.core.on_persisted(number, self.releasing.get()) {
                        self.release_wal(index);
                    }
                }
                Event::Persisted(_, Err(e)) => self.core.on_persist_failed(&e.to_string()),
                Event::Idle => self.core.compaction_step(),
            }
        }
        self.finish().await;
    }

    /// Enqueues the core's WAL appends, in order, and sends its messages.
    fn carry_out(&mut self) {
        let output = self.core.take_output();
        for (number, records) in output.appends {
            self.persist(number, records);
        }
        if !output.messages.is_empty() {
            self.transport.send(output.messages);
        }
        for (message, view) in output.snapshots {
            self.transport.send_snapshot(message, view);
        }
    }

    async fn next_event(&mut self, stopping: bool) -> Event {
        let tick = self.config.tick_interval;
        let idle = self.core.has_compactions();
        let timer = self
            .ticks
            .get_or_insert_with(|| Box::pin(glommio::timer::Timer::new(tick)));
        let persists = &mut self.persists;
        // After a stop, commands wait in the inbox; `finish` refuses them.
        let mut recv = (!stopping).then(|| Box::pin(self.commands.recv_async()));
        let mut peer = Box::pin(self.peer_inbox.recv_async());
        let event = futures::future::poll_fn(|cx| {
            // Durable writes first: they unblock commits and replies.
            if !persists.is_empty()
                && let Poll::Ready(Some((number, result))) = persists.poll_next_unpin(cx)
            {
                return Poll::Ready(Event::Persisted(number, result));
            }
            // Other members next: heartbeats and votes must not wait behind client requests.
            // The service delivering them holds a sender as long as the node runs.
            if let Poll::Ready(Ok(event)) = peer.as_mut().poll(cx) {
                return Poll::Ready(Event::Peer(event));
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

    fn peer(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Message(message) => self.core.step(message),
            PeerEvent::Unreachable(member) => self.core.report_unreachable(member),
            PeerEvent::Snapshot { message, path } => self.core.on_snapshot_received(message, path),
            PeerEvent::SnapshotSent { to, delivered } => self.core.on_snapshot_sent(to, delivered),
        }
    }

    fn handle(&mut self, command: Command, stopping: bool) {
        match command {
            Command::Propose { request, reply } => {
                if stopping {
                    let _ = reply.send(Err(EtcdError::Stopped));
                } else {
                    self.core.propose(request, reply);
                }
            }
            Command::ReadIndex { reply } => {
                if stopping {
                    let _ = reply.send(Err(EtcdError::Stopped));
                } else {
                    self.core.read_index(reply);
                }
            }
            Command::Stop => {}
            #[cfg(test)]
            Command::Abort => {}
            #[cfg(test)]
            Command::Run(f) => f(),
        }
    }

    /// Enqueues a WAL append now (the WAL orders appends by first poll) and keeps its future to
    /// learn when it is durable.
    fn persist(&mut self, number: u64, records: Vec<Record>) {
        let wal = self.wal.clone();
        let mut write: Persist = async move {
            // etcd's fsync histogram; here the append's time to durable, which is its group
            // commit's write and fdatasync.
            let started = std::time::Instant::now();
            let appended = wal.append(&records).await;
            crate::metrics::disk()
                .wal_fsync_seconds
                .observe(started.elapsed().as_secs_f64());
            (number, appended)
        }
        .boxed_local();
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        // The first poll enqueues the records; the real waker is registered when the loop polls
        // the queue of persists.
        if let Poll::Ready(done) = write.as_mut().poll(&mut cx) {
            write = futures::future::ready(done).boxed_local();
        }
        self.persists.push_back(write);
    }

    /// Releases the WAL segments before the durable marker at `index` (keeping `--max-wals`),
    /// in the background.
    fn release_wal(&mut self, index: u64) {
        self.releasing.set(true);
        let releasing = self.releasing.clone();
        let wal = self.wal.clone();
        glommio::spawn_local(async move {
            if let Err(e) = wal.release(index).await {
                tracing::warn!(error = %e, "failed to release WAL segments");
            }
            releasing.set(false);
        })
        .detach();
    }

    /// Clean stop: the last hard state to the WAL, the B+tree synced, the sync thread joined.
    async fn finish(mut self) {
        if !self.shared.is_poisoned()
            && let Some(record) = self.core.take_unwritten_hard_state()
        {
            let _ = self.wal.append(&[record]).await;
        }
        self.core.fail_all(EtcdError::Stopped);
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
        let Actor {
            syncer,
            shared,
            wal,
            ..
        } = self;
        syncer.stop();
        sync_once(&shared.store.load(), &shared, &durable);
        wal.close();
    }
}
