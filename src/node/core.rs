//! The node's state machine: raft-rs, the proposers and readers waiting on it, and the apply
//! side, driven by events and answering with what to write and send.
//!
//! The node thread ([`super::actor`]) feeds it events (a proposal, a read barrier, a tick, a
//! message from a member, a WAL append that became durable, the B+tree durable up to an index)
//! and carries out its [`Output`]: WAL appends to enqueue, in order, and messages to send. It
//! does no I/O of its own besides the apply into the MVCC store (a B+tree behind the storage
//! crate's device trait) and never reads a clock except through [`Clock`], so a test can drive
//! several of them on simulated disks, networks and time.
//!
//! Split by concern, as etcd splits raft.go from server.go:
//! - [`super::ready`]: the `Ready` loop and raft-rs's ordering contract;
//! - [`super::apply_batch`]: committed entries into the store, proposers answered;
//! - [`super::reads`], [`super::waiters`], [`super::compaction`], [`super::wal_release`],
//!   [`super::leases`]: the bookkeeping each owns.
//!
//! Never: acknowledges a write before its entry is durable in the WAL and applied, sends a
//! message before the append it depends on is durable, or blocks.

use super::compaction::Compactions;
use super::reads::{ReadReply, Reads};
use super::waiters::{ProposeReply, Waiters};
use super::wal_release::WalRelease;
use super::{NodeStatus, Shared, codec};
use crate::errors::EtcdError;
use crate::raft::{self as core, HardState, LogStore, RawNode};
use crate::server::WriteRequest;
use keelson_storage::wal::{self, Record};
use raft::eraftpb::Message;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// etcd's `maxGapBetweenApplyAndCommitIndex`: a member whose applied index lags its commit index
/// by more refuses new proposals with "etcdserver: too many requests".
pub const APPLY_LAG_ENTRIES_MAX: u64 = 5000;

/// The time as the node sees it. Production reads the monotonic clock; simulations advance
/// their own.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// The process's monotonic clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// What the node thread must do after an event, in this order: enqueue the WAL appends (each
/// tagged with its `Ready` number, reported back through [`Core::on_persisted`] in order), then
/// send the messages.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub appends: Vec<(u64, Vec<Record>)>,
    pub messages: Vec<Message>,
}

/// Everything the restart found, to build a [`Core`] from.
pub(crate) struct Restored {
    pub raw: RawNode<LogStore>,
    pub shared: Arc<Shared>,
    pub member_id: u64,
    pub cluster_id: u64,
    pub election_ticks: usize,
    pub entry_data_max: usize,
    pub applied: u64,
    /// Index of the newest WAL snapshot marker.
    pub marker_index: u64,
    pub clock: Box<dyn Clock>,
}

pub(crate) struct Core {
    pub(super) raw: RawNode<LogStore>,
    pub(super) shared: Arc<Shared>,
    pub(super) member_id: u64,
    pub(super) cluster_id: u64,
    election_ticks: u64,
    /// Largest entry data a WAL record can hold.
    entry_data_max: usize,
    pub(super) waiters: Waiters,
    pub(super) reads: Reads,
    pub(super) compactions: Compactions,
    pub(super) release: WalRelease,
    /// A commit-index-only hard state, written with the next append instead of costing its own
    /// fdatasync (a restart recovers the commit index from the B+tree and by re-election).
    pub(super) unwritten_hard_state: Option<HardState>,
    /// Messages raft-rs may send only once the append of their `Ready` is durable (its
    /// `persisted_messages`), by `Ready` number.
    pub(super) after_persist: VecDeque<(u64, Vec<Message>)>,
    /// The newest `Ready` number whose append was enqueued.
    pub(super) enqueued: u64,
    /// The newest `Ready` number known durable.
    pub(super) persisted: u64,
    pub(super) applied: u64,
    /// Ticks since start: the age of read barriers.
    ticks_seen: u64,
    pub(super) clock: Box<dyn Clock>,
    pub(super) out: Output,
}

impl Core {
    pub fn new(restored: Restored) -> Core {
        let Restored {
            raw,
            shared,
            member_id,
            cluster_id,
            election_ticks,
            entry_data_max,
            applied,
            marker_index,
            clock,
        } = restored;
        let ids = shared.ids.clone();
        Core {
            raw,
            shared,
            member_id,
            cluster_id,
            election_ticks: election_ticks as u64,
            entry_data_max,
            waiters: Waiters::new(ids),
            reads: Reads::new(),
            compactions: Compactions::default(),
            release: WalRelease::new(marker_index),
            unwritten_hard_state: None,
            after_persist: VecDeque::new(),
            enqueued: 0,
            persisted: 0,
            applied,
            ticks_seen: 0,
            clock,
            out: Output::default(),
        }
    }

    /// What the node thread must do now; empties the core's output.
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    /// A lone voter need not wait an election timeout to lead.
    pub fn campaign_if_alone(&mut self) {
        let voters = self.raw.raft.prs().conf().voters().ids();
        if voters.len() == 1 && voters.contains(self.member_id) {
            let _ = self.raw.campaign();
        }
    }

    /// Ready to serve: a leader, and everything committed before is applied (so reads see it).
    pub fn serving(&self) -> bool {
        self.raw.raft.state == core::StateRole::Leader
            && self.raw.raft.commit_to_current_term()
            && self.applied >= self.raw.raft.raft_log.committed
    }

