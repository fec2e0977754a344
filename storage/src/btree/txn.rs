//! Transactions: [`ReadTxn`], a stable snapshot, and [`WriteTxn`], the single writer that edits
//! owned copies of the pages it touches and commits them either durably (two syncs) or unsynced
//! (written and published, made durable later by `Database::sync`).
//!
//! A writer never changes a page a snapshot can see: the first time it touches a committed page it
//! decodes it into an owned node under a newly allocated page id and frees the old id. Freed ids
//! join the free list only after the freeing commit is durable and every reader that could see
//! them is gone (see `freelist`). Nothing reaches the device before a commit, so an abort only has
//! to give back the page ids it allocated.

use super::cursor::{Cursor, Range, View};
use super::error::Error;
use super::meta::Meta;
use super::node::{
    Branch, Leaf, LeafEntry, Node, NodePage, Value, ValueRef, encode_overflow_run, needs_overflow,
};
use super::page::*;
use super::writer::{FreelistRun, WriterState};
use super::{Database, Snapshot};
use parking_lot::MutexGuard;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Page ids are already well spread; one multiply is all the hashing they need.
#[derive(Default)]
pub(crate) struct PageIdHasher(u64);

impl Hasher for PageIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PageMap<T> = HashMap<PageId, T, BuildHasherDefault<PageIdHasher>>;

/// What a write transaction has changed: nodes and overflow values under newly allocated ids.
#[derive(Default)]
pub(crate) struct Dirty {
    pub nodes: PageMap<Node>,
    /// Overflow values by the first page of their run.
    pub overflow: PageMap<Vec<u8>>,
}

/// Turns the bounds a caller passes into owned ones a range can keep.
fn owned_bounds<'k>(bounds: &impl RangeBounds<&'k [u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (
        bounds.start_bound().map(|k| k.to_vec()),
        bounds.end_bound().map(|k| k.to_vec()),
    )
}

/// Reads the root of tree `name` from the catalog rooted at `catalog_root`.
fn catalog_lookup(
    view: &View<'_>,
    catalog_root: PageId,
    name: &[u8],
) -> Result<Option<PageId>, Error> {
    match view.get(catalog_root, name)? {
        None => Ok(None),
        Some(value) => decode_root(view, value).map(Some),
    }
}

pub(crate) fn decode_root(view: &View<'_>, value: &[u8]) -> Result<PageId, Error> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| Error::corrupt(view.file, "catalog entry is not an 8-byte page id"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// One tree of a transaction, its root resolved: reads through it skip the catalog.
#[derive(Clone, Copy)]
pub struct Tree<'a> {
    view: View<'a>,
    root: PageId,
}

impl<'a> Tree<'a> {
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
        self.view.get(self.root, key)
    }

    /// Entries within `bounds`, in key order from either end.
    pub fn range<'k>(&self, bounds: impl RangeBounds<&'k [u8]>) -> Range<'a> {
        let (lower, upper) = owned_bounds(&bounds);
        Range::new(self.view, self.root, lower, upper)
    }

    pub fn cursor(&self) -> Cursor<'a> {
        Cursor::new(self.view, self.root)
    }
}

/// A consistent snapshot of every tree as of one commit. Holding it pins the pages it can see;
/// it never blocks the writer. `Send + 'static`, so it can move between threads.
pub struct ReadTxn {
    pub(crate) snapshot: Arc<Snapshot>,
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("file", &self.snapshot.file)
            .field("txn_id", &self.snapshot.meta.txn_id)
            .finish()
    }
}

