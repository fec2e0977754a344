//! The proposers waiting for their entries, by request id.
//!
//! Owns: the request ids this member puts into the entries it proposes (etcd's `idutil`, shared
//! with lease ids, so they are unique across members and restarts), the map from id to the
//! waiting proposer, bounded by [`PROPOSALS_PENDING_MAX`], each proposer's deadline, and the
//! entries waiting for a leader to be proposed to. Never: answers a proposer whose id it did not
//! hand out (a committed entry proposed by another member, or by an earlier run of this one,
//! finds no waiter here and is applied silently), or answers one twice.

use super::answer::Answer;
use crate::errors::EtcdError;
use crate::raft::ids::IdGenerator;
use crate::server::WriteResponse;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Proposals of this member proposed and not yet applied (or failed). Past it new proposals get
/// "etcdserver: too many requests": each one holds a request in memory until applied, and a
/// log that far behind is better answered with back-pressure than with more memory.
pub const PROPOSALS_PENDING_MAX: usize = 20_000;

pub(crate) type ProposeReply = Answer<Result<WriteResponse, EtcdError>>;

struct Waiting {
    reply: ProposeReply,
    /// The tick it was proposed at.
    since_tick: u64,
}

pub(crate) struct Waiters {
    ids: Arc<IdGenerator>,
    waiting: HashMap<u64, Waiting>,
    /// Ids by deadline (every proposal gets the same timeout, so insertion order is deadline
    /// order); an id already answered is skipped when its deadline comes.
    deadlines: VecDeque<(u64, u64)>,
    /// Entries not yet handed to raft-rs because no leader was known: (id, entry data).
    unproposed: VecDeque<(u64, Vec<u8>)>,
    pending_max: usize,
}

impl Waiters {
    pub fn new(ids: Arc<IdGenerator>) -> Waiters {
        Waiters::with_limit(ids, PROPOSALS_PENDING_MAX)
    }

    pub fn with_limit(ids: Arc<IdGenerator>, pending_max: usize) -> Waiters {
        Waiters {
            ids,
            waiting: HashMap::new(),
            deadlines: VecDeque::new(),
            unproposed: VecDeque::new(),
            pending_max,
        }
    }

    /// A fresh request id, or `None` when the bound is reached.
    pub fn next_id(&self) -> Option<u64> {
        (self.waiting.len() < self.pending_max).then(|| self.ids.next())
    }

    /// Registers the proposer of `id`, proposed at `tick`, to be failed at `deadline_tick`.
    pub fn insert(&mut self, id: u64, reply: ProposeReply, tick: u64, deadline_tick: u64) {
        let previous = self.waiting.insert(
            id,
            Waiting {
                reply,
                since_tick: tick,
            },
        );
        assert!(previous.is_none(), "request id {id:x} handed out twice");
        if let Some((last, _)) = self.deadlines.back() {
            assert!(*last <= deadline_tick, "deadlines only increase");
        }
        self.deadlines.push_back((deadline_tick, id));
    }

    /// Keeps the entry of a registered proposer until a leader can take it.
    pub fn hold_for_leader(&mut self, id: u64, data: Vec<u8>) {
        self.unproposed.push_back((id, data));
    }

    /// The entries held for a leader whose proposers still wait, oldest first.
    pub fn take_unproposed(&mut self) -> Vec<(u64, Vec<u8>)> {
        let waiting = &self.waiting;
        self.unproposed
            .drain(..)
            .filter(|(id, _)| waiting.contains_key(id))
            .collect()
    }

    pub fn has_unproposed(&self) -> bool {
        !self.unproposed.is_empty()
    }

    /// The proposer waiting for `id`, if it is this member's and still waiting.
    pub fn take(&mut self, id: u64) -> Option<ProposeReply> {
        self.waiting.remove(&id).map(|w| w.reply)
    }

