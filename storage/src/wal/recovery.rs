//! Opening a log: find the segments, verify every record of every one read (all of them, or only
//! those a replay from the durable applied index needs), repair a torn tail, and hand the writer
//! its starting position. Anything a crash cannot explain in a segment read refuses to open
//! with the file and offset; nothing read is ever skipped.

use super::reader::Replay;
use super::record::{Record, SegmentHeader};
use super::segment::{self, Scanned, parse_segment_name, prepared_name, segment_name};
use super::writer::{Inner, Position, SegmentMeta, State, Wal, WalConfig};
use super::{
    BLOCK_BYTES, PREPARED_SUFFIX, READ_CHUNK_BYTES, Result, SEGMENT_BYTES_MIN, WalError,
    align_down, align_up,
};
use crate::io::{LogDirectory, LogFile};
use std::cell::RefCell;
use std::rc::Rc;

/// What opening the log found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// True when the directory held no log and a new one was created.
    pub created: bool,
    /// Segment files in the log.
    pub segments: usize,
    /// Segment files read and verified (all of them, unless opened for a replay from an index).
    pub segments_read: usize,
    /// Records verified.
    pub records: u64,
    /// Last entry index (or snapshot index, if later).
    pub last_index: u64,
    /// The torn write cut off the end of the newest segment, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Preallocated segments that had not joined the log, removed.
    pub removed_prepared: Vec<String>,
}

/// A torn write found and zeroed at the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: String,
    /// Offset of the first bad frame: the log now ends here.
    pub offset: u64,
    /// Bytes from `offset` to the last non-zero byte, now zeroed.
    pub bytes_discarded: u64,
}

/// Reads a whole segment file.
pub(crate) async fn read_segment<F: LogFile>(file: &F) -> Result<Vec<u8>> {
    read_prefix(file, file.size()).await
}

/// Reads the first `len` bytes (a multiple of the block size) of a segment file.
pub(crate) async fn read_prefix<F: LogFile>(file: &F, len: u64) -> Result<Vec<u8>> {
    assert!(len <= file.size() && len.is_multiple_of(BLOCK_BYTES as u64));
    let mut bytes = Vec::with_capacity(len as usize);
    let mut at = 0u64;
    while at < len {
        let n = (READ_CHUNK_BYTES as u64).min(len - at) as usize;
        bytes.extend_from_slice(&file.read_at(at, n).await?);
        at += n as u64;
    }
    Ok(bytes)
}

/// The log's segments named in `names`, sorted, checked to be a gapless run.
pub(crate) fn segments_in(names: &[String]) -> Result<Vec<SegmentMeta>> {
    let mut segs: Vec<SegmentMeta> = names
        .iter()
        .filter_map(|n| {
            parse_segment_name(n).map(|(seq, first_index)| SegmentMeta {
                seq,
                first_index,
                name: n.clone(),
            })
        })
        .collect();
    segs.sort_by_key(|s| s.seq);
    for pair in segs.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(WalError::Corrupt {
                file: pair[1].name.clone(),
                offset: 0,
                reason: format!("segment {} is missing before it", pair[0].seq + 1),
            });
        }
    }
    Ok(segs)
}

/// Checks a scanned segment's header against its name and the segment before it.
pub(crate) fn check_header(
    meta: &SegmentMeta,
    header: &SegmentHeader,
    prev_crc: Option<u32>,
) -> Result<()> {
    let bad = |reason: String| {
        Err(WalError::Corrupt {
            file: meta.name.clone(),
            offset: 0,
            reason,
        })
    };
    if header.seq != meta.seq || header.first_index != meta.first_index {
        return bad(format!(
            "header says segment {} from index {}, the name disagrees",
            header.seq, header.first_index
        ));
    }
    if let Some(prev) = prev_crc
        && prev != header.seed
    {
        return bad(format!(
            "header seed {:#x} does not continue the previous segment's chain {prev:#x}",
            header.seed
        ));
    }
    Ok(())
}

