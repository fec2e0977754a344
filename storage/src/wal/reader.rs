//! Replay: the log's entries from any index, with Raft overwrite semantics, plus the newest hard
//! state and snapshot marker. Every record is verified again as it is read.

use super::Result;
use super::WalError;
use super::record::{Entry, HardState, Record, SnapshotMarker};
use super::recovery::{check_header, read_prefix, read_segment};
use super::segment;
use super::writer::Wal;
use super::{BLOCK_BYTES, align_up};
use crate::io::LogDirectory;
use crate::io::LogFile;

/// The log as replay sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Entries with index at or above the requested one, in index order. An entry appended at an
    /// index that already existed replaced it and every entry after it, as in etcd's WAL.
    pub entries: Vec<Entry>,
    /// The newest hard state in the log.
    pub hard_state: Option<HardState>,
    /// The newest snapshot marker in the log.
    pub snapshot: Option<SnapshotMarker>,
}

impl<D: LogDirectory> Wal<D> {
    /// Reads back every durable entry with index `>= from` (appends still in flight are not
    /// included). Safe to call while appends run: it reads only up to the durable end.
    ///
    /// Reading starts at the newest segment that began at or before `from`: an entry at or above
    /// `from` in an older segment was necessarily overwritten before that segment was started,
    /// and every segment repeats the hard state and snapshot marker current when it began.
    pub async fn replay(&self, from: u64) -> Result<Replay> {
        let inner = &*self.inner;
        let (segs, durable_end) = {
            let state = inner.state.borrow();
            let start = state
                .segments
                .iter()
                .rposition(|s| s.first_index <= from)
                .unwrap_or(0);
            (state.segments[start..].to_vec(), state.written_end)
        };
        let mut out = Replay::default();
        let mut prev_crc = None;
        let mut last_index = None;
        for (i, meta) in segs.iter().enumerate() {
            let file = inner.dir.open(&meta.name).await?;
            let newest = i + 1 == segs.len();
            let bytes = if newest {
                // Only the durable part: past it may be a write in flight, and the rest of a
                // preallocated segment is zeros not worth reading.
                let len = align_up(durable_end, BLOCK_BYTES).min(file.size());
                let mut bytes = read_prefix(&file, len).await?;
                bytes[durable_end as usize..].fill(0);
                bytes
            } else {
                read_segment(&file).await?
            };
            let scanned = segment::scan(&meta.name, &bytes, false)?;
            check_header(meta, &scanned.header, prev_crc)?;
            prev_crc = Some(scanned.last_crc);
            let mut last = last_index.unwrap_or(meta.first_index.saturating_sub(1));
            for (offset, record) in scanned.records {
                match record {
                    Record::Entry(e) => {
                        if e.index > last + 1 {
                            return Err(WalError::Corrupt {
                                file: meta.name.clone(),
                                offset,
                                reason: format!("entry {} leaves a gap after {last}", e.index),
                            });
                        }
                        last = e.index;
                        while out.entries.last().is_some_and(|l| l.index >= e.index) {
                            out.entries.pop();
                        }
                        if e.index >= from {
                            out.entries.push(e);
                        }
                    }
                    Record::HardState(h) => out.hard_state = Some(h),
                    Record::Snapshot(s) => {
                        last = last.max(s.index);
                        out.snapshot = Some(s);
                    }
                }
            }
            last_index = Some(last);
        }
        Ok(out)
    }
}
