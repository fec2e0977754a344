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
#[derive(Default)]
pub(crate) struct Output {
    pub appends: Vec<(u64, Vec<Record>)>,
    pub messages: Vec<Message>,
    /// `MsgSnapshot`s, each with the store view to stream beside it.
    pub snapshots: Vec<(Message, Arc<keelson_storage::mvcc::View>)>,
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
    /// Ticks a proposal or read barrier may wait (etcd's request timeout).
    pub request_timeout_ticks: u64,
    /// How long a new leader extends every lease before it may expire one.
    pub election_timeout: std::time::Duration,
    /// What this member publishes about itself through the log: its name and client URLs.
    pub attributes: Attributes,
    pub data_dir: std::path::PathBuf,
    /// The lessor's minimum TTL, for rebuilding it after a snapshot install.
    pub min_ttl: i64,
}

/// A member's attributes as etcd publishes them after start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub name: String,
    pub client_urls: Vec<String>,
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
    /// Ticks since start: the age of read barriers and proposals.
    pub(super) ticks_seen: u64,
    request_timeout_ticks: u64,
    pub(super) election_timeout: std::time::Duration,
    /// The leader raft-rs last reported (0: none) and the tick it changed at.
    pub(super) leader: u64,
    pub(super) leader_changed_tick: u64,
    pub(super) attributes: Attributes,
    /// Whether the membership already holds this member's attributes (etcd's `publish`).
    pub(super) published: bool,
    /// The tick at which to propose the attributes again if they are not applied by then.
    publish_due_tick: u64,
    pub(super) clock: Box<dyn Clock>,
    pub(super) out: Output,
    /// The snapshot offered to followers, with its view.
    pub(super) offered: Option<super::snapshots::Offered>,
    /// Snapshot files received, by index, waiting for raft-rs to accept one.
    pub(super) received: std::collections::HashMap<u64, std::path::PathBuf>,
    /// The snapshot installed by the `Ready` whose number is first, at the index second: raft-rs
    /// is told it is applied once that `Ready` is durable.
    pub(super) installed: Option<(u64, u64)>,
    pub(super) data_dir: std::path::PathBuf,
    pub(super) min_ttl: i64,
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
            request_timeout_ticks,
            election_timeout,
            attributes,
            data_dir,
            min_ttl,
        } = restored;
        let published = shared.members.lock().iter().any(|m| {
            m.id == member_id
                && m.name == attributes.name
                && m.client_urls == attributes.client_urls
        });
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
            request_timeout_ticks,
            election_timeout,
            leader: 0,
            leader_changed_tick: 0,
            attributes,
            published,
            publish_due_tick: 0,
            clock,
            out: Output::default(),
            offered: None,
            received: std::collections::HashMap::new(),
            installed: None,
            data_dir,
            min_ttl,
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

    /// Whether this member is the only voter of its cluster.
    pub fn alone(&self) -> bool {
        let voters = self.raw.raft.prs().conf().voters().ids();
        voters.len() == 1 && voters.contains(self.member_id)
    }

    /// Ready to serve clients. A lone member serves once it leads, has applied everything
    /// committed before and has published its attributes, so its first answers are complete. A
    /// member of a larger cluster serves once it has applied what its own log had committed:
    /// without a leader it answers what it can (status, serializable reads) and makes writes
    /// wait for one, as etcd's members do.
    pub fn serving(&self) -> bool {
        let caught_up = self.applied >= self.raw.raft.raft_log.committed;
        if !self.alone() {
            return caught_up;
        }
        self.raw.raft.state == core::StateRole::Leader
            && self.raw.raft.commit_to_current_term()
            && caught_up
            && self.published
    }

    /// Proposes `request`; its proposer is answered once the entry is applied.
    pub fn propose(&mut self, request: WriteRequest, reply: ProposeReply) {
        if self.shared.is_poisoned() {
            let _ = reply.send(Err(EtcdError::Stopped));
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
        self.propose_data(id, data, reply);
    }

    /// Hands `data` proposed under `id` to raft-rs (which forwards it to the leader from a
    /// follower), or holds it until a leader is known; its proposer waits at most the request
    /// timeout either way.
    fn propose_data(&mut self, id: u64, data: Vec<u8>, reply: ProposeReply) {
        if data.len() > self.entry_data_max {
            // The WAL would refuse the record, which must never happen to a proposed entry.
            let _ = reply.send(Err(EtcdError::RequestTooLarge));
            return;
        }
        let deadline = self.ticks_seen + self.request_timeout_ticks;
        self.waiters.insert(id, reply, self.ticks_seen, deadline);
        if self.leader == 0 || self.raw.raft.state == core::StateRole::Candidate {
            self.waiters.hold_for_leader(id, data);
            return;
        }
        if self.raw.propose(Vec::new(), data.clone()).is_err() {
            let leading = self.raw.raft.state == core::StateRole::Leader;
            if leading && self.raw.raft.lead_transferee.is_none() {
                // The leader's bound on uncommitted entries is reached: back-pressure.
                if let Some(reply) = self.waiters.take(id) {
                    let _ = reply.send(Err(EtcdError::TooManyRequests));
                }
                return;
            }
            // No leader to forward to, or a leadership transfer under way: held, it goes to
            // whoever leads next, within the same deadline.
            self.waiters.hold_for_leader(id, data);
        }
    }

    /// Proposes the entries held while there was no leader, now that there is one.
    pub(super) fn propose_held(&mut self) {
        if self.leader == 0 || !self.waiters.has_unproposed() {
            return;
        }
        for (id, data) in self.waiters.take_unproposed() {
            if self.raw.propose(Vec::new(), data.clone()).is_err() {
                self.waiters.hold_for_leader(id, data);
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
        self.reads.push(reply, self.ticks_seen);
    }

    /// Hands waiting read barriers to raft-rs, once it can answer them: a leader that has
    /// committed an entry of its term, or a follower that knows its leader (raft-rs asks the
    /// leader for the index).
    pub fn send_reads(&mut self) {
        if !self.reads.has_unsent() {
            return;
        }
        let able = match self.raw.raft.state {
            core::StateRole::Leader => self.raw.raft.commit_to_current_term(),
            core::StateRole::Follower => self.leader != 0,
            _ => false,
        };
        if !able {
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
        self.waiters
            .expire(self.ticks_seen, self.leader_changed_tick);
        self.reads
            .expire(self.ticks_seen, self.request_timeout_ticks);
        self.reads.retry_stale(self.ticks_seen, self.election_ticks);
        self.send_reads();
        self.propose_held();
        self.publish();
        self.mark_durable(store_durable_index);
        self.lease_duties();
    }

    /// A Raft message from another member.
    pub fn step(&mut self, message: raft::eraftpb::Message) {
        // Messages from members raft-rs does not know, or stale ones, are refused by raft-rs
        // and need no answer.
        let _ = self.raw.step(message);
    }

    /// The transport could not deliver to `member`: raft-rs probes it instead of streaming.
    pub fn report_unreachable(&mut self, member: u64) {
        self.raw.report_unreachable(member);
    }

    /// Proposes this member's attributes until the log has applied them (etcd's `publish`,
    /// retried every request timeout).
    fn publish(&mut self) {
        if self.published || self.leader == 0 || self.ticks_seen < self.publish_due_tick {
            return;
        }
        self.publish_due_tick = self.ticks_seen + self.request_timeout_ticks;
        let Some(id) = self.waiters.next_id() else {
            return;
        };
        let member = keelson_proto::etcdserverpb::Member {
            id: self.member_id,
            name: self.attributes.name.clone(),
            client_ur_ls: self.attributes.client_urls.clone(),
            ..Default::default()
        };
        let (reply, _unwatched) = super::answer::channel();
        self.propose_data(id, codec::encode_attributes(id, &member), reply);
    }

    /// raft-rs reported `leader` (0: none): reads in flight fail, held proposals go to it, and
    /// the lessor is promoted or demoted.
    pub(super) fn on_leader(&mut self, leader: u64) {
        let leading = self.raw.raft.state == core::StateRole::Leader;
        if leading != self.shared.lessor.lock().is_primary() {
            let mut lessor = self.shared.lessor.lock();
            if leading {
                lessor.promote(self.clock.now(), self.election_timeout);
            } else {
                lessor.demote();
            }
        }
        if leader == self.leader {
            return;
        }
        if self.leader != 0 {
            self.reads.on_leader_changed();
        }
        if leader != 0 {
            crate::metrics::server().leader_changes_seen.inc();
        }
        self.leader = leader;
        self.leader_changed_tick = self.ticks_seen;
        self.shared.status.lock().leader = leader;
        self.propose_held();
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
        if let Some((ready, index)) = self.installed
            && ready <= number
        {
            self.installed = None;
            self.raw.advance_apply_to(index);
        }
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
        // Followers a little behind catch up from memory rather than by a snapshot.
        let keep_from = if self.alone() {
            durable
        } else {
            durable.min(
                self.applied
                    .saturating_sub(super::snapshots::CATCH_UP_ENTRIES),
            )
        };
        self.raw.mut_store().compact_to(keep_from);
    }

    /// One batch of the oldest physical compaction.
    pub fn compaction_step(&mut self) {
        let store = self.shared.store.load_full();
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