    /// Fails every proposer whose deadline is at or before `tick`: with "request timed out,
    /// possibly due to previous leader failure" if the leader changed after it proposed
    /// (`leader_changed_tick`), else "request timed out" (etcd's `parseProposeCtxErr`).
    pub fn expire(&mut self, tick: u64, leader_changed_tick: u64) {
        while let Some(&(deadline, id)) = self.deadlines.front()
            && deadline <= tick
        {
            self.deadlines.pop_front();
            if let Some(waiting) = self.waiting.remove(&id) {
                let error = if leader_changed_tick > waiting.since_tick {
                    EtcdError::TimeoutDueToLeaderFail
                } else {
                    EtcdError::Timeout
                };
                let _ = waiting.reply.send(Err(error));
            }
        }
        // Answered proposers leave their deadline behind; keep the queue from growing with them.
        if self.deadlines.len() > 2 * self.waiting.len() + PROPOSALS_PENDING_MAX {
            let waiting = &self.waiting;
            self.deadlines.retain(|(_, id)| waiting.contains_key(id));
        }
    }

    /// Answers every waiter with `error`.
    pub fn fail_all(&mut self, error: EtcdError) {
        for (_, waiting) in self.waiting.drain() {
            let _ = waiting.reply.send(Err(error));
        }
        self.deadlines.clear();
        self.unproposed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::answer;
    use super::*;

    fn waiter(
        waiters: &mut Waiters,
        tick: u64,
        deadline: u64,
    ) -> (
        u64,
        futures::channel::oneshot::Receiver<Result<WriteResponse, EtcdError>>,
    ) {
        let id = waiters.next_id().expect("below the bound");
        let (reply, receiver) = answer::channel();
        waiters.insert(id, reply, tick, deadline);
        (id, receiver)
    }

    #[test]
    fn the_bound_refuses_new_ids_until_one_is_taken() {
        let mut waiters = Waiters::with_limit(Arc::new(IdGenerator::new(7, 1)), 2);
        let (first, _a) = waiter(&mut waiters, 0, 10);
        let (_, _b) = waiter(&mut waiters, 0, 10);
        assert_eq!(waiters.next_id(), None);
        assert!(waiters.take(first).is_some());
        assert!(waiters.take(first).is_none(), "answered once");
        assert!(waiters.next_id().is_some());
    }

    #[test]
    fn deadlines_fail_proposers_with_etcds_timeout_errors() {
        let mut waiters = Waiters::new(Arc::new(IdGenerator::new(7, 1)));
        let (_, mut before_election) = waiter(&mut waiters, 1, 10);
        let (answered, mut done) = waiter(&mut waiters, 2, 11);
        let (_, mut after_election) = waiter(&mut waiters, 6, 15);
        assert!(waiters.take(answered).is_some());
        waiters.expire(9, 5);
        assert_eq!(before_election.try_recv().unwrap(), None);
        waiters.expire(11, 5);
        assert_eq!(
            before_election.try_recv().unwrap(),
            Some(Err(EtcdError::TimeoutDueToLeaderFail))
        );
        assert!(
            done.try_recv().is_err(),
            "answered proposers are not answered again"
        );
        waiters.expire(15, 5);
        assert_eq!(
            after_election.try_recv().unwrap(),
            Some(Err(EtcdError::Timeout))
        );
    }

    #[test]
    fn entries_held_for_a_leader_skip_proposers_that_gave_up() {
        let mut waiters = Waiters::new(Arc::new(IdGenerator::new(7, 1)));
        let (expired, _a) = waiter(&mut waiters, 0, 5);
        let (kept, _b) = waiter(&mut waiters, 3, 8);
        waiters.hold_for_leader(expired, b"old".to_vec());
        waiters.hold_for_leader(kept, b"new".to_vec());
        waiters.expire(5, 0);
        assert_eq!(waiters.take_unproposed(), vec![(kept, b"new".to_vec())]);
        assert!(!waiters.has_unproposed());
    }
}
