//! Checks that the constants in code match the table in docs/STORAGE-WAL.md, and that the byte
//! layouts the document draws are the ones the code writes.

use super::record::{Entry, HardState, Record, SegmentHeader, SnapshotMarker, encode};
use super::*;
use std::collections::BTreeMap;

const SPEC: &str = include_str!("../../../docs/STORAGE-WAL.md");

/// `name -> value` from the rows of the "Constants" table.
fn spec_constants() -> BTreeMap<String, String> {
    let table = SPEC
        .split("## Constants")
        .nth(1)
        .expect("the spec has a Constants section");
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let [name, value] = cells.as_slice() else {
                return None;
            };
            let name = name.trim().strip_prefix('`')?.strip_suffix('`')?;
            let value = value.trim().trim_matches('`');
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn constants_match_the_spec() {
    let code: BTreeMap<&str, String> = [
        ("BLOCK_BYTES", BLOCK_BYTES.to_string()),
        ("SEGMENT_BYTES_DEFAULT", SEGMENT_BYTES_DEFAULT.to_string()),
        ("SEGMENT_BYTES_MIN", SEGMENT_BYTES_MIN.to_string()),
        ("SEGMENTS_KEPT_DEFAULT", SEGMENTS_KEPT_DEFAULT.to_string()),
        ("RECORD_ALIGN", RECORD_ALIGN.to_string()),
        ("FRAME_HEADER_BYTES", FRAME_HEADER_BYTES.to_string()),
        ("RECORD_BYTES_MAX", RECORD_BYTES_MAX.to_string()),
        ("SEGMENT_HEADER_BYTES", SEGMENT_HEADER_BYTES.to_string()),
        ("FORMAT_VERSION", FORMAT_VERSION.to_string()),
        ("RECORD_TYPE_ENTRY", RECORD_TYPE_ENTRY.to_string()),
        ("RECORD_TYPE_HARD_STATE", RECORD_TYPE_HARD_STATE.to_string()),
        ("RECORD_TYPE_SNAPSHOT", RECORD_TYPE_SNAPSHOT.to_string()),
        (
            "SEGMENT_MAGIC",
            String::from_utf8(SEGMENT_MAGIC.to_vec())
                .unwrap()
                .replace('\0', "\\0"),
        ),
        ("SEGMENT_SUFFIX", SEGMENT_SUFFIX.to_string()),
        ("PREPARED_SUFFIX", PREPARED_SUFFIX.to_string()),
    ]
    .into_iter()
    .collect();
    let spec = spec_constants();
    for (name, value) in &code {
        assert_eq!(
            spec.get(*name),
            Some(value),
            "{name} differs between code and docs/STORAGE-WAL.md"
        );
    }
    let extra: Vec<_> = spec
        .keys()
        .filter(|k| !code.contains_key(k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "spec constants unknown to the test: {extra:?}"
    );
}

#[test]
fn layouts_match_the_diagrams() {
    let h = SegmentHeader {
        seq: 0x0102,
        first_index: 0x0304,
        seed: 0x0506,
    }
    .encode();
    assert_eq!(&h[0..8], b"KEELWAL\0");
    assert_eq!(h[8..12], 1u32.to_le_bytes());
    assert_eq!(h[12..16], [0; 4]);
    assert_eq!(h[16..24], 0x0102u64.to_le_bytes());
    assert_eq!(h[24..32], 0x0304u64.to_le_bytes());
    assert_eq!(h[32..36], 0x0506u32.to_le_bytes());
    assert_eq!(h[36..40], crc32fast::hash(&h[..36]).to_le_bytes());

    let seed = 0x1234_5678;
    let mut b = Vec::new();
    let e = Record::Entry(Entry {
        index: 9,
        term: 4,
        data: b"abc".to_vec(),
    });
    let crc = encode(&e, seed, &mut b);
    assert_eq!(b.len(), 32, "8 + 17 + 3 = 28, padded to 32");
    assert_eq!(b[0..4], 20u32.to_le_bytes());
    assert_eq!(b[4..8], crc.to_le_bytes());
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(&b[0..4]);
    h.update(&b[8..28]);
    assert_eq!(
        h.finalize(),
        crc,
        "CRC seeded with the previous one, over len and body"
    );
    assert_eq!(b[8], RECORD_TYPE_ENTRY);
    assert_eq!(b[9..17], 9u64.to_le_bytes());
    assert_eq!(b[17..25], 4u64.to_le_bytes());
    assert_eq!(&b[25..28], b"abc");
    assert_eq!(b[28..32], [0; 4]);

    let hs = Record::HardState(HardState {
        term: 1,
        vote: 2,
        commit: 3,
    });
    let snap = Record::Snapshot(SnapshotMarker { index: 5, term: 6 });
    assert_eq!(hs.body_len(), 25);
    assert_eq!(snap.body_len(), 17);
    let mut b = Vec::new();
    encode(&hs, 0, &mut b);
    assert_eq!(b[8], RECORD_TYPE_HARD_STATE);
    assert_eq!(b[9..17], 1u64.to_le_bytes());
    assert_eq!(b[17..25], 2u64.to_le_bytes());
    assert_eq!(b[25..33], 3u64.to_le_bytes());
}