impl<D: LogDirectory> Wal<D> {
    /// Opens the log in `dir`, creating an empty one if there is none. Verifies every record of
    /// every segment; a torn write at the very end is zeroed out and reported, anything else that
    /// fails verification is returned as [`WalError::Corrupt`].
    pub async fn open(dir: D, config: WalConfig) -> Result<(Wal<D>, RecoveryReport)> {
        let (wal, report, _) = open_log(dir, config, None).await?;
        Ok((wal, report))
    }

    /// Opens the log for a restart whose state machine already holds every entry up to `from`
    /// (its durable applied index), and returns what [`Wal::replay`]`(from)` would.
    ///
    /// Only the segments replay needs are read: the newest one that began at or before `from`,
    /// and every one after it. Each of those is verified exactly as [`Wal::open`] verifies it
    /// (the first one's seed is not checked against the chain of the unread segment before it).
    /// Older segments must still be there under gapless names, but their records are not read:
    /// an entry at or above `from` in them was overwritten before the next segment began, and
    /// every segment starts with the hard state and snapshot marker current when it began, so
    /// the hard state, marker and last index come out the same as from a full open.
    pub async fn open_from(
        dir: D,
        config: WalConfig,
        from: u64,
    ) -> Result<(Wal<D>, RecoveryReport, Replay)> {
        open_log(dir, config, Some(from)).await
    }
}

/// Opens the log, reading every segment (`from: None`) or only those that replay from `from`
/// needs, and collects the replay of the segments read at or above `from`.
async fn open_log<D: LogDirectory>(
    dir: D,
    config: WalConfig,
    from: Option<u64>,
) -> Result<(Wal<D>, RecoveryReport, Replay)> {
    config.check()?;
    let mut report = RecoveryReport::default();
    let names = dir.list().await?;
    for name in names.iter().filter(|n| n.ends_with(PREPARED_SUFFIX)) {
        // Never renamed into the log, so nothing in it was acknowledged.
        dir.remove(name).await?;
        report.removed_prepared.push(name.clone());
    }
    let segs = segments_in(&names)?;
    if segs.is_empty() {
        let (wal, report) = create(dir, config, report).await?;
        return Ok((wal, report, Replay::default()));
    }
    // The same rule as `Wal::replay`: start at the newest segment that began at or before `from`.
    let first_read = match from {
        Some(from) => segs
            .iter()
            .rposition(|s| s.first_index <= from)
            .unwrap_or(0),
        None => 0,
    };
    // Entries below this are not collected; a full open collects none.
    let keep_from = from.unwrap_or(u64::MAX);

    let mut replay = Replay::default();
    let mut prev_crc = None;
    let mut last_index = 0u64;
    let mut last: Option<(Rc<D::File>, Vec<u8>, Scanned)> = None;
    for (i, meta) in segs.iter().enumerate() {
        let file = dir.open(&meta.name).await?;
        let size = file.size();
        if size < SEGMENT_BYTES_MIN || !size.is_multiple_of(BLOCK_BYTES as u64) {
            return Err(WalError::Corrupt {
                file: meta.name.clone(),
                offset: size,
                reason: format!(
                    "segment length {size} is not a multiple of {BLOCK_BYTES} of at least {SEGMENT_BYTES_MIN}"
                ),
            });
        }
        if i < first_read {
            continue;
        }
        let bytes = read_segment(&file).await?;
        let mut scanned = segment::scan(&meta.name, &bytes, i + 1 == segs.len())?;
        check_header(meta, &scanned.header, prev_crc)?;
        let records = std::mem::take(&mut scanned.records);
        report.records += records.len() as u64;
        if i == first_read {
            last_index = meta.first_index.saturating_sub(1);
        }
        for (offset, record) in records {
            match record {
                Record::Entry(e) => {
                    if e.index > last_index + 1 {
                        return Err(WalError::Corrupt {
                            file: meta.name.clone(),
                            offset,
                            reason: format!("entry {} leaves a gap after {last_index}", e.index),
                        });
                    }
                    last_index = e.index;
                    // Raft overwrite semantics, as in `Wal::replay`.
                    while replay.entries.last().is_some_and(|l| l.index >= e.index) {
                        replay.entries.pop();
                    }
                    if e.index >= keep_from {
                        replay.entries.push(e);
                    }
                }
                Record::HardState(h) => replay.hard_state = Some(h),
                Record::Snapshot(s) => {
                    last_index = last_index.max(s.index);
                    replay.snapshot = Some(s);
                }
            }
        }
        prev_crc = Some(scanned.last_crc);
        last = Some((Rc::new(file), bytes, scanned));
    }
    let (file, bytes, scanned) = last.expect("at least one segment");
    let meta = segs.last().expect("at least one segment");
    let end = scanned.end;
    if let Some((offset, garbage_end)) = scanned.torn {
        // Zero the torn bytes so the next append, which rewrites from the tail block on,
        // leaves no stale data after the new end.
        let from = align_down(end, BLOCK_BYTES);
        let to = align_up(garbage_end, BLOCK_BYTES).min(file.size());
        let mut buf = bytes[from as usize..end as usize].to_vec();
        buf.resize((to - from) as usize, 0);
        file.write_at(from, &buf).await?;
        file.sync_data().await?;
        let torn = TornTail {
            file: meta.name.clone(),
            offset,
            bytes_discarded: garbage_end - offset,
        };
        eprintln!(
            "wal: torn write at the end of {} at offset {}: {} bytes discarded",
            torn.file, torn.offset, torn.bytes_discarded
        );
        report.torn_tail = Some(torn);
    }
    report.segments = segs.len();
    report.segments_read = segs.len() - first_read;
    report.last_index = last_index;
    let tail = bytes[align_down(end, BLOCK_BYTES) as usize..end as usize].to_vec();
    drop(bytes);
    let state = State::new(Position {
        segments: segs,
        current: file,
        written_end: end,
        tail,
        last_crc: scanned.last_crc,
        last_index,
        hard_state: replay.hard_state,
        snapshot: replay.snapshot,
    });
    Ok((wal_from(dir, config, state), report, replay))
}

