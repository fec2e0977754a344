//! [`MemoryDirectory`]: an in-memory [`LogDirectory`] for tests, with a crash model covering both
//! file contents and directory entries.
//!
//! File contents live in [`MemoryDevice`]s, so they inherit its crash model (only synced bytes
//! are certain; unsynced writes may be dropped, kept or torn) and its fault plans.
//!
//! Directory entries are modelled the same way: `create_zeroed`, `rename` and `remove` change the
//! names reads see at once, but a crash keeps only the names as of the last successful directory
//! [`sync`](LogDirectory::sync). A renamed file therefore survives a crash under its old name
//! unless the directory was synced after the rename.
//!
//! With [`MemoryDirectory::record_crash_points`] on, the directory keeps a [`DirCrashImage`] just
//! before every file or directory sync: a crash there may lose anything done since the previous
//! one. Every `sync_data` yields to the executor once before it completes, as a real fdatasync
//! does, so that concurrent appenders can observe a sync in flight.

use super::log::{LOG_BLOCK_BYTES, LogDirectory, LogFile, assert_block_aligned};
use super::{BlockDevice, CrashImage, FaultPlan, MemoryDevice, injected_fault};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

#[derive(Default)]
struct DirState {
    /// The names reads see.
    current: BTreeMap<String, MemoryDevice>,
    /// The names a crash keeps.
    durable: BTreeMap<String, MemoryDevice>,
    crash_points: Option<Vec<DirCrashImage>>,
    /// Fails the N-th file sync from now, in any file of the directory.
    fail_file_sync_after: Option<u64>,
    /// Fails the N-th directory sync from now.
    fail_dir_sync_after: Option<u64>,
    file_syncs: u64,
}

impl DirState {
    fn image(&self) -> DirCrashImage {
        let snap = |names: &BTreeMap<String, MemoryDevice>| {
            names
                .iter()
                .map(|(name, dev)| (name.clone(), dev.crash_points().pop().expect("now")))
                .collect()
        };
        DirCrashImage {
            durable: snap(&self.durable),
            current: snap(&self.current),
        }
    }

    fn checkpoint(&mut self) {
        if self.crash_points.is_some() {
            let image = self.image();
            if let Some(points) = &mut self.crash_points {
                points.push(image);
            }
        }
    }
}

