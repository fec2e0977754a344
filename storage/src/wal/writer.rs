//! The [`Wal`] handle and group commit: appends, segment rotation, release of old segments, and
//! the background preparation of the next segment.
//!
//! Group commit without a dedicated task: an append encodes its records into the shared queue at
//! once (so CRC chaining follows queue order) and takes a ticket. If no flush is running, it
//! becomes the leader: it takes everything queued, writes it in one block-aligned write that
//! rewrites the partial tail block, runs one fdatasync, marks every ticket it took durable and
//! wakes their owners. Appends arriving meanwhile queue up; when the leader is done it hands
//! leadership to the oldest waiting one, which flushes the whole queue in the next write. One
//! appender thus pays exactly one write and one fdatasync; many share them. Nothing waits on a
//! timer. It works on any single-threaded executor, so the in-memory tests need no io_uring.

use super::record::{self, HardState, Record, SegmentHeader, SnapshotMarker};
use super::segment::{prepared_name, segment_name};
use super::{
    BLOCK_BYTES, RECORD_BYTES_MAX, Result, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN,
    SEGMENT_HEADER_BYTES, SEGMENTS_KEPT_DEFAULT, WalError, align_down, align_up,
};
use crate::io::{LogDirectory, LogFile};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Tunables of a log.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Size of every segment file; a multiple of the block size, at least [`SEGMENT_BYTES_MIN`].
    pub segment_bytes: u64,
    /// Segments kept when releasing (etcd's `--max-wals`).
    pub segments_kept: usize,
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segments_kept: SEGMENTS_KEPT_DEFAULT,
        }
    }
}

impl WalConfig {
    pub(crate) fn check(&self) -> Result<()> {
        if self.segment_bytes < SEGMENT_BYTES_MIN
            || !self.segment_bytes.is_multiple_of(BLOCK_BYTES as u64)
        {
            return Err(WalError::Invalid(format!(
                "segment size {} must be a multiple of {BLOCK_BYTES} and at least {SEGMENT_BYTES_MIN}",
                self.segment_bytes
            )));
        }
        if self.segments_kept == 0 {
            return Err(WalError::Invalid("segments_kept must be at least 1".into()));
        }
        Ok(())
    }

    /// Largest record body that always fits a fresh segment after its header and the hard state
    /// and snapshot marker repeated there.
    pub fn record_body_max(&self) -> usize {
        let fixed = SEGMENT_HEADER_BYTES
            + Record::HardState(HardState::default()).frame_len()
            + Record::Snapshot(SnapshotMarker::default()).frame_len();
        let room = self.segment_bytes as usize - fixed - record::frame_len(0);
        room.min(RECORD_BYTES_MAX)
    }
}

/// Counters since the log was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Appends acknowledged as durable.
    pub appends: u64,
    /// Flushes run: each is one write and one fdatasync per segment it touched.
    pub flushes: u64,
    /// Successful fdatasyncs of segment files.
    pub syncs: u64,
    /// Bytes handed to the disk, rewritten tail blocks and padding included.
    pub bytes_written: u64,
}

/// A segment that is part of the log.
#[derive(Clone, Debug)]
pub(crate) struct SegmentMeta {
    pub seq: u64,
    pub first_index: u64,
    pub name: String,
}

/// Encoded bytes waiting for a flush, all bound for one segment.
struct Chunk {
    /// Set when the chunk starts a new segment; its bytes then begin with this header.
    new_segment: Option<SegmentHeader>,
    /// Offset in the segment where `bytes` go.
    start: u64,
    bytes: Vec<u8>,
    /// Highest ticket with records in this chunk.
    last_ticket: u64,
}

pub(crate) struct State<F> {
    pub segments: Vec<SegmentMeta>,
    pub current: Rc<F>,
    /// Durable end of the current segment, and its bytes from the last block boundary to there:
    /// O_DIRECT writes whole blocks, so each flush rewrites that partial block.
    pub written_end: u64,
    pub tail: Vec<u8>,

