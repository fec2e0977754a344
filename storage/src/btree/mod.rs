//! The crash-safe, memory-mapped, copy-on-write B+tree that holds Keelson's applied state.
//!
//! One file holds any number of named trees. Readers see a stable snapshot through a read-only
//! map of the file for as long as they live; one writer at a time edits owned copies of pages and
//! commits them in one of two ways:
//! - `commit()`: durable on return, with two syncs (pages, then the meta that points at them);
//! - `commit_unsynced()`: pages written, no sync, no meta; visible to new readers at once, lost
//!   on a crash until a later `Database::sync()` (callable from another thread while the writer
//!   goes on) or `commit()` makes it durable. For callers whose durability comes from a log.
//!
//! The on-disk format, both commit protocols, `sync` and their crash analysis are in
//! docs/STORAGE-BTREE.md.
//!
//! Modules, each owning one thing:
//! - `page`: limits, the page header, checksums.
//! - `meta`: the two alternating meta pages.
//! - `node`: leaf and branch layouts, their readers and owned editable form.
//! - `freelist`: free and pending pages, and their persisted run.
//! - `cursor`: lookups, cursors and ranges.
//! - `txn`: read and write transactions, both commits.
//! - `writer`: the writer slot's state, freelist runs and file growth.
//! - `durable`: the durable transaction id, meta slot alternation, poisoning.
//! - `sync`: `Database::sync`, making unsynced commits durable.
//! - `check`: the whole-file verifier.
//! - `compact`: copying a snapshot into a fresh, dense file.
//!
//! Checksums: every page carries a crc32. Opening verifies the metas, the freelist, the catalog
//! root and every tree root; `check()` verifies every reachable page. Ordinary reads do not: a
//! crc over each 4 KiB page on every lookup would cost more than the lookup itself. They do
//! bounds-check every offset, so a damaged page gives an error or wrong bytes, never a panic or a
//! read outside the map.

mod check;
mod compact;
mod cursor;
mod durable;
mod error;
mod freelist;
mod meta;
mod node;
mod page;
mod sync;
mod txn;
mod writer;

pub use check::CheckReport;
pub use cursor::{Cursor, Entry, Range};
pub use error::Error;
pub use page::{
    FORMAT_VERSION, GROW_BYTES_MAX, INLINE_ENTRY_BYTES_MAX, KEY_BYTES_MAX, PAGE_BYTES,
    PAGE_HEADER_BYTES, PageId, TREE_DEPTH_MAX, VALUE_BYTES_MAX,
};
pub use txn::{ReadTxn, Tree, WriteTxn};

use crate::io::{BlockDevice, FileDevice, Mapping};
use cursor::View;
use durable::Durability;
use freelist::FreePages;
use meta::Meta;
use node::NodePage;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use writer::WriterState;

/// One published commit and the map to read it through. `meta.freelist*` are those of the meta
/// written for it if it was committed durably, and 0 if it was published unsynced (the live
/// freelist run is `WriterState::durable_meta`'s).
pub(crate) struct Snapshot {
    pub meta: Meta,
    pub map: Arc<dyn Mapping>,
    pub file: Arc<str>,
}

/// A B+tree file. `Send + Sync`: share it by reference or in an `Arc`.
pub struct Database {
    device: Arc<dyn BlockDevice>,
    file: Arc<str>,
    /// The newest snapshot; a reader clones it, which is all `begin_read` costs.
    current: Mutex<Arc<Snapshot>>,
    /// The single writer slot (also taken briefly by `sync`).
    writer: Mutex<WriterState>,
    /// One `sync` at a time (see `sync`).
    sync_lock: Mutex<()>,
    durability: Durability,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("file", &self.file)
            .finish()
    }
}

