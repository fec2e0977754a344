//! Record and segment-header framing: bytes in, bytes out, no I/O.
//!
//! A frame is `len: u32 | crc: u32 | body (len bytes) | zero padding to 8`, little-endian. The
//! body is a type byte and the record's fields. `crc` is CRC-32 (crc32fast) seeded with the
//! previous record's `crc` over the length word and the body, so a record verifies only right
//! after the record it followed when written: a stale or replayed record breaks the chain.

use super::{
    FORMAT_VERSION, FRAME_HEADER_BYTES, RECORD_ALIGN, RECORD_BYTES_MAX, RECORD_TYPE_ENTRY,
    RECORD_TYPE_HARD_STATE, RECORD_TYPE_SNAPSHOT, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, align_up,
};

/// One Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// Raft's persistent state besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// A snapshot was taken (or installed) at this index and term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMarker {
    pub index: u64,
    pub term: u64,
}

/// What one record holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Entry(Entry),
    HardState(HardState),
    Snapshot(SnapshotMarker),
}

impl Record {
    /// Length of the encoded body.
    pub fn body_len(&self) -> usize {
        match self {
            Record::Entry(e) => 1 + 16 + e.data.len(),
            Record::HardState(_) => 1 + 24,
            Record::Snapshot(_) => 1 + 16,
        }
    }

    /// Bytes the record takes on disk, frame and padding included.
    pub fn frame_len(&self) -> usize {
        frame_len(self.body_len())
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Record::Entry(e) => {
                out.push(RECORD_TYPE_ENTRY);
                out.extend_from_slice(&e.index.to_le_bytes());
                out.extend_from_slice(&e.term.to_le_bytes());
                out.extend_from_slice(&e.data);
            }
            Record::HardState(h) => {
                out.push(RECORD_TYPE_HARD_STATE);
                out.extend_from_slice(&h.term.to_le_bytes());
                out.extend_from_slice(&h.vote.to_le_bytes());
                out.extend_from_slice(&h.commit.to_le_bytes());
            }
            Record::Snapshot(s) => {
                out.push(RECORD_TYPE_SNAPSHOT);
                out.extend_from_slice(&s.index.to_le_bytes());
                out.extend_from_slice(&s.term.to_le_bytes());
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Record, String> {
        let (&kind, fields) = body.split_first().ok_or("empty body")?;
        let u64_at = |i: usize| u64::from_le_bytes(fields[i * 8..i * 8 + 8].try_into().expect("8"));
        let want = |n: usize, exact: bool| {
            let ok = if exact {
                fields.len() == n
            } else {
                fields.len() >= n
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "record type {kind} has {} field bytes",
                    fields.len()
                ))
            }
        };
        match kind {
            RECORD_TYPE_ENTRY => {
                want(16, false)?;
                Ok(Record::Entry(Entry {
                    index: u64_at(0),
                    term: u64_at(1),
                    data: fields[16..].to_vec(),
                }))
            }
            RECORD_TYPE_HARD_STATE => {
                want(24, true)?;
                Ok(Record::HardState(HardState {
                    term: u64_at(0),
                    vote: u64_at(1),
                    commit: u64_at(2),
                }))
            }
            RECORD_TYPE_SNAPSHOT => {
                want(16, true)?;
                Ok(Record::Snapshot(SnapshotMarker {
                    index: u64_at(0),
                    term: u64_at(1),
                }))
            }
            other => Err(format!("unknown record type {other}")),
        }
    }
}

/// Bytes a frame with a body of `body_len` takes.
pub fn frame_len(body_len: usize) -> usize {
    align_up((FRAME_HEADER_BYTES + body_len) as u64, RECORD_ALIGN) as usize
}

fn chained_crc(seed: u32, len_word: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(len_word);
    h.update(body);
    h.finalize()
}

/// Appends `record`'s frame to `out` and returns its CRC, the seed of the next record.
pub fn encode(record: &Record, seed: u32, out: &mut Vec<u8>) -> u32 {
    let body_len = record.body_len();
    assert!(
        body_len <= RECORD_BYTES_MAX,
        "record body of {body_len} bytes"
    );
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    record.encode_body(out);
    debug_assert_eq!(out.len() - start, FRAME_HEADER_BYTES + body_len);
    let crc = chained_crc(
        seed,
        &out[start..start + 4],
        &out[start + FRAME_HEADER_BYTES..],
    );
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + frame_len(body_len), 0);
    crc
}

/// Why a frame did not decode.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length word is zero: no record was written here.
    Empty,
    /// The frame is malformed or fails its checksum; the string says how.
    Bad(String),
}

