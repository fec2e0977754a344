//! The two meta pages: the root of all committed state, written last in every commit.
//!
//! Each durable commit writes its meta into the slot that does *not* hold the newest durable meta
//! (slots alternate by durable commits, not by transaction id, because unsynced commits in between
//! never write a meta). On open the valid meta with the higher transaction id wins; a torn or lost
//! meta write therefore falls back to the durable commit before it, whose meta was left alone and
//! whose pages were synced before this meta was written.

use super::page::*;

/// Field offsets inside a meta page, after the common header.
const OFFSET_MAGIC: usize = PAGE_HEADER_BYTES;
const OFFSET_VERSION: usize = OFFSET_MAGIC + 8;
const OFFSET_PAGE_BYTES: usize = OFFSET_VERSION + 4;
const OFFSET_CATALOG_ROOT: usize = OFFSET_PAGE_BYTES + 4;
const OFFSET_FREELIST: usize = OFFSET_CATALOG_ROOT + 8;
const OFFSET_FREELIST_PAGES: usize = OFFSET_FREELIST + 8;
const OFFSET_PAGE_COUNT: usize = OFFSET_FREELIST_PAGES + 8;
/// Bytes of the meta body after the header.
pub const META_BODY_BYTES: usize = OFFSET_PAGE_COUNT + 8 - PAGE_HEADER_BYTES;
const _: () = assert!(PAGE_HEADER_BYTES + META_BODY_BYTES <= PAGE_BYTES);

/// One committed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub txn_id: u64,
    /// Root of the catalog tree (tree name -> tree root), or 0 when there are no trees.
    pub catalog_root: PageId,
    /// First page of the freelist run, or 0 when nothing is free.
    pub freelist: PageId,
    pub freelist_pages: u64,
    /// High-water mark: pages `0..page_count` are each meta, reachable, or free.
    pub page_count: u64,
}

impl Meta {
    pub fn encode(&self, slot: u64) -> Vec<u8> {
        debug_assert!(slot < META_PAGE_COUNT);
        let mut page = vec![0u8; PAGE_BYTES];
        Header {
            kind: kind::META,
            count: 0,
            page_id: slot,
            txn_id: self.txn_id,
            run_pages: 1,
            used_bytes: META_BODY_BYTES as u32,
        }
        .write(&mut page);
        page[OFFSET_MAGIC..OFFSET_MAGIC + 8].copy_from_slice(&MAGIC);
        write_u32(&mut page, OFFSET_VERSION, FORMAT_VERSION);
        write_u32(&mut page, OFFSET_PAGE_BYTES, PAGE_BYTES as u32);
        write_u64(&mut page, OFFSET_CATALOG_ROOT, self.catalog_root);
        write_u64(&mut page, OFFSET_FREELIST, self.freelist);
        write_u64(&mut page, OFFSET_FREELIST_PAGES, self.freelist_pages);
        write_u64(&mut page, OFFSET_PAGE_COUNT, self.page_count);
        seal(&mut page);
        page
    }

    /// Decodes meta slot `slot`, or says why it is not a valid meta page.
    pub fn decode(page: &[u8], slot: u64) -> Result<Meta, MetaProblem> {
        if page[OFFSET_MAGIC..OFFSET_MAGIC + 8] != MAGIC {
            return Err(MetaProblem::BadMagic);
        }
        let version = read_u32(page, OFFSET_VERSION);
        if version != FORMAT_VERSION {
            return Err(MetaProblem::UnsupportedVersion(version));
        }
        if !checksum_ok(page) {
            return Err(MetaProblem::Invalid("checksum mismatch"));
        }
        let header = Header::read(page);
        if header.kind != kind::META || header.page_id != slot {
            return Err(MetaProblem::Invalid("wrong page kind or id"));
        }
        let page_bytes = read_u32(page, OFFSET_PAGE_BYTES);
        if page_bytes as usize != PAGE_BYTES {
            return Err(MetaProblem::Invalid("unsupported page size"));
        }
        let meta = Meta {
            txn_id: header.txn_id,
            catalog_root: read_u64(page, OFFSET_CATALOG_ROOT),
            freelist: read_u64(page, OFFSET_FREELIST),
            freelist_pages: read_u64(page, OFFSET_FREELIST_PAGES),
            page_count: read_u64(page, OFFSET_PAGE_COUNT),
        };
        let in_file = |id: u64| id == 0 || (id >= META_PAGE_COUNT && id < meta.page_count);
        let freelist_ok = (meta.freelist == 0) == (meta.freelist_pages == 0)
            && meta
                .freelist
                .checked_add(meta.freelist_pages)
                .is_some_and(|end| end <= meta.page_count);
        if meta.page_count < META_PAGE_COUNT
            || !in_file(meta.catalog_root)
            || !in_file(meta.freelist)
            || !freelist_ok
        {
            return Err(MetaProblem::Invalid("page references out of range"));
        }
        Ok(meta)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaProblem {
    BadMagic,
    UnsupportedVersion(u32),
    Invalid(&'static str),
}

impl std::fmt::Display for MetaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaProblem::BadMagic => write!(f, "bad magic"),
            MetaProblem::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported format version {v} (this build reads {FORMAT_VERSION})"
                )
            }
            MetaProblem::Invalid(what) => write!(f, "{what}"),
        }
    }
}