    /// Proposes `request`; its proposer is answered once the entry is applied.
    pub fn propose(&mut self, request: WriteRequest, reply: ProposeReply) {
        if self.shared.is_poisoned() {
            let _ = reply.send(Err(EtcdError::Stopped));
            return;
        }
        if self.raw.raft.state != core::StateRole::Leader {
            let _ = reply.send(Err(EtcdError::NoLeader));
            return;
        }
        if self.raw.raft.raft_log.committed > self.applied + APPLY_LAG_ENTRIES_MAX {
            let _ = reply.send(Err(EtcdError::TooManyRequests));
            return;
        }
        let Some(id) = self.waiters.next_id() else {
            let _ = reply.send(Err(EtcdError::TooManyRequests));
            return;
        };
        let data = codec::encode(id, &request);
        if data.len() > self.entry_data_max {
            // The WAL would refuse the record, which must never happen to a proposed entry.
            let _ = reply.send(Err(EtcdError::RequestTooLarge));
            return;
        }
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => self.waiters.insert(id, reply),
            Err(_) => {
                let _ = reply.send(Err(EtcdError::TooManyRequests));
            }
        }
    }

    /// Proposes a request nobody waits for (the leader's lease duties).
    pub(super) fn propose_unwatched(&mut self, request: WriteRequest) {
        let (reply, _unwatched) = super::answer::channel();
        self.propose(request, reply);
    }

    /// Queues a linearizable read barrier.
    pub fn read_index(&mut self, reply: ReadReply) {
        self.reads.push(reply);
    }

    /// Hands waiting read barriers to raft-rs, once it can answer them.
    pub fn send_reads(&mut self) {
        if !self.reads.has_unsent()
            || self.raw.raft.state != core::StateRole::Leader
            || !self.raw.raft.commit_to_current_term()
        {
            return;
        }
        if let Some(ctx) = self.reads.take_unsent(self.ticks_seen) {
            self.raw.read_index(ctx);
        }
    }

    /// One Raft tick: elections and heartbeats, stale read barriers, the WAL release, the
    /// leader's lease duties.
    pub fn tick(&mut self, store_durable_index: u64) {
        self.raw.tick();
        self.ticks_seen += 1;
        self.reads.retry_stale(self.ticks_seen, self.election_ticks);
        self.send_reads();
        self.mark_durable(store_durable_index);
        self.lease_duties();
    }

    /// The WAL append of `Ready` number `number` (and every earlier one) is durable. Returns the
    /// index the WAL may be released to, if the append carried a marker and no release runs
    /// (`release_busy`).
    pub fn on_persisted(&mut self, number: u64, release_busy: bool) -> Option<u64> {
        assert!(
            number > self.persisted,
            "appends become durable in order: {number} after {}",
            self.persisted
        );
        self.persisted = number;
        self.raw.on_persist_ready(number);
        while let Some((ready, _)) = self.after_persist.front()
            && *ready <= number
        {
            let (_, messages) = self.after_persist.pop_front().expect("front exists");
            self.out.messages.extend(messages);
        }
        self.release.on_persisted(number, release_busy)
    }

    /// A WAL append failed: nothing after it can be acknowledged.
    pub fn on_persist_failed(&mut self, why: &str) {
        self.shared.poison(&format!("WAL append failed: {why}"));
        self.fail_all(EtcdError::Stopped);
    }

    /// Once the B+tree holds more applied entries durably, decides a WAL snapshot marker at its
    /// index (written with the next append) and drops those entries from the cache.
    fn mark_durable(&mut self, durable: u64) {
        if !self.release.wants(durable) || self.shared.is_poisoned() {
            return;
        }
        let Some(term) = self.raw.store().term_of(durable) else {
            return;
        };
        self.release.decide(durable, term);
        self.raw.mut_store().compact_to(durable);
    }

    /// One batch of the oldest physical compaction.
    pub fn compaction_step(&mut self) {
        let store = self.shared.store.clone();
        if let Err(e) = self.compactions.step(&store) {
            self.shared.poison(&format!("compaction step: {e}"));
            self.fail_all(EtcdError::Stopped);
        }
    }

    pub fn has_compactions(&self) -> bool {
        !self.compactions.is_empty()
    }

    /// After a fatal failure or at stop: every waiter gets `error`, none an acknowledgement.
    pub fn fail_all(&mut self, error: EtcdError) {
        self.waiters.fail_all(error);
        self.compactions.fail_all(error);
        self.reads.fail_all(error);
    }

    /// The hard state not yet written, as a record for the final append at a clean stop.
    pub fn take_unwritten_hard_state(&mut self) -> Option<Record> {
        self.unwritten_hard_state
            .take()
            .map(|hs| hard_state_record(&hs))
    }

    pub fn publish_status(&self) {
        let mut status = self.shared.status.lock();
        *status = NodeStatus {
            leader: self.raw.raft.leader_id,
            raft_term: self.raw.raft.term,
            raft_index: self.raw.raft.raft_log.last_index(),
            raft_applied_index: self.applied,
            ..*status
        };
    }
}

pub(super) fn hard_state_record(hs: &HardState) -> Record {
    Record::HardState(wal::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    })
}