fn wal_from<D: LogDirectory>(dir: D, config: WalConfig, state: State<D::File>) -> Wal<D> {
    Wal {
        inner: Rc::new(Inner {
            dir,
            config,
            state: RefCell::new(state),
        }),
    }
}

/// Creates segment 0: written and synced under its temporary name, then renamed in and the
/// directory synced, so a crash leaves either no log or a valid empty one.
async fn create<D: LogDirectory>(
    dir: D,
    config: WalConfig,
    mut report: RecoveryReport,
) -> Result<(Wal<D>, RecoveryReport)> {
    let header = SegmentHeader {
        seq: 0,
        first_index: 0,
        seed: 0,
    };
    let tmp = prepared_name(0);
    let file = dir.create_zeroed(&tmp, config.segment_bytes).await?;
    let mut block = vec![0u8; BLOCK_BYTES];
    let head = header.encode();
    block[..head.len()].copy_from_slice(&head);
    file.write_at(0, &block).await?;
    file.sync_data().await?;
    let name = segment_name(0, 0);
    dir.rename(&tmp, &name).await?;
    dir.sync().await?;
    report.created = true;
    report.segments = 1;
    report.segments_read = 1;
    let state = State::new(Position {
        segments: vec![SegmentMeta {
            seq: 0,
            first_index: 0,
            name,
        }],
        current: Rc::new(file),
        written_end: head.len() as u64,
        tail: head.to_vec(),
        last_crc: 0,
        last_index: 0,
        hard_state: None,
        snapshot: None,
    });
    Ok((wal_from(dir, config, state), report))
}