impl Database {
    /// Opens the B+tree on `device`, writing an empty one first if the device is empty.
    pub fn open(device: Arc<dyn BlockDevice>) -> Result<Database, Error> {
        let file: Arc<str> = device.name().into();
        let io = |op: &'static str| {
            let file = file.clone();
            move |e| Error::io(&file, op, e)
        };
        let mut len = device.len().map_err(io("read length"))?;
        if len == 0 {
            create(device.as_ref()).map_err(io("create"))?;
            len = device.len().map_err(io("read length"))?;
        }
        let meta_bytes = META_PAGE_COUNT * PAGE_BYTES as u64;
        if len < meta_bytes {
            return Err(Error::corrupt(
                &file,
                format!(
                    "truncated: {len} bytes is less than the two meta pages ({meta_bytes} bytes)"
                ),
            ));
        }
        let mut slots = [
            Err(meta::MetaProblem::BadMagic),
            Err(meta::MetaProblem::BadMagic),
        ];
        for (slot, outcome) in slots.iter_mut().enumerate() {
            let mut page = vec![0u8; PAGE_BYTES];
            device
                .read_exact_at(&mut page, slot as u64 * PAGE_BYTES as u64)
                .map_err(io("read meta"))?;
            *outcome = Meta::decode(&page, slot as u64);
        }
        let (slot, meta) = meta::choose(slots).map_err(|detail| Error::corrupt(&file, detail))?;
        let needed_bytes = meta.page_count * PAGE_BYTES as u64;
        if len < needed_bytes {
            return Err(Error::corrupt(
                &file,
                format!(
                    "truncated: the last commit (txn {}) spans {needed_bytes} bytes but the file has {len}",
                    meta.txn_id
                ),
            ));
        }
        let map = device.map().map_err(io("map"))?;
        if (map.bytes().len() as u64) < needed_bytes {
            return Err(Error::corrupt(
                &file,
                "the device map is shorter than the file",
            ));
        }
        let free = verify_on_open(&file, map.bytes(), &meta)?;
        let snapshot = Arc::new(Snapshot {
            meta,
            map,
            file: file.clone(),
        });
        let mut pages = FreePages::default();
        pages.free.extend(free);
        Ok(Database {
            device,
            file,
            current: Mutex::new(snapshot.clone()),
            writer: Mutex::new(WriterState {
                pages,
                published: vec![snapshot],
                file_bytes: len,
                page_count: meta.page_count,
                durable_meta: meta,
            }),
            sync_lock: Mutex::new(()),
            durability: Durability::new(meta.txn_id, slot),
        })
    }

    /// Opens (creating if missing) the B+tree file at `path`.
    pub fn open_file(path: &Path) -> Result<Database, Error> {
        let device = FileDevice::open(path, true)
            .map_err(|e| Error::io(&path.display().to_string(), "open", e))?;
        Database::open(Arc::new(device))
    }

    /// Drops the file's mapped pages from the process's memory after a scan of the whole file
    /// (see [`BlockDevice::release_mapped_pages`]); reads map them again as they need them.
    pub fn release_mapped_pages(&self) -> Result<(), Error> {
        self.device
            .release_mapped_pages()
            .map_err(|e| Error::io(&self.file, "release mapped pages", e))
    }

    /// The device's name, as used in error messages.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// Starts a read transaction on the newest commit. Takes an uncontended lock and clones an
    /// `Arc`; never waits for the writer.
    pub fn begin_read(&self) -> Result<ReadTxn, Error> {
        let snapshot = self.current.lock().clone();
        Ok(ReadTxn { snapshot })
    }

    /// Starts the write transaction, waiting for the previous one (or a `sync`'s first phase) to
    /// finish. It starts from the newest published commit, durable or not.
    pub fn begin_write(&self) -> Result<WriteTxn<'_>, Error> {
        let mut state = self.writer.lock();
        self.durability.check(&self.file)?;
        let base = self.current.lock().clone();
        // A snapshot no longer current that only `published` references has no reader and can
        // get none (readers only clone the current one), so it pins nothing.
        let current_id = base.meta.txn_id;
        state
            .published
            .retain(|s| s.meta.txn_id == current_id || Arc::strong_count(s) > 1);
        // Pairs with the release decrement of a reader's drop: its reads of the pages happen
        // before this writer reuses them.
        fence(Ordering::Acquire);
        let oldest = state
            .published
            .iter()
            .map(|s| s.meta.txn_id)
            .min()
            .unwrap_or(current_id);
        // A page freed by commit N is reachable from the durable commit before N until N (or a
        // later commit) is durable: a crash must find it intact.
        state.pages.release(oldest.min(self.durability.txn_id()));
        Ok(WriteTxn::new(self, state, base))
    }

    /// Verifies the whole newest snapshot: structure, order, checksums, and page accounting
    /// against the writer's free and pending pages and the live freelist run (which must list
    /// exactly those pages when the newest commit is the one it was written for). Waits for a
    /// write transaction or a `sync` in progress; never call it while holding a `WriteTxn`.
    pub fn check(&self) -> Result<CheckReport, Error> {
        // No sync in flight either: one may have allocated the live run without writing it yet.
        let _no_sync = self.sync_lock.lock();
        let state = self.writer.lock();
        let newest = self.current.lock().clone();
        // A fresh map: the newest snapshot's may predate the file growth and freelist run of a
        // later `sync`.
        let map = self
            .device
            .map()
            .map_err(|e| Error::io(&self.file, "map", e))?;
        let accounting = check::Accounting {
            page_count: state.page_count,
            freelist: state.durable_meta.freelist,
            freelist_pages: state.durable_meta.freelist_pages,
            unused: state.unused_pages(),
            freelist_is_exact: state.durable_meta.txn_id == newest.meta.txn_id,
        };
        // Keep the slot until done: a `sync` could otherwise supersede the run being read and a
        // writer reuse its pages.
        let report = check::run(&self.file, map.bytes(), &newest.meta, &accounting);
        drop(state);
        report
    }

    /// Copies the newest snapshot's live data densely into `dest`, which must be empty.
    pub fn compact_into(&self, dest: Arc<dyn BlockDevice>) -> Result<(), Error> {
        let read = self.begin_read()?;
        compact::run(&read, dest.as_ref())
    }
}

