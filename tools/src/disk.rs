//! The disk's raw fdatasync floor: the best a durable write can do here.
//!
//! A server that syncs every commit cannot beat one 4 KiB write plus
//! fdatasync; measuring that next to the servers' data makes their write
//! latencies readable. The file is preallocated and zero-filled first so the
//! loop measures data syncs, not file growth and metadata updates.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
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
}

/// Measures `samples` 4 KiB write + fdatasync pairs in a scratch file in
/// `dir`, which is removed afterwards.
pub fn fsync_floor(dir: &Path, samples: usize) -> std::io::Result<FsyncFloor> {
    let path = dir.join("fsync-floor.tmp");
    let result = measure(&path, samples);
    let _ = fs::remove_file(&path);
    result
}

fn measure(path: &Path, samples: usize) -> std::io::Result<FsyncFloor> {
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

    let block = vec![0xA5u8; BLOCK];
    let mut lat = Vec::with_capacity(samples);
    let started = Instant::now();
    for i in 0..samples as u64 {
        if started.elapsed() > MAX_TIME {
            break;
        }
        let t0 = Instant::now();
        file.write_all_at(&block, (i % FILE_BLOCKS) * BLOCK as u64)?;
        // sync_data is fdatasync(2) on Linux.
        file.sync_data()?;
        lat.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(FsyncFloor {
        samples: lat.len(),
        p50_us: nearest_rank(&mut lat, 0.50).unwrap_or(0),
        p99_us: nearest_rank(&mut lat, 0.99).unwrap_or(0),
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
