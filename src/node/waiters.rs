//! The proposers waiting for their entries, by request id.
//!
//! Owns: the request ids this member puts into the entries it proposes (etcd's `idutil`, shared
//! with lease ids, so they are unique across members and restarts) and the map from id to the
//! waiting proposer, bounded by [`PROPOSALS_PENDING_MAX`]. Never: answers a proposer whose id it
//! did not hand out (a committed entry proposed by another member, or by an earlier run of this
//! one, finds no waiter here and is applied silently).

use super::answer::Answer;
use crate::errors::EtcdError;
use crate::raft::ids::IdGenerator;
use crate::server::WriteResponse;
use std::collections::HashMap;
use std::sync::Arc;

/// Proposals of this member proposed and not yet applied (or failed). Past it new proposals get
/// "etcdserver: too many requests": each one holds a request in memory until applied, and a
/// log that far behind is better answered with back-pressure than with more memory.
pub const PROPOSALS_PENDING_MAX: usize = 20_000;

pub(crate) type ProposeReply = Answer<Result<WriteResponse, EtcdError>>;

pub(crate) struct Waiters {
    ids: Arc<IdGenerator>,
    waiting: HashMap<u64, ProposeReply>,
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
            pending_max,
        }
    }

    /// A fresh request id, or the reply back when the bound is reached.
    pub fn next_id(&self) -> Option<u64> {
        (self.waiting.len() < self.pending_max).then(|| self.ids.next())
    }

    pub fn insert(&mut self, id: u64, reply: ProposeReply) {
        let previous = self.waiting.insert(id, reply);
        assert!(previous.is_none(), "request id {id:x} handed out twice");
    }

    /// The proposer waiting for `id`, if it is this member's and still waiting.
    pub fn take(&mut self, id: u64) -> Option<ProposeReply> {
        self.waiting.remove(&id)
    }

    /// Answers every waiter with `error`.
    pub fn fail_all(&mut self, error: EtcdError) {
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_refuses_new_ids_until_one_is_taken() {
        let mut waiters = Waiters::with_limit(Arc::new(IdGenerator::new(7, 1)), 2);
        let mut receivers = Vec::new();
        for _ in 0..2 {
            let id = waiters.next_id().expect("below the bound");
            let (reply, receiver) = super::super::answer::channel();
            waiters.insert(id, reply);
            receivers.push((id, receiver));
        }
        assert_eq!(waiters.next_id(), None);
        let (id, _) = &receivers[0];
        assert!(waiters.take(*id).is_some());
        assert!(waiters.take(*id).is_none(), "answered once");
        assert!(waiters.next_id().is_some());
    }
}
