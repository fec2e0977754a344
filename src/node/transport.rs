//! The seam between the node and the other members: where Raft messages leave.
//!
//! Owns: the [`Transport`] trait the node sends through, and [`NoPeers`], the transport of a
//! member alone in its cluster. Never: decides anything about Raft; a transport only carries
//! what the node gives it, in order per member, and never blocks the node.

use raft::eraftpb::Message;

/// Carries Raft messages to other members.
pub trait Transport {
    /// Queues `messages` for their members, in order per member, without blocking. A message
    /// that cannot be queued (the member is unreachable or its queue is full) is dropped: Raft
    /// sends again what matters.
    fn send(&mut self, messages: Vec<Message>);
}

/// The transport of a single-member cluster: there is nobody to send to, and raft-rs produces
/// no messages for a lone voter.
#[derive(Debug, Default)]
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, messages: Vec<Message>) {
        debug_assert!(
            messages.is_empty(),
            "a lone member produced messages for {:?}",
            messages.iter().map(|m| m.to).collect::<Vec<_>>()
        );
    }
}

/// A transport that keeps what it is given, for tests of the node's ordering rules.
#[derive(Debug, Default)]
pub struct Recorded {
    pub sent: Vec<Message>,
}

impl Transport for Recorded {
    fn send(&mut self, messages: Vec<Message>) {
        self.sent.extend(messages);
    }
}
