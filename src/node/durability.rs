//! The background B+tree sync: every [`SYNC_INTERVAL`](super::SYNC_INTERVAL) it makes the
//! deferred commits durable and publishes the consistent index they reached, which is how far
//! the WAL may be released.
//!
//! Owns: the sync thread and the durable consistent index. Never: writes to the store or the WAL
//! (the node thread alone does), never hides a failed sync (it poisons the node).

use super::Shared;
use keelson_storage::mvcc::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The running sync thread.
pub struct Syncer {
    stop: flume::Sender<()>,
    durable_index: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// Syncs once. The consistent index is read before the sync begins: `Database::sync` makes every
/// commit published before it durable, and the view read was published by one of them.
pub(crate) fn sync_once(store: &Store, shared: &Shared, durable_index: &AtomicU64) -> bool {
    let index = store.view().consistent_index();
    let started = std::time::Instant::now();
    let synced = store.database().sync();
    crate::metrics::disk()
        .backend_commit_seconds
        .observe(started.elapsed().as_secs_f64());
    match synced {
        Ok(_) => {
            durable_index.fetch_max(index, Ordering::AcqRel);
            true
        }
        Err(e) => {
            shared.poison(&format!("B+tree sync failed: {e}"));
            false
        }
    }
}

impl Syncer {
    /// Starts syncing every `interval`; `durable_index` starts at what the open found durable.
    pub(crate) fn spawn(shared: Arc<Shared>, interval: Duration, durable_index: u64) -> Syncer {
        let (stop, stopped) = flume::bounded::<()>(1);
        let durable = Arc::new(AtomicU64::new(durable_index));
        let published = durable.clone();
        let thread = std::thread::Builder::new()
            .name("keelson-sync".into())
            .spawn(move || {
                // Wakes on the interval or on stop (a message or the sender dropped).
                while let Err(flume::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if !sync_once(&shared.store.load(), &shared, &published) {
                        return;
                    }
                }
            })
            .expect("spawn the B+tree sync thread");
        Syncer {
            stop,
            durable_index: durable,
            thread: Some(thread),
        }
    }

    /// The newest consistent index known durable in the B+tree.
    pub fn durable_index(&self) -> u64 {
        self.durable_index.load(Ordering::Acquire)
    }

    /// Stops the thread and waits for it (its sync in progress, if any, completes).
    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
