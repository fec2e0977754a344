//! Free-page bookkeeping: which pages may be reused now, which wait for readers, and the freelist
//! run that persists both with every commit.
//!
//! In memory a page freed by transaction `N` waits in `pending` until a commit at least as new as
//! `N` is durable and no reader older than `N` is open; only then can a writer overwrite it. On
//! disk the distinction is moot (no reader survives a restart), so each durable meta (a durable
//! commit, or a sync making an unsynced commit durable) comes with one sorted list: the free
//! pages, the pending pages, and the pages that commit freed itself. That list is written into
//! fresh pages like any other COW state and referenced from the meta, so a crash before the meta
//! is durable leaves the old list in force. Unsynced commits write no list.

use super::page::*;
use std::collections::{BTreeSet, VecDeque};

#[derive(Debug, Default)]
pub struct FreePages {
    /// Reusable by the next writer.
    pub free: BTreeSet<PageId>,
    /// Pages freed by committed transaction `.0`, oldest first, waiting for readers to close.
    pub pending: VecDeque<(u64, Vec<PageId>)>,
}

impl FreePages {
    /// Moves to `free` every pending batch freed by a transaction no later than
    /// `oldest_reader_txn_id` (the caller passes the older of the oldest open snapshot and the
    /// newest durable commit).
    pub fn release(&mut self, oldest_reader_txn_id: u64) {
        while let Some((txn_id, _)) = self.pending.front() {
            if *txn_id > oldest_reader_txn_id {
                break;
            }
            if let Some((_, pages)) = self.pending.pop_front() {
                self.free.extend(pages);
            }
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.iter().map(|(_, pages)| pages.len()).sum()
    }

    /// Takes `count` consecutive free pages, the lowest such run, if there is one.
    pub fn take_run(&mut self, count: u64) -> Option<PageId> {
        debug_assert!(count >= 1);
        let mut start = None;
        let mut len = 0;
        let mut previous = None;
        for &page in &self.free {
            if previous.is_some_and(|p: PageId| p + 1 == page) {
                len += 1;
            } else {
                start = Some(page);
                len = 1;
            }
            previous = Some(page);
            if len == count {
                break;
            }
        }
        if len < count {
            return None;
        }
        let start = start?;
        for page in start..start + count {
            self.free.remove(&page);
        }
        Some(start)
    }
}

/// Bytes of freelist payload a run of `pages` pages holds.
pub fn ids_per_run(pages: u64) -> usize {
    (pages as usize * PAGE_BYTES - PAGE_HEADER_BYTES) / 8
}

/// Pages a freelist run needs for `count` ids.
pub fn run_pages_for_ids(count: usize) -> u64 {
    run_pages_for(count * 8) as u64
}

/// Encodes `ids` (sorted) as a freelist run starting at page `id`.
pub fn encode(ids: &[PageId], id: PageId, pages: u64, txn_id: u64) -> Vec<u8> {
    assert!(ids.len() <= ids_per_run(pages), "freelist run too small");
    debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let mut run = vec![0u8; pages as usize * PAGE_BYTES];
    Header {
        kind: kind::FREELIST,
        count: 0,
        page_id: id,
        txn_id,
        run_pages: pages as u32,
        used_bytes: (ids.len() * 8) as u32,
    }
    .write(&mut run);
    for (i, page) in ids.iter().enumerate() {
        write_u64(&mut run, PAGE_HEADER_BYTES + i * 8, *page);
    }
    seal(&mut run);
    run
}

/// Decodes the freelist run `id` of `pages` pages from `map`, verifying its checksum.
pub fn decode(map: &[u8], id: PageId, pages: u64) -> Result<Vec<PageId>, Corruption> {
    let run = run_bytes(map, id, pages)?;
    let header = Header::read(run);
    if header.kind != kind::FREELIST || header.page_id != id || u64::from(header.run_pages) != pages
    {
        return Err(Corruption {
            page: id,
            what: "expected the freelist run the meta names",
        });
    }
    if !checksum_ok(run) {
        return Err(Corruption {
            page: id,
            what: "page checksum mismatch",
        });
    }
    let used = header.used_bytes as usize;
    if !used.is_multiple_of(8) || used / 8 > ids_per_run(pages) {
        return Err(Corruption {
            page: id,
            what: "freelist length out of range",
        });
    }
    Ok((0..used / 8)
        .map(|i| read_u64(run, PAGE_HEADER_BYTES + i * 8))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_found_lowest_first() {
        let mut pages = FreePages::default();
        pages.free.extend([3, 5, 6, 8, 9, 10, 20]);
        assert_eq!(pages.take_run(3), Some(8));
        assert_eq!(pages.take_run(3), None);
        assert_eq!(pages.take_run(2), Some(5));
        assert_eq!(pages.take_run(1), Some(3));
        assert_eq!(pages.free.iter().copied().collect::<Vec<_>>(), vec![20]);
    }

    #[test]
    fn pending_pages_wait_for_older_readers() {
        let mut pages = FreePages::default();
        pages.pending.push_back((4, vec![10]));
        pages.pending.push_back((6, vec![11, 12]));
        pages.release(5);
        assert_eq!(pages.free.len(), 1);
        assert_eq!(pages.pending_len(), 2);
        pages.release(6);
        assert_eq!(pages.free.len(), 3);
    }

    #[test]
    fn encoded_runs_round_trip_and_detect_damage() {
        let ids: Vec<PageId> = (2..700).collect();
        let pages = run_pages_for_ids(ids.len());
        assert_eq!(pages, 2);
        let mut map = vec![0u8; 4 * PAGE_BYTES];
        let run = encode(&ids, 2, pages, 1);
        map[2 * PAGE_BYTES..].copy_from_slice(&run);
        assert_eq!(decode(&map, 2, pages).unwrap(), ids);
        map[3 * PAGE_BYTES + 5] ^= 4;
        assert_eq!(
            decode(&map, 2, pages).unwrap_err().what,
            "page checksum mismatch"
        );
    }
}
