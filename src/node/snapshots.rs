//! Raft snapshots, both ways (etcd's `snapshot`/`applySnapshot`, with the store as the snapshot).
//!
//! Leader: when raft-rs needs a snapshot for a follower whose entries this member no longer
//! holds, the core offers one at its applied index, with the store view of that index kept
//! beside it; the `MsgSnapshot` raft-rs then sends leaves with that view, which the transport
//! streams (`crate::peer::snapshot`). The log is never compacted past the B+tree's durable
//! index, and beyond that keeps [`CATCH_UP_ENTRIES`] for followers that are only a little behind
//! (etcd's `SnapshotCatchUpEntries`), so most catch-ups need no snapshot.
//!
//! Follower: the transport builds the received store into `<index>.snap.db` (durable) and hands
//! it over with the message. When raft-rs accepts it (its `Ready` carries the snapshot), the core
//! installs it in this order, each step durable before the next:
//! 1. the file is renamed over the store's file and the store reopened from it (the file holds
//!    the snapshot's index and term in its local tree);
//! 2. the `Ready`'s WAL append carries a marker at the snapshot's index.
//!
//! A crash before 1 leaves the old store and a stray file (deleted at start); a crash between 1
//! and 2 leaves a store whose applied index the WAL does not know, which the restart accepts
//! from the store's own record of the snapshot; after 2, a plain restart.
//!
//! Owns: the offered snapshot and its view, the files received and not yet installed, the
//! install. Never: installs a store whose index raft-rs did not accept, or offers a snapshot
//! the log has already compacted past.

use super::core::Core;
use crate::errors::EtcdError;
use keelson_storage::btree::Database;
use keelson_storage::mvcc::{Store, View};
use keelson_storage::schema;
use raft::eraftpb::{Message, MessageType, SnapshotMetadata};
use std::path::PathBuf;
use std::sync::Arc;

/// Entries kept in memory behind the B+tree's durable index for followers to catch up from
/// without a snapshot, when the cluster has other members.
pub const CATCH_UP_ENTRIES: u64 = 5000;

/// The snapshot offered to followers and the store view it was taken from.
pub(crate) struct Offered {
    pub index: u64,
    pub view: Arc<View>,
}

/// The snapshot files left in `dir` by a receive or an install that did not finish, to delete
/// at start: every `.part`, and every `.snap.db` (the node installs a snapshot in the turn it is
/// told of it, and a restart forgets what raft-rs had not accepted yet).
pub(crate) fn leftovers(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(schema::SNAPSHOT_PART_SUFFIX) || n.ends_with(schema::SNAPSHOT_DB_SUFFIX)
            })
        })
        .collect()
}

impl Core {
    /// Offers a snapshot at the applied index if raft-rs asked for one the current offer does
    /// not satisfy.
    pub(super) fn offer_snapshot(&mut self) {
        let Some(wanted) = self.raw.store().take_wanted_snapshot() else {
            return;
        };
        if self.offered.as_ref().is_some_and(|o| o.index >= wanted) {
            return;
        }
        let view = self.shared.store.load().view();
        let index = view.consistent_index();
        if index < wanted || index != self.applied {
            // Applied entries not yet published: raft-rs asks again.
            return;
        }
        let Some(term) = self.raw.store().term_of(index) else {
            return;
        };
        let mut metadata = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        metadata.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        self.raw.mut_store().prepare_snapshot(metadata);
        self.offered = Some(Offered { index, view });
    }

    /// Separates `MsgSnapshot`s from `messages`, pairing each with the view it describes.
    pub(super) fn route_snapshots(&mut self, messages: Vec<Message>) -> Vec<Message> {
        let mut plain = Vec::with_capacity(messages.len());
        for message in messages {
            if message.get_msg_type() != MessageType::MsgSnapshot {
                plain.push(message);
                continue;
            }
            let index = message.get_snapshot().get_metadata().index;
            match &self.offered {
                Some(offered) if offered.index == index => {
                    let view = offered.view.clone();
                    self.out.snapshots.push((message, view));
                }
                // An offer replaced since: raft-rs learns of the failure and asks again.
                _ => self
                    .raw
                    .report_snapshot(message.to, raft::SnapshotStatus::Failure),
            }
        }
        plain
    }

    /// A snapshot file finished receiving: remembered for the install, and the message stepped
    /// into raft-rs.
    pub fn on_snapshot_received(&mut self, message: Message, path: PathBuf) {
        let index = message.get_snapshot().get_metadata().index;
        self.received.insert(index, path);
        self.step(message);
    }

    /// The leader's stream of a snapshot to `to` ended.
    pub fn on_snapshot_sent(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    /// Installs the snapshot raft-rs accepted (see the module comment): swaps the store, then
    /// rebuilds what depends on it. Returns false (having poisoned the node) on failure.
    pub(super) fn install_snapshot(&mut self, metadata: &SnapshotMetadata) -> bool {
        let index = metadata.index;
        let Some(path) = self.received.remove(&index) else {
            self.shared.poison(&format!(
                "raft-rs accepted snapshot {index} which was never received"
            ));
            self.fail_all(EtcdError::Stopped);
            return false;
        };
        // Older files are superseded.
        for (_, stale) in self.received.drain() {
            let _ = std::fs::remove_file(stale);
        }
        match self.swap_store(&path) {
            Ok(()) => {}
            Err(why) => {
                self.shared
                    .poison(&format!("installing snapshot {index}: {why}"));
                self.fail_all(EtcdError::Stopped);
                return false;
            }
        }
        self.raw.mut_store().apply_snapshot(metadata);
        self.applied = index;
        self.offered = None;
        self.release.installed(index);
        self.reload_members();
        true
    }

    fn swap_store(&mut self, path: &std::path::Path) -> Result<(), String> {
        let db_path = self.data_dir.join(schema::DB_FILE);
        std::fs::rename(path, &db_path).map_err(|e| format!("rename {}: {e}", path.display()))?;
        let dir = db_path.parent().expect("the db file is in a folder");
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("sync {}: {e}", dir.display()))?;
        let db = Database::open_file(&db_path).map_err(|e| format!("open the new store: {e}"))?;
        let store = Arc::new(Store::open(db).map_err(|e| format!("open the new store: {e}"))?);
        let now = self.clock.now();
        let mut lessor = crate::server::lessor::Lessor::restore(&store, self.min_ttl, now)?;
        if self.raw.raft.state == crate::raft::StateRole::Leader {
            lessor.promote(now, self.election_timeout);
        } else {
            lessor.demote();
        }
        *self.shared.lessor.lock() = lessor;
        self.shared.store.store(store.clone());
        // Every watcher resumes from the store at its next revision: the events between are in
        // the new store's history (or compacted away, which cancels the watcher as etcd does).
        self.shared.watch.unsync_all(store.current_rev());
        Ok(())
    }
}
