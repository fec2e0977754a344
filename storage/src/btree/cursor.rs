//! Reading a tree: point lookups, ordered cursors and double-ended ranges over one snapshot's
//! pages, plus a write transaction's dirty nodes when it reads its own writes.
//!
//! Everything returned borrows the snapshot's map (or the transaction's buffers), so reads copy
//! nothing; a point lookup allocates nothing.

use super::error::Error;
use super::node::{NodePage, NodeRef, ValueRef};
use super::page::*;
use super::txn::Dirty;
use std::ops::Bound;

/// Where a reader finds pages: the snapshot's map, overlaid by a writer's dirty pages.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub map: &'a [u8],
    pub dirty: Option<&'a Dirty>,
    pub file: &'a str,
}

impl<'a> View<'a> {
    #[cold]
    pub fn corrupt(&self, corruption: Corruption) -> Error {
        Error::corrupt(self.file, corruption.to_string())
    }

    pub fn node(&self, id: PageId) -> Result<NodeRef<'a>, Error> {
        if let Some(dirty) = self.dirty
            && let Some(node) = dirty.nodes.get(&id)
        {
            return Ok(NodeRef::Owned(node));
        }
        NodePage::read(self.map, id)
            .map(NodeRef::Page)
            .map_err(|c| self.corrupt(c))
    }

    pub fn value(&self, value: ValueRef<'a>) -> Result<&'a [u8], Error> {
        match value {
            ValueRef::Inline(bytes) => Ok(bytes),
            ValueRef::Overflow { page, len } => {
                if let Some(dirty) = self.dirty
                    && let Some(bytes) = dirty.overflow.get(&page)
                {
                    return Ok(bytes);
                }
                overflow_value(self.map, page, len).map_err(|c| self.corrupt(c))
            }
        }
    }

    pub fn get(&self, root: PageId, key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
        if root == 0 {
            return Ok(None);
        }
        let mut id = root;
        for _ in 0..TREE_DEPTH_MAX {
            let node = self.node(id)?;
            if node.is_leaf() {
                return match node.search(key).map_err(|c| self.corrupt(c))? {
                    Ok(index) => {
                        let (_, value) = node.leaf_entry(index).map_err(|c| self.corrupt(c))?;
                        self.value(value).map(Some)
                    }
                    Err(_) => Ok(None),
                };
            }
            let index = node.child_index(key).map_err(|c| self.corrupt(c))?;
            id = node.child(index).map_err(|c| self.corrupt(c))?;
        }
        Err(self.too_deep(root))
    }

    #[cold]
    fn too_deep(&self, root: PageId) -> Error {
        self.corrupt(Corruption {
            page: root,
            what: "tree deeper than TREE_DEPTH_MAX (a cycle?)",
        })
    }
}

/// The value stored in the overflow run at `page`, checked against the entry that points to it.
pub(crate) fn overflow_value(map: &[u8], page: PageId, len: u32) -> Result<&[u8], Corruption> {
    let pages = u64::from(run_pages_for(len as usize));
    let run = run_bytes(map, page, pages)?;
    let header = Header::read(run);
    if header.kind != kind::OVERFLOW
        || u64::from(header.run_pages) != pages
        || header.used_bytes != len
    {
        return Err(Corruption {
            page,
            what: "overflow run does not match the entry that points to it",
        });
    }
    Ok(&run[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + len as usize])
}

/// A position in one tree: the path from the root to a leaf entry. Empty when not on an entry.
pub struct Cursor<'a> {
    view: View<'a>,
    root: PageId,
    levels: Vec<(NodeRef<'a>, usize)>,
}

/// One entry: key and value, borrowed from the snapshot.
pub type Entry<'a> = (&'a [u8], &'a [u8]);

impl<'a> Cursor<'a> {
    pub(crate) fn new(view: View<'a>, root: PageId) -> Cursor<'a> {
        Cursor {
            view,
            root,
            levels: Vec::with_capacity(8),
        }
    }

    fn corrupt(&self, corruption: Corruption) -> Error {
        self.view.corrupt(corruption)
    }

    /// The entry under the cursor, if any.
    pub fn current(&self) -> Result<Option<Entry<'a>>, Error> {
        let Some((leaf, index)) = self.levels.last() else {
            return Ok(None);
        };
        let (key, value) = leaf.leaf_entry(*index).map_err(|c| self.corrupt(c))?;
        Ok(Some((key, self.view.value(value)?)))
    }

