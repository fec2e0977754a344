//! `Database::sync`: making the newest published commit durable, from any thread, while the
//! writer goes on committing unsynced transactions.
//!
//! One sync at a time (`Database::sync_lock`), in three steps:
//! 1. Holding the writer slot (waiting for a transaction in progress to end), no I/O but perhaps
//!    a resize: take the newest snapshot `M`, allocate its freelist run, copy the ids it lists,
//!    and hand the old run to the pending list under `M`'s id. Only the slot holder sees the free
//!    set as of a commit, and the freelist must describe exactly that commit.
//! 2. Without the slot: sort and encode the ids, write the run.
//! 3. `Durability::make_durable`: sync, write the meta, sync.
//!
//! The writer keeps committing during 2 and 3 and cannot touch `M`'s pages or its run: pages
//! freed after `M` (the run included: it is freed by the next durable meta's commit, which is
//! after `M`) are reused only once a commit at least as new as their freeing one is durable and
//! no snapshot older than it is held, and the sync holds `M`'s snapshot until it returns. That
//! hold matters when a durable `commit()` overtakes the sync: its meta makes the run free before
//! step 2 may have written it.
//!
//! Syncs are serialized so that a second sync of `M` cannot write `M`'s meta before the first has
//! written the run it names; the second finds `M` durable and returns.

use super::error::Error;
use super::meta::Meta;
use super::page::{PAGE_BYTES, PageId};
use super::writer::{ReservedRun, WriterState};
use super::{Database, Snapshot};
use std::sync::Arc;

impl Database {
    /// Makes the newest published commit durable (with everything before it) and returns the id
    /// of the newest durable commit, which is at least the newest published when the call began.
    ///
    /// Costs two `fdatasync`s when there is anything to make durable, none otherwise. Blocks the
    /// writer only while it allocates the freelist run and copies the free page ids (no sync, no
    /// write); a `commit()` that wants to write its own meta meanwhile waits for this one's
    /// syncs. Safe to call from any thread, concurrently with a writer and with other `sync`
    /// calls (which wait for each other). Any failure poisons the database.
    ///
    /// Never call it on a thread that holds a `WriteTxn`: it waits for the writer slot whenever
    /// there is something to make durable.
    pub fn sync(&self) -> Result<u64, Error> {
        self.durability.check(&self.file)?;
        if self.current.lock().meta.txn_id <= self.durability.txn_id() {
            return Ok(self.durability.txn_id());
        }
        let _one_sync = self.sync_lock.lock();
        // Holding `newest` until the end pins `M`'s pages and its freelist run (module comment).
        let (newest, meta, run) = {
            let mut state = self.writer.lock();
            self.durability.check(&self.file)?;
            let newest = self.current.lock().clone();
            if newest.meta.txn_id <= self.durability.txn_id() {
                return Ok(self.durability.txn_id());
            }
            // Syncs are serialized and a durable commit is durable before it is published, so
            // nobody else can have prepared a meta for `M`.
            assert!(
                state.durable_meta.txn_id < newest.meta.txn_id,
                "a meta for txn {} was prepared but is not durable",
                newest.meta.txn_id
            );
            match self.reserve_freelist(&mut state, &newest) {
                Ok((meta, run)) => (newest, meta, run),
                Err(e) => {
                    self.durability.poison(&e);
                    return Err(e);
                }
            }
        };
        if let Some(run) = run {
            let run = run.encode(meta.txn_id);
            let written = self
                .device
                .write_all_at(&run.bytes, run.start * PAGE_BYTES as u64)
                .map_err(|e| Error::io(&self.file, "write freelist", e));
            if let Err(e) = written {
                self.durability.poison(&e);
                return Err(e);
            }
        }
        let durable = self
            .durability
            .make_durable(self.device.as_ref(), &self.file, &meta);
        drop(newest);
        durable
    }

    /// Bytes of the file as of the newest commit (what etcd's `backend.Size()` reports). Read
    /// from the published snapshot's map, so it costs a lock, not a `stat`.
    pub fn file_bytes(&self) -> u64 {
        self.current.lock().map.bytes().len() as u64
    }

    /// The id of the newest durable commit: the one a crash now would reopen at (or a newer one,
    /// if a sync in progress gets its meta to the disk first).
    pub fn durable_txn_id(&self) -> u64 {
        self.durability.txn_id()
    }

    /// Step 1: allocates the freelist run of `newest` (the current snapshot; the caller holds the
    /// writer slot), grows the file for it, and returns the meta that will make `newest` durable
    /// with the run still to encode and write.
    fn reserve_freelist(
        &self,
        state: &mut WriterState,
        newest: &Arc<Snapshot>,
    ) -> Result<(Meta, Option<ReservedRun>), Error> {
        let txn_id = newest.meta.txn_id;
        debug_assert!(state.page_count >= newest.meta.page_count);
        let old = state.durable_meta;
        let superseded: Vec<PageId> = (old.freelist..old.freelist + old.freelist_pages).collect();
        let mut page_count = state.page_count;
        let run = state.reserve_freelist(&superseded, &mut page_count);
        state.grow_to(self.device.as_ref(), &self.file, page_count)?;
        // The superseded run is free in this commit, but its pages stay untouched until this
        // commit is durable: tagged with its id, they wait like pages the commit freed itself.
        if !superseded.is_empty() {
            state.pages.pending.push_back((txn_id, superseded));
        }
        state.page_count = page_count;
        let meta = Meta {
            txn_id,
            catalog_root: newest.meta.catalog_root,
            freelist: run.as_ref().map_or(0, |run| run.start),
            freelist_pages: run.as_ref().map_or(0, |run| run.pages),
            page_count,
        };
        state.durable_meta = meta;
        Ok((meta, run))
    }
}
