//! The write-ahead log: Raft entries, hard state and snapshot markers, made durable by group
//! commit through io_uring before the node acts on them. The on-disk format and the crash
//! analysis are in `docs/STORAGE-WAL.md`.
//!
//! - [`record`]: record and segment-header framing (bytes only, no I/O).
//! - [`segment`]: segment names and scanning one segment's bytes into verified records.
//! - [`recovery`]: opening a log directory, verifying every record, repairing a torn tail.
//! - [`writer`]: the [`Wal`] handle, group commit, rotation, release of old segments.
//! - [`reader`]: replay from any index with Raft overwrite semantics.
//!
//! All limits are named here.
//!
//! How the node core uses it, on its glommio executor (tests use [`MemoryDirectory`] and any
//! single-threaded executor the same way):
//!
//! ```
//! # use keelson_storage::io::MemoryDirectory;
//! # use keelson_storage::wal::*;
//! # futures::executor::block_on(async {
//! # let dir = MemoryDirectory::new();
//! // let dir = GlommioDirectory::open(data_dir.join("member/wal")).await?;
//! let (wal, report) = Wal::open(dir, WalConfig::default()).await?;
//! // glommio::spawn_local(wal.clone().prepare_segments()).detach();
//! let state = wal.replay(0).await?; // entries, newest hard state and snapshot marker
//! // Each Raft Ready: entries and hard state in one call; resolves once durable.
//! wal.append(&[
//!     Record::Entry(Entry { index: 1, term: 1, data: b"put".to_vec() }),
//!     Record::HardState(HardState { term: 1, vote: 1, commit: 1 }),
//! ])
//! .await?;
//! // After the state machine is snapshotted at index 1:
//! wal.append(&[Record::Snapshot(SnapshotMarker { index: 1, term: 1 })]).await?;
//! wal.release(1).await?;
//! # Ok::<(), WalError>(())
//! # }).unwrap();
//! ```
//!
//! [`MemoryDirectory`]: crate::io::MemoryDirectory

pub mod reader;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod writer;

#[cfg(test)]
mod spec_test;

pub use reader::Replay;
pub use record::{Entry, HardState, Record, SnapshotMarker};
pub use recovery::{RecoveryReport, TornTail};
pub use writer::{Wal, WalConfig, WalStats};

use std::fmt;
use std::io;

/// Unit and alignment of every write: O_DIRECT needs block-aligned buffers and offsets.
pub const BLOCK_BYTES: usize = crate::io::LOG_BLOCK_BYTES;
/// Default segment size, as etcd's.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Smallest segment allowed: the header block plus room for records.
pub const SEGMENT_BYTES_MIN: u64 = 2 * BLOCK_BYTES as u64;
/// Default number of segments kept after releasing, as etcd's `--max-wals`.
pub const SEGMENTS_KEPT_DEFAULT: usize = 5;
/// Records and segment headers start at multiples of this, so a record's length word never
/// straddles a sector and cannot be torn by a sector-atomic disk.
pub const RECORD_ALIGN: usize = 8;
/// Bytes of the frame header: body length (u32) and chained CRC (u32).
pub const FRAME_HEADER_BYTES: usize = 8;
/// Largest record body (type byte and fields) accepted; also bounded by the segment size.
pub const RECORD_BYTES_MAX: usize = 16 << 20;
/// Bytes of the segment header at offset 0 of every segment.
pub const SEGMENT_HEADER_BYTES: usize = 40;
/// First eight bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"KEELWAL\0";
/// Format version in the segment header.
pub const FORMAT_VERSION: u32 = 1;
/// Record type codes.
pub const RECORD_TYPE_ENTRY: u8 = 1;
pub const RECORD_TYPE_HARD_STATE: u8 = 2;
pub const RECORD_TYPE_SNAPSHOT: u8 = 3;
/// Extension of segment files; preallocated segments not yet in the log end in `.tmp`.
pub const SEGMENT_SUFFIX: &str = ".wal";
pub const PREPARED_SUFFIX: &str = ".tmp";
/// Bytes read per I/O when scanning a segment.
pub const READ_CHUNK_BYTES: usize = 1 << 20;

/// Everything that can go wrong in the log.
#[derive(Debug)]
pub enum WalError {
    /// An I/O call failed.
    Io(io::Error),
    /// A record or header failed verification where a crash cannot explain it. The log refuses
    /// to open rather than skip it.
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    /// An earlier sync failed (or a flush was abandoned), so nothing more is acknowledged.
    Poisoned(String),
    /// The caller broke a rule of the API (record too large, index gap, bad config).
    Invalid(String),
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io(e) => write!(f, "wal I/O error: {e}"),
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(f, "wal corrupt in {file} at offset {offset}: {reason}"),
            WalError::Poisoned(why) => write!(f, "wal poisoned: {why}"),
            WalError::Invalid(why) => write!(f, "invalid wal use: {why}"),
        }
    }
}

impl std::error::Error for WalError {}

impl From<io::Error> for WalError {
    fn from(e: io::Error) -> WalError {
        WalError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, WalError>;

/// Rounds `n` up to a multiple of `to` (a power of two).
pub(crate) fn align_up(n: u64, to: usize) -> u64 {
    debug_assert!(to.is_power_of_two());
    (n + to as u64 - 1) & !(to as u64 - 1)
}

/// Rounds `n` down to a multiple of `to` (a power of two).
pub(crate) fn align_down(n: u64, to: usize) -> u64 {
    debug_assert!(to.is_power_of_two());
    n & !(to as u64 - 1)
}
