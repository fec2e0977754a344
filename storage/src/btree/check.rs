//! The whole-file verifier: walks one snapshot and proves its structure, key order, checksums and
//! page accounting (every page below the high-water mark is exactly one of: meta, reachable from
//! the snapshot, the live freelist run, or unused).
//!
//! The accounting comes from the writer, not from the snapshot's meta: after unsynced commits the
//! freelist on disk describes the last durable commit, not the newest one. When the newest commit
//! is the one the freelist run was written for (always so right after opening), the run must list
//! exactly the writer's unused pages.

use super::error::Error;
use super::freelist;
use super::meta::Meta;
use super::node::{Node, NodePage, Value, needs_overflow};
use super::page::*;

/// What `check` found in a healthy file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub txn_id: u64,
    /// High-water mark, metas included.
    pub page_count: u64,
    pub trees: u64,
    pub entries: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    pub overflow_pages: u64,
    pub freelist_pages: u64,
    /// Pages not in use: free, or freed and waiting for readers or for durability.
    pub free_pages: u64,
}

/// Why each page is accounted for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    Unaccounted,
    Meta,
    Reachable,
    Free,
}

struct Checker<'a> {
    map: &'a [u8],
    file: &'a str,
    owners: Vec<Owner>,
    report: CheckReport,
    leaf_depth: Option<usize>,
}

/// What the writer says about the pages outside the snapshot's trees.
pub(crate) struct Accounting {
    /// The high-water mark, at least the snapshot's.
    pub page_count: u64,
    /// The live freelist run (0 if none).
    pub freelist: PageId,
    pub freelist_pages: u64,
    /// Free and pending pages, sorted.
    pub unused: Vec<PageId>,
    /// The run was written for the snapshot checked, so it must list exactly `unused`.
    pub freelist_is_exact: bool,
}

pub(crate) fn run(
    file: &str,
    map: &[u8],
    meta: &Meta,
    accounting: &Accounting,
) -> Result<CheckReport, Error> {
    assert!(accounting.page_count >= meta.page_count);
    let page_count = usize::try_from(accounting.page_count)
        .ok()
        .filter(|count| count.saturating_mul(PAGE_BYTES) <= map.len())
        .ok_or_else(|| Error::corrupt(file, "page count exceeds the file"))?;
    let mut checker = Checker {
        map,
        file,
        owners: vec![Owner::Unaccounted; page_count],
        report: CheckReport {
            txn_id: meta.txn_id,
            page_count: accounting.page_count,
            ..CheckReport::default()
        },
        leaf_depth: None,
    };
    for slot in 0..META_PAGE_COUNT {
        checker.claim(slot, 1, Owner::Meta)?;
    }
    if accounting.freelist != 0 {
        let (run, pages) = (accounting.freelist, accounting.freelist_pages);
        checker.claim(run, pages, Owner::Reachable)?;
        checker.report.freelist_pages = pages;
        let ids = freelist::decode(map, run, pages).map_err(|c| checker.corruption(c))?;
        if accounting.freelist_is_exact && ids != accounting.unused {
            return Err(checker.fail(run, "freelist run differs from the writer's free pages"));
        }
    } else if accounting.freelist_is_exact && !accounting.unused.is_empty() {
        return Err(Error::corrupt(
            file,
            "free pages exist but no freelist run lists them",
        ));
    }
    for &id in &accounting.unused {
        checker.claim(id, 1, Owner::Free)?;
        checker.report.free_pages += 1;
    }
    if meta.catalog_root != 0 {
        let mut trees = Vec::new();
        checker.leaf_depth = None;
        checker.walk(meta.catalog_root, None, None, 0, &mut |name, value| {
            trees.push((name.to_vec(), value.to_vec()))
        })?;
        checker.report.entries = 0;
        for (name, value) in trees {
            let root: [u8; 8] = value.as_slice().try_into().map_err(|_| {
                Error::corrupt(
                    checker.file,
                    format!(
                        "catalog entry for tree \"{}\" is not a page id",
                        name.escape_ascii()
                    ),
                )
            })?;
            let root = u64::from_le_bytes(root);
            checker.report.trees += 1;
            if root != 0 {
                checker.leaf_depth = None;
                checker.walk(root, None, None, 0, &mut |_, _| {})?;
            }
        }
    }
    if let Some(leaked) = checker.owners.iter().position(|o| *o == Owner::Unaccounted) {
        return Err(Error::corrupt(
            checker.file,
            format!("page {leaked} is neither reachable nor free (leaked)"),
        ));
    }
    Ok(checker.report)
}

