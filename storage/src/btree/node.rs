//! B+tree nodes: the leaf and branch page layouts, zero-copy readers over mapped pages, and the
//! owned form a write transaction edits before encoding it into a fresh page at commit.
//!
//! Both layouts are a slot array of u16 page offsets, one per entry in key order, followed by the
//! entries packed in slot order. Leaf entry: key length u16, flags u8, reserved u8, value length
//! u32, key, then the value inline or, with the overflow flag, the u64 first page of its run.
//! Branch entry: child page u64, key length u16, key. A branch's first key is stored empty and
//! never compared: child `i` holds keys in `[key i, key i+1)`.
//!
//! Readers bounds-check every offset they take from a page, so a damaged page yields a
//! [`Corruption`] rather than a panic or an out-of-page read.

use super::page::*;
use std::cmp::Ordering;

const FLAG_OVERFLOW: u8 = 1;

/// A value as a write transaction holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Inline(Vec<u8>),
    /// Stored in a run of overflow pages starting at `page`.
    Overflow {
        page: PageId,
        len: u32,
    },
}

impl Value {
    fn stored_bytes(&self) -> usize {
        match self {
            Value::Inline(v) => v.len(),
            Value::Overflow { .. } => 8,
        }
    }
}

/// A value as a reader finds it: the bytes, or where the bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    Inline(&'a [u8]),
    Overflow { page: PageId, len: u32 },
}

/// Encoded size of a leaf entry, slot included.
pub fn leaf_entry_bytes(key_len: usize, stored_value_len: usize) -> usize {
    SLOT_BYTES + LEAF_ENTRY_HEADER_BYTES + key_len + stored_value_len
}

/// Encoded size of a branch entry, slot included.
pub fn branch_entry_bytes(key_len: usize) -> usize {
    SLOT_BYTES + BRANCH_ENTRY_HEADER_BYTES + key_len
}

