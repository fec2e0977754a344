//! The disk's raw fdatasync floor: the best a durable write can do here.
//!
//! A server that syncs every commit cannot beat one 4 KiB write plus
//! fdatasync; measuring that next to the servers' data makes their write
//! latencies readable. The file is preallocated, zero-filled and synced first
//! so the loop measures data syncs, not file growth and metadata updates.
//!
//! The writes bypass the page cache (O_DIRECT), as Keelson's WAL does, so
//! the loop times the same kind of write and sync the WAL issues. On a shared
//! virtual disk the floor moves with other tenants' I/O (from 0.1 ms to
//! several ms within minutes), so it is only meaningful measured in the same
//! run as the servers, which is what `compare` does. Filesystems that refuse
//! O_DIRECT (tmpfs) fall back to buffered writes, and the result says which
//! was used.

use std::alloc::{self, Layout};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::hist::nearest_rank;

/// One page: the unit a WAL append rounds up to.
const BLOCK: usize = 4096;
/// Blocks in the preallocated file; writes cycle through them.
const FILE_BLOCKS: u64 = 256;
/// Bound on the whole measurement, however slow the disk.
const MAX_TIME: Duration = Duration::from_secs(30);

/// p50 and p99 of write + fdatasync, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FsyncFloor {
    pub samples: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Whether the writes bypassed the page cache (O_DIRECT).
    pub direct: bool,
}

impl FsyncFloor {
    /// How the writes reached the disk, for reports.
    pub fn mode(&self) -> &'static str {
        if self.direct { "O_DIRECT" } else { "buffered" }
    }
}

/// One block in memory aligned to its size, as O_DIRECT requires.
struct AlignedBlock {
    ptr: *mut u8,
}

impl AlignedBlock {
    fn filled(byte: u8) -> AlignedBlock {
        let layout = Self::layout();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        if ptr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: `ptr` points to BLOCK freshly allocated bytes.
        unsafe { ptr.write_bytes(byte, BLOCK) };
        AlignedBlock { ptr }
    }

    fn layout() -> Layout {
        Layout::from_size_align(BLOCK, BLOCK).expect("valid block layout")
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` holds BLOCK initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, BLOCK) }
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `filled` with the same layout.
        unsafe { alloc::dealloc(self.ptr, Self::layout()) };
    }
}

/// Measures `samples` 4 KiB write + fdatasync pairs in a scratch file in
/// `dir`, which is removed afterwards.
pub fn fsync_floor(dir: &Path, samples: usize) -> std::io::Result<FsyncFloor> {
    let path = dir.join("fsync-floor.tmp");
    let result = measure(&path, samples);
    let _ = fs::remove_file(&path);
    result
}

fn measure(path: &Path, samples: usize) -> io::Result<FsyncFloor> {
    let mut file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; BLOCK];
    for _ in 0..FILE_BLOCKS {
        file.write_all(&zeros)?;
    }
    file.sync_all()?;
    drop(file);

    let (file, direct) = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(file) => (file, true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            (OpenOptions::new().write(true).open(path)?, false)
        }
        Err(e) => return Err(e),
    };
    let block = AlignedBlock::filled(0xA5);
    let block = block.bytes();
    let mut lat = Vec::with_capacity(samples);
    let started = Instant::now();
    for i in 0..samples as u64 {
        if started.elapsed() > MAX_TIME {
            break;
        }
        let t0 = Instant::now();
        file.write_all_at(block, (i % FILE_BLOCKS) * BLOCK as u64)?;
        // sync_data is fdatasync(2) on Linux.
        file.sync_data()?;
        lat.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(FsyncFloor {
        samples: lat.len(),
        p50_us: nearest_rank(&mut lat, 0.50).unwrap_or(0),
        p99_us: nearest_rank(&mut lat, 0.99).unwrap_or(0),
        direct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let floor = fsync_floor(dir.path(), 20).unwrap();
        assert_eq!(floor.samples, 20);
        assert!(
            floor.p50_us > 0 && floor.p50_us <= floor.p99_us,
            "{floor:?}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