    /// Moves to the first entry.
    pub fn first(&mut self) -> Result<Option<Entry<'a>>, Error> {
        self.seek_lower(Bound::Unbounded)?;
        self.current()
    }

    /// Moves to the last entry.
    pub fn last(&mut self) -> Result<Option<Entry<'a>>, Error> {
        self.seek_upper(Bound::Unbounded)?;
        self.current()
    }

    /// Moves to the first entry whose key is at least `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Entry<'a>>, Error> {
        self.seek_lower(Bound::Included(key))?;
        self.current()
    }

    /// Moves to the last entry whose key is at most `key`.
    pub fn seek_back(&mut self, key: &[u8]) -> Result<Option<Entry<'a>>, Error> {
        self.seek_upper(Bound::Included(key))?;
        self.current()
    }

    /// Moves to the next entry; past the last one the cursor is off the tree.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'a>>, Error> {
        self.step(true)?;
        self.current()
    }

    /// Moves to the previous entry; before the first one the cursor is off the tree.
    pub fn prev(&mut self) -> Result<Option<Entry<'a>>, Error> {
        self.step(false)?;
        self.current()
    }

    /// Descends from `id` to a leaf, choosing each level's index with `pick` (given the node,
    /// returns an index that may equal the node's length for "past the end").
    fn descend(
        &mut self,
        mut id: PageId,
        mut pick: impl FnMut(&NodeRef<'a>) -> Result<usize, Corruption>,
    ) -> Result<(), Error> {
        loop {
            if self.levels.len() >= TREE_DEPTH_MAX {
                return Err(self.view.too_deep(self.root));
            }
            let node = self.view.node(id)?;
            let index = pick(&node).map_err(|c| self.corrupt(c))?;
            self.levels.push((node, index));
            if node.is_leaf() {
                return Ok(());
            }
            let index = index.min(node.len() - 1);
            self.levels.last_mut().expect("just pushed").1 = index;
            id = node.child(index).map_err(|c| self.corrupt(c))?;
        }
    }

    /// Positions on the first entry within `bound`, or off the tree.
    pub(crate) fn seek_lower(&mut self, bound: Bound<&[u8]>) -> Result<(), Error> {
        self.levels.clear();
        if self.root == 0 {
            return Ok(());
        }
        self.descend(self.root, |node| {
            Ok(match (node.is_leaf(), bound) {
                (_, Bound::Unbounded) => 0,
                (false, Bound::Included(key) | Bound::Excluded(key)) => node.child_index(key)?,
                (true, Bound::Included(key)) => node.search(key)?.unwrap_or_else(|i| i),
                (true, Bound::Excluded(key)) => match node.search(key)? {
                    Ok(i) => i + 1,
                    Err(i) => i,
                },
            })
        })?;
        self.settle(true)
    }

    /// Positions on the last entry within `bound`, or off the tree.
    pub(crate) fn seek_upper(&mut self, bound: Bound<&[u8]>) -> Result<(), Error> {
        self.levels.clear();
        if self.root == 0 {
            return Ok(());
        }
        // At the leaf the index is one past the wanted entry, so "nothing here" is 0.
        self.descend(self.root, |node| {
            Ok(match (node.is_leaf(), bound) {
                (false, Bound::Unbounded) => node.len() - 1,
                (true, Bound::Unbounded) => node.len(),
                (false, Bound::Included(key) | Bound::Excluded(key)) => node.child_index(key)?,
                (true, Bound::Included(key)) => match node.search(key)? {
                    Ok(i) => i + 1,
                    Err(i) => i,
                },
                (true, Bound::Excluded(key)) => node.search(key)?.unwrap_or_else(|i| i),
            })
        })?;
        let leaf = self.levels.last_mut().expect("descend reached a leaf");
        if leaf.1 == 0 {
            self.step_leaf(false)
        } else {
            leaf.1 -= 1;
            Ok(())
        }
    }

    /// If the leaf index is past the end, moves on to the next leaf's first entry.
    fn settle(&mut self, forward: bool) -> Result<(), Error> {
        match self.levels.last() {
            Some((leaf, index)) if *index >= leaf.len() => self.step_leaf(forward),
            _ => Ok(()),
        }
    }

    fn step(&mut self, forward: bool) -> Result<(), Error> {
        let Some((leaf, index)) = self.levels.last_mut() else {
            return Ok(());
        };
        if forward && *index + 1 < leaf.len() {
            *index += 1;
            return Ok(());
        }
        if !forward && *index > 0 {
            *index -= 1;
            return Ok(());
        }
        self.step_leaf(forward)
    }

    /// Moves to the first (or last) entry of the next (or previous) non-empty leaf.
    fn step_leaf(&mut self, forward: bool) -> Result<(), Error> {
        loop {
            self.levels.pop();
            // Climb to the nearest ancestor with a sibling in the wanted direction.
            let child = loop {
                let Some((node, index)) = self.levels.last_mut() else {
                    return Ok(());
                };
                let has_next = if forward {
                    *index + 1 < node.len()
                } else {
                    *index > 0
                };
                if has_next {
                    if forward {
                        *index += 1;
                    } else {
                        *index -= 1;
                    }
                    let node = *node;
                    let index = *index;
                    break node.child(index).map_err(|c| self.corrupt(c))?;
                }
                self.levels.pop();
            };
            self.descend(child, |node| {
                Ok(if forward || node.len() == 0 {
                    0
                } else {
                    node.len() - 1
                })
            })?;
            let (leaf, _) = self.levels.last().expect("descend reached a leaf");
            if leaf.len() > 0 {
                return Ok(());
            }
        }
    }
}

