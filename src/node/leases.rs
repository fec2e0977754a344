//! The leader's lease duties, decided from its clock at every tick.
//!
//! Owns: turning what the lessor says is due (expired leases, remaining-TTL checkpoints) into
//! proposals. Never: changes the store or the lessor outside the log; nobody waits for these
//! proposals, and a lease not revoked in time is simply handed out again by the lessor.

use super::core::Core;
use crate::raft as core;
use crate::server::WriteRequest;
use keelson_proto::etcdserverpb::{LeaseCheckpointRequest, LeaseRevokeRequest};

impl Core {
    pub(super) fn lease_duties(&mut self) {
        if self.raw.raft.state != core::StateRole::Leader || self.shared.is_poisoned() {
            return;
        }
        let now = self.clock.now();
        let (expired, checkpoints) = {
            let mut lessor = self.shared.lessor.lock();
            (lessor.expired(now), lessor.checkpoints_due(now))
        };
        for id in expired {
            self.propose_unwatched(WriteRequest::LeaseRevoke(LeaseRevokeRequest { id }));
        }
        if !checkpoints.is_empty() {
            self.propose_unwatched(WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints,
            }));
        }
    }
}