/// Whether a value of this size goes to overflow pages next to a key of this size.
pub fn needs_overflow(key_len: usize, value_len: usize) -> bool {
    leaf_entry_bytes(key_len, value_len) > INLINE_ENTRY_BYTES_MAX
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafEntry {
    pub key: Vec<u8>,
    pub value: Value,
}

impl LeafEntry {
    pub fn bytes(&self) -> usize {
        leaf_entry_bytes(self.key.len(), self.value.stored_bytes())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leaf {
    pub entries: Vec<LeafEntry>,
    /// Encoded body size: slots plus entries.
    pub bytes: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Branch {
    /// `keys[0]` is always empty: the first child has no lower separator.
    pub keys: Vec<Vec<u8>>,
    pub children: Vec<PageId>,
    pub bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

/// Index to split a node's entries at so each side fits a page body. `sizes` are the entries'
/// encoded sizes; `appending` packs the left side full, which suits ascending inserts.
fn split_point(sizes: &[usize], appending: bool) -> usize {
    let total: usize = sizes.iter().sum();
    debug_assert!(total > PAGE_BODY_BYTES && sizes.len() >= 2);
    let mut prefix = 0;
    for (i, size) in sizes.iter().enumerate() {
        let stop = if appending {
            prefix + size > PAGE_BODY_BYTES
        } else {
            prefix + size > total / 2
        };
        if stop {
            // Left of `i` stays within half (or a page body when appending); the right side is
            // under half plus one entry, which fits because an entry is under a third of a body.
            return i.clamp(1, sizes.len() - 1);
        }
        prefix += size;
    }
    sizes.len() - 1
}

impl Leaf {
    pub fn new() -> Leaf {
        Leaf::default()
    }

    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.key.as_slice().cmp(key))
    }

    /// Inserts or replaces; returns the replaced value.
    pub fn upsert(&mut self, key: &[u8], value: Value) -> Option<Value> {
        match self.search(key) {
            Ok(i) => {
                let entry = &mut self.entries[i];
                self.bytes -= entry.bytes();
                let old = std::mem::replace(&mut entry.value, value);
                self.bytes += entry.bytes();
                Some(old)
            }
            Err(i) => {
                let entry = LeafEntry {
                    key: key.to_vec(),
                    value,
                };
                self.bytes += entry.bytes();
                self.entries.insert(i, entry);
                None
            }
        }
    }

    pub fn remove(&mut self, index: usize) -> LeafEntry {
        let entry = self.entries.remove(index);
        self.bytes -= entry.bytes();
        entry
    }

    pub fn push(&mut self, entry: LeafEntry) {
        self.bytes += entry.bytes();
        self.entries.push(entry);
    }

    /// Splits an over-full leaf in two, returning the right half.
    pub fn split(&mut self, appending: bool) -> Leaf {
        let sizes: Vec<usize> = self.entries.iter().map(LeafEntry::bytes).collect();
        let at = split_point(&sizes, appending);
        let right_entries = self.entries.split_off(at);
        let right_bytes = sizes[at..].iter().sum();
        self.bytes -= right_bytes;
        debug_assert!(self.bytes <= PAGE_BODY_BYTES && right_bytes <= PAGE_BODY_BYTES);
        Leaf {
            entries: right_entries,
            bytes: right_bytes,
        }
    }

    /// Moves every entry of `right` (whose keys are all greater) to the end of this leaf.
    pub fn absorb(&mut self, right: Leaf) {
        self.bytes += right.bytes;
        self.entries.extend(right.entries);
    }
}

impl Branch {
    pub fn new() -> Branch {
        Branch::default()
    }

    pub fn push(&mut self, key: Vec<u8>, child: PageId) {
        let key = if self.children.is_empty() {
            Vec::new()
        } else {
            key
        };
        self.bytes += branch_entry_bytes(key.len());
        self.keys.push(key);
        self.children.push(child);
    }

    /// Index of the child whose key range holds `key`.
    pub fn child_index(&self, key: &[u8]) -> usize {
        self.keys[1..].partition_point(|k| k.as_slice() <= key)
    }

    pub fn insert(&mut self, index: usize, key: Vec<u8>, child: PageId) {
        debug_assert!(index >= 1);
        self.bytes += branch_entry_bytes(key.len());
        self.keys.insert(index, key);
        self.children.insert(index, child);
    }

    pub fn remove(&mut self, index: usize) {
        let key = self.keys.remove(index);
        self.children.remove(index);
        self.bytes -= branch_entry_bytes(key.len());
        if index == 0 && !self.keys.is_empty() {
            // The new first child needs no lower separator.
            self.bytes -= self.keys[0].len();
            self.keys[0].clear();
        }
    }

    /// Splits an over-full branch; returns the separator for the parent and the right half.
    pub fn split(&mut self) -> (Vec<u8>, Branch) {
        let sizes: Vec<usize> = self
            .keys
            .iter()
            .map(|k| branch_entry_bytes(k.len()))
            .collect();
        let at = split_point(&sizes, false);
        let mut keys = self.keys.split_off(at);
        let children = self.children.split_off(at);
        let separator = std::mem::take(&mut keys[0]);
        let right_bytes: usize = keys.iter().map(|k| branch_entry_bytes(k.len())).sum();
        self.bytes = self.keys.iter().map(|k| branch_entry_bytes(k.len())).sum();
        debug_assert!(self.bytes <= PAGE_BODY_BYTES && right_bytes <= PAGE_BODY_BYTES);
        (
            separator,
            Branch {
                keys,
                children,
                bytes: right_bytes,
            },
        )
    }

    /// Appends `right`'s children, `separator` being the parent's key between the two.
    pub fn absorb(&mut self, separator: Vec<u8>, mut right: Branch) {
        right.keys[0] = separator;
        for (key, child) in right.keys.into_iter().zip(right.children) {
            self.bytes += branch_entry_bytes(key.len());
            self.keys.push(key);
            self.children.push(child);
        }
    }
}

impl Node {
    pub fn len(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.entries.len(),
            Node::Branch(branch) => branch.children.len(),
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.bytes,
            Node::Branch(branch) => branch.bytes,
        }
    }

    /// Writes this node as page `id` into `out`, which must be one zeroed page.
    pub fn encode(&self, id: PageId, txn_id: u64, out: &mut [u8]) {
        assert!(
            self.bytes() <= PAGE_BODY_BYTES,
            "node of {} bytes does not fit a page",
            self.bytes()
        );
        debug_assert_eq!(out.len(), PAGE_BYTES);
        let count = self.len();
        let mut at = PAGE_HEADER_BYTES + count * SLOT_BYTES;
        let page_kind = match self {
            Node::Leaf(leaf) => {
                for (i, entry) in leaf.entries.iter().enumerate() {
                    write_u16(out, PAGE_HEADER_BYTES + i * SLOT_BYTES, at as u16);
                    write_u16(out, at, entry.key.len() as u16);
                    let (flags, len, stored): (u8, u32, &[u8]) = match &entry.value {
                        Value::Inline(v) => (0, v.len() as u32, v),
                        Value::Overflow { page, len } => {
                            write_u64(out, at + LEAF_ENTRY_HEADER_BYTES + entry.key.len(), *page);
                            (FLAG_OVERFLOW, *len, &[])
                        }
                    };
                    out[at + 2] = flags;
                    write_u32(out, at + 4, len);
                    at += LEAF_ENTRY_HEADER_BYTES;
                    out[at..at + entry.key.len()].copy_from_slice(&entry.key);
                    at += entry.key.len();
                    out[at..at + stored.len()].copy_from_slice(stored);
                    at += entry.value.stored_bytes();
                }
                kind::LEAF
            }
            Node::Branch(branch) => {
                for (i, (key, child)) in branch.keys.iter().zip(&branch.children).enumerate() {
                    write_u16(out, PAGE_HEADER_BYTES + i * SLOT_BYTES, at as u16);
                    write_u64(out, at, *child);
                    write_u16(out, at + 8, key.len() as u16);
                    at += BRANCH_ENTRY_HEADER_BYTES;
                    out[at..at + key.len()].copy_from_slice(key);
                    at += key.len();
                }
                kind::BRANCH
            }
        };
        debug_assert_eq!(at, PAGE_HEADER_BYTES + self.bytes());
        Header {
            kind: page_kind,
            count: count as u16,
            page_id: id,
            txn_id,
            run_pages: 1,
            used_bytes: self.bytes() as u32,
        }
        .write(out);
        seal(out);
    }

    /// Decodes a leaf or branch page into its owned form.
    pub fn decode(page: NodePage<'_>) -> Result<Node, Corruption> {
        let count = page.len();
        if page.is_leaf() {
            let mut leaf = Leaf::new();
            leaf.entries.reserve(count);
            for i in 0..count {
                let (key, value) = page.leaf_entry(i)?;
                let value = match value {
                    ValueRef::Inline(v) => Value::Inline(v.to_vec()),
                    ValueRef::Overflow { page, len } => Value::Overflow { page, len },
                };
                leaf.push(LeafEntry {
                    key: key.to_vec(),
                    value,
                });
            }
            Ok(Node::Leaf(leaf))
        } else {
            let mut branch = Branch::new();
            branch.keys.reserve(count);
            branch.children.reserve(count);
            for i in 0..count {
                branch.push(page.key(i)?.to_vec(), page.child(i)?);
            }
            Ok(Node::Branch(branch))
        }
    }
}

/// Writes `value` as the overflow run starting at page `id` into `out`, zeroed and exactly the
/// run's size, so the value is one contiguous slice of the map.
pub fn encode_overflow_run(value: &[u8], id: PageId, txn_id: u64, out: &mut [u8]) {
    let pages = run_pages_for(value.len());
    assert_eq!(out.len(), pages as usize * PAGE_BYTES);
    Header {
        kind: kind::OVERFLOW,
        count: 0,
        page_id: id,
        txn_id,
        run_pages: pages,
        used_bytes: value.len() as u32,
    }
    .write(out);
    out[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + value.len()].copy_from_slice(value);
    seal(out);
}

/// A leaf or branch page in the map, its kind and slot count validated.
#[derive(Clone, Copy, Debug)]
pub struct NodePage<'a> {
    pub id: PageId,
    bytes: &'a [u8],
    leaf: bool,
    count: usize,
}

impl<'a> NodePage<'a> {
    pub fn read(map: &'a [u8], id: PageId) -> Result<NodePage<'a>, Corruption> {
        let bytes = run_bytes(map, id, 1)?;
        let leaf = match bytes[OFFSET_KIND] {
            kind::LEAF => true,
            kind::BRANCH => false,
            _ => {
                return Err(Corruption {
                    page: id,
                    what: "expected a leaf or branch page",
                });
            }
        };
        let count = read_u16(bytes, OFFSET_COUNT) as usize;
        if PAGE_HEADER_BYTES + count * SLOT_BYTES > PAGE_BYTES || (!leaf && count == 0) {
            return Err(Corruption {
                page: id,
                what: "entry count out of range",
            });
        }
        Ok(NodePage {
            id,
            bytes,
            leaf,
            count,
        })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_leaf(&self) -> bool {
        self.leaf
    }

    pub fn len(&self) -> usize {
        self.count
    }

    fn corrupt(&self, what: &'static str) -> Corruption {
        Corruption {
            page: self.id,
            what,
        }
    }

    fn slot(&self, index: usize) -> usize {
        debug_assert!(index < self.count);
        read_u16(self.bytes, PAGE_HEADER_BYTES + index * SLOT_BYTES) as usize
    }

    /// The `len` bytes at `at`, if they lie within the page.
    fn span(&self, at: usize, len: usize) -> Result<&'a [u8], Corruption> {
        self.bytes
            .get(at..at.saturating_add(len))
            .ok_or_else(|| self.corrupt("entry extends past the end of the page"))
    }

    pub fn key(&self, index: usize) -> Result<&'a [u8], Corruption> {
        let at = self.slot(index);
        if self.leaf {
            let header = self.span(at, LEAF_ENTRY_HEADER_BYTES)?;
            let key_len = read_u16(header, 0) as usize;
            self.span(at + LEAF_ENTRY_HEADER_BYTES, key_len)
        } else {
            let header = self.span(at, BRANCH_ENTRY_HEADER_BYTES)?;
            let key_len = read_u16(header, 8) as usize;
            self.span(at + BRANCH_ENTRY_HEADER_BYTES, key_len)
        }
    }

    pub fn leaf_entry(&self, index: usize) -> Result<(&'a [u8], ValueRef<'a>), Corruption> {
        debug_assert!(self.leaf);
        let at = self.slot(index);
        let header = self.span(at, LEAF_ENTRY_HEADER_BYTES)?;
        let key_len = read_u16(header, 0) as usize;
        let flags = header[2];
        let value_len = read_u32(header, 4);
        let key_at = at + LEAF_ENTRY_HEADER_BYTES;
        let key = self.span(key_at, key_len)?;
        let value = if flags & FLAG_OVERFLOW != 0 {
            let page = read_u64(self.span(key_at + key_len, 8)?, 0);
            ValueRef::Overflow {
                page,
                len: value_len,
            }
        } else {
            ValueRef::Inline(self.span(key_at + key_len, value_len as usize)?)
        };
        Ok((key, value))
    }

    pub fn child(&self, index: usize) -> Result<PageId, Corruption> {
        debug_assert!(!self.leaf);
        let at = self.slot(index);
        Ok(read_u64(self.span(at, 8)?, 0))
    }

    /// Binary search of a leaf's keys.
    pub fn search(&self, key: &[u8]) -> Result<Result<usize, usize>, Corruption> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.key(mid)?.cmp(key) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(low))
    }

    /// Index of the child of a branch whose key range holds `key`.
    pub fn child_index(&self, key: &[u8]) -> Result<usize, Corruption> {
        let (mut low, mut high) = (1, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.key(mid)? <= key {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low - 1)
    }
}

