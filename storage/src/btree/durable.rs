//! Durability: which commit is durable, which meta slot holds it, and poisoning.
//!
//! Commits reach readers and the disk on separate schedules. `WriteTxn::commit_unsynced` publishes
//! a snapshot whose pages are written but not synced; `WriteTxn::commit` and `Database::sync` make
//! a commit durable. Both end here, in [`Durability::make_durable`]: sync the pages, write the
//! meta, sync again. That step runs under one lock so metas reach the disk one at a time, in
//! increasing transaction order, each into the slot that does not hold the newest durable meta.
//!
//! Why slots alternate by durable commits and not by `txn_id % 2`: unsynced commits never write a
//! meta, so two durable commits in a row can have ids of the same parity, and `% 2` would then
//! overwrite the only durable meta with one whose write could tear.
//!
//! Poisoning: after any failed write, resize or sync (in any commit, or in `sync`), what reached
//! the disk is unknown, and after a failed fsync the kernel may have dropped dirty pages without a
//! trace. The first failure is recorded here and every later write transaction, commit and sync
//! fails with `Error::Poisoned`; only reopening tells what is durable.

use super::error::Error;
use super::meta::Meta;
use super::page::{META_PAGE_COUNT, PAGE_BYTES};
use crate::io::BlockDevice;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The newest meta known to be durable.
#[derive(Clone, Copy, Debug)]
struct DurableMeta {
    txn_id: u64,
    slot: u64,
}

pub(crate) struct Durability {
    /// Held from the first sync to the second in `make_durable`; see the module comment.
    newest: Mutex<DurableMeta>,
    /// Mirror of `newest.txn_id`, so callers can ask without waiting for a sync in progress.
    txn_id: AtomicU64,
    /// The first failure's description; never cleared.
    poisoned: Mutex<Option<String>>,
}

impl Durability {
    /// State for a file just opened at the meta in `slot`, which is durable by definition.
    pub fn new(txn_id: u64, slot: u64) -> Durability {
        debug_assert!(slot < META_PAGE_COUNT);
        Durability {
            newest: Mutex::new(DurableMeta { txn_id, slot }),
            txn_id: AtomicU64::new(txn_id),
            poisoned: Mutex::new(None),
        }
    }

    /// The id of the newest durable commit. Pairs (acquire) with the release store that follows
    /// the meta's sync, so a writer that sees an id also sees everything that sync settled.
    pub fn txn_id(&self) -> u64 {
        self.txn_id.load(Ordering::Acquire)
    }

    /// `Err(Poisoned)` once any write or sync has failed.
    pub fn check(&self, file: &str) -> Result<(), Error> {
        match &*self.poisoned.lock() {
            None => Ok(()),
            Some(cause) => Err(Error::Poisoned {
                file: file.to_string(),
                cause: cause.clone(),
            }),
        }
    }

    /// Records a failure; the first one is what later errors report.
    pub fn poison(&self, cause: &Error) {
        let mut poisoned = self.poisoned.lock();
        if poisoned.is_none() {
            *poisoned = Some(cause.to_string());
        }
    }

    /// Makes `meta` durable: sync every page written so far (which must include all of `meta`'s),
    /// write `meta` into the slot not holding the newest durable meta, sync. Returns the durable
    /// transaction id afterwards. If a meta at least as new became durable meanwhile, writes
    /// nothing: that meta already covers this commit, and the pages `meta` names may already be
    /// free again. Any failure poisons.
    pub fn make_durable(
        &self,
        device: &dyn BlockDevice,
        file: &str,
        meta: &Meta,
    ) -> Result<u64, Error> {
        let mut newest = self.newest.lock();
        self.check(file)?;
        if meta.txn_id <= newest.txn_id {
            return Ok(newest.txn_id);
        }
        let slot = META_PAGE_COUNT - 1 - newest.slot;
        let io = |op: &'static str| move |e| Error::io(file, op, e);
        let written = device
            .sync_data()
            .map_err(io("sync pages"))
            .and_then(|()| {
                device
                    .write_all_at(&meta.encode(slot), slot * PAGE_BYTES as u64)
                    .map_err(io("write meta"))
            })
            .and_then(|()| device.sync_data().map_err(io("sync meta")));
        if let Err(e) = written {
            self.poison(&e);
            return Err(e);
        }
        *newest = DurableMeta {
            txn_id: meta.txn_id,
            slot,
        };
        self.txn_id.store(meta.txn_id, Ordering::Release);
        Ok(meta.txn_id)
    }
}