    // What the queue will look like once flushed.
    pub enq_seq: u64,
    pub enq_end: u64,
    /// Size of the segment the queue is filling: the current file's own size until a rotation
    /// is queued (a log opened with a new segment size keeps its older segments as they are).
    pub enq_segment_bytes: u64,
    pub enq_seed: u32,
    pub enq_last_index: u64,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMarker>,
    queue: VecDeque<Chunk>,

    next_ticket: u64,
    durable_ticket: u64,
    waiters: BTreeMap<u64, Waker>,
    flushing: bool,
    failed: Option<String>,

    pub stats: WalStats,
    /// Appends the last flush acknowledged: more than one means appenders are concurrent.
    last_flush_appends: u64,

    prepared: Option<(u64, Rc<F>)>,
    /// Highest segment sequence number a file was created for, prepared or in the log.
    claimed_seq: u64,
    preparing: bool,
    prepare_waiters: Vec<Waker>,
    preparer: Option<Waker>,
    closed: bool,
}

/// Where recovery left the log: what the writer starts from.
pub(crate) struct Position<F> {
    pub segments: Vec<SegmentMeta>,
    pub current: Rc<F>,
    pub written_end: u64,
    pub tail: Vec<u8>,
    pub last_crc: u32,
    pub last_index: u64,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMarker>,
}

impl<F: LogFile> State<F> {
    pub(crate) fn new(p: Position<F>) -> State<F> {
        let enq_seq = p.segments.last().expect("a log has a segment").seq;
        let current_size = p.current.size();
        assert_eq!(
            p.tail.len() as u64,
            p.written_end - align_down(p.written_end, BLOCK_BYTES),
            "tail block out of step with the end"
        );
        State {
            segments: p.segments,
            current: p.current,
            written_end: p.written_end,
            tail: p.tail,
            enq_seq,
            enq_end: p.written_end,
            enq_segment_bytes: current_size,
            enq_seed: p.last_crc,
            enq_last_index: p.last_index,
            hard_state: p.hard_state,
            snapshot: p.snapshot,
            queue: VecDeque::new(),
            next_ticket: 1,
            durable_ticket: 0,
            waiters: BTreeMap::new(),
            flushing: false,
            failed: None,
            stats: WalStats::default(),
            last_flush_appends: 0,
            prepared: None,
            claimed_seq: enq_seq,
            preparing: false,
            prepare_waiters: Vec::new(),
            preparer: None,
            closed: false,
        }
    }

    fn poison(&mut self, why: String) {
        if self.failed.is_none() {
            self.failed = Some(why);
        }
        for (_, w) in std::mem::take(&mut self.waiters) {
            w.wake();
        }
        for w in self.prepare_waiters.drain(..) {
            w.wake();
        }
    }

    fn mark_durable(&mut self, ticket: u64) {
        self.last_flush_appends = ticket.saturating_sub(self.durable_ticket);
        self.stats.appends += self.last_flush_appends;
        self.durable_ticket = self.durable_ticket.max(ticket);
        let later = self.waiters.split_off(&(self.durable_ticket + 1));
        for (_, w) in std::mem::replace(&mut self.waiters, later) {
            w.wake();
        }
    }
}

pub(crate) struct Inner<D: LogDirectory> {
    pub dir: D,
    pub config: WalConfig,
    pub state: RefCell<State<D::File>>,
}

/// A write-ahead log on one core. Cheap to clone: clones share the log, so many tasks can append.
pub struct Wal<D: LogDirectory> {
    pub(crate) inner: Rc<Inner<D>>,
}

impl<D: LogDirectory> Clone for Wal<D> {
    fn clone(&self) -> Self {
        Wal {
            inner: self.inner.clone(),
        }
    }
}