/// Picks the meta to open from the two slots' outcomes, with its slot, or explains why the file
/// is refused. On a tie (only the freshly created file, both slots at txn 0) slot 0 wins.
pub fn choose(slots: [Result<Meta, MetaProblem>; 2]) -> Result<(u64, Meta), String> {
    match slots {
        [Ok(a), Ok(b)] => Ok(if b.txn_id > a.txn_id { (1, b) } else { (0, a) }),
        [Ok(a), Err(_)] => Ok((0, a)),
        [Err(_), Ok(b)] => Ok((1, b)),
        [Err(MetaProblem::BadMagic), Err(MetaProblem::BadMagic)] => {
            Err("bad magic: not a Keelson B+tree file".to_string())
        }
        [Err(MetaProblem::UnsupportedVersion(v)), _]
        | [_, Err(MetaProblem::UnsupportedVersion(v))] => {
            Err(MetaProblem::UnsupportedVersion(v).to_string())
        }
        [Err(a), Err(b)] => Err(format!(
            "both meta pages are bad (meta 0: {a}; meta 1: {b})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(txn_id: u64) -> Meta {
        Meta {
            txn_id,
            catalog_root: 5,
            freelist: 3,
            freelist_pages: 2,
            page_count: 9,
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let page = sample(4).encode(0);
        assert_eq!(Meta::decode(&page, 0), Ok(sample(4)));
        // The slot is part of what is checked: a meta copied to the other slot is invalid.
        assert!(Meta::decode(&page, 1).is_err());
        let mut bad = page.clone();
        bad[PAGE_BYTES - 1] ^= 1;
        assert_eq!(
            Meta::decode(&bad, 0),
            Err(MetaProblem::Invalid("checksum mismatch"))
        );
        let mut foreign = page.clone();
        foreign[OFFSET_MAGIC] = b'X';
        assert_eq!(Meta::decode(&foreign, 0), Err(MetaProblem::BadMagic));
        let mut future = page;
        write_u32(&mut future, OFFSET_VERSION, 2);
        assert_eq!(
            Meta::decode(&future, 0),
            Err(MetaProblem::UnsupportedVersion(2))
        );
    }

    #[test]
    fn the_newest_valid_meta_wins() {
        assert_eq!(choose([Ok(sample(3)), Ok(sample(4))]), Ok((1, sample(4))));
        // Slots alternate by durable commits, so the newer meta can be in either slot.
        assert_eq!(choose([Ok(sample(7)), Ok(sample(4))]), Ok((0, sample(7))));
        assert_eq!(
            choose([Ok(sample(3)), Err(MetaProblem::Invalid("x"))]),
            Ok((0, sample(3)))
        );
        assert_eq!(
            choose([Err(MetaProblem::Invalid("x")), Ok(sample(3))]),
            Ok((1, sample(3)))
        );
        let both = choose([
            Err(MetaProblem::Invalid("a")),
            Err(MetaProblem::Invalid("b")),
        ]);
        assert!(both.unwrap_err().contains("both meta pages are bad"));
        let foreign = choose([Err(MetaProblem::BadMagic), Err(MetaProblem::BadMagic)]);
        assert!(foreign.unwrap_err().contains("bad magic"));
    }
}
