//! The state behind the single writer slot: free pages, published snapshots, the file's size and
//! high-water mark, and the meta most recently handed over to be made durable.
//!
//! `Database::sync` also takes this slot, briefly, to allocate the freelist run of the commit it
//! makes durable and copy the ids it lists: the freelist describes the free set at one commit,
//! and only a holder of the slot sees the free set at a commit rather than in the middle of a
//! transaction. Sorting, encoding and writing the run happen after the slot is released.

use super::Snapshot;
use super::error::Error;
use super::freelist::{self, FreePages};
use super::meta::Meta;
use super::page::*;
use crate::io::BlockDevice;
use std::sync::Arc;

pub(crate) struct WriterState {
    pub pages: FreePages,
    /// Snapshots handed out since they were current; one still referenced elsewhere may have
    /// readers, which pin the pages freed after it.
    pub published: Vec<Arc<Snapshot>>,
    pub file_bytes: u64,
    /// The high-water mark the next transaction starts from: the newest snapshot's, or past it
    /// when a sync placed a freelist run at the end of the file.
    pub page_count: u64,
    /// The newest meta handed to `Durability::make_durable` (durable, or becoming durable).
    /// Its freelist run is on disk and stays out of the free set until a newer such meta replaces
    /// it; a second `sync` of the same commit reuses it rather than writing another run.
    pub durable_meta: Meta,
}

/// An encoded freelist run, ready to write at `start`.
pub(crate) struct FreelistRun {
    pub start: PageId,
    pub pages: u64,
    pub bytes: Vec<u8>,
}

/// A freelist run whose pages are allocated, with the ids it will list, not yet sorted.
pub(crate) struct ReservedRun {
    pub start: PageId,
    pub pages: u64,
    ids: Vec<PageId>,
}

impl ReservedRun {
    /// Sorts the ids and encodes the run. The O(n log n) part of writing a freelist, which
    /// `sync` does outside the writer slot.
    pub fn encode(mut self, txn_id: u64) -> FreelistRun {
        self.ids.sort_unstable();
        debug_assert!(
            self.ids.windows(2).all(|w| w[0] < w[1]),
            "a page freed twice"
        );
        debug_assert!(
            self.ids
                .iter()
                .all(|id| *id < self.start || *id >= self.start + self.pages),
            "the freelist run lists itself"
        );
        FreelistRun {
            start: self.start,
            pages: self.pages,
            bytes: freelist::encode(&self.ids, self.start, self.pages, txn_id),
        }
    }
}

impl WriterState {
    /// Allocates the freelist run for a meta about to be made durable and gathers what it lists:
    /// every free and pending page plus `freed` (the pages that commit frees, which must include
    /// the run it supersedes). Its own pages come from the free set or the high-water mark
    /// `page_count`; they are sized first, since taking them can only shorten the list they hold.
    pub fn reserve_freelist(
        &mut self,
        freed: &[PageId],
        page_count: &mut u64,
    ) -> Option<ReservedRun> {
        let listed = self.pages.free.len() + self.pages.pending_len() + freed.len();
        if listed == 0 {
            return None;
        }
        let pages = freelist::run_pages_for_ids(listed);
        let start = self.pages.take_run(pages).unwrap_or_else(|| {
            let start = *page_count;
            *page_count += pages;
            start
        });
        let mut ids = Vec::with_capacity(listed);
        ids.extend(self.pages.free.iter().copied());
        for (_, batch) in &self.pages.pending {
            ids.extend(batch.iter().copied());
        }
        ids.extend(freed.iter().copied());
        Some(ReservedRun { start, pages, ids })
    }

    /// Grows the file (doubling, at most `GROW_BYTES_MAX` at a time) if `page_count` pages do not
    /// fit, so remaps stay rare.
    pub fn grow_to(
        &mut self,
        device: &dyn BlockDevice,
        file: &str,
        page_count: u64,
    ) -> Result<(), Error> {
        let needed_bytes = page_count * PAGE_BYTES as u64;
        if needed_bytes <= self.file_bytes {
            return Ok(());
        }
        let current = self.file_bytes.max(PAGE_BYTES as u64);
        let grown = needed_bytes.max(current + current.min(GROW_BYTES_MAX));
        let grown = grown.div_ceil(PAGE_BYTES as u64) * PAGE_BYTES as u64;
        device
            .set_len(grown)
            .map_err(|e| Error::io(file, "grow", e))?;
        self.file_bytes = grown;
        Ok(())
    }

    /// Every page the writer counts as not in use (free or pending), sorted: what a freelist run
    /// written now would list.
    pub fn unused_pages(&self) -> Vec<PageId> {
        let mut ids: Vec<PageId> = self.pages.free.iter().copied().collect();
        for (_, batch) in &self.pages.pending {
            ids.extend(batch.iter().copied());
        }
        ids.sort_unstable();
        ids
    }
}
