//! The page: the format's named limits, the header every page starts with, and its checksum.
//!
//! Every limit of the on-disk format is a `pub const` here and nowhere else; docs/STORAGE-BTREE.md
//! carries the same table and a test keeps the two in step.

use std::fmt;

/// A page number: byte offset `id * PAGE_BYTES` in the file.
pub type PageId = u64;

/// Size of one page. Every structure in the file is a whole number of pages.
pub const PAGE_BYTES: usize = 4096;
/// Bytes at the start of every page taken by the common header.
pub const PAGE_HEADER_BYTES: usize = 32;
/// Bytes of a single page left for entries after the header.
pub const PAGE_BODY_BYTES: usize = PAGE_BYTES - PAGE_HEADER_BYTES;
/// Longest key, and longest tree name.
pub const KEY_BYTES_MAX: usize = 1024;
/// Longest value. etcd's request limit is 1.5 MiB; this leaves headroom.
pub const VALUE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A leaf entry (slot, entry header, key, value) larger than this moves its value to overflow
/// pages, so every leaf holds at least three entries and splits always succeed.
pub const INLINE_ENTRY_BYTES_MAX: usize = 1024;
/// Format version written in the meta pages; any other value is refused on open.
pub const FORMAT_VERSION: u32 = 1;
/// The two meta pages are pages 0 and 1.
pub const META_PAGE_COUNT: u64 = 2;
/// The file grows by doubling, but never by more than this at once.
pub const GROW_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Deepest tree a reader will descend; deeper means a cycle in a corrupt file. With at least
/// two children per branch this bounds trees far beyond any file size.
pub const TREE_DEPTH_MAX: usize = 48;
/// First eight bytes of a meta page body.
pub const MAGIC: [u8; 8] = *b"KEELSONB";

/// Bytes of the index slot each entry of a leaf or branch page has.
pub const SLOT_BYTES: usize = 2;
/// Leaf entry header: key length u16, flags u8, reserved u8, value length u32.
pub const LEAF_ENTRY_HEADER_BYTES: usize = 8;
/// Branch entry header: child page u64, key length u16.
pub const BRANCH_ENTRY_HEADER_BYTES: usize = 10;
/// The largest leaf entry, including its slot: a maximal key with an overflow reference.
pub const LEAF_ENTRY_BYTES_MAX: usize = SLOT_BYTES + LEAF_ENTRY_HEADER_BYTES + KEY_BYTES_MAX + 8;
/// The largest branch entry, including its slot.
pub const BRANCH_ENTRY_BYTES_MAX: usize = SLOT_BYTES + BRANCH_ENTRY_HEADER_BYTES + KEY_BYTES_MAX;
/// A dirty node smaller than this is merged with a sibling when the two fit in one page.
pub const MERGE_BYTES_MIN: usize = PAGE_BODY_BYTES / 4;

