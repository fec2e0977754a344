//! The Raft log as raft-rs reads it: an in-memory cache of entries, the hard state and the
//! configuration, implementing [`raft::Storage`].
//!
//! Owns: the entries after the compaction point (the newest index the node no longer needs
//! entries for), the term of that point, the newest hard state handed to the WAL, the voters.
//! Never: does I/O. The WAL is the durable copy; the node fills this cache from the WAL replay
//! on restart and with every `Ready`'s entries before handing them to the WAL (raft-rs's async
//! persistence needs them readable here before `advance_append_async`).

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::cell::Cell;

/// raft-rs's `Storage` over memory.
#[derive(Clone, Debug, Default)]
pub struct LogStore {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry dropped from the cache (0, 0 for an empty log).
    compacted_index: u64,
    compacted_term: u64,
    /// Entries `compacted_index + 1 ..= compacted_index + entries.len()`.
    entries: Vec<Entry>,
    /// The snapshot the node prepared for followers whose entries are gone: metadata only; the
    /// node streams the store's state at its index beside the message.
    prepared: Option<SnapshotMetadata>,
    /// The newest index raft-rs asked a snapshot for and did not get (0: none). raft-rs asks
    /// through `&self`, so the request is kept in a cell for the node to see.
    wanted: Cell<u64>,
}

impl LogStore {
    /// A log that starts after `(index, term)`, with the given state and voters. A fresh log is
    /// `(0, 0)`.
    pub fn new(hard_state: HardState, conf_state: ConfState, index: u64, term: u64) -> LogStore {
        LogStore {
            hard_state,
            conf_state,
            compacted_index: index,
            compacted_term: term,
            entries: Vec::new(),
            prepared: None,
            wanted: Cell::new(0),
        }
    }

    /// The index raft-rs wants a snapshot at or after, if no prepared one will do; cleared.
    pub fn take_wanted_snapshot(&self) -> Option<u64> {
        let wanted = self.wanted.replace(0);
        (wanted != 0).then_some(wanted)
    }

    /// Offers followers a snapshot with `metadata` (the node keeps the matching store view).
    pub fn prepare_snapshot(&mut self, metadata: SnapshotMetadata) {
        self.prepared = Some(metadata);
    }

    /// The log after installing a snapshot: nothing held, the snapshot's index and term as the
    /// compaction point, its configuration, and the commit index at least its index.
    pub fn apply_snapshot(&mut self, metadata: &SnapshotMetadata) {
        self.compacted_index = metadata.index;
        self.compacted_term = metadata.term;
        self.entries.clear();
        self.conf_state = metadata.get_conf_state().clone();
        self.hard_state.commit = self.hard_state.commit.max(metadata.index);
        self.prepared = None;
    }

    /// Appends `entries`; an entry at an index already held replaces it and everything after it
    /// (Raft's log truncation). Entries at or below the compaction point are ignored: they are
    /// applied and cannot conflict.
    ///
    /// Panics on a gap, which would be a bug in the caller (raft-rs never produces one).
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let skip = self.compacted_index.saturating_sub(first.index - 1) as usize;
        let entries = &entries[skip.min(entries.len())..];
        let Some(first) = entries.first() else {
            return;
        };
        let next = self.last_index() + 1;
        assert!(
            first.index <= next,
            "entry {} leaves a gap after {}",
            first.index,
            next - 1
        );
        let keep = (first.index - self.compacted_index - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Drops entries up to `index` (inclusive) from the cache, remembering its term. No-op for
    /// an index at or below the compaction point; clamps to the last entry.
    pub fn compact_to(&mut self, index: u64) {
        let index = index.min(self.last_index());
        if index <= self.compacted_index {
            return;
        }
        let drop = (index - self.compacted_index) as usize;
        self.compacted_term = self.entries[drop - 1].term;
        self.entries.drain(..drop);
        self.compacted_index = index;
    }

    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        self.conf_state = conf_state;
    }

    /// The compaction point: entries at or below it are no longer held.
    pub fn compacted(&self) -> (u64, u64) {
        (self.compacted_index, self.compacted_term)
    }

    /// The last index held (the compaction point when the cache is empty).
    pub fn last_index(&self) -> u64 {
        self.compacted_index + self.entries.len() as u64
    }

    /// The term of `index`, if it is the compaction point or held.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.compacted_index {
            return Some(self.compacted_term);
        }
        if index < self.compacted_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.compacted_index - 1) as usize].term)
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.compacted_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index() + 1,
            "entries [{low}, {high}) beyond the last index {}",
            self.last_index()
        );
        let from = (low - self.compacted_index - 1) as usize;
        let to = (high - self.compacted_index - 1) as usize;
        let mut out = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.compacted_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.compacted_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStore::last_index(self))
    }

    /// The prepared snapshot if it is recent enough; otherwise asks the node for one (raft-rs
    /// asks again at the follower's next response).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if let Some(metadata) = &self.prepared
            && metadata.index >= request_index
            && metadata.index >= self.compacted_index
        {
            let mut snapshot = Snapshot::default();
            snapshot.set_metadata(metadata.clone());
            return Ok(snapshot);
        }
        self.wanted.set(self.wanted.get().max(request_index.max(1)));
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
