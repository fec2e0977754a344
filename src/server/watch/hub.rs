//! The watch hub: every watcher of every stream, and the hand-off of committed changes from the
//! node thread to the gRPC tasks that send them (etcd's `watchableStore` synced/unsynced groups).
//!
//! The node calls [`WatchHub::notify`] once per applied batch, after the batch's view is
//! published. Each stream has a queue of [`Delivery`]s and a wake-up; each watcher may hold at
//! most [`WATCHER_BUFFER_RESPONSES`] of them. A watcher whose buffer is full becomes *unsynced*
//! instead of losing events: it keeps `next_rev`, the first revision it has not been handed, and
//! its stream task catches it up from the store ([`super::history`]) and then calls
//! [`WatchHub::resync`]. Invariant for every watcher: every matching event below `next_rev` has
//! been queued (or sent), none at or above it has.
//!
//! This module must never block on a consumer (the node calls it), never read the store, and
//! never drop an event of a live watcher.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use keelson_proto::mvccpb::Event;
use keelson_storage::mvcc::Change;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::batch::EventBatch;
use super::watcher::{WatchSpec, change_rev, to_event};

/// Responses a watcher may have waiting in its stream's queue before it is switched to catching
/// up from the store (etcd's `chanBufLen` is 128 per stream; this is per watcher).
pub const WATCHER_BUFFER_RESPONSES: usize = 64;

/// A watch id chosen by the server (etcd's `AutoWatchID`).
pub const AUTO_WATCH_ID: i64 = 0;

/// Events for one watcher, all of revisions up to `rev`, never splitting a revision. The
/// events are shared with every other watcher handed the same ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub watch_id: i64,
    /// The store revision the events were published at (the response header's revision).
    pub rev: i64,
    pub batch: Arc<EventBatch>,
}

impl Delivery {
    pub fn events(&self) -> &[Event] {
        self.batch.events()
    }
}

/// Why a watcher could not be created; the message is etcd's `cancel_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    EmptyRange,
    DuplicateId,
}

impl CreateError {
    pub fn reason(self) -> &'static str {
        match self {
            CreateError::EmptyRange => "mvcc: watcher range is empty",
            CreateError::DuplicateId => "mvcc: duplicate watch ID provided on the WatchStream",
        }
    }
}

/// A watcher that is catching up from the store.
#[derive(Clone, Debug)]
pub struct Unsynced {
    pub watch_id: i64,
    pub next_rev: i64,
    pub spec: WatchSpec,
}

struct WatcherState {
    spec: WatchSpec,
    synced: bool,
    next_rev: i64,
    queued: usize,
}

struct StreamState {
    watchers: BTreeMap<i64, WatcherState>,
    /// Ids of watchers canceled because they started below the compaction. etcd 3.4 keeps such a
    /// watcher on its stream until the client cancels it, so the id is still taken (a create
    /// with it is a duplicate, auto ids skip it) and that cancel is answered. Only the id is
    /// kept, outside `watchers`, so `notify` never looks at it.
    compacted: BTreeSet<i64>,
    next_id: i64,
    queue: VecDeque<Delivery>,
    wake: Arc<Notify>,
}

struct HubState {
    /// The newest revision notified.
    rev: i64,
    /// The streams [`WatchHub::notify`] has events for, not yet woken (see [`WatchHub::dispatch`]).
    to_wake: Vec<Arc<Notify>>,
    /// Wakes the dispatch task, once one runs.
    dispatcher: Option<Arc<Notify>>,
    next_stream: u64,
    streams: HashMap<u64, StreamState>,
}

/// Every watcher, shared by the node thread and the gRPC tasks.
pub struct WatchHub {
    state: Mutex<HubState>,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("rev", &self.rev())
            .finish()
    }
}

/// Counts over every stream, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub streams: u64,
    pub watchers: u64,
    /// Watchers catching up from the store (etcd's slow watchers).
    pub unsynced: u64,
    /// Deliveries queued and not yet taken by their stream.
    pub pending_events: u64,
}

/// A registered stream: its id in the hub and what wakes its task.
#[derive(Clone, Debug)]
pub struct StreamHandle {
    pub id: u64,
    pub wake: Arc<Notify>,
}

