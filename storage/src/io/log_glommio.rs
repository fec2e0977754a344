//! [`GlommioDirectory`]: the real [`LogDirectory`], O_DIRECT DMA files driven by glommio's
//! io_uring reactor. Must be used from inside a glommio `LocalExecutor`.
//!
//! Writes copy the caller's bytes into a DMA buffer from glommio's aligned pool; at log rates the
//! copy is noise next to the fdatasync, and it keeps the trait free of glommio types.

use super::log::{LOG_BLOCK_BYTES, LogDirectory, LogFile, assert_block_aligned};
use glommio::io::{DmaFile, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Zero-filling writes are issued in chunks of this size.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

/// A directory of DMA files.
pub struct GlommioDirectory {
    path: PathBuf,
}

impl GlommioDirectory {
    /// Opens (creating if needed) the directory at `path`.
    ///
    /// glommio decides once per block device whether its io_uring poll ring works, by reading the
    /// first block of the first DMA file opened there; an empty file answers that read with
    /// end-of-file, which it takes for "supported", and every later read then fails with
    /// `EOPNOTSUPP` on devices without poll queues. So before anything else this opens a one-block
    /// probe file, making the decision on a read that really reaches the device.
    pub async fn open(path: &Path) -> io::Result<GlommioDirectory> {
        std::fs::create_dir_all(path)?;
        let probe = path.join(".iopoll-probe");
        std::fs::write(&probe, vec![0u8; LOG_BLOCK_BYTES])?;
        let file = OpenOptions::new()
            .read(true)
            .dma_open(&probe)
            .await
            .map_err(io::Error::from)?;
        file.close().await.map_err(io::Error::from)?;
        std::fs::remove_file(&probe)?;
        Ok(GlommioDirectory {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LogDirectory for GlommioDirectory {
    type File = GlommioLogFile;

    async fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<GlommioLogFile> {
        assert_block_aligned(len, 0);
        let path = self.path.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .dma_open(&path)
            .await
            .map_err(io::Error::from)?;
        // Real zeros, not fallocate: an fdatasync after overwriting written blocks is about half
        // the cost of one after writing unwritten (or appended) blocks, which also updates the
        // extent tree or the file size.
        let mut at = 0u64;
        while at < len {
            let n = ZERO_FILL_CHUNK_BYTES.min((len - at) as usize);
            let mut buf = file.alloc_dma_buffer(n);
            buf.as_bytes_mut().fill(0);
            let written = file.write_at(buf, at).await.map_err(io::Error::from)?;
            if written != n {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short write zero-filling {}", path.display()),
                ));
            }
            at += n as u64;
        }
        file.fdatasync().await.map_err(io::Error::from)?;
        Ok(GlommioLogFile {
            file,
            len,
            name: name.to_string(),
        })
    }

    async fn open(&self, name: &str) -> io::Result<GlommioLogFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(self.path.join(name))
            .await
            .map_err(io::Error::from)?;
        let len = file.file_size().await.map_err(io::Error::from)?;
        Ok(GlommioLogFile {
            file,
            len,
            name: name.to_string(),
        })
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path.join(from), self.path.join(to))
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path.join(name))
    }

    async fn sync(&self) -> io::Result<()> {
        let dir = glommio::io::Directory::open(&self.path)
            .await
            .map_err(io::Error::from)?;
        dir.sync().await.map_err(io::Error::from)?;
        dir.close().await.map_err(io::Error::from)
    }
}

/// One DMA file of a [`GlommioDirectory`].
pub struct GlommioLogFile {
    file: DmaFile,
    len: u64,
    name: String,
}

impl LogFile for GlommioLogFile {
    fn size(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        assert_block_aligned(offset, len);
        let got = self
            .file
            .read_at_aligned(offset, len)
            .await
            .map_err(io::Error::from)?;
        if got.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short read of {} at {offset}", self.name),
            ));
        }
        Ok(got.to_vec())
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        assert_block_aligned(offset, data.len());
        assert!(offset + data.len() as u64 <= self.len);
        let mut buf = self.file.alloc_dma_buffer(data.len());
        buf.as_bytes_mut().copy_from_slice(data);
        let written = self
            .file
            .write_at(buf, offset)
            .await
            .map_err(io::Error::from)?;
        if written != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write to {} at {offset}", self.name),
            ));
        }
        Ok(())
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(io::Error::from)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
