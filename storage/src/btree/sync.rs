//! `Database::sync`: making the newest published commit durable, from any thread, while the
//! writer goes on committing unsynced transactions.
//!
//! Two phases:
//! 1. Holding the writer slot (waiting for a transaction in progress to end; no I/O but one
//!    `pwrite`): take the newest snapshot, allocate and write its freelist run, and hand the old
//!    run to the pending list under this commit's id. Only the slot holder sees the free set as of
//!    a commit, and the freelist must describe exactly that commit.
//! 2. Without the slot: `Durability::make_durable` syncs, writes the meta, syncs. The writer keeps
//!    committing meanwhile; it cannot touch this commit's pages or its freelist run, because pages
//!    freed after a commit are reused only once a commit at least as new as their freeing one is
//!    durable.

use super::error::Error;
use super::meta::Meta;
use super::page::PAGE_BYTES;
use super::{Database, Snapshot};
use std::sync::Arc;

impl Database {
    /// Makes the newest published commit durable (with everything before it) and returns the id
    /// of the newest durable commit, which is at least the newest published when the call began.
    ///
    /// Costs two `fdatasync`s when there is anything to make durable, none otherwise. Blocks the
    /// writer only while it writes the freelist (no sync); a `commit()` that wants to write its
    /// own meta meanwhile waits for this one's syncs. Safe to call from any thread, concurrently
    /// with a writer and with other `sync` calls. Any failure poisons the database.
    ///
    /// Never call it on a thread that holds a `WriteTxn`: it waits for the writer slot whenever
    /// there is something to make durable.
    pub fn sync(&self) -> Result<u64, Error> {
        self.durability.check(&self.file)?;
        let durable = self.durability.txn_id();
        if self.current.lock().meta.txn_id <= durable {
            return Ok(durable);
        }
        let meta = {
            let mut state = self.writer.lock();
            self.durability.check(&self.file)?;
            let newest = self.current.lock().clone();
            if newest.meta.txn_id <= self.durability.txn_id() {
                return Ok(self.durability.txn_id());
            }
            if state.durable_meta.txn_id == newest.meta.txn_id {
                // Another sync (or the commit itself) already wrote this commit's freelist.
                state.durable_meta
            } else {
                match self.write_freelist(&mut state, &newest) {
                    Ok(meta) => meta,
                    Err(e) => {
                        self.durability.poison(&e);
                        return Err(e);
                    }
                }
            }
        };
        self.durability
            .make_durable(self.device.as_ref(), &self.file, &meta)
    }

    /// The id of the newest durable commit: the one a crash now would reopen at (or a newer one,
    /// if a sync in progress gets its meta to the disk first).
    pub fn durable_txn_id(&self) -> u64 {
        self.durability.txn_id()
    }

    /// Phase 1: writes the freelist run of `newest` (the current snapshot; the caller holds the
    /// writer slot) and returns the meta that makes it durable.
    fn write_freelist(
        &self,
        state: &mut super::writer::WriterState,
        newest: &Arc<Snapshot>,
    ) -> Result<Meta, Error> {
        let txn_id = newest.meta.txn_id;
        debug_assert!(state.durable_meta.txn_id < txn_id);
        debug_assert!(state.page_count >= newest.meta.page_count);
        let old = state.durable_meta;
        let superseded: Vec<_> = (old.freelist..old.freelist + old.freelist_pages).collect();
        let mut page_count = state.page_count;
        let run = state.plan_freelist(&superseded, &mut page_count, txn_id);
        state.grow_to(self.device.as_ref(), &self.file, page_count)?;
        if let Some(run) = &run {
            self.device
                .write_all_at(&run.bytes, run.start * PAGE_BYTES as u64)
                .map_err(|e| Error::io(&self.file, "write freelist", e))?;
        }
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
        Ok(meta)
    }
}
