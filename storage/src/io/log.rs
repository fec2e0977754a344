//! The write-ahead log's I/O boundary: a [`LogDirectory`] of [`LogFile`]s, asynchronous because the
//! log is written from one glommio core through io_uring.
//!
//! The traits are generic, not `dyn`, and their futures are not `Send`: the log lives on one core
//! and never crosses threads. Two implementations:
//! - [`GlommioDirectory`]: O_DIRECT DMA files through glommio's io_uring reactor.
//! - [`MemoryDirectory`]: files held in [`MemoryDevice`](super::MemoryDevice)s plus a model of
//!   directory entries, for crash and fault tests.
//!
//! Contract the log relies on:
//! - Writes are whole blocks: offset and length are multiples of [`LOG_BLOCK_BYTES`] (O_DIRECT).
//! - A write is not durable until a later `sync_data` of that file returns `Ok`. A failed
//!   `sync_data` may have dropped the written data; the caller must treat the file as poisoned.
//! - A created, renamed or removed name is durable only after [`LogDirectory::sync`] returns `Ok`.
//! - Files never change length after creation: the log preallocates and overwrites.

// The log is single-core by design, so the futures of these traits deliberately carry no `Send`
// bound; the lint that warns about that is for traits meant for work-stealing executors.
#![allow(async_fn_in_trait)]

use std::io;

/// The unit of every log write, and the alignment of its offset: O_DIRECT needs the logical block
/// size of the device (512 or 4096), and 4 KiB covers both.
pub const LOG_BLOCK_BYTES: usize = 4096;

/// A directory holding the log's segment files.
pub trait LogDirectory {
    type File: LogFile;

    /// Names of the regular files in the directory, in no particular order.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// Creates `name` (which must not exist) with `len` zero bytes that are written out and
    /// synced, so that later writes into it overwrite allocated blocks. The name itself is durable
    /// only after [`LogDirectory::sync`].
    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    async fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Renames `from` to `to`, replacing `to` if it exists. An open handle stays valid.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    async fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes every create, rename and remove so far durable (fsync of the directory).
    async fn sync(&self) -> io::Result<()>;
}

/// One preallocated log file.
pub trait LogFile {
    /// Length in bytes; fixed at creation.
    fn size(&self) -> u64;
    /// Reads `len` bytes at `offset`; both must be multiples of [`LOG_BLOCK_BYTES`].
    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Writes `data` at `offset`; both must be multiples of [`LOG_BLOCK_BYTES`] and the range must
    /// lie within the file.
    async fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`: every write before this call is durable once it returns `Ok`.
    async fn sync_data(&self) -> io::Result<()>;
    /// A name for error messages.
    fn name(&self) -> String;
}

/// Panics unless `offset` and `len` are block aligned: a misaligned O_DIRECT write fails with
/// `EINVAL` on a real disk, so the in-memory files refuse it as loudly.
pub(crate) fn assert_block_aligned(offset: u64, len: usize) {
    assert!(
        offset.is_multiple_of(LOG_BLOCK_BYTES as u64) && len.is_multiple_of(LOG_BLOCK_BYTES),
        "log I/O must be block aligned: offset {offset}, len {len}"
    );
}