impl WatchHub {
    /// A hub for a store whose newest revision is `rev`.
    pub fn new(rev: i64) -> WatchHub {
        WatchHub {
            state: Mutex::new(HubState {
                rev,
                to_wake: Vec::new(),
                dispatcher: None,
                next_stream: 0,
                streams: HashMap::new(),
            }),
        }
    }

    /// The newest revision handed to the hub.
    pub fn rev(&self) -> i64 {
        self.state.lock().rev
    }

    pub fn open_stream(&self) -> StreamHandle {
        let mut state = self.state.lock();
        let id = state.next_stream;
        state.next_stream += 1;
        let wake = Arc::new(Notify::new());
        state.streams.insert(
            id,
            StreamState {
                watchers: BTreeMap::new(),
                compacted: BTreeSet::new(),
                next_id: 0,
                queue: VecDeque::new(),
                wake: wake.clone(),
            },
        );
        StreamHandle { id, wake }
    }

    /// Forgets a stream and all its watchers.
    pub fn close_stream(&self, stream: u64) {
        self.state.lock().streams.remove(&stream);
    }

    /// The counts `/metrics` reports (etcd's `etcd_debugging_mvcc_watch*` gauges).
    pub fn stats(&self) -> HubStats {
        let state = self.state.lock();
        let mut stats = HubStats {
            streams: state.streams.len() as u64,
            ..HubStats::default()
        };
        for s in state.streams.values() {
            stats.watchers += s.watchers.len() as u64;
            stats.unsynced += s.watchers.values().filter(|w| !w.synced).count() as u64;
            stats.pending_events += s.queue.len() as u64;
        }
        stats
    }

    /// Watchers registered across all streams (for tests and status); ids kept only for a
    /// compaction cancel are not watchers.
    pub fn watcher_count(&self) -> usize {
        let state = self.state.lock();
        state.streams.values().map(|s| s.watchers.len()).sum()
    }

    /// Registers a watcher (etcd's `watchStream.Watch`): returns its id and the hub revision at
    /// creation (the created response's header revision). `start_rev` 0 means "after now"; a
    /// start at or below the current revision makes the watcher catch up from the store first.
    pub fn add_watcher(
        &self,
        stream: u64,
        requested_id: i64,
        spec: WatchSpec,
        start_rev: i64,
    ) -> Result<(i64, i64), CreateError> {
        if spec.is_empty_range() {
            return Err(CreateError::EmptyRange);
        }
        let mut state = self.state.lock();
        let rev = state.rev;
        let Some(s) = state.streams.get_mut(&stream) else {
            // The stream is closing; nothing will ever read this watcher.
            return Err(CreateError::DuplicateId);
        };
        let id = if requested_id == AUTO_WATCH_ID {
            while s.taken(s.next_id) {
                s.next_id += 1;
            }
            s.next_id += 1;
            s.next_id - 1
        } else if s.taken(requested_id) {
            return Err(CreateError::DuplicateId);
        } else {
            requested_id
        };
        let next_rev = if start_rev == 0 { rev + 1 } else { start_rev };
        let synced = next_rev > rev;
        s.watchers.insert(
            id,
            WatcherState {
                spec,
                synced,
                next_rev,
                queued: 0,
            },
        );
        if !synced {
            s.wake.notify_one();
        }
        Ok((id, rev))
    }

    /// The client's cancel: removes a watcher and whatever is queued for it, or frees the id of
    /// one canceled for the compaction. False if neither existed.
    pub fn cancel(&self, stream: u64, watch_id: i64) -> bool {
        let mut state = self.state.lock();
        let Some(s) = state.streams.get_mut(&stream) else {
            return false;
        };
        s.remove_watcher(watch_id) || s.compacted.remove(&watch_id)
    }

    /// The stream's cancel of a watcher whose start revision was compacted: it gets no more
    /// events, but its id stays taken until the client cancels it ([`WatchHub::cancel`]).
    pub fn cancel_compacted(&self, stream: u64, watch_id: i64) {
        let mut state = self.state.lock();
        let Some(s) = state.streams.get_mut(&stream) else {
            return;
        };
        if s.remove_watcher(watch_id) {
            s.compacted.insert(watch_id);
        }
    }

