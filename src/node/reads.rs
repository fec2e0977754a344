//! Linearizable read barriers (raft-rs ReadIndex, etcd's `linearizableReadLoop`).
//!
//! A barrier goes through three stages: unsent (waiting until raft-rs can take it: a leader must
//! have committed an entry of its term, and a follower must know a leader), sent (handed to
//! raft-rs under a context, waiting for its read state) and ready (its index is known, waiting
//! for the applied index to reach it). Barriers that arrive together share one context, as etcd
//! batches them.
//!
//! Owns: the three stages, their bound ([`READS_PENDING_MAX`]), the retry of barriers raft-rs
//! dropped, and etcd's failures: "leader changed" for barriers in flight when the leader
//! changes, "request timed out" for barriers that got no index within the request timeout.
//! Never: answers a barrier before the applied index reached the index raft-rs gave it.

use super::answer::Answer;
use crate::errors::EtcdError;
use std::collections::HashMap;

/// Read barriers waiting in any stage. Past it a new barrier gets "etcdserver: too many
/// requests" at once instead of a place in memory.
pub const READS_PENDING_MAX: usize = 100_000;

pub(crate) type ReadReply = Answer<Result<(), EtcdError>>;

/// A barrier and the tick it arrived at.
type Barrier = (u64, ReadReply);

pub(crate) struct Reads {
    unsent: Vec<Barrier>,
    /// By context: the tick it was sent at and its barriers.
    sent: HashMap<u64, (u64, Vec<Barrier>)>,
    /// By index: barriers whose read state arrived.
    ready: Vec<(u64, Vec<Barrier>)>,
    next_ctx: u64,
    pending: usize,
    pending_max: usize,
}

impl Reads {
    pub fn new() -> Reads {
        Reads {
            unsent: Vec::new(),
            sent: HashMap::new(),
            ready: Vec::new(),
            next_ctx: 0,
            pending: 0,
            pending_max: READS_PENDING_MAX,
        }
    }

    /// Queues a barrier arriving at `tick`; refuses it when [`READS_PENDING_MAX`] are waiting.
    pub fn push(&mut self, reply: ReadReply, tick: u64) {
        if self.pending >= self.pending_max {
            let _ = reply.send(Err(EtcdError::TooManyRequests));
            return;
        }
        self.pending += 1;
        self.unsent.push((tick, reply));
    }

    /// Moves the unsent barriers under a new context and returns the context's bytes for
    /// raft-rs's `read_index`, if there were any.
    pub fn take_unsent(&mut self, tick: u64) -> Option<Vec<u8>> {
        if self.unsent.is_empty() {
            return None;
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        self.sent
            .insert(ctx, (tick, std::mem::take(&mut self.unsent)));
        Some(ctx.to_be_bytes().to_vec())
    }

    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// raft-rs answered the context `ctx` with `index`.
    pub fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        if let Some((_, waiting)) = self.sent.remove(&u64::from_be_bytes(bytes)) {
            self.ready.push((index, waiting));
        }
    }

    /// Barriers raft-rs has not answered within `timeout_ticks` (a leader change dropped them)
    /// become unsent again, to be sent under a new context.
    pub fn retry_stale(&mut self, now_tick: u64, timeout_ticks: u64) {
        let stale: Vec<u64> = self
            .sent
            .iter()
            .filter(|(_, (sent, _))| now_tick - sent >= timeout_ticks)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in stale {
            if let Some((_, replies)) = self.sent.remove(&ctx) {
                self.unsent.extend(replies);
            }
        }
    }

    /// Answers every ready barrier whose index is applied.
    pub fn resolve(&mut self, applied: u64) {
        let mut answered = 0;
        self.ready.retain_mut(|(index, waiting)| {
            if *index > applied {
                return true;
            }
            for (_, reply) in waiting.drain(..) {
                answered += 1;
                let _ = reply.send(Ok(()));
            }
            false
        });
        self.pending -= answered;
    }

