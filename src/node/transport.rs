//! The seam between the node and the other members: where Raft messages leave.
//!
//! Owns: the [`Transport`] trait the node sends through, and [`NoPeers`], the transport of a
//! member alone in its cluster. Never: decides anything about Raft; a transport only carries
//! what the node gives it, in order per member, and never blocks the node.

use keelson_storage::mvcc::View;
use raft::eraftpb::Message;
use std::sync::Arc;

/// Carries Raft messages to other members.
pub trait Transport {
    /// Queues `messages` for their members, in order per member, without blocking. A message
    /// that cannot be queued (the member is unreachable or its queue is full) is dropped: Raft
    /// sends again what matters.
    fn send(&mut self, messages: Vec<Message>);

    /// The members to carry messages to, and who this member is: called at start and whenever
    /// the membership changes.
    fn set_members(&mut self, _own: u64, _cluster_id: u64, _members: &[super::MemberInfo]) {}

    /// Streams the store `view` (the state at `message`'s snapshot index) with the
    /// `MsgSnapshot` `message`, and reports how it ended through the node's peer channel.
    fn send_snapshot(&mut self, message: Message, view: Arc<View>);
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

    fn send_snapshot(&mut self, message: Message, _view: Arc<View>) {
        debug_assert!(false, "a lone member sent a snapshot to {}", message.to);
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

    fn send_snapshot(&mut self, message: Message, _view: Arc<View>) {
        self.sent.push(message);
    }
}