impl<D: LogDirectory> Wal<D> {
    /// Appends `records` and completes once they are durable (fdatasync returned). Records of one
    /// call are contiguous and in order; calls are ordered by when their futures are first
    /// polled. An entry whose index is at or below the last one overwrites (Raft log truncation);
    /// an index gap is refused.
    ///
    /// Errors: [`WalError::Invalid`] for a bad record (nothing is written), and
    /// [`WalError::Poisoned`] if this or an earlier flush failed: after a failed fdatasync no
    /// append is ever acknowledged again, and the log must be reopened (recovery decides what
    /// survived).
    ///
    /// Cancellation: the records are queued (and chained) when `append` is first polled, so
    /// dropping the future later does not withdraw them; they are written with the next flush.
    /// Dropping the future of the append that is writing a flush abandons that flush and poisons
    /// the log, since its outcome is then unknown.
    pub async fn append(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return match self.poisoned() {
                Some(why) => Err(WalError::Poisoned(why)),
                None => Ok(()),
            };
        }
        let ticket = self.enqueue(records)?;
        let turn = Turn {
            inner: &self.inner,
            ticket,
        }
        .await;
        match turn {
            TurnOutcome::Done(result) => result,
            TurnOutcome::Lead => {
                let mut guard = LeadGuard {
                    inner: &self.inner,
                    writing: false,
                    done: false,
                };
                if self.inner.state.borrow().last_flush_appends > 1 {
                    // Appenders are concurrent: the ones the last flush just woke are runnable
                    // and about to append again. One turn of the executor lets them join this
                    // flush instead of the next. A lone appender never pays for this.
                    YieldNow(false).await;
                }
                guard.writing = true;
                self.flush().await;
                guard.finish();
                self.inner
                    .outcome(ticket)
                    .expect("the leader flushed its own ticket")
            }
        }
    }

    /// The last entry index written (or marked by a snapshot), counting appends not yet durable.
    pub fn last_index(&self) -> u64 {
        self.inner.state.borrow().enq_last_index
    }

    /// The newest hard state appended.
    pub fn hard_state(&self) -> Option<HardState> {
        self.inner.state.borrow().hard_state
    }

    /// Number of segment files in the log.
    pub fn segment_count(&self) -> usize {
        self.inner.state.borrow().segments.len()
    }

    /// Names of the segment files in the log, oldest first.
    pub fn segment_names(&self) -> Vec<String> {
        let state = self.inner.state.borrow();
        state.segments.iter().map(|s| s.name.clone()).collect()
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        self.inner.state.borrow().stats
    }

    /// Why the log is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.state.borrow().failed.clone()
    }

    fn enqueue(&self, records: &[Record]) -> Result<u64> {
        let inner = &*self.inner;
        let mut guard = inner.state.borrow_mut();
        let state = &mut *guard;
        if let Some(why) = &state.failed {
            return Err(WalError::Poisoned(why.clone()));
        }
        if state.closed {
            return Err(WalError::Invalid("append after close".into()));
        }
        // Check everything first, so a refused call leaves no trace.
        let body_max = inner.config.record_body_max();
        let mut last = state.enq_last_index;
        for r in records {
            if r.body_len() > body_max {
                return Err(WalError::Invalid(format!(
                    "record body of {} bytes exceeds the limit of {body_max}",
                    r.body_len()
                )));
            }
            match r {
                Record::Entry(e) if e.index > last + 1 => {
                    return Err(WalError::Invalid(format!(
                        "entry index {} leaves a gap after {last}",
                        e.index
                    )));
                }
                Record::Entry(e) => last = e.index,
                Record::Snapshot(s) => last = last.max(s.index),
                Record::HardState(_) => {}
            }
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        for r in records {
            let flen = r.frame_len() as u64;
            if state.enq_end + flen > state.enq_segment_bytes {
                start_segment(state, inner.config.segment_bytes);
            }
            if state.queue.is_empty() {
                let start = state.enq_end;
                state.queue.push_back(Chunk {
                    new_segment: None,
                    start,
                    bytes: Vec::new(),
                    last_ticket: ticket,
                });
            }
            let seed = state.enq_seed;
            let chunk = state.queue.back_mut().expect("just ensured");
            state.enq_seed = record::encode(r, seed, &mut chunk.bytes);
            chunk.last_ticket = ticket;
            state.enq_end += flen;
            match r {
                Record::Entry(e) => state.enq_last_index = e.index,
                Record::Snapshot(s) => {
                    state.enq_last_index = state.enq_last_index.max(s.index);
                    state.snapshot = Some(*s);
                }
                Record::HardState(h) => state.hard_state = Some(*h),
            }
        }
        Ok(ticket)
    }

    /// Writes and syncs everything queued. Runs only in the leader; never holds the state borrow
    /// across an await.
    async fn flush(&self) {
        let inner = &*self.inner;
        let chunks: Vec<Chunk> = {
            let mut state = inner.state.borrow_mut();
            state.stats.flushes += 1;
            state.queue.drain(..).collect()
        };
        // One append's records may straddle a rotation, so tickets are settled only once every
        // chunk is durable.
        let mut last_ticket = 0;
        for chunk in chunks {
            if let Err(why) = self.write_chunk(&chunk).await {
                inner.state.borrow_mut().poison(why);
                return;
            }
            last_ticket = chunk.last_ticket;
        }
        inner.state.borrow_mut().mark_durable(last_ticket);
    }

    async fn write_chunk(&self, chunk: &Chunk) -> std::result::Result<(), String> {
        let inner = &*self.inner;
        let (file, name, write_at, buf) = {
            let state = inner.state.borrow();
            match chunk.new_segment {
                None => {
                    assert_eq!(
                        chunk.start, state.written_end,
                        "queue out of step with the file"
                    );
                    let mut buf =
                        Vec::with_capacity(state.tail.len() + chunk.bytes.len() + BLOCK_BYTES);
                    buf.extend_from_slice(&state.tail);
                    buf.extend_from_slice(&chunk.bytes);
                    let at = align_down(state.written_end, BLOCK_BYTES);
                    let name = state.segments.last().expect("segment").name.clone();
                    (Some(state.current.clone()), name, at, buf)
                }
                Some(h) => (None, prepared_name(h.seq), 0, chunk.bytes.clone()),
            }
        };
        let data_len = buf.len() as u64;
        let file = match file {
            Some(f) => f,
            None => {
                let h = chunk.new_segment.expect("new segment");
                self.take_prepared(h.seq)
                    .await
                    .map_err(|e| format!("preparing segment {}: {e}", prepared_name(h.seq)))?
            }
        };
        let mut buf = buf;
        buf.resize(align_up(data_len, BLOCK_BYTES) as usize, 0);
        file.write_at(write_at, &buf)
            .await
            .map_err(|e| format!("write to {name} at {write_at}: {e}"))?;
        file.sync_data()
            .await
            .map_err(|e| format!("fdatasync of {name}: {e}"))?;
        {
            let mut state = inner.state.borrow_mut();
            state.stats.syncs += 1;
            state.stats.bytes_written += buf.len() as u64;
        }
        let end = write_at + data_len;
        let tail_from = align_down(end, BLOCK_BYTES);
        let tail = buf[(tail_from - write_at) as usize..data_len as usize].to_vec();
        if let Some(h) = chunk.new_segment {
            // The header and first records are durable under the temporary name; now the name.
            let final_name = segment_name(h.seq, h.first_index);
            inner
                .dir
                .rename(&name, &final_name)
                .await
                .map_err(|e| format!("rename {name} to {final_name}: {e}"))?;
            inner
                .dir
                .sync()
                .await
                .map_err(|e| format!("directory sync after creating {final_name}: {e}"))?;
            let mut state = inner.state.borrow_mut();
            state.segments.push(SegmentMeta {
                seq: h.seq,
                first_index: h.first_index,
                name: final_name,
            });
            state.current = file;
            if let Some(w) = state.preparer.take() {
                w.wake();
            }
        }
        let mut state = inner.state.borrow_mut();
        state.written_end = end;
        state.tail = tail;
        Ok(())
    }

    /// The preallocated file for segment `seq`: the one the preparer made, or a new one.
    async fn take_prepared(&self, seq: u64) -> std::io::Result<Rc<D::File>> {
        let inner = &*self.inner;
        loop {
            let wait = {
                let mut state = inner.state.borrow_mut();
                match state.prepared.take() {
                    Some((s, f)) if s == seq => return Ok(f),
                    Some((s, _)) => panic!("prepared segment {s} while rotating to {seq}"),
                    None => state.preparing,
                }
            };
            if !wait {
                break;
            }
            if inner.state.borrow().failed.is_some() {
                return Err(std::io::Error::other("log poisoned while preparing"));
            }
            PrepareWait {
                inner,
                registered: false,
            }
            .await;
        }
        let failed_preparation = {
            let mut state = inner.state.borrow_mut();
            let claimed = state.claimed_seq >= seq;
            state.claimed_seq = state.claimed_seq.max(seq);
            claimed
        };
        if failed_preparation {
            // The preparer claimed this segment but did not deliver it: clear what it left.
            match inner.dir.remove(&prepared_name(seq)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let file = inner
            .dir
            .create_zeroed(&prepared_name(seq), inner.config.segment_bytes)
            .await?;
        Ok(Rc::new(file))
    }

    /// Keeps the next segment preallocated and zero-filled so rotation costs one rename. Spawn it
    /// beside the log on the same executor (`glommio::spawn_local(wal.prepare_segments())`); it
    /// returns after [`Wal::close`] or when the log is poisoned. Without it, rotation zero-fills
    /// the next segment inline, which is correct but stalls appends for the duration.
    pub async fn prepare_segments(self) -> Result<()> {
        let inner = &*self.inner;
        loop {
            let seq = {
                let mut state = inner.state.borrow_mut();
                if state.closed || state.failed.is_some() {
                    return Ok(());
                }
                if state.prepared.is_none() {
                    let next = state.claimed_seq + 1;
                    state.claimed_seq = next;
                    state.preparing = true;
                    Some(next)
                } else {
                    None
                }
            };
            match seq {
                Some(seq) => {
                    let made = inner
                        .dir
                        .create_zeroed(&prepared_name(seq), inner.config.segment_bytes)
                        .await;
                    let mut state = inner.state.borrow_mut();
                    state.preparing = false;
                    for w in state.prepare_waiters.drain(..) {
                        w.wake();
                    }
                    state.prepared = Some((seq, Rc::new(made?)));
                }
                None => {
                    PreparerIdle {
                        inner,
                        parked: false,
                    }
                    .await
                }
            }
        }
    }

    /// Stops the preparer and refuses further appends. Appends already made complete as usual.
    pub fn close(&self) {
        let mut state = self.inner.state.borrow_mut();
        state.closed = true;
        if let Some(w) = state.preparer.take() {
            w.wake();
        }
    }

    /// Removes the oldest segments whose entries are all at or below `snapshot_index` (so the
    /// snapshot covers them), keeping at least `segments_kept` segments. Each removal is made
    /// durable before the next, so a crash leaves a contiguous run of segments. Returns the names
    /// removed.
    pub async fn release(&self, snapshot_index: u64) -> Result<Vec<String>> {
        let inner = &*self.inner;
        let mut removed = Vec::new();
        loop {
            let victim = {
                let state = inner.state.borrow();
                let segs = &state.segments;
                let releasable = segs.len() > inner.config.segments_kept
                    && segs.len() >= 2
                    && segs[1].first_index <= snapshot_index.saturating_add(1);
                releasable.then(|| segs[0].name.clone())
            };
            let Some(name) = victim else {
                return Ok(removed);
            };
            inner.dir.remove(&name).await?;
            inner.dir.sync().await?;
            inner.state.borrow_mut().segments.remove(0);
            removed.push(name);
        }
    }
}

impl<D: LogDirectory> Inner<D> {
    /// The result of `ticket` once decided.
    fn outcome(&self, ticket: u64) -> Option<Result<()>> {
        let state = self.state.borrow();
        if state.durable_ticket >= ticket {
            Some(Ok(()))
        } else {
            state
                .failed
                .as_ref()
                .map(|why| Err(WalError::Poisoned(why.clone())))
        }
    }
}

/// Queues a new segment: its header, then the hard state and snapshot marker known so far, so
/// releasing older segments never loses them.
fn start_segment<F>(state: &mut State<F>, segment_bytes: u64) {
    let header = SegmentHeader {
        seq: state.enq_seq + 1,
        first_index: state.enq_last_index + 1,
        seed: state.enq_seed,
    };
    let mut bytes = header.encode().to_vec();
    let mut seed = header.seed;
    if let Some(h) = state.hard_state {
        seed = record::encode(&Record::HardState(h), seed, &mut bytes);
    }
    if let Some(s) = state.snapshot {
        seed = record::encode(&Record::Snapshot(s), seed, &mut bytes);
    }
    state.enq_seq = header.seq;
    state.enq_end = bytes.len() as u64;
    state.enq_segment_bytes = segment_bytes;
    state.enq_seed = seed;
    let last_ticket = state.queue.back().map_or(0, |c| c.last_ticket);
    state.queue.push_back(Chunk {
        new_segment: Some(header),
        start: 0,
        bytes,
        last_ticket,
    });
}

enum TurnOutcome {
    Done(Result<()>),
    Lead,
}

/// Resolves when the ticket is decided, or when no flush is running and this append should lead
/// the next one.
struct Turn<'a, D: LogDirectory> {
    inner: &'a Inner<D>,
    ticket: u64,
}

impl<D: LogDirectory> Future for Turn<'_, D> {
    type Output = TurnOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TurnOutcome> {
        if let Some(result) = self.inner.outcome(self.ticket) {
            self.inner.state.borrow_mut().waiters.remove(&self.ticket);
            return Poll::Ready(TurnOutcome::Done(result));
        }
        let mut state = self.inner.state.borrow_mut();
        if !state.flushing {
            state.flushing = true;
            state.waiters.remove(&self.ticket);
            return Poll::Ready(TurnOutcome::Lead);
        }
        state.waiters.insert(self.ticket, cx.waker().clone());
        Poll::Pending
    }
}

