//! Compaction: copying one snapshot's live data into a fresh device, densely and in key order, so
//! the result has no free pages. The basis of etcd's defrag.
//!
//! Trees are built bottom-up: full leaves in key order (overflow runs written just before the leaf
//! that points at them), then each branch level over the one below, so pages go out in one
//! sequential stream. The metas are written after the pages are synced, as in a commit.

use super::error::Error;
use super::meta::Meta;
use super::node::{Branch, Leaf, LeafEntry, Node, Value, encode_overflow_run, needs_overflow};
use super::page::*;
use super::txn::ReadTxn;
use crate::io::BlockDevice;

/// Appends pages to the destination through a buffer.
struct Output<'a> {
    device: &'a dyn BlockDevice,
    file: String,
    txn_id: u64,
    next_page: PageId,
    buffer: Vec<u8>,
    buffer_start: PageId,
}

const FLUSH_BYTES: usize = 4 * 1024 * 1024;

impl Output<'_> {
    /// Reserves `pages` zeroed pages at the end; returns their id and bytes.
    fn append(&mut self, pages: usize) -> Result<(PageId, &mut [u8]), Error> {
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        let id = self.next_page;
        self.next_page += pages as u64;
        let at = self.buffer.len();
        self.buffer.resize(at + pages * PAGE_BYTES, 0);
        Ok((id, &mut self.buffer[at..]))
    }

    fn flush(&mut self) -> Result<(), Error> {
        if !self.buffer.is_empty() {
            self.device
                .write_all_at(&self.buffer, self.buffer_start * PAGE_BYTES as u64)
                .map_err(|e| Error::io(&self.file, "write pages", e))?;
            self.buffer_start += (self.buffer.len() / PAGE_BYTES) as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    fn node(&mut self, node: &Node) -> Result<PageId, Error> {
        let txn_id = self.txn_id;
        let (id, page) = self.append(1)?;
        node.encode(id, txn_id, page);
        Ok(id)
    }

    /// Writes a tree holding `entries` (sorted); returns its root, 0 if empty.
    fn tree<'e>(
        &mut self,
        entries: impl Iterator<Item = Result<(&'e [u8], &'e [u8]), Error>>,
    ) -> Result<PageId, Error> {
        let mut level: Vec<(Vec<u8>, PageId)> = Vec::new();
        let mut leaf = Leaf::new();
        for entry in entries {
            let (key, value) = entry?;
            let value = if needs_overflow(key.len(), value.len()) {
                let txn_id = self.txn_id;
                let (page, run) = self.append(run_pages_for(value.len()) as usize)?;
                encode_overflow_run(value, page, txn_id, run);
                Value::Overflow {
                    page,
                    len: value.len() as u32,
                }
            } else {
                Value::Inline(value.to_vec())
            };
            let entry = LeafEntry {
                key: key.to_vec(),
                value,
            };
            if leaf.bytes + entry.bytes() > PAGE_BODY_BYTES {
                let full = std::mem::take(&mut leaf);
                let first = full.entries[0].key.clone();
                level.push((first, self.node(&Node::Leaf(full))?));
            }
            leaf.push(entry);
        }
        if !leaf.entries.is_empty() {
            let first = leaf.entries[0].key.clone();
            level.push((first, self.node(&Node::Leaf(leaf))?));
        }
        while level.len() > 1 {
            let mut parents = Vec::new();
            let mut branch = Branch::new();
            let mut first = Vec::new();
            for (key, child) in level {
                if branch.bytes + node::branch_entry_bytes(key.len()) > PAGE_BODY_BYTES {
                    let full = std::mem::take(&mut branch);
                    parents.push((std::mem::take(&mut first), self.node(&Node::Branch(full))?));
                }
                if branch.children.is_empty() {
                    first = key.clone();
                }
                branch.push(key, child);
            }
            parents.push((first, self.node(&Node::Branch(branch))?));
            level = parents;
        }
        Ok(level.first().map_or(0, |(_, root)| *root))
    }
}

use super::node;

pub(crate) fn run(read: &ReadTxn, dest: &dyn BlockDevice) -> Result<(), Error> {
    let file = dest.name();
    let len = dest.len().map_err(|e| Error::io(&file, "read length", e))?;
    if len != 0 {
        return Err(Error::DestinationNotEmpty { file });
    }
    let mut out = Output {
        device: dest,
        file: file.clone(),
        txn_id: read.txn_id(),
        next_page: META_PAGE_COUNT,
        buffer: Vec::new(),
        buffer_start: META_PAGE_COUNT,
    };
    let mut catalog: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for name in read.tree_names()? {
        let root = out.tree(read.range(name, ..)?)?;
        catalog.push((name.to_vec(), root.to_le_bytes().to_vec()));
    }
    let catalog_root = out.tree(
        catalog
            .iter()
            .map(|(k, v)| Ok((k.as_slice(), v.as_slice()))),
    )?;
    out.flush()?;
    let file: &str = &file;
    let io = |op: &'static str| move |e| Error::io(file, op, e);
    dest.sync_data().map_err(io("sync pages"))?;
    let meta = Meta {
        txn_id: read.txn_id(),
        catalog_root,
        freelist: 0,
        freelist_pages: 0,
        page_count: out.next_page,
    };
    for slot in 0..META_PAGE_COUNT {
        dest.write_all_at(&meta.encode(slot), slot * PAGE_BYTES as u64)
            .map_err(io("write meta"))?;
    }
    dest.sync_data().map_err(io("sync meta"))?;
    Ok(())
}