impl Checker<'_> {
    fn corruption(&self, corruption: Corruption) -> Error {
        Error::corrupt(self.file, corruption.to_string())
    }

    fn fail(&self, page: PageId, what: impl std::fmt::Display) -> Error {
        Error::corrupt(self.file, format!("{what} at page {page}"))
    }

    /// Records that pages `id..id + pages` belong to `owner`; each page may be claimed once.
    fn claim(&mut self, id: PageId, pages: u64, owner: Owner) -> Result<(), Error> {
        for page in id..id.saturating_add(pages) {
            let Some(slot) = usize::try_from(page)
                .ok()
                .and_then(|p| self.owners.get_mut(p))
            else {
                return Err(self.fail(page, "reference beyond the high-water mark"));
            };
            if *slot != Owner::Unaccounted {
                let was = *slot;
                return Err(self.fail(
                    page,
                    format!("page claimed as {owner:?} is already {was:?}"),
                ));
            }
            *slot = owner;
        }
        Ok(())
    }

    /// Verifies the subtree at `id`, whose keys must lie in `[lower, upper)`, passing each leaf
    /// entry's key and inline value (empty for overflow) to `visit`.
    fn walk(
        &mut self,
        id: PageId,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        depth: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), Error> {
        if depth >= TREE_DEPTH_MAX {
            return Err(self.fail(id, "tree deeper than TREE_DEPTH_MAX"));
        }
        self.claim(id, 1, Owner::Reachable)?;
        let page = NodePage::read(self.map, id).map_err(|c| self.corruption(c))?;
        if !checksum_ok(page.bytes()) {
            return Err(self.fail(id, "page checksum mismatch"));
        }
        let header = Header::read(page.bytes());
        if header.page_id != id || header.run_pages != 1 {
            return Err(self.fail(id, "header names a different page"));
        }
        let node = Node::decode(page).map_err(|c| self.corruption(c))?;
        if node.len() == 0 {
            return Err(self.fail(id, "empty node"));
        }
        if header.used_bytes as usize != node.bytes() || node.bytes() > PAGE_BODY_BYTES {
            return Err(self.fail(id, "used bytes do not match the entries"));
        }
        let in_bounds =
            |key: &[u8]| lower.is_none_or(|l| key >= l) && upper.is_none_or(|u| key < u);
        match &node {
            Node::Leaf(leaf) => {
                match self.leaf_depth {
                    None => self.leaf_depth = Some(depth),
                    Some(d) if d != depth => {
                        return Err(self.fail(id, "leaves at different depths"));
                    }
                    Some(_) => {}
                }
                self.report.leaf_pages += 1;
                for (i, entry) in leaf.entries.iter().enumerate() {
                    if i > 0 && leaf.entries[i - 1].key >= entry.key {
                        return Err(self.fail(id, "keys out of order"));
                    }
                    if !in_bounds(&entry.key) || entry.key.len() > KEY_BYTES_MAX {
                        return Err(self.fail(id, "key outside the range its parent gives"));
                    }
                    self.report.entries += 1;
                    match &entry.value {
                        Value::Inline(value) => {
                            if needs_overflow(entry.key.len(), value.len()) {
                                return Err(self.fail(id, "inline value too large"));
                            }
                            visit(&entry.key, value);
                        }
                        Value::Overflow { page, len } => {
                            self.overflow(*page, *len as usize, entry.key.len())?;
                            visit(&entry.key, &[]);
                        }
                    }
                }
            }
            Node::Branch(branch) => {
                self.report.branch_pages += 1;
                if !branch.keys[0].is_empty() {
                    return Err(self.fail(id, "first branch key is not empty"));
                }
                for i in 1..branch.keys.len() {
                    let key = branch.keys[i].as_slice();
                    if (i > 1 && branch.keys[i - 1].as_slice() >= key) || !in_bounds(key) {
                        return Err(self.fail(id, "branch keys out of order"));
                    }
                }
                for i in 0..branch.children.len() {
                    let child_lower = if i == 0 {
                        lower
                    } else {
                        Some(branch.keys[i].as_slice())
                    };
                    let child_upper = branch.keys.get(i + 1).map(Vec::as_slice).or(upper);
                    self.walk(
                        branch.children[i],
                        child_lower,
                        child_upper,
                        depth + 1,
                        visit,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn overflow(&mut self, page: PageId, len: usize, key_len: usize) -> Result<(), Error> {
        if len > VALUE_BYTES_MAX || !needs_overflow(key_len, len) {
            return Err(self.fail(page, "overflow value length out of range"));
        }
        let pages = u64::from(run_pages_for(len));
        self.claim(page, pages, Owner::Reachable)?;
        let run = run_bytes(self.map, page, pages).map_err(|c| self.corruption(c))?;
        if !checksum_ok(run) {
            return Err(self.fail(page, "page checksum mismatch"));
        }
        let header = Header::read(run);
        if header.kind != kind::OVERFLOW
            || header.page_id != page
            || u64::from(header.run_pages) != pages
            || header.used_bytes as usize != len
        {
            return Err(self.fail(page, "overflow header does not match its entry"));
        }
        self.report.overflow_pages += pages;
        Ok(())
    }
}
