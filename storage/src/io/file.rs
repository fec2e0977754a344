//! [`FileDevice`]: a [`BlockDevice`] backed by a real file.
//!
//! Writes go through `pwrite` from buffers the engine owns, never through the map, so a stray
//! store into mapped memory can never corrupt the file. The map is shared (`MAP_SHARED`, read-only)
//! and is replaced only when the file has grown; readers holding the old one keep it alive.

use super::{BlockDevice, Mapping};
use memmap2::{Mmap, MmapOptions, UncheckedAdvice};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct FileDevice {
    file: File,
    path: PathBuf,
    /// The newest map and the file length it covers; reused until the file grows.
    map: Mutex<Option<(u64, Arc<FileMapping>)>>,
}

struct FileMapping {
    /// `None` for an empty file: a zero-length mmap is an error on Linux.
    mmap: Option<Mmap>,
}

impl Mapping for FileMapping {
    fn bytes(&self) -> &[u8] {
        self.mmap.as_deref().unwrap_or(&[])
    }
}

impl FileDevice {
    /// Open `path` for reading and writing, creating it if `create` is set.
    pub fn open(path: &Path, create: bool) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(FileDevice {
            file,
            path: path.to_path_buf(),
            map: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlockDevice for FileDevice {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn map(&self) -> io::Result<Arc<dyn Mapping>> {
        let len = self.len()?;
        let mut cached = self.map.lock();
        if let Some((mapped_len, mapping)) = cached.as_ref()
            && *mapped_len == len
        {
            return Ok(mapping.clone());
        }
        let mmap = if len == 0 {
            None
        } else {
            let map_len = usize::try_from(len).map_err(io::Error::other)?;
            // SAFETY: the map is read-only. The engines never shrink the file below a length a
            // live map covers (they only truncate while holding no readers, at open), and they
            // never rewrite a page a live reader can reach, so the mapped bytes a reader looks at
            // do not change under it.
            Some(unsafe { MmapOptions::new().len(map_len).map(&self.file)? })
        };
        let mapping = Arc::new(FileMapping { mmap });
        *cached = Some((len, mapping.clone()));
        Ok(mapping)
    }

    fn release_mapped_pages(&self) -> io::Result<()> {
        let cached = self.map.lock();
        if let Some((_, mapping)) = cached.as_ref()
            && let Some(mmap) = &mapping.mmap
        {
            // SAFETY: MADV_DONTNEED on a shared file map only unmaps its pages; the next access
            // maps the file's page again. Nothing writes through this map and no page a reader
            // can reach is rewritten (see `map`), so every reader sees the same bytes after.
            unsafe { mmap.unchecked_advise(UncheckedAdvice::DontNeed)? };
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of the mapping that starts at `start`, from `/proc/self/smaps`.
    fn resident_bytes(start: *const u8) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read smaps");
        let wanted = format!("{:x}-", start as usize);
        let mut lines = smaps.lines().skip_while(|line| !line.starts_with(&wanted));
        lines.next().expect("the mapping is listed");
        let rss = lines
            .find_map(|line| line.strip_prefix("Rss:"))
            .expect("an Rss line");
        let kib: u64 = rss
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("kB");
        kib * 1024
    }

    #[test]
    fn released_pages_leave_memory_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = FileDevice::open(&dir.path().join("f"), true).expect("open");
        let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
        device.write_all_at(&data, 0).expect("write");
        let map = device.map().expect("map");
        let sum: u64 = map
            .bytes()
            .iter()
            .step_by(4096)
            .map(|&b| u64::from(b))
            .sum();
        assert!(sum > 0);
        let before = resident_bytes(map.bytes().as_ptr());
        assert!(before >= 4 << 20, "every page was read: {before}");
        device.release_mapped_pages().expect("release");
        let after = resident_bytes(map.bytes().as_ptr());
        assert!(after < 1 << 20, "released pages stay resident: {after}");
        assert_eq!(map.bytes(), &data[..], "the bytes read back unchanged");
    }
}