impl ReadTxn {
    pub(crate) fn view(&self) -> View<'_> {
        View {
            map: self.snapshot.map.bytes(),
            dirty: None,
            file: &self.snapshot.file,
        }
    }

    /// The id of the commit this snapshot shows.
    pub fn txn_id(&self) -> u64 {
        self.snapshot.meta.txn_id
    }

    fn root(&self, tree: &[u8]) -> Result<PageId, Error> {
        catalog_lookup(&self.view(), self.snapshot.meta.catalog_root, tree)?.ok_or_else(|| {
            Error::TreeNotFound {
                name: tree.to_vec(),
            }
        })
    }

    pub fn get(&self, tree: &[u8], key: &[u8]) -> Result<Option<&[u8]>, Error> {
        self.tree(tree)?.get(key)
    }

    /// A handle on one tree with its root looked up once, for many reads of the same tree (each
    /// `get` by name pays a catalog lookup first).
    pub fn tree(&self, tree: &[u8]) -> Result<Tree<'_>, Error> {
        Ok(Tree {
            view: self.view(),
            root: self.root(tree)?,
        })
    }

    /// Entries of `tree` within `bounds`, in key order from either end.
    pub fn range<'k>(
        &self,
        tree: &[u8],
        bounds: impl RangeBounds<&'k [u8]>,
    ) -> Result<Range<'_>, Error> {
        Ok(self.tree(tree)?.range(bounds))
    }

    /// A cursor over `tree`, initially off the tree; position it with `first`, `last` or `seek`.
    pub fn cursor(&self, tree: &[u8]) -> Result<Cursor<'_>, Error> {
        Ok(self.tree(tree)?.cursor())
    }

    pub fn contains_tree(&self, tree: &[u8]) -> Result<bool, Error> {
        Ok(catalog_lookup(&self.view(), self.snapshot.meta.catalog_root, tree)?.is_some())
    }

    /// Names of every tree, in order.
    pub fn tree_names(&self) -> Result<Vec<&[u8]>, Error> {
        Range::new(
            self.view(),
            self.snapshot.meta.catalog_root,
            Bound::Unbounded,
            Bound::Unbounded,
        )
        .map(|entry| entry.map(|(name, _)| name))
        .collect()
    }
}

/// A tree as the write transaction sees it.
struct TreeSlot {
    name: Vec<u8>,
    root: PageId,
    exists: bool,
    /// The catalog must be updated at commit.
    changed: bool,
}

/// The single writer. Its changes are visible to its own reads, to nobody else until `commit`.
/// Dropping it without committing aborts.
pub struct WriteTxn<'db> {
    db: &'db Database,
    state: MutexGuard<'db, WriterState>,
    base: Arc<Snapshot>,
    txn_id: u64,
    /// The high-water mark when the transaction began; ids from there up were never free.
    start_page_count: u64,
    page_count: u64,
    catalog_root: PageId,
    dirty: Dirty,
    /// Committed pages this transaction no longer references.
    freed: Vec<PageId>,
    /// Ids taken from the free set, to give back on abort.
    taken: Vec<PageId>,
    trees: Vec<TreeSlot>,
    /// Set when an operation failed part-way; the transaction can then only be aborted.
    broken: Option<String>,
    finished: bool,
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("file", &self.base.file)
            .field("txn_id", &self.txn_id)
            .field("dirty_pages", &self.dirty.nodes.len())
            .finish()
    }
}

impl<'db> WriteTxn<'db> {
    pub(crate) fn new(
        db: &'db Database,
        state: MutexGuard<'db, WriterState>,
        base: Arc<Snapshot>,
    ) -> Self {
        let page_count = state.page_count;
        debug_assert!(page_count >= base.meta.page_count);
        WriteTxn {
            db,
            state,
            txn_id: base.meta.txn_id + 1,
            start_page_count: page_count,
            page_count,
            catalog_root: base.meta.catalog_root,
            base,
            dirty: Dirty::default(),
            freed: Vec::new(),
            taken: Vec::new(),
            trees: Vec::new(),
            broken: None,
            finished: false,
        }
    }