/// A frame that verified.
#[derive(Debug)]
pub struct Decoded {
    pub record: Record,
    pub crc: u32,
    pub frame_len: usize,
}

/// The body length a frame at the start of `bytes` claims, if its length word is non-zero.
pub fn claimed_body_len(bytes: &[u8]) -> Option<usize> {
    let word = bytes.get(..4)?;
    let len = u32::from_le_bytes(word.try_into().expect("4")) as usize;
    (len != 0).then_some(len)
}

/// The stored CRC of the frame at the start of `bytes`.
pub fn stored_crc(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(4..8)?.try_into().expect("4")))
}

/// Decodes and verifies the frame at the start of `bytes` (which runs to the end of the segment),
/// given the previous record's CRC.
pub fn decode(bytes: &[u8], seed: u32) -> Result<Decoded, FrameError> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Bad("frame header past end of segment".into()));
    }
    let body_len = claimed_body_len(bytes).ok_or(FrameError::Empty)?;
    if body_len > RECORD_BYTES_MAX {
        return Err(FrameError::Bad(format!("length {body_len} over the limit")));
    }
    let flen = frame_len(body_len);
    if flen > bytes.len() {
        return Err(FrameError::Bad(format!(
            "length {body_len} runs past end of segment"
        )));
    }
    let body = &bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len];
    let crc = stored_crc(bytes).expect("checked");
    if chained_crc(seed, &bytes[..4], body) != crc {
        return Err(FrameError::Bad("checksum mismatch".into()));
    }
    if bytes[FRAME_HEADER_BYTES + body_len..flen]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(FrameError::Bad("non-zero padding".into()));
    }
    let record = Record::decode_body(body).map_err(FrameError::Bad)?;
    Ok(Decoded {
        record,
        crc,
        frame_len: flen,
    })
}

/// The header at offset 0 of every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Position of the segment in the log, from 0 and without gaps.
    pub seq: u64,
    /// Index the next entry had when the segment was started (last index + 1).
    pub first_index: u64,
    /// CRC of the last record before this segment (0 for the first): the seed of its first record.
    pub seed: u32,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 12..16 reserved, zero.
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_index.to_le_bytes());
        b[32..36].copy_from_slice(&self.seed.to_le_bytes());
        let crc = crc32fast::hash(&b[..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, String> {
        let b = b.get(..SEGMENT_HEADER_BYTES).ok_or("segment too short")?;
        if b[0..8] != SEGMENT_MAGIC {
            return Err("bad segment magic".into());
        }
        let crc = u32::from_le_bytes(b[36..40].try_into().expect("4"));
        if crc32fast::hash(&b[..36]) != crc {
            return Err("segment header checksum mismatch".into());
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4"));
        if version != FORMAT_VERSION {
            return Err(format!("unsupported format version {version}"));
        }
        if b[12..16] != [0; 4] {
            return Err("non-zero reserved header bytes".into());
        }
        Ok(SegmentHeader {
            seq: u64::from_le_bytes(b[16..24].try_into().expect("8")),
            first_index: u64::from_le_bytes(b[24..32].try_into().expect("8")),
            seed: u32::from_le_bytes(b[32..36].try_into().expect("4")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        vec![
            Record::Entry(Entry {
                index: 7,
                term: 2,
                data: b"hello".to_vec(),
            }),
            Record::Entry(Entry {
                index: 8,
                term: 2,
                data: Vec::new(),
            }),
            Record::HardState(HardState {
                term: 3,
                vote: 1,
                commit: 8,
            }),
            Record::Snapshot(SnapshotMarker { index: 5, term: 1 }),
        ]
    }

    #[test]
    fn records_round_trip_and_chain() {
        let mut buf = Vec::new();
        let mut seed = 0xDEAD_BEEF;
        let mut crcs = vec![seed];
        for r in samples() {
            seed = encode(&r, seed, &mut buf);
            crcs.push(seed);
            assert_eq!(buf.len() % RECORD_ALIGN, 0);
        }
        let mut at = 0;
        for (i, r) in samples().into_iter().enumerate() {
            let d = decode(&buf[at..], crcs[i]).unwrap();
            assert_eq!(d.record, r);
            assert_eq!(d.crc, crcs[i + 1]);
            // The same bytes under any other seed do not verify: records cannot move.
            assert!(decode(&buf[at..], crcs[i] ^ 1).is_err());
            at += d.frame_len;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn zeros_are_empty_and_header_round_trips() {
        assert_eq!(decode(&[0; 64], 0).unwrap_err(), FrameError::Empty);
        let h = SegmentHeader {
            seq: 3,
            first_index: 99,
            seed: 42,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        b[20] ^= 4;
        assert!(SegmentHeader::decode(&b).is_err());
    }
}
