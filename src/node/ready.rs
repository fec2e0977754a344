//! raft-rs's `Ready` loop (etcd's raft.go): what each `Ready` asks to persist, send and apply.
//!
//! For each `Ready`, in raft-rs's order (its async-persistence contract):
//! 1. new entries go into the in-memory log at once (raft-rs reads them back before they are
//!    durable) and, with the hard state when term or vote changed, into one WAL append that the
//!    node thread enqueues behind the previous ones (group commit);
//! 2. `messages` leave at once: a leader's appends travel while its own fdatasync runs, as Raft
//!    allows (the leader counts itself only once its append is durable);
//!    `persisted_messages` (votes, append responses) wait for this `Ready`'s append to be
//!    durable: a member must never promise what a crash could make it forget;
//! 3. committed entries (raft-rs hands out only locally durable ones) are applied;
//! 4. read states resolve the barriers waiting on them.
//!
//! Owns: that order. Never: sends a persisted message early or applies an entry twice.

use super::core::{Core, hard_state_record};
use keelson_storage::wal::{self, Record};

impl Core {
    /// Handles every `Ready` raft-rs has, until it has none.
    pub fn handle_readies(&mut self) {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            if !rd.snapshot().is_empty() {
                // Only a leader's snapshot can arrive, and a single voter has none.
                self.shared
                    .poison("received a Raft snapshot, which a single voter cannot");
                self.raw.advance_append_async(rd);
                return;
            }
            if let Some(ss) = rd.ss() {
                let mut status = self.shared.status.lock();
                if ss.leader_id != 0 && ss.leader_id != status.leader {
                    crate::metrics::server().leader_changes_seen.inc();
                }
                status.leader = ss.leader_id;
            }
            let number = rd.number();
            self.out.messages.extend(rd.take_messages());
            let persisted_messages = rd.take_persisted_messages();
            let committed = rd.take_committed_entries();
            let read_states = rd.take_read_states();
            let entries = rd.take_entries();
            let hard_state = rd.hs().cloned();
            let must_sync = rd.must_sync();
            // Asserts the entries leave no gap after the last index (raft-rs may overwrite an
            // uncommitted tail, never skip).
            self.raw.mut_store().append(&entries);
            if let Some(hs) = &hard_state {
                self.raw.mut_store().set_hard_state(hs.clone());
            }
            self.raw.advance_append_async(rd);

            let mut records: Vec<Record> = entries
                .iter()
                .map(|e| {
                    Record::Entry(wal::Entry {
                        index: e.index,
                        term: e.term,
                        data: e.data.to_vec(),
                    })
                })
                .collect();
            if let Some(hs) = hard_state {
                self.unwritten_hard_state = Some(hs);
            }
            if must_sync || !records.is_empty() {
                if let Some(hs) = self.unwritten_hard_state.take() {
                    records.push(hard_state_record(&hs));
                }
                records.extend(self.release.ride_on(number));
                self.out.appends.push((number, records));
                self.enqueued = number;
            }
            if !persisted_messages.is_empty() {
                // They wait for this Ready's append, or, when it wrote nothing, for the last
                // append still in flight.
                if self.enqueued > self.persisted {
                    self.after_persist
                        .push_back((self.enqueued, persisted_messages));
                } else {
                    self.out.messages.extend(persisted_messages);
                }
            }

            if !committed.is_empty() {
                self.apply(committed);
            }
            for state in read_states {
                self.reads.on_read_state(&state.request_ctx, state.index);
            }
            self.reads.resolve(self.applied);
        }
    }
}