    /// The leader changed: barriers handed to raft-rs may never be answered (etcd fails them
    /// with "leader changed"; clients retry). Unsent ones go to the next leader.
    pub fn on_leader_changed(&mut self) {
        let failed: Vec<Barrier> = self.sent.drain().flat_map(|(_, (_, b))| b).collect();
        self.pending -= failed.len();
        for (_, reply) in failed {
            let _ = reply.send(Err(EtcdError::LeaderChanged));
        }
    }

    /// Fails with "request timed out" the barriers that arrived `timeout_ticks` or more before
    /// `tick` and still have no index.
    pub fn expire(&mut self, tick: u64, timeout_ticks: u64) {
        let overdue = |(arrived, _): &Barrier| tick.saturating_sub(*arrived) >= timeout_ticks;
        let mut failed = Vec::new();
        let (late, keep): (Vec<Barrier>, Vec<Barrier>) = std::mem::take(&mut self.unsent)
            .into_iter()
            .partition(overdue);
        self.unsent = keep;
        failed.extend(late);
        for (_, barriers) in self.sent.values_mut() {
            let (late, keep): (Vec<Barrier>, Vec<Barrier>) =
                std::mem::take(barriers).into_iter().partition(overdue);
            *barriers = keep;
            failed.extend(late);
        }
        self.sent.retain(|_, (_, barriers)| !barriers.is_empty());
        self.pending -= failed.len();
        for (_, reply) in failed {
            let _ = reply.send(Err(EtcdError::Timeout));
        }
    }

    /// Answers every barrier in every stage with `error`.
    pub fn fail_all(&mut self, error: EtcdError) {
        let replies = self
            .unsent
            .drain(..)
            .chain(self.sent.drain().flat_map(|(_, (_, r))| r))
            .chain(self.ready.drain(..).flat_map(|(_, r)| r));
        for (_, reply) in replies {
            let _ = reply.send(Err(error));
        }
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::answer;
    use super::*;

    fn barrier(reads: &mut Reads) -> futures::channel::oneshot::Receiver<Result<(), EtcdError>> {
        let (reply, receiver) = answer::channel();
        reads.push(reply, 0);
        receiver
    }

    #[test]
    fn a_barrier_waits_for_its_index_to_be_applied() {
        let mut reads = Reads::new();
        let mut first = barrier(&mut reads);
        let ctx = reads.take_unsent(0).unwrap();
        assert!(reads.take_unsent(0).is_none());
        reads.on_read_state(&ctx, 10);
        reads.resolve(9);
        assert_eq!(first.try_recv().unwrap(), None);
        reads.resolve(10);
        assert_eq!(first.try_recv().unwrap(), Some(Ok(())));
    }

    #[test]
    fn a_dropped_barrier_is_sent_again_under_a_new_context() {
        let mut reads = Reads::new();
        let mut waiting = barrier(&mut reads);
        let old = reads.take_unsent(0).unwrap();
        reads.retry_stale(5, 10);
        assert!(!reads.has_unsent());
        reads.retry_stale(10, 10);
        let new = reads.take_unsent(10).unwrap();
        assert_ne!(old, new);
        // A late answer to the old context finds nothing.
        reads.on_read_state(&old, 3);
        reads.resolve(100);
        assert_eq!(waiting.try_recv().unwrap(), None);
        reads.on_read_state(&new, 4);
        reads.resolve(4);
        assert_eq!(waiting.try_recv().unwrap(), Some(Ok(())));
    }

    #[test]
    fn the_bound_refuses_at_once_and_frees_as_barriers_resolve() {
        let mut reads = Reads::new();
        reads.pending_max = 2;
        let _a = barrier(&mut reads);
        let _b = barrier(&mut reads);
        let mut refused = barrier(&mut reads);
        assert_eq!(
            refused.try_recv().unwrap(),
            Some(Err(EtcdError::TooManyRequests))
        );
        let ctx = reads.take_unsent(0).unwrap();
        reads.on_read_state(&ctx, 1);
        reads.resolve(1);
        let mut admitted = barrier(&mut reads);
        assert_eq!(admitted.try_recv().unwrap(), None);
        reads.fail_all(EtcdError::Stopped);
        assert_eq!(admitted.try_recv().unwrap(), Some(Err(EtcdError::Stopped)));
    }
}
