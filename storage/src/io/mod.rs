//! The I/O boundary of the storage engines.
//!
//! A [`BlockDevice`] is one random-access file: positioned reads and writes, `fdatasync`, resizing,
//! and a read-only memory map. The B+tree sees nothing else of the operating system.
//!
//! Two implementations:
//! - [`FileDevice`]: a real file (`pwrite`/`pread`, `fdatasync`, `memmap2` for the map).
//! - [`MemoryDevice`]: an in-memory file that models what a crash can do to unsynced data and lets
//!   tests inject faults. See its module for the crash model.

mod file;
mod log;
mod log_glommio;
mod log_memory;
mod memory;

pub use file::FileDevice;
pub use log::{LOG_BLOCK_BYTES, LogDirectory, LogFile};
pub use log_glommio::{GlommioDirectory, GlommioLogFile};
pub use log_memory::{DirCrashImage, MemoryDirectory, MemoryLogFile};
pub use memory::{CrashImage, FaultPlan, MemoryDevice};

use std::io;
use std::sync::Arc;

/// A read-only view of a device's bytes, as returned by [`BlockDevice::map`].
///
/// The view stays valid for as long as the `Arc` lives, even after the device grows and hands out
/// newer maps; this is what lets readers keep their snapshot while the writer extends the file.
pub trait Mapping: Send + Sync {
    fn bytes(&self) -> &[u8];
}

/// One random-access file. All methods take `&self`: the device does its own locking so one writer
/// and many readers can share it.
///
/// Contract the engines rely on:
/// - `write_all_at` is not durable until a later `sync_data` returns `Ok`.
/// - After `sync_data` fails, the device must be treated as poisoned by its user: the kernel may
///   have dropped the dirty pages, so retrying the sync proves nothing.
/// - A map shows at least every byte written before `map` was called, within the length it had
///   then. It may or may not show later writes; the engines never read through a map a page that
///   was written after the map was taken.
pub trait BlockDevice: Send + Sync + 'static {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Grow (zero-filled) or shrink the device.
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: every write before this call is durable once it returns `Ok`.
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of the whole device as it is now.
    fn map(&self) -> io::Result<Arc<dyn Mapping>>;
    /// Drops the pages of the newest map from this process's memory: a later read maps them
    /// again (from the page cache, or the disk if the kernel evicted them meanwhile) with the
    /// same bytes. For after a one-off scan of the whole file, whose pages would otherwise stay
    /// resident in the process although no more of them are needed than of any other page.
    fn release_mapped_pages(&self) -> io::Result<()> {
        Ok(())
    }
    /// A name for error messages (the file path for real files).
    fn name(&self) -> String;
}

/// The error every injected fault returns, so tests can tell injected failures from real bugs.
pub fn injected_fault(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}