    fn view(&self) -> View<'_> {
        View {
            map: self.base.map.bytes(),
            dirty: Some(&self.dirty),
            file: &self.base.file,
        }
    }

    /// The id this transaction will commit as.
    pub fn txn_id(&self) -> u64 {
        self.txn_id
    }

    fn corrupt(&self, corruption: Corruption) -> Error {
        self.view().corrupt(corruption)
    }

    // ---- reads -------------------------------------------------------------------------------

    fn root(&self, tree: &[u8]) -> Result<PageId, Error> {
        let found = match self.trees.iter().find(|slot| slot.name == tree) {
            Some(slot) => slot.exists.then_some(slot.root),
            None => catalog_lookup(&self.view(), self.catalog_root, tree)?,
        };
        found.ok_or_else(|| Error::TreeNotFound {
            name: tree.to_vec(),
        })
    }

    pub fn get(&self, tree: &[u8], key: &[u8]) -> Result<Option<&[u8]>, Error> {
        self.tree(tree)?.get(key)
    }

    /// A handle on one tree as this transaction sees it (its own writes included), valid until
    /// the next change.
    pub fn tree(&self, tree: &[u8]) -> Result<Tree<'_>, Error> {
        Ok(Tree {
            view: self.view(),
            root: self.root(tree)?,
        })
    }

    pub fn range<'k>(
        &self,
        tree: &[u8],
        bounds: impl RangeBounds<&'k [u8]>,
    ) -> Result<Range<'_>, Error> {
        Ok(self.tree(tree)?.range(bounds))
    }

    pub fn cursor(&self, tree: &[u8]) -> Result<Cursor<'_>, Error> {
        Ok(self.tree(tree)?.cursor())
    }

    pub fn contains_tree(&self, tree: &[u8]) -> Result<bool, Error> {
        match self.root(tree) {
            Ok(_) => Ok(true),
            Err(Error::TreeNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---- writes ------------------------------------------------------------------------------

    /// Runs a mutation; if it fails part-way the transaction is marked unusable, since its dirty
    /// state may be half-changed.
    fn guarded<T>(&mut self, op: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if let Some(reason) = &self.broken {
            return Err(Error::corrupt(
                &self.base.file,
                format!("transaction unusable after an earlier error: {reason}"),
            ));
        }
        let result = op(self);
        if let Err(e) = &result
            && !matches!(
                e,
                Error::KeyTooLarge { .. }
                    | Error::ValueTooLarge { .. }
                    | Error::TreeNotFound { .. }
            )
        {
            self.broken = Some(e.to_string());
        }
        result
    }

    /// Index of the slot for tree `name`, loading it from the catalog on first use.
    fn slot(&mut self, name: &[u8]) -> Result<Option<usize>, Error> {
        if let Some(index) = self.trees.iter().position(|slot| slot.name == name) {
            return Ok(Some(index));
        }
        let Some(root) = catalog_lookup(&self.view(), self.catalog_root, name)? else {
            return Ok(None);
        };
        self.trees.push(TreeSlot {
            name: name.to_vec(),
            root,
            exists: true,
            changed: false,
        });
        Ok(Some(self.trees.len() - 1))
    }

    fn existing_slot(&mut self, name: &[u8]) -> Result<usize, Error> {
        match self.slot(name)? {
            Some(index) if self.trees[index].exists => Ok(index),
            _ => Err(Error::TreeNotFound {
                name: name.to_vec(),
            }),
        }
    }

    /// Creates tree `name` if it does not exist.
    pub fn create_tree(&mut self, name: &[u8]) -> Result<(), Error> {
        check_key(name)?;
        self.guarded(|txn| {
            match txn.slot(name)? {
                Some(index) => {
                    let slot = &mut txn.trees[index];
                    if !slot.exists {
                        slot.exists = true;
                        slot.root = 0;
                        slot.changed = true;
                    }
                }
                None => txn.trees.push(TreeSlot {
                    name: name.to_vec(),
                    root: 0,
                    exists: true,
                    changed: true,
                }),
            }
            Ok(())
        })
    }

    /// Deletes tree `name` and everything in it; false if there was no such tree.
    pub fn delete_tree(&mut self, name: &[u8]) -> Result<bool, Error> {
        self.guarded(|txn| {
            let Some(index) = txn.slot(name)? else {
                return Ok(false);
            };
            if !txn.trees[index].exists {
                return Ok(false);
            }
            let root = txn.trees[index].root;
            if root != 0 {
                txn.free_tree(root, 0)?;
            }
            let slot = &mut txn.trees[index];
            slot.root = 0;
            slot.exists = false;
            slot.changed = true;
            Ok(true)
        })
    }

    pub fn put(&mut self, tree: &[u8], key: &[u8], value: &[u8]) -> Result<(), Error> {
        check_key(key)?;
        if value.len() > VALUE_BYTES_MAX {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: VALUE_BYTES_MAX,
            });
        }
        self.guarded(|txn| {
            let index = txn.existing_slot(tree)?;
            let stored = if needs_overflow(key.len(), value.len()) {
                let pages = u64::from(run_pages_for(value.len()));
                let start = txn.alloc_run(pages);
                txn.dirty.overflow.insert(start, value.to_vec());
                Value::Overflow {
                    page: start,
                    len: value.len() as u32,
                }
            } else {
                Value::Inline(value.to_vec())
            };
            let root = txn.tree_put(txn.trees[index].root, key, stored)?;
            let slot = &mut txn.trees[index];
            slot.root = root;
            slot.changed = true;
            Ok(())
        })
    }

    /// Deletes `key` from `tree`; false if it was not there.
    pub fn delete(&mut self, tree: &[u8], key: &[u8]) -> Result<bool, Error> {
        self.guarded(|txn| {
            let index = txn.existing_slot(tree)?;
            let (root, found) = txn.tree_delete(txn.trees[index].root, key)?;
            if found {
                let slot = &mut txn.trees[index];
                slot.root = root;
                slot.changed = true;
            }
            Ok(found)
        })
    }

    // ---- page allocation ---------------------------------------------------------------------

    fn alloc_page(&mut self) -> PageId {
        if let Some(page) = self.state.pages.free.pop_first() {
            self.taken.push(page);
            page
        } else {
            let page = self.page_count;
            self.page_count += 1;
            page
        }
    }

    fn alloc_run(&mut self, pages: u64) -> PageId {
        if pages == 1 {
            return self.alloc_page();
        }
        if let Some(start) = self.state.pages.take_run(pages) {
            self.taken.extend(start..start + pages);
            start
        } else {
            let start = self.page_count;
            self.page_count += pages;
            start
        }
    }

    /// Frees a node page: at once if this transaction allocated it (nobody else can see it),
    /// otherwise once readers allow.
    fn free_page(&mut self, id: PageId) {
        if self.dirty.nodes.remove(&id).is_some() {
            self.state.pages.free.insert(id);
        } else {
            self.freed.push(id);
        }
    }

    fn free_run(&mut self, start: PageId, pages: u64) {
        if self.dirty.overflow.remove(&start).is_some() {
            self.state.pages.free.extend(start..start + pages);
        } else {
            self.freed.extend(start..start + pages);
        }
    }

    fn free_value(&mut self, value: Value) {
        if let Value::Overflow { page, len } = value {
            self.free_run(page, u64::from(run_pages_for(len as usize)));
        }
    }

    /// The page id of an owned, editable copy of node `id`.
    fn make_dirty(&mut self, id: PageId) -> Result<PageId, Error> {
        if self.dirty.nodes.contains_key(&id) {
            return Ok(id);
        }
        let node = NodePage::read(self.base.map.bytes(), id)
            .and_then(Node::decode)
            .map_err(|c| self.corrupt(c))?;
        let copy = self.alloc_page();
        self.freed.push(id);
        self.dirty.nodes.insert(copy, node);
        Ok(copy)
    }

    fn node_mut(&mut self, id: PageId) -> &mut Node {
        self.dirty.nodes.get_mut(&id).expect("node was made dirty")
    }

    fn branch_mut(&mut self, id: PageId) -> &mut Branch {
        match self.node_mut(id) {
            Node::Branch(branch) => branch,
            Node::Leaf(_) => unreachable!("page {id} is a branch"),
        }
    }

    fn node_bytes(&self, id: PageId) -> Result<usize, Error> {
        if let Some(node) = self.dirty.nodes.get(&id) {
            return Ok(node.bytes());
        }
        let page = NodePage::read(self.base.map.bytes(), id).map_err(|c| self.corrupt(c))?;
        let used = Header::read(page.bytes()).used_bytes as usize;
        if used > PAGE_BODY_BYTES {
            return Err(self.corrupt(Corruption {
                page: id,
                what: "used bytes exceed the page body",
            }));
        }
        Ok(used)
    }

    // ---- tree edits --------------------------------------------------------------------------

    /// Inserts into the tree rooted at `root` (0: empty); returns the new root.
    fn tree_put(&mut self, root: PageId, key: &[u8], value: Value) -> Result<PageId, Error> {
        if root == 0 {
            let mut leaf = Leaf::new();
            leaf.push(LeafEntry {
                key: key.to_vec(),
                value,
            });
            let id = self.alloc_page();
            self.dirty.nodes.insert(id, Node::Leaf(leaf));
            return Ok(id);
        }
        let root = self.make_dirty(root)?;
        let Some((separator, right)) = self.insert_into(root, key, value, true, 0)? else {
            return Ok(root);
        };
        let mut branch = Branch::new();
        branch.push(Vec::new(), root);
        branch.push(separator, right);
        let id = self.alloc_page();
        self.dirty.nodes.insert(id, Node::Branch(branch));
        Ok(id)
    }

    /// Inserts below dirty node `id`; returns the separator and page of a new right sibling if the
    /// node had to split. `rightmost` says no key in the tree is greater than this node's range,
    /// so an insert at its end is an append and the split can leave the left side full.
    fn insert_into(
        &mut self,
        id: PageId,
        key: &[u8],
        value: Value,
        rightmost: bool,
        depth: usize,
    ) -> Result<Option<(Vec<u8>, PageId)>, Error> {
        if depth >= TREE_DEPTH_MAX {
            return Err(self.corrupt(Corruption {
                page: id,
                what: "tree deeper than TREE_DEPTH_MAX (a cycle?)",
            }));
        }
        let (index, child) = match self.node_mut(id) {
            Node::Leaf(leaf) => {
                let old = leaf.upsert(key, value);
                let appending = rightmost && leaf.entries.last().is_some_and(|e| e.key == key);
                let right = (leaf.bytes > PAGE_BODY_BYTES).then(|| leaf.split(appending));
                if let Some(old) = old {
                    self.free_value(old);
                }
                let Some(right) = right else {
                    return Ok(None);
                };
                let separator = right.entries[0].key.clone();
                let right_id = self.alloc_page();
                self.dirty.nodes.insert(right_id, Node::Leaf(right));
                return Ok(Some((separator, right_id)));
            }
            Node::Branch(branch) => {
                let index = branch.child_index(key);
                (index, branch.children[index])
            }
        };
        let child = self.make_dirty(child)?;
        let branch = self.branch_mut(id);
        branch.children[index] = child;
        let child_rightmost = rightmost && index + 1 == branch.children.len();
        let Some((separator, right)) =
            self.insert_into(child, key, value, child_rightmost, depth + 1)?
        else {
            return Ok(None);
        };
        let branch = self.branch_mut(id);
        branch.insert(index + 1, separator, right);
        if branch.bytes <= PAGE_BODY_BYTES {
            return Ok(None);
        }
        let (separator, right) = branch.split();
        let right_id = self.alloc_page();
        self.dirty.nodes.insert(right_id, Node::Branch(right));
        Ok(Some((separator, right_id)))
    }

    /// Deletes `key` from the tree rooted at `root`; returns the new root and whether it was there.
    fn tree_delete(&mut self, root: PageId, key: &[u8]) -> Result<(PageId, bool), Error> {
        // Look first, so a miss copies no pages.
        if root == 0 || self.view().get(root, key)?.is_none() {
            return Ok((root, false));
        }
        let mut root = self.make_dirty(root)?;
        if let Some(value) = self.delete_from(root, key, 0)? {
            self.free_value(value);
        }
        // A root branch left with one child is replaced by the child; an empty root leaf
        // means an empty tree.
        loop {
            match self.dirty.nodes.get(&root) {
                Some(Node::Branch(branch)) if branch.children.len() == 1 => {
                    let child = branch.children[0];
                    self.free_page(root);
                    root = child;
                }
                Some(Node::Leaf(leaf)) if leaf.entries.is_empty() => {
                    self.free_page(root);
                    return Ok((0, true));
                }
                _ => return Ok((root, true)),
            }
        }
    }

    fn delete_from(
        &mut self,
        id: PageId,
        key: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, Error> {
        if depth >= TREE_DEPTH_MAX {
            return Err(self.corrupt(Corruption {
                page: id,
                what: "tree deeper than TREE_DEPTH_MAX (a cycle?)",
            }));
        }
        let (index, child) = match self.node_mut(id) {
            Node::Leaf(leaf) => {
                return Ok(leaf.search(key).ok().map(|i| leaf.remove(i).value));
            }
            Node::Branch(branch) => {
                let index = branch.child_index(key);
                (index, branch.children[index])
            }
        };
        let child = self.make_dirty(child)?;
        self.branch_mut(id).children[index] = child;
        let removed = self.delete_from(child, key, depth + 1)?;
        self.rebalance(id, index)?;
        Ok(removed)
    }

    /// After a delete below child `index` of branch `parent`: drops the child if empty, or merges
    /// it with a sibling if it is small and the two fit one page.
    fn rebalance(&mut self, parent: PageId, index: usize) -> Result<(), Error> {
        let child = self.branch_mut(parent).children[index];
        let (child_len, child_bytes, child_is_leaf) = {
            let node = &self.dirty.nodes[&child];
            (node.len(), node.bytes(), matches!(node, Node::Leaf(_)))
        };
        if child_len == 0 {
            self.branch_mut(parent).remove(index);
            self.free_page(child);
            return Ok(());
        }
        let siblings = self.branch_mut(parent).children.len();
        if child_bytes >= MERGE_BYTES_MIN || siblings < 2 {
            return Ok(());
        }
        let left_index = index.saturating_sub(1);
        let right_index = left_index + 1;
        let sibling_index = if index == left_index {
            right_index
        } else {
            left_index
        };
        let sibling = self.branch_mut(parent).children[sibling_index];
        // Merging branches pulls the parent's separator down as the right half's first key.
        let separator_bytes = if child_is_leaf {
            0
        } else {
            self.branch_mut(parent).keys[right_index].len()
        };
        if child_bytes + self.node_bytes(sibling)? + separator_bytes > PAGE_BODY_BYTES {
            return Ok(());
        }
        let sibling = self.make_dirty(sibling)?;
        let branch = self.branch_mut(parent);
        branch.children[sibling_index] = sibling;
        let left = branch.children[left_index];
        let right = branch.children[right_index];
        let separator = branch.keys[right_index].clone();
        branch.remove(right_index);
        let right_node = self
            .dirty
            .nodes
            .remove(&right)
            .expect("both halves are dirty");
        self.state.pages.free.insert(right);
        match (self.node_mut(left), right_node) {
            (Node::Leaf(left), Node::Leaf(right)) => left.absorb(right),
            (Node::Branch(left), Node::Branch(right)) => left.absorb(separator, right),
            _ => {
                return Err(self.corrupt(Corruption {
                    page: left,
                    what: "leaf and branch at the same depth",
                }));
            }
        }
        debug_assert!(self.dirty.nodes[&left].bytes() <= PAGE_BODY_BYTES);
        Ok(())
    }

    /// Frees every page of the tree rooted at `id`.
    fn free_tree(&mut self, id: PageId, depth: usize) -> Result<(), Error> {
        if depth >= TREE_DEPTH_MAX {
            return Err(self.corrupt(Corruption {
                page: id,
                what: "tree deeper than TREE_DEPTH_MAX (a cycle?)",
            }));
        }
        let mut children = Vec::new();
        let mut runs = Vec::new();
        {
            let view = self.view();
            let node = view.node(id)?;
            for i in 0..node.len() {
                if node.is_leaf() {
                    if let (_, ValueRef::Overflow { page, len }) =
                        node.leaf_entry(i).map_err(|c| view.corrupt(c))?
                    {
                        runs.push((page, u64::from(run_pages_for(len as usize))));
                    }
                } else {
                    children.push(node.child(i).map_err(|c| view.corrupt(c))?);
                }
            }
        }
        for (page, pages) in runs {
            self.free_run(page, pages);
        }
        for child in children {
            self.free_tree(child, depth + 1)?;
        }
        self.free_page(id);
        Ok(())
    }

    // ---- commit ------------------------------------------------------------------------------

    /// Makes every change durable and visible to new readers, together with every unsynced
    /// commit before it. Exactly two syncs: one for the pages, one for the meta that points at
    /// them. If a `Database::sync` is writing its meta meanwhile, waits for it. If the device
    /// fails, the database refuses further writes (`Error::Poisoned`) and readers keep the last
    /// published snapshot.
    pub fn commit(self) -> Result<(), Error> {
        self.finish(CommitKind::Durable)
    }

    /// Makes every change visible to new readers at once, without making it durable: the changed
    /// pages are written (no sync), the freelist and the meta are not. A crash loses this commit
    /// and every unsynced one before it, back to the last durable commit; `Database::sync` (from
    /// any thread) or a later `commit` makes it durable. Meant for callers whose durability comes
    /// from their own log, so the apply path pays no fsync.
    ///
    /// Pages this commit frees are reused only after it is durable (and no older reader remains),
    /// so a file that is never synced grows. Dropping the `Database` does not sync: a reopen shows
    /// the last durable commit. If a write fails, the database is poisoned as for `commit`.
    pub fn commit_unsynced(self) -> Result<(), Error> {
        self.finish(CommitKind::Deferred)
    }

    /// Aborts: nothing was written, so this only returns allocated page ids.
    pub fn abort(self) {}

    fn finish(mut self, kind: CommitKind) -> Result<(), Error> {
        if let Some(reason) = self.broken.take() {
            return Err(Error::corrupt(
                &self.base.file,
                format!("transaction unusable after an earlier error: {reason}"),
            ));
        }
        self.update_catalog()?;
        match self.write_out(kind) {
            Ok(snapshot) => {
                self.finished = true;
                let freed = std::mem::take(&mut self.freed);
                self.state.pages.pending.push_back((self.txn_id, freed));
                self.state.file_bytes = snapshot.map.bytes().len() as u64;
                self.state.page_count = self.page_count;
                self.state.published.push(snapshot.clone());
                *self.db.current.lock() = snapshot;
                Ok(())
            }
            Err(e) => {
                // What reached the disk is unknown, and after a failed fsync the kernel may have
                // dropped dirty pages without a trace: only a reopen can tell what is durable.
                self.db.durability.poison(&e);
                Err(e)
            }
        }
    }

    fn update_catalog(&mut self) -> Result<(), Error> {
        let trees = std::mem::take(&mut self.trees);
        for slot in trees.iter().filter(|slot| slot.changed) {
            if slot.exists {
                let root = Value::Inline(slot.root.to_le_bytes().to_vec());
                self.catalog_root = self.tree_put(self.catalog_root, &slot.name, root)?;
            } else {
                self.catalog_root = self.tree_delete(self.catalog_root, &slot.name)?.0;
            }
        }
        self.trees = trees;
        Ok(())
    }

    /// Writes the pages (and for a durable commit the freelist, then syncs, writes the meta and
    /// syncs); returns the snapshot to publish.
    fn write_out(&mut self, kind: CommitKind) -> Result<Arc<Snapshot>, Error> {
        let file = self.base.file.clone();
        let file: &str = &file;
        let db: &Database = self.db;
        let device = db.device.as_ref();
        let io = |op: &'static str| move |e| Error::io(file, op, e);

        let freelist = match kind {
            CommitKind::Deferred => None,
            CommitKind::Durable => {
                // The live run (the last durable commit's, or one a sync is making durable) is
                // superseded by the one written now.
                let old = self.state.durable_meta;
                self.freed
                    .extend(old.freelist..old.freelist + old.freelist_pages);
                self.state
                    .reserve_freelist(&self.freed, &mut self.page_count)
                    .map(|run| run.encode(self.txn_id))
            }
        };
        self.state.grow_to(device, file, self.page_count)?;
        self.write_pages(freelist.as_ref())?;

        let meta = Meta {
            txn_id: self.txn_id,
            catalog_root: self.catalog_root,
            freelist: freelist.as_ref().map_or(0, |run| run.start),
            freelist_pages: freelist.as_ref().map_or(0, |run| run.pages),
            page_count: self.page_count,
        };
        match kind {
            CommitKind::Durable => {
                self.state.durable_meta = meta;
                let durable = db.durability.make_durable(device, file, &meta)?;
                debug_assert_eq!(durable, self.txn_id, "a newer commit became durable first");
            }
            // A `sync` on another thread may have failed meanwhile; publishing over a poisoned
            // device would show readers pages the kernel may have dropped.
            CommitKind::Deferred => db.durability.check(file)?,
        }

        let map = device.map().map_err(io("map"))?;
        if (map.bytes().len() as u64) < self.page_count * PAGE_BYTES as u64 {
            return Err(Error::corrupt(
                &self.base.file,
                "the device map is shorter than the committed pages",
            ));
        }
        Ok(Arc::new(Snapshot {
            meta,
            map,
            file: self.base.file.clone(),
        }))
    }

    /// Writes every dirty node and overflow run, and `freelist` if given, each sealed with its
    /// checksum, in page order so neighbours go out in one write.
    fn write_pages(&self, freelist: Option<&FreelistRun>) -> Result<(), Error> {
        enum Item<'a> {
            Node(&'a Node),
            Overflow(&'a [u8]),
            Freelist(&'a FreelistRun),
        }
        let mut items: Vec<(PageId, Item<'_>)> =
            Vec::with_capacity(self.dirty.nodes.len() + self.dirty.overflow.len() + 1);
        items.extend(self.dirty.nodes.iter().map(|(id, n)| (*id, Item::Node(n))));
        items.extend(
            self.dirty
                .overflow
                .iter()
                .map(|(id, v)| (*id, Item::Overflow(v.as_slice()))),
        );
        if let Some(run) = freelist {
            items.push((run.start, Item::Freelist(run)));
        }
        items.sort_unstable_by_key(|(id, _)| *id);

        let device = self.db.device.as_ref();
        let flush = |buffer: &[u8], start: PageId| {
            device
                .write_all_at(buffer, start * PAGE_BYTES as u64)
                .map_err(|e| Error::io(&self.base.file, "write pages", e))
        };
        let mut buffer: Vec<u8> = Vec::new();
        let mut buffer_start: PageId = 0;
        let mut next: Option<PageId> = None;
        for (id, item) in items {
            if next != Some(id) || buffer.len() >= WRITE_FLUSH_BYTES {
                if !buffer.is_empty() {
                    flush(&buffer, buffer_start)?;
                    buffer.clear();
                }
                buffer_start = id;
            }
            let at = buffer.len();
            let pages = match item {
                Item::Node(node) => {
                    buffer.resize(at + PAGE_BYTES, 0);
                    node.encode(id, self.txn_id, &mut buffer[at..]);
                    1
                }
                Item::Overflow(value) => {
                    let pages = run_pages_for(value.len());
                    buffer.resize(at + pages as usize * PAGE_BYTES, 0);
                    encode_overflow_run(value, id, self.txn_id, &mut buffer[at..]);
                    u64::from(pages)
                }
                Item::Freelist(run) => {
                    buffer.extend_from_slice(&run.bytes);
                    run.pages
                }
            };
            next = Some(id + pages);
        }
        if !buffer.is_empty() {
            flush(&buffer, buffer_start)?;
        }
        Ok(())
    }
}

/// How a commit ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommitKind {
    /// Synced, meta written, synced: durable on return.
    Durable,
    /// Pages written only; durable once a later sync or durable commit covers it.
    Deferred,
}

/// Contiguous pages are gathered into one write up to this size.
const WRITE_FLUSH_BYTES: usize = 4 * 1024 * 1024;

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Give back what was taken from the free set; ids past the old high-water mark were never
        // in it and simply cease to exist.
        let pages = &mut self.state.pages;
        pages.free.extend(self.taken.drain(..));
        pages.free.split_off(&self.start_page_count);
    }
}

fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.len() > KEY_BYTES_MAX {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: KEY_BYTES_MAX,
        });
    }
    Ok(())
}