// A node over capacity holds at most one page body plus one entry; splitting it at the byte
// midpoint leaves each half within a page only if no entry exceeds a third of the body.
const _: () = assert!(3 * LEAF_ENTRY_BYTES_MAX <= PAGE_BODY_BYTES);
const _: () = assert!(3 * INLINE_ENTRY_BYTES_MAX <= PAGE_BODY_BYTES);
const _: () = assert!(3 * BRANCH_ENTRY_BYTES_MAX <= PAGE_BODY_BYTES);
// Slot offsets are u16.
const _: () = assert!(PAGE_BYTES <= u16::MAX as usize + 1);
// Value lengths are u32 and keys u16 in entry headers.
const _: () = assert!(VALUE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(KEY_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(VALUE_BYTES_MAX >= 3 * 512 * 1024);
const _: () = assert!(PAGE_BYTES.is_power_of_two());

/// Page kinds, byte 4 of the header.
pub mod kind {
    pub const META: u8 = 1;
    pub const BRANCH: u8 = 2;
    pub const LEAF: u8 = 3;
    pub const OVERFLOW: u8 = 4;
    pub const FREELIST: u8 = 5;
}

// Header field offsets. Checksum first so it can cover everything after it in one pass.
pub const OFFSET_CHECKSUM: usize = 0;
pub const OFFSET_KIND: usize = 4;
pub const OFFSET_COUNT: usize = 6;
pub const OFFSET_PAGE_ID: usize = 8;
pub const OFFSET_TXN_ID: usize = 16;
pub const OFFSET_RUN_PAGES: usize = 24;
pub const OFFSET_USED_BYTES: usize = 28;
const _: () = assert!(OFFSET_USED_BYTES + 4 == PAGE_HEADER_BYTES);

pub fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

pub fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

pub fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Number of pages a run needs to carry `payload_bytes` after its header.
pub fn run_pages_for(payload_bytes: usize) -> u32 {
    (payload_bytes + PAGE_HEADER_BYTES).div_ceil(PAGE_BYTES) as u32
}

/// The common header, as decoded from or about to be written to a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub count: u16,
    pub page_id: PageId,
    pub txn_id: u64,
    /// Pages in this run, counting this one: 1 except for overflow and freelist runs.
    pub run_pages: u32,
    /// Payload bytes after the header (slots and entries, a value, or freelist ids).
    pub used_bytes: u32,
}

impl Header {
    pub fn write(&self, page: &mut [u8]) {
        page[OFFSET_KIND] = self.kind;
        page[OFFSET_KIND + 1] = 0;
        write_u16(page, OFFSET_COUNT, self.count);
        write_u64(page, OFFSET_PAGE_ID, self.page_id);
        write_u64(page, OFFSET_TXN_ID, self.txn_id);
        write_u32(page, OFFSET_RUN_PAGES, self.run_pages);
        write_u32(page, OFFSET_USED_BYTES, self.used_bytes);
    }

    pub fn read(page: &[u8]) -> Header {
        Header {
            kind: page[OFFSET_KIND],
            count: read_u16(page, OFFSET_COUNT),
            page_id: read_u64(page, OFFSET_PAGE_ID),
            txn_id: read_u64(page, OFFSET_TXN_ID),
            run_pages: read_u32(page, OFFSET_RUN_PAGES),
            used_bytes: read_u32(page, OFFSET_USED_BYTES),
        }
    }
}

/// The checksum of a run: crc32 of everything after the checksum field.
pub fn checksum(run: &[u8]) -> u32 {
    crc32fast::hash(&run[OFFSET_CHECKSUM + 4..])
}

/// Stores the checksum of a fully written run.
pub fn seal(run: &mut [u8]) {
    debug_assert_eq!(run.len() % PAGE_BYTES, 0);
    let sum = checksum(run);
    write_u32(run, OFFSET_CHECKSUM, sum);
}

pub fn checksum_ok(run: &[u8]) -> bool {
    read_u32(run, OFFSET_CHECKSUM) == checksum(run)
}

/// Where and how a file's structure is wrong, found on a read path that does not know the file
/// name; callers turn it into [`super::Error::Corrupt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub page: PageId,
    pub what: &'static str,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at page {}", self.what, self.page)
    }
}

/// The bytes of run `id` of `pages` pages in `map`, or why there are none.
pub fn run_bytes(map: &[u8], id: PageId, pages: u64) -> Result<&[u8], Corruption> {
    let start = id
        .checked_mul(PAGE_BYTES as u64)
        .and_then(|s| usize::try_from(s).ok());
    let end = id
        .checked_add(pages)
        .and_then(|e| e.checked_mul(PAGE_BYTES as u64))
        .and_then(|e| usize::try_from(e).ok());
    match (start, end) {
        (Some(start), Some(end)) if end <= map.len() => Ok(&map[start..end]),
        _ => Err(Corruption {
            page: id,
            what: "page lies beyond the end of the file",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_checksum_covers_the_whole_run() {
        let mut run = vec![0u8; 2 * PAGE_BYTES];
        let header = Header {
            kind: kind::OVERFLOW,
            count: 0,
            page_id: 7,
            txn_id: 9,
            run_pages: 2,
            used_bytes: 5000,
        };
        header.write(&mut run);
        run[PAGE_BYTES + 100] = 42;
        seal(&mut run);
        assert_eq!(Header::read(&run), header);
        assert!(checksum_ok(&run));
        run[2 * PAGE_BYTES - 1] ^= 1;
        assert!(!checksum_ok(&run));
    }

    #[test]
    fn runs_are_sized_for_their_payload() {
        assert_eq!(run_pages_for(0), 1);
        assert_eq!(run_pages_for(PAGE_BODY_BYTES), 1);
        assert_eq!(run_pages_for(PAGE_BODY_BYTES + 1), 2);
        assert!(run_bytes(&[0; PAGE_BYTES], 1, 1).is_err());
        assert!(run_bytes(&[0; PAGE_BYTES], u64::MAX, 1).is_err());
    }
}
