//! One segment: its file name, and scanning its bytes into verified records, including the rule
//! that tells a torn tail from corruption (see "Torn tail or corruption" in docs/STORAGE-WAL.md).

use super::record::{self, FrameError, Record, SegmentHeader, claimed_body_len, frame_len};
use super::{
    FRAME_HEADER_BYTES, PREPARED_SUFFIX, RECORD_ALIGN, RECORD_BYTES_MAX, Result,
    SEGMENT_HEADER_BYTES, SEGMENT_SUFFIX, WalError, align_up,
};
use std::collections::HashMap;

/// `{seq:016x}-{first_index:016x}.wal`, like etcd's names, so a listing sorts in log order.
pub fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}{SEGMENT_SUFFIX}")
}

/// The name a segment has while it is prepared but not yet part of the log.
pub fn prepared_name(seq: u64) -> String {
    format!("{seq:016x}{PREPARED_SUFFIX}")
}

/// `(seq, first_index)` of a segment name, or `None` if `name` is not one.
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

/// A verified segment.
#[derive(Debug)]
pub struct Scanned {
    pub header: SegmentHeader,
    /// Every record, in order, with its offset.
    pub records: Vec<(u64, Record)>,
    /// Offset just past the last good record: where the next record goes.
    pub end: u64,
    /// CRC of the last good record (the header's seed if there is none).
    pub last_crc: u32,
    /// Set when the segment ended in a torn write: `(offset of the bad frame, offset just past
    /// the last non-zero byte)`. Only possible for the last segment.
    pub torn: Option<(u64, u64)>,
}

fn corrupt(name: &str, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corrupt {
        file: name.to_string(),
        offset,
        reason: reason.into(),
    }
}

/// Offset just past the last non-zero byte of `bytes[from..]`, rounded up to [`RECORD_ALIGN`], or
/// `None` if all of it is zero.
fn nonzero_end(bytes: &[u8], from: usize) -> Option<u64> {
    let last = bytes[from..].iter().rposition(|&b| b != 0)?;
    Some(align_up((from + last + 1) as u64, RECORD_ALIGN))
}

/// Verifies every record of the segment `bytes` (the whole file).
///
/// `last` says whether this is the newest segment: only there can a crash leave a torn write,
/// so only there is a bad frame followed by nothing valid treated as a tear rather than
/// corruption.
pub fn scan(name: &str, bytes: &[u8], last: bool) -> Result<Scanned> {
    let header = SegmentHeader::decode(bytes).map_err(|why| corrupt(name, 0, why))?;
    let mut records = Vec::new();
    let mut seed = header.seed;
    let mut at = SEGMENT_HEADER_BYTES;
    loop {
        match record::decode(&bytes[at..], seed) {
            Ok(d) => {
                records.push((at as u64, d.record));
                seed = d.crc;
                at += d.frame_len;
            }
            Err(err) => {
                let Some(garbage_end) = nonzero_end(bytes, at) else {
                    // Zeros to the end: the clean end of the log.
                    return Ok(Scanned {
                        header,
                        records,
                        end: at as u64,
                        last_crc: seed,
                        torn: None,
                    });
                };
                let reason = match err {
                    FrameError::Empty => "zero length word followed by data".to_string(),
                    FrameError::Bad(why) => why,
                };
                if !last {
                    return Err(corrupt(name, at as u64, reason));
                }
                if let Some(why) = valid_data_after(bytes, at) {
                    return Err(corrupt(name, at as u64, format!("{reason}; {why}")));
                }
                return Ok(Scanned {
                    header,
                    records,
                    end: at as u64,
                    last_crc: seed,
                    torn: Some((at as u64, garbage_end)),
                });
            }
        }
    }
}

/// Given a bad frame at `p`, says why the damage cannot be a torn write, or `None` if it can.
///
/// A torn write leaves the frame's intended bytes up to some point and old bytes (zeros: the
/// segment was zero-filled and every write pads its last block with zeros) after it, with at most
/// whole later sectors of the same write landing too. So a tear shows no data beyond the bad frame
/// and no record inside its claimed extent that verifies. A bit flip in a record that has records
/// after it shows one or the other: the following records sit after the frame's claimed end, or,
/// if the flip enlarged the claimed length, inside it, where the first one still verifies against
/// the bad frame's stored CRC (or a later one against its predecessor's).
fn valid_data_after(bytes: &[u8], p: usize) -> Option<String> {
    let claimed_end = match claimed_body_len(&bytes[p..]) {
        Some(len) if len <= RECORD_BYTES_MAX && p + frame_len(len) <= bytes.len() => {
            p + frame_len(len)
        }
        _ => p + FRAME_HEADER_BYTES,
    };
    if let Some(end) = nonzero_end(bytes, claimed_end.min(bytes.len())) {
        return Some(format!(
            "data follows the bad frame up to offset {end}, so it is not a torn tail"
        ));
    }
    let first_seed = record::stored_crc(&bytes[p..]).expect("frame header in bounds");
    // Seeds offered by frame-shaped byte runs inside the extent, keyed by where they end.
    let mut seeds_ending_at: HashMap<usize, u32> = HashMap::new();
    let mut q = p + RECORD_ALIGN;
    while q + FRAME_HEADER_BYTES <= claimed_end {
        let here = &bytes[q..];
        let mut seeds = vec![first_seed];
        seeds.extend(seeds_ending_at.get(&q));
        if seeds.iter().any(|&s| record::decode(here, s).is_ok()) {
            return Some(format!(
                "a valid record at offset {q} follows the bad frame"
            ));
        }
        if let (Some(len), Some(crc)) = (claimed_body_len(here), record::stored_crc(here))
            && len <= RECORD_BYTES_MAX
        {
            seeds_ending_at.insert(q + frame_len(len), crc);
        }
        q += RECORD_ALIGN;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::{Entry, encode};

    #[test]
    fn names_round_trip_and_sort() {
        let n = segment_name(3, 0x1234);
        assert_eq!(n, "0000000000000003-0000000000001234.wal");
        assert_eq!(parse_segment_name(&n), Some((3, 0x1234)));
        assert_eq!(parse_segment_name("0000000000000003.tmp"), None);
        assert!(segment_name(9, 1) < segment_name(10, 0));
    }

    fn segment(n: u64) -> Vec<u8> {
        let h = SegmentHeader {
            seq: 0,
            first_index: 1,
            seed: 0,
        };
        let mut b = h.encode().to_vec();
        let mut seed = 0;
        for i in 1..=n {
            let r = Record::Entry(Entry {
                index: i,
                term: 1,
                data: vec![i as u8; 30],
            });
            seed = encode(&r, seed, &mut b);
        }
        b.resize(8192, 0);
        b
    }

    #[test]
    fn flip_in_middle_is_corrupt_and_in_last_record_is_torn() {
        let b = segment(4);
        let s = scan("s", &b, true).unwrap();
        assert_eq!(s.records.len(), 4);
        let second = s.records[1].0 as usize;
        let last = s.records[3].0 as usize;
        let mut m = b.clone();
        m[second + 12] ^= 1;
        let err = scan("s", &m, true).unwrap_err();
        assert!(matches!(err, WalError::Corrupt { offset, .. } if offset == second as u64));
        // An enlarged length word still finds the next record by its chained seed.
        let mut m = b.clone();
        m[second + 2] ^= 1;
        assert!(scan("s", &m, true).is_err());
        let mut m = b.clone();
        m[last + 12] ^= 1;
        assert_eq!(scan("s", &m, true).unwrap().torn.unwrap().0, last as u64);
        assert!(scan("s", &m, false).is_err());
    }
}