impl<D: LogDirectory> Drop for Turn<'_, D> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.inner.state.try_borrow_mut() {
            state.waiters.remove(&self.ticket);
            // This waiter may have been the one woken to lead; pass that on.
            if !state.flushing
                && !state.queue.is_empty()
                && let Some((_, w)) = state.waiters.pop_first()
            {
                w.wake();
            }
        }
    }
}

/// Held by the leader while it flushes; hands leadership on when done, poisons if dropped while
/// writing.
struct LeadGuard<'a, D: LogDirectory> {
    inner: &'a Inner<D>,
    writing: bool,
    done: bool,
}

impl<D: LogDirectory> LeadGuard<'_, D> {
    fn finish(mut self) {
        self.done = true;
    }
}

impl<D: LogDirectory> Drop for LeadGuard<'_, D> {
    fn drop(&mut self) {
        let mut state = self.inner.state.borrow_mut();
        state.flushing = false;
        if self.writing && !self.done {
            state.poison("a flush was abandoned mid-way (its append was dropped)".into());
        }
        // The oldest waiter leads next; it flushes everything queued while this flush ran.
        if let Some((_, w)) = state.waiters.pop_first() {
            w.wake();
        }
    }
}

/// Returns `Pending` once, waking itself at once: every other runnable task runs before it resumes.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Waits for the preparer to finish the segment it is making.
struct PrepareWait<'a, D: LogDirectory> {
    inner: &'a Inner<D>,
    registered: bool,
}

impl<D: LogDirectory> Future for PrepareWait<'_, D> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.inner.state.borrow_mut();
        if !state.preparing || state.failed.is_some() || self.registered {
            return Poll::Ready(());
        }
        state.prepare_waiters.push(cx.waker().clone());
        drop(state);
        self.registered = true;
        Poll::Pending
    }
}

/// Parks the preparer until a rotation uses up the prepared segment or the log closes.
struct PreparerIdle<'a, D: LogDirectory> {
    inner: &'a Inner<D>,
    parked: bool,
}

impl<D: LogDirectory> Future for PreparerIdle<'_, D> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.parked {
            return Poll::Ready(());
        }
        self.inner.state.borrow_mut().preparer = Some(cx.waker().clone());
        self.parked = true;
        Poll::Pending
    }
}