/// A node a reader walks: a mapped page, or a write transaction's own dirty copy.
#[derive(Clone, Copy, Debug)]
pub enum NodeRef<'a> {
    Page(NodePage<'a>),
    Owned(&'a Node),
}

impl<'a> NodeRef<'a> {
    pub fn is_leaf(&self) -> bool {
        match self {
            NodeRef::Page(page) => page.is_leaf(),
            NodeRef::Owned(node) => matches!(node, Node::Leaf(_)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            NodeRef::Page(page) => page.len(),
            NodeRef::Owned(node) => node.len(),
        }
    }

    pub fn leaf_entry(&self, index: usize) -> Result<(&'a [u8], ValueRef<'a>), Corruption> {
        match self {
            NodeRef::Page(page) => page.leaf_entry(index),
            NodeRef::Owned(Node::Leaf(leaf)) => {
                let entry = &leaf.entries[index];
                let value = match &entry.value {
                    Value::Inline(v) => ValueRef::Inline(v),
                    Value::Overflow { page, len } => ValueRef::Overflow {
                        page: *page,
                        len: *len,
                    },
                };
                Ok((&entry.key, value))
            }
            NodeRef::Owned(Node::Branch(_)) => unreachable!("leaf_entry on a branch"),
        }
    }

    pub fn child(&self, index: usize) -> Result<PageId, Corruption> {
        match self {
            NodeRef::Page(page) => page.child(index),
            NodeRef::Owned(Node::Branch(branch)) => Ok(branch.children[index]),
            NodeRef::Owned(Node::Leaf(_)) => unreachable!("child on a leaf"),
        }
    }

    pub fn search(&self, key: &[u8]) -> Result<Result<usize, usize>, Corruption> {
        match self {
            NodeRef::Page(page) => page.search(key),
            NodeRef::Owned(Node::Leaf(leaf)) => Ok(leaf.search(key)),
            NodeRef::Owned(Node::Branch(_)) => unreachable!("search on a branch"),
        }
    }

    pub fn child_index(&self, key: &[u8]) -> Result<usize, Corruption> {
        match self {
            NodeRef::Page(page) => page.child_index(key),
            NodeRef::Owned(Node::Branch(branch)) => Ok(branch.child_index(key)),
            NodeRef::Owned(Node::Leaf(_)) => unreachable!("child_index on a leaf"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_with(count: usize, value_len: usize) -> Leaf {
        let mut leaf = Leaf::new();
        for i in 0..count {
            leaf.upsert(
                format!("key{i:05}").as_bytes(),
                Value::Inline(vec![i as u8; value_len]),
            );
        }
        leaf
    }

    #[test]
    fn leaf_round_trips_through_a_page() {
        let mut leaf = leaf_with(5, 10);
        leaf.upsert(
            b"zz",
            Value::Overflow {
                page: 77,
                len: 9000,
            },
        );
        let node = Node::Leaf(leaf);
        let mut page = vec![0u8; PAGE_BYTES];
        node.encode(3, 1, &mut page);
        let mut map = vec![0u8; 3 * PAGE_BYTES];
        map.extend_from_slice(&page);
        let read = NodePage::read(&map, 3).unwrap();
        assert!(checksum_ok(read.bytes()));
        assert_eq!(read.search(b"key00002").unwrap(), Ok(2));
        assert_eq!(read.search(b"key00002x").unwrap(), Err(3));
        assert_eq!(
            read.leaf_entry(5).unwrap().1,
            ValueRef::Overflow {
                page: 77,
                len: 9000
            }
        );
        assert_eq!(Node::decode(read).unwrap(), node);
        assert_eq!(Header::read(&page).used_bytes as usize, node.bytes());
    }

    #[test]
    fn branch_round_trips_and_routes_keys() {
        let mut branch = Branch::new();
        branch.push(b"ignored".to_vec(), 10);
        branch.push(b"m".to_vec(), 11);
        branch.push(b"t".to_vec(), 12);
        assert!(branch.keys[0].is_empty());
        let node = Node::Branch(branch.clone());
        let mut page = vec![0u8; PAGE_BYTES];
        node.encode(0, 1, &mut page);
        let read = NodePage::read(&page, 0).unwrap();
        for (key, want) in [(&b"a"[..], 0), (b"m", 1), (b"s", 1), (b"t", 2), (b"zz", 2)] {
            assert_eq!(read.child_index(key).unwrap(), want);
            assert_eq!(branch.child_index(key), want);
        }
        assert_eq!(Node::decode(read).unwrap(), node);
    }

    #[test]
    fn splits_leave_both_halves_within_a_page() {
        for value_len in [1, 100, 900] {
            for appending in [false, true] {
                let mut leaf = leaf_with(1, value_len);
                let mut i = 1;
                while leaf.bytes <= PAGE_BODY_BYTES {
                    leaf.upsert(
                        format!("key{i:05}").as_bytes(),
                        Value::Inline(vec![0; value_len]),
                    );
                    i += 1;
                }
                let right = leaf.split(appending);
                assert!(leaf.bytes <= PAGE_BODY_BYTES && right.bytes <= PAGE_BODY_BYTES);
                assert!(!leaf.entries.is_empty() && !right.entries.is_empty());
                assert!(leaf.entries.last().unwrap().key < right.entries[0].key);
            }
        }
    }

    #[test]
    fn damaged_offsets_are_reported_not_followed() {
        let node = Node::Leaf(leaf_with(3, 10));
        let mut page = vec![0u8; PAGE_BYTES];
        node.encode(0, 1, &mut page);
        write_u16(&mut page, PAGE_HEADER_BYTES + 2, (PAGE_BYTES - 2) as u16);
        let read = NodePage::read(&page, 0).unwrap();
        assert!(read.key(1).is_err());
        write_u16(&mut page, OFFSET_COUNT, 4000);
        assert!(NodePage::read(&page, 0).is_err());
    }
}