/// Writes an empty database: both metas at transaction 0, no trees, nothing free.
fn create(device: &dyn BlockDevice) -> std::io::Result<()> {
    let meta = Meta {
        txn_id: 0,
        catalog_root: 0,
        freelist: 0,
        freelist_pages: 0,
        page_count: META_PAGE_COUNT,
    };
    for slot in 0..META_PAGE_COUNT {
        device.write_all_at(&meta.encode(slot), slot * PAGE_BYTES as u64)?;
    }
    device.sync_data()
}

/// The checks worth their cost on every open: the freelist, the catalog, and every tree root.
/// Returns the free pages.
fn verify_on_open(file: &str, map: &[u8], meta: &Meta) -> Result<Vec<PageId>, Error> {
    let corrupt = |c: Corruption| Error::corrupt(file, c.to_string());
    let free = if meta.freelist == 0 {
        Vec::new()
    } else {
        freelist::decode(map, meta.freelist, meta.freelist_pages).map_err(corrupt)?
    };
    if let Some(bad) = free
        .iter()
        .find(|&&id| id < META_PAGE_COUNT || id >= meta.page_count)
    {
        return Err(Error::corrupt(
            file,
            format!("free page {bad} is outside the file"),
        ));
    }
    let verify_node = |id: PageId| -> Result<(), Error> {
        let page = NodePage::read(map, id).map_err(corrupt)?;
        if !checksum_ok(page.bytes()) {
            return Err(corrupt(Corruption {
                page: id,
                what: "page checksum mismatch",
            }));
        }
        Ok(())
    };
    if meta.catalog_root != 0 {
        verify_node(meta.catalog_root)?;
        let view = View {
            map,
            dirty: None,
            file,
        };
        let catalog = cursor::Range::new(
            view,
            meta.catalog_root,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
        );
        for entry in catalog {
            let (_, value) = entry?;
            let root = txn::decode_root(&view, value)?;
            if root != 0 {
                verify_node(root)?;
            }
        }
    }
    Ok(free)
}

use page::{Corruption, META_PAGE_COUNT, checksum_ok};

#[cfg(test)]
mod tests;