fn countdown(slot: &mut Option<u64>) -> bool {
    match slot {
        Some(0) => {
            *slot = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

/// What a crash at one sync point could leave of a [`MemoryDirectory`].
#[derive(Clone, Debug)]
pub struct DirCrashImage {
    durable: Vec<(String, CrashImage)>,
    current: Vec<(String, CrashImage)>,
}

impl DirCrashImage {
    /// The crash lost every unsynced write and every unsynced directory change.
    pub fn lose_unsynced(&self) -> MemoryDirectory {
        MemoryDirectory::from_devices(
            self.durable
                .iter()
                .map(|(name, image)| (name.clone(), image.lose_unsynced(name))),
        )
    }

    /// Every unsynced write and directory change reached the disk, whole.
    pub fn keep_unsynced(&self) -> MemoryDirectory {
        MemoryDirectory::from_devices(
            self.current
                .iter()
                .map(|(name, image)| (name.clone(), image.keep_unsynced(name))),
        )
    }

    /// Unsynced writes each dropped, kept or torn (see [`CrashImage::torn`]); the directory as of
    /// the last sync or as now, chosen by the seed.
    pub fn torn(&self, seed: u64) -> MemoryDirectory {
        let names = if seed & 1 == 0 {
            &self.durable
        } else {
            &self.current
        };
        MemoryDirectory::from_devices(names.iter().map(|(name, image)| {
            let seed = seed.wrapping_mul(31).wrapping_add(name.len() as u64);
            (name.clone(), image.torn(name, seed))
        }))
    }
}

/// An in-memory directory of log files. Clones share the same state, so a test can keep a handle
/// to inspect, damage or crash the directory while the log owns another.
#[derive(Clone, Default)]
pub struct MemoryDirectory {
    state: Rc<RefCell<DirState>>,
}

impl MemoryDirectory {
    pub fn new() -> MemoryDirectory {
        MemoryDirectory::default()
    }

    /// A directory holding `files`, all durable.
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> MemoryDirectory {
        MemoryDirectory::from_devices(
            files
                .into_iter()
                .map(|(name, bytes)| (name.clone(), MemoryDevice::from_bytes(&name, bytes))),
        )
    }

    fn from_devices(files: impl IntoIterator<Item = (String, MemoryDevice)>) -> MemoryDirectory {
        let names: BTreeMap<String, MemoryDevice> = files.into_iter().collect();
        MemoryDirectory {
            state: Rc::new(RefCell::new(DirState {
                current: names.clone(),
                durable: names,
                ..DirState::default()
            })),
        }
    }

    /// Start (or stop) keeping a [`DirCrashImage`] at every sync point.
    pub fn record_crash_points(&self, on: bool) {
        self.state.borrow_mut().crash_points = on.then(Vec::new);
    }

    /// The crash images recorded so far, oldest first, plus one for "now".
    pub fn crash_points(&self) -> Vec<DirCrashImage> {
        let state = self.state.borrow();
        let mut points = state.crash_points.clone().unwrap_or_default();
        points.push(state.image());
        points
    }

    /// How many crash points have been recorded so far (not counting "now").
    pub fn crash_point_count(&self) -> usize {
        self.state
            .borrow()
            .crash_points
            .as_ref()
            .map_or(0, Vec::len)
    }

    /// Fails the N-th file sync from now (0: the next one), in whichever file it happens.
    pub fn fail_file_sync_after(&self, n: u64) {
        self.state.borrow_mut().fail_file_sync_after = Some(n);
    }

    /// Fails the N-th directory sync from now.
    pub fn fail_dir_sync_after(&self, n: u64) {
        self.state.borrow_mut().fail_dir_sync_after = Some(n);
    }

    /// The device holding `name`'s contents, to inspect or damage
    /// (e.g. [`MemoryDevice::flip_bit`]).
    pub fn device(&self, name: &str) -> Option<MemoryDevice> {
        self.state.borrow().current.get(name).cloned()
    }

    /// Every file's name and current contents, sorted by name.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        self.state
            .borrow()
            .current
            .iter()
            .map(|(name, dev)| (name.clone(), dev.contents()))
            .collect()
    }

    /// Successful file syncs so far, across all files.
    pub fn file_sync_count(&self) -> u64 {
        self.state.borrow().file_syncs
    }
}

impl LogDirectory for MemoryDirectory {
    type File = MemoryLogFile;

    async fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.state.borrow().current.keys().cloned().collect())
    }

    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<MemoryLogFile> {
        assert_block_aligned(len, 0);
        let mut state = self.state.borrow_mut();
        if state.current.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                name.to_string(),
            ));
        }
        // Zero-filled and synced, as the real implementation leaves it.
        let device = MemoryDevice::from_bytes(name, vec![0; len as usize]);
        state.current.insert(name.to_string(), device.clone());
        Ok(MemoryLogFile {
            device,
            len,
            dir: self.state.clone(),
        })
    }

    async fn open(&self, name: &str) -> io::Result<MemoryLogFile> {
        let state = self.state.borrow();
        let device = state
            .current
            .get(name)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))?;
        Ok(MemoryLogFile {
            len: device.len()?,
            device,
            dir: self.state.clone(),
        })
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        let device = state
            .current
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, from.to_string()))?;
        state.current.insert(to.to_string(), device);
        Ok(())
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state
            .current
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }

    async fn sync(&self) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.checkpoint();
        if countdown(&mut state.fail_dir_sync_after) {
            return Err(injected_fault("directory sync"));
        }
        state.durable = state.current.clone();
        Ok(())
    }
}

/// One file of a [`MemoryDirectory`].
pub struct MemoryLogFile {
    device: MemoryDevice,
    len: u64,
    dir: Rc<RefCell<DirState>>,
}

impl LogFile for MemoryLogFile {
    fn size(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        assert_block_aligned(offset, len);
        let mut buf = vec![0; len];
        self.device.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        assert_block_aligned(offset, data.len());
        assert!(
            offset + data.len() as u64 <= self.len,
            "log write past the end of {}: {offset}+{}",
            self.device.name(),
            data.len()
        );
        self.device.write_all_at(data, offset)
    }

    async fn sync_data(&self) -> io::Result<()> {
        YieldOnce(false).await;
        let mut dir = self.dir.borrow_mut();
        dir.checkpoint();
        if countdown(&mut dir.fail_file_sync_after) {
            // Let the device fail the sync itself, so it drops the unsynced writes as Linux may.
            self.device.set_fault_plan(FaultPlan {
                fail_sync_after: Some(0),
                ..FaultPlan::default()
            });
        }
        self.device.sync_data()?;
        dir.file_syncs += 1;
        Ok(())
    }

    fn name(&self) -> String {
        self.device.name()
    }
}

/// Returns `Pending` once (waking itself at once), then `Ready`: the executor runs every other
/// ready task in between, as it would while a real fdatasync is in flight.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

const _: () = assert!(LOG_BLOCK_BYTES.is_power_of_two());