/// Entries of one tree within key bounds, in order from either end.
pub struct Range<'a> {
    front: Cursor<'a>,
    back: Cursor<'a>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    front_started: bool,
    back_started: bool,
    /// The last keys handed out from each end; the ends must not cross.
    front_last: Option<&'a [u8]>,
    back_last: Option<&'a [u8]>,
    done: bool,
}

impl<'a> Range<'a> {
    pub(crate) fn new(
        view: View<'a>,
        root: PageId,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Range<'a> {
        Range {
            front: Cursor::new(view, root),
            back: Cursor::new(view, root),
            lower,
            upper,
            front_started: false,
            back_started: false,
            front_last: None,
            back_last: None,
            done: root == 0,
        }
    }

    fn finish(
        &mut self,
        result: Result<Option<Entry<'a>>, Error>,
    ) -> Option<Result<Entry<'a>, Error>> {
        match result {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn advance_front(&mut self) -> Result<Option<Entry<'a>>, Error> {
        if self.front_started {
            self.front.step(true)?;
        } else {
            self.front_started = true;
            self.front
                .seek_lower(self.lower.as_ref().map(Vec::as_slice))?;
        }
        let Some((key, value)) = self.front.current()? else {
            return Ok(None);
        };
        let within = match &self.upper {
            Bound::Unbounded => true,
            Bound::Included(upper) => key <= upper.as_slice(),
            Bound::Excluded(upper) => key < upper.as_slice(),
        };
        if !within || self.back_last.is_some_and(|back| key >= back) {
            return Ok(None);
        }
        self.front_last = Some(key);
        Ok(Some((key, value)))
    }

    fn advance_back(&mut self) -> Result<Option<Entry<'a>>, Error> {
        if self.back_started {
            self.back.step(false)?;
        } else {
            self.back_started = true;
            self.back
                .seek_upper(self.upper.as_ref().map(Vec::as_slice))?;
        }
        let Some((key, value)) = self.back.current()? else {
            return Ok(None);
        };
        let within = match &self.lower {
            Bound::Unbounded => true,
            Bound::Included(lower) => key >= lower.as_slice(),
            Bound::Excluded(lower) => key > lower.as_slice(),
        };
        if !within || self.front_last.is_some_and(|front| key <= front) {
            return Ok(None);
        }
        self.back_last = Some(key);
        Ok(Some((key, value)))
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.advance_front();
        self.finish(result)
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.advance_back();
        self.finish(result)
    }
}

impl std::iter::FusedIterator for Range<'_> {}
