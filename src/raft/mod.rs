//! The Raft consensus core: raft-rs's state machine over an in-memory log, plus the ids etcd
//! gives members and clusters.
//!
//! - [`storage`]: [`LogStore`], the `raft::Storage` raft-rs reads entries and state through.
//! - [`ids`]: etcd's member and cluster id derivation.
//!
//! This module is pure: no I/O, no clock, no threads. The node (`crate::node`) ticks it, feeds
//! it proposals, persists what its `Ready`s ask for to the WAL and applies committed entries.
//! Nothing here may block or read the time: ticks are the only notion of time raft-rs gets.

pub mod ids;
pub mod storage;

#[cfg(test)]
mod tests;

pub use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
pub use raft::{RawNode, StateRole};
pub use storage::LogStore;

use slog::Drain;

/// Timing and identity of the local Raft member, in ticks.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    pub id: u64,
    /// Ticks without a heartbeat before a follower campaigns (etcd: election / heartbeat ms).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats (etcd: always 1).
    pub heartbeat_ticks: usize,
    /// The last index applied to the state machine (the B+tree's consistent index).
    pub applied: u64,
}

/// Largest total size of entries in one append message, as etcd's `maxSizePerMsg` (1 MiB).
pub const MAX_SIZE_PER_MSG: u64 = 1 << 20;
/// Appends in flight to one follower, as etcd's `maxInflightMsgs`.
pub const MAX_INFLIGHT_MSGS: usize = 4096 / 8;
/// Bytes of entries a leader holds proposed but not committed before it refuses more proposals
/// (raft-rs's `max_uncommitted_size`): a leader cut off from its followers must not grow its
/// log without bound. Several times the largest request, so one large request always fits.
pub const UNCOMMITTED_ENTRY_BYTES_MAX: u64 = 256 << 20;

/// The raft-rs configuration for `settings`, with etcd's choices: pre-vote and check-quorum on.
pub fn config(settings: &RaftSettings) -> raft::Config {
    raft::Config {
        id: settings.id,
        election_tick: settings.election_ticks,
        heartbeat_tick: settings.heartbeat_ticks,
        applied: settings.applied,
        max_size_per_msg: MAX_SIZE_PER_MSG,
        max_inflight_msgs: MAX_INFLIGHT_MSGS,
        check_quorum: true,
        pre_vote: true,
        max_uncommitted_size: UNCOMMITTED_ENTRY_BYTES_MAX,
        ..raft::Config::default()
    }
}

/// A raw node over `store` (which holds the restored hard state, voters and entries).
pub fn raw_node(
    settings: &RaftSettings,
    store: LogStore,
    logger: &slog::Logger,
) -> raft::Result<RawNode<LogStore>> {
    RawNode::new(&config(settings), store, logger)
}

/// A logger that drops everything (tests, quiet servers).
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// A logger that hands raft-rs's messages at `min` and above to the process's logger
/// (`crate::log`), as events of the `raft` package with raft-rs's own source location.
pub fn tracing_logger(min: slog::Level) -> slog::Logger {
    slog::Logger::root(TracingDrain { min }.fuse(), slog::o!())
}

struct TracingDrain {
    min: slog::Level,
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV;
        if !record.level().is_at_least(self.min) {
            return Ok(());
        }
        // raft-rs's messages are short and rare (elections, configuration): formatting them
        // here costs nothing that matters.
        let mut pairs = Pairs(Vec::new());
        let _ = record.kv().serialize(record, &mut pairs);
        let _ = values.serialize(record, &mut pairs);
        let msg = if pairs.0.is_empty() {
            record.msg().to_string()
        } else {
            format!("{}; {}", record.msg(), pairs.0.join(", "))
        };
        let file = record.file().rsplit('/').next().unwrap_or_default();
        let caller = format!("raft/{file}:{}", record.line());
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", caller = %caller, "{msg}")
            }
            slog::Level::Warning => tracing::warn!(target: "raft", caller = %caller, "{msg}"),
            slog::Level::Info => tracing::info!(target: "raft", caller = %caller, "{msg}"),
            slog::Level::Debug | slog::Level::Trace => {
                tracing::debug!(target: "raft", caller = %caller, "{msg}")
            }
        }
        Ok(())
    }
}

/// slog's key-value pairs as `key: value` texts.
struct Pairs(Vec<String>);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push(format!("{key}: {value}"));
        Ok(())
    }
}