    /// Hands a committed batch to the watchers: `changes` in revision order, `rev` the store's
    /// revision after the batch. Called by the node once per applied batch, after publishing the
    /// view that shows it. Never waits on a consumer.
    pub fn notify(&self, rev: i64, changes: &[Change]) {
        let mut state = self.state.lock();
        if rev <= state.rev && changes.is_empty() {
            return;
        }
        state.rev = state.rev.max(rev);
        let mut shared = Shared::new(changes);
        let mut wanted: Vec<u32> = Vec::with_capacity(changes.len());
        let mut events_queued = 0u64;
        let HubState {
            streams, to_wake, ..
        } = &mut *state;
        for s in streams.values_mut() {
            let mut woke = false;
            for (id, w) in s.watchers.iter_mut() {
                if !w.synced {
                    continue;
                }
                wanted.clear();
                wanted.extend(
                    changes
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| change_rev(c) >= w.next_rev && w.spec.wants(c))
                        .map(|(i, _)| i as u32),
                );
                if wanted.is_empty() {
                    w.next_rev = w.next_rev.max(rev + 1);
                    continue;
                }
                if w.queued >= WATCHER_BUFFER_RESPONSES {
                    // Keep next_rev: the store has everything from there on; the stream task
                    // reads it back once the consumer has drained the queue.
                    w.synced = false;
                    woke = true;
                    continue;
                }
                w.queued += 1;
                events_queued += wanted.len() as u64;
                w.next_rev = w.next_rev.max(rev + 1);
                s.queue.push_back(Delivery {
                    watch_id: *id,
                    rev,
                    batch: shared.batch(&wanted),
                });
                woke = true;
            }
            if woke {
                to_wake.push(s.wake.clone());
            }
        }
        crate::metrics::mvcc().events.inc_by(events_queued);
        match &state.dispatcher {
            Some(dispatcher) => dispatcher.notify_one(),
            None => {
                for wake in state.to_wake.drain(..) {
                    wake.notify_one();
                }
            }
        }
    }

    /// The store was replaced by a Raft snapshot at revision `rev`: every watcher catches up
    /// from the new store at its next revision (etcd's `restore` moves every synced watcher to
    /// the unsynced group). Events below `next_rev` were handed out already; the rest are in the
    /// new store's history, or compacted away, which cancels the watcher as etcd does.
    pub fn unsync_all(&self, rev: i64) {
        let mut state = self.state.lock();
        state.rev = state.rev.max(rev);
        let HubState {
            streams, to_wake, ..
        } = &mut *state;
        for s in streams.values_mut() {
            let mut any = false;
            for w in s.watchers.values_mut() {
                any |= w.synced;
                w.synced = false;
            }
            if any {
                to_wake.push(s.wake.clone());
            }
        }
        for wake in state.to_wake.drain(..) {
            wake.notify_one();
        }
    }

    /// Wakes the streams that have events, from a task on the gRPC runtime rather than from the
    /// node thread. Woken from outside the runtime, every stream task would join the runtime's
    /// shared queue ahead of the replies to the very puts that made the events, and an ack would
    /// wait for the whole fan-out; woken from inside, they join the worker's local queue, and the
    /// shared queue (where the replies are) is still visited every few dozen tasks. Returns when
    /// the hub is gone (noticed at its next wake).
    pub async fn dispatch(hub: std::sync::Weak<WatchHub>) {
        let notify = Arc::new(Notify::new());
        match hub.upgrade() {
            Some(hub) => hub.state.lock().dispatcher = Some(notify.clone()),
            None => return,
        }
        let mut wakes = Vec::new();
        loop {
            notify.notified().await;
            let Some(hub) = hub.upgrade() else {
                return;
            };
            std::mem::swap(&mut wakes, &mut hub.state.lock().to_wake);
            drop(hub);
            for wake in wakes.drain(..) {
                wake.notify_one();
            }
        }
    }

    /// Every delivery queued for a stream, oldest first, taken under one lock.
    pub fn pop_all(&self, stream: u64, out: &mut Vec<Delivery>) {
        let mut state = self.state.lock();
        let Some(s) = state.streams.get_mut(&stream) else {
            return;
        };
        for delivery in s.queue.drain(..) {
            if let Some(w) = s.watchers.get_mut(&delivery.watch_id) {
                w.queued = w.queued.saturating_sub(1);
            }
            out.push(delivery);
        }
    }

    /// The oldest delivery queued for a stream.
    pub fn pop(&self, stream: u64) -> Option<Delivery> {
        let mut state = self.state.lock();
        let s = state.streams.get_mut(&stream)?;
        let delivery = s.queue.pop_front()?;
        if let Some(w) = s.watchers.get_mut(&delivery.watch_id) {
            w.queued = w.queued.saturating_sub(1);
        }
        Some(delivery)
    }

    /// A watcher of the stream that must catch up from the store and has nothing queued (so
    /// what the store gives it follows what was sent, in order).
    pub fn first_unsynced(&self, stream: u64) -> Option<Unsynced> {
        let state = self.state.lock();
        let s = state.streams.get(&stream)?;
        s.watchers
            .iter()
            .find(|(_, w)| !w.synced && w.queued == 0)
            .map(|(id, w)| Unsynced {
                watch_id: *id,
                next_rev: w.next_rev,
                spec: w.spec.clone(),
            })
    }

    /// After a catch-up that sent every matching event up to `read_to`: the watcher rejoins the
    /// synced group if nothing newer was notified meanwhile, else continues from `read_to + 1`.
    /// Returns whether it is synced now.
    pub fn resync(&self, stream: u64, watch_id: i64, read_to: i64) -> bool {
        let mut state = self.state.lock();
        let rev = state.rev;
        let Some(w) = state
            .streams
            .get_mut(&stream)
            .and_then(|s| s.watchers.get_mut(&watch_id))
        else {
            return true;
        };
        w.next_rev = w.next_rev.max(read_to + 1);
        if read_to >= rev {
            w.synced = true;
        }
        w.synced
    }

    /// The revision to report in a progress notification for a watcher, if it is synced (etcd
    /// sends progress only to synced watchers: an unsynced one has events still to come).
    pub fn progress(&self, stream: u64, watch_id: i64) -> Option<i64> {
        let state = self.state.lock();
        let w = state.streams.get(&stream)?.watchers.get(&watch_id)?;
        (w.synced && w.queued == 0).then_some(state.rev)
    }
}

impl StreamState {
    /// Removes a watcher and whatever is queued for it. False if it did not exist.
    fn remove_watcher(&mut self, id: i64) -> bool {
        if self.watchers.remove(&id).is_none() {
            return false;
        }
        self.queue.retain(|d| d.watch_id != id);
        true
    }

    /// Whether a new watcher may not have this id.
    fn taken(&self, id: i64) -> bool {
        self.watchers.contains_key(&id) || self.compacted.contains(&id)
    }
}

/// The event batches of one notify, one per distinct set of changes a watcher wants, so
/// watchers wanting the same changes share one batch (and its encoding).
struct Shared<'a> {
    changes: &'a [Change],
    /// Each change as an etcd event, made on first use.
    events: Vec<Option<Event>>,
    /// The last set asked for: watchers come in runs wanting the same changes.
    last: Option<(Vec<u32>, Arc<EventBatch>)>,
    others: HashMap<Vec<u32>, Arc<EventBatch>>,
}

impl<'a> Shared<'a> {
    fn new(changes: &'a [Change]) -> Shared<'a> {
        Shared {
            changes,
            events: vec![None; changes.len()],
            last: None,
            others: HashMap::new(),
        }
    }

    /// The batch of the changes at `wanted` (indexes into `changes`, ascending).
    fn batch(&mut self, wanted: &[u32]) -> Arc<EventBatch> {
        if let Some((set, batch)) = &self.last
            && set.as_slice() == wanted
        {
            return batch.clone();
        }
        let batch = match self.others.get(wanted) {
            Some(batch) => batch.clone(),
            None => {
                let events = wanted
                    .iter()
                    .map(|&i| {
                        let i = i as usize;
                        self.events[i]
                            .get_or_insert_with(|| to_event(&self.changes[i]))
                            .clone()
                    })
                    .collect();
                let batch = Arc::new(EventBatch::new(events));
                self.others.insert(wanted.to_vec(), batch.clone());
                batch
            }
        };
        self.last = Some((wanted.to_vec(), batch.clone()));
        batch
    }
}
