//! The MVCC store: etcd's revisioned key space on the B+tree.
//!
//! Records live in the key tree under their revision (`mvccpb.KeyValue` values, tombstones marked
//! in the key); the in-memory [`Index`] maps each user key to its revisions. Semantics follow
//! etcd's `mvcc` package: one main revision per write request that changes something, sub
//! revisions within it, versions and create revisions per generation, compaction that keeps the
//! newest revision of each live key at or below the compact revision.
//!
//! Concurrency: one writer ([`StoreWrite`], the apply loop) and any number of readers. A reader
//! takes a [`View`], a B+tree snapshot published after each commit together with the revision it
//! shows. The index is shared behind a lock; readers ask it about their view's revision, which the
//! writer's newer entries do not affect. Index compaction runs only after the commit that
//! scheduled it is published, and a reader takes its view while holding the index lock, so a
//! reader's view is never older than the index's compaction.
//!
//! This module never commits durably on its own: the caller picks how each commit is made
//! durable (the write-ahead log already holds every change).

use super::index::{FoundKey, Index, KeyRange};
use super::key_index::KeyIndex;
use super::kv::{self, KeyValue, KeyValueRef};
use super::revision::{REVISION_BYTES, Revision};
use crate::btree::{self, Database, ReadTxn, Tree, WriteTxn};
use crate::schema;
use parking_lot::{Mutex, MutexGuard, RwLock};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Revisions deleted per compaction step, so one step never holds the writer for long
/// (etcd's `--experimental-compaction-batch-limit` default).
pub const COMPACTION_BATCH_KEYS: usize = 1000;

/// The revision of an empty store.
pub const FIRST_REV: i64 = 1;

#[derive(Debug)]
pub enum Error {
    /// The requested revision was compacted away.
    Compacted,
    /// The requested revision is newer than the store.
    FutureRev,
    Storage(btree::Error),
    /// The file holds something the store could not have written.
    Corrupt(String),
    /// An earlier write transaction failed after changing the index; reopen the store.
    Poisoned,
    /// The view is older than a compaction the index has since applied; take a new view.
    StaleView,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Compacted => write!(f, "mvcc: required revision has been compacted"),
            Error::FutureRev => write!(f, "mvcc: required revision is a future revision"),
            Error::Storage(error) => write!(f, "{error}"),
            Error::Corrupt(detail) => write!(f, "mvcc: corrupt store: {detail}"),
            Error::Poisoned => write!(
                f,
                "mvcc: an earlier write failed part-way; the store must be reopened"
            ),
            Error::StaleView => write!(f, "mvcc: the view predates a compaction; take a new view"),
        }
    }
}

impl std::error::Error for Error {}

impl From<btree::Error> for Error {
    fn from(error: btree::Error) -> Error {
        Error::Storage(error)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    /// At most this many keys (0: no limit). The count still covers every key in range.
    pub limit: usize,
    /// Read at this revision (0 or less: the newest).
    pub rev: i64,
    /// Count only; return no records.
    pub count_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResult<'a> {
    pub kvs: Vec<KeyValueRef<'a>>,
    /// Keys in range at the revision read, regardless of the limit.
    pub count: usize,
    /// The store's revision the read was answered at (the header revision).
    pub rev: i64,
}

/// One change made by a write, as a watcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(KeyValue),
    /// The key deleted and the revision of its tombstone.
    Delete {
        key: Vec<u8>,
        mod_revision: i64,
    },
}

/// A B+tree snapshot and the store revision it shows.
pub struct View {
    txn: ReadTxn,
    rev: i64,
    compact_rev: i64,
    consistent_index: u64,
}

impl View {
    /// The newest revision this view shows.
    pub fn rev(&self) -> i64 {
        self.rev
    }

    /// The compact revision as of this view (-1 if never compacted).
    pub fn compact_rev(&self) -> i64 {
        self.compact_rev
    }

    /// The Raft index of the last entry applied in this view.
    pub fn consistent_index(&self) -> u64 {
        self.consistent_index
    }

    /// The B+tree snapshot, for reading the other trees (leases, auth, members).
    pub fn txn(&self) -> &ReadTxn {
        &self.txn
    }
}

/// What a compaction still has to delete from the key tree.
#[derive(Clone, Debug)]
pub struct CompactionJob {
    rev: i64,
    keep: HashSet<Revision>,
    /// The next key-tree key to look at.
    next: Vec<u8>,
}

impl CompactionJob {
    pub fn rev(&self) -> i64 {
        self.rev
    }
}

/// State only the writer changes; its mutex is the store's writer slot.
#[derive(Clone, Copy, Debug)]
struct WriterState {
    current_rev: i64,
    /// The newest compaction scheduled (reads below it fail); -1 before any.
    compact_rev: i64,
    consistent_index: u64,
}

pub struct Store {
    db: Database,
    index: RwLock<Index>,
    view: RwLock<Arc<View>>,
    writer: Mutex<WriterState>,
    /// Set when a write transaction changed the index and then failed to commit.
    poisoned: AtomicBool,
}

/// What the open needs of one key-tree record to rebuild the index; the key is in a buffer of
/// all keys.
struct RestoredRecord {
    key_start: usize,
    key_len: usize,
    rev: Revision,
    tombstone: bool,
    create_revision: i64,
    version: i64,
}

/// Reads key-tree records from whichever transaction a range runs in, returning slices that live
/// as long as that transaction (`'t`).
trait TreeRead<'t> {
    fn get_record(&self, key: &[u8]) -> std::result::Result<Option<&'t [u8]>, btree::Error>;
}

/// A reader's key tree, its root resolved once per range rather than once per record.
impl<'t> TreeRead<'t> for Tree<'t> {
    fn get_record(&self, key: &[u8]) -> std::result::Result<Option<&'t [u8]>, btree::Error> {
        self.get(key)
    }
}

impl<'t> TreeRead<'t> for &'t WriteTxn<'_> {
    fn get_record(&self, key: &[u8]) -> std::result::Result<Option<&'t [u8]>, btree::Error> {
        self.get(schema::TREE_KEY, key)
    }
}

fn decode_revision_value(bytes: &[u8], what: &str) -> Result<i64> {
    let (rev, _) = Revision::from_key(bytes)
        .ok_or_else(|| Error::Corrupt(format!("meta {what} is not a revision")))?;
    Ok(rev.main)
}

/// Checks `rev` against the store's revisions the way etcd does, and resolves 0 to the newest.
fn resolve_rev(rev: i64, current_rev: i64, compact_rev: i64) -> Result<i64> {
    if rev > current_rev {
        return Err(Error::FutureRev);
    }
    let rev = if rev <= 0 { current_rev } else { rev };
    if rev < compact_rev {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

/// Reads the records of `found` keys from the key tree.
fn read_records<'t>(
    tree: &impl TreeRead<'t>,
    found: &[FoundKey<'_>],
) -> Result<Vec<KeyValueRef<'t>>> {
    let mut kvs = Vec::with_capacity(found.len());
    for key in found {
        let rev_key = key.at.modified.to_bytes();
        let bytes = tree.get_record(&rev_key)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "index points at revision {:?} of key {:?}, which the key tree lacks",
                key.at.modified,
                String::from_utf8_lossy(key.key)
            ))
        })?;
        kvs.push(kv::decode(bytes).map_err(|error| Error::Corrupt(error.to_string()))?);
    }
    Ok(kvs)
}

fn range_in<'t>(
    tree: &impl TreeRead<'t>,
    index: &Index,
    range: KeyRange<'_>,
    options: RangeOptions,
    current_rev: i64,
    compact_rev: i64,
) -> Result<RangeResult<'t>> {
    let rev = resolve_rev(options.rev, current_rev, compact_rev)?;
    if options.count_only {
        let (_, count) = index.range_at(range, rev, 1);
        return Ok(RangeResult {
            kvs: Vec::new(),
            count,
            rev: current_rev,
        });
    }
    let (found, count) = index.range_at(range, rev, options.limit);
    let kvs = read_records(tree, &found)?;
    Ok(RangeResult {
        kvs,
        count,
        rev: current_rev,
    })
}

/// The consistent index a read transaction sees (0 when never set, or in a fresh file).
fn consistent_index_of(read: &ReadTxn) -> Result<u64> {
    if !read.contains_tree(schema::TREE_META)? {
        return Ok(0);
    }
    match read.get(schema::TREE_META, schema::META_CONSISTENT_INDEX)? {
        Some(bytes) => Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| {
            Error::Corrupt("meta consistent_index is not 8 bytes".to_string())
        })?)),
        None => Ok(0),
    }
}

impl Store {
    /// The consistent index `db` holds durably, the index [`Store::open`] will start at, read
    /// without opening the store (so the WAL can be opened from it meanwhile).
    pub fn consistent_index_in(db: &Database) -> Result<u64> {
        consistent_index_of(&db.begin_read()?)
    }

    /// Opens the store on `db`: creates the trees of a fresh file, rebuilds the index from the
    /// key tree, and finishes a compaction that a crash interrupted.
    pub fn open(db: Database) -> Result<Store> {
        {
            let read = db.begin_read()?;
            let missing = schema::TREES
                .iter()
                .any(|tree| !read.contains_tree(tree).unwrap_or(false));
            drop(read);
            if missing {
                let mut txn = db.begin_write()?;
                for tree in schema::TREES {
                    txn.create_tree(tree)?;
                }
                txn.commit()?;
            }
        }
        let read = db.begin_read()?;
        // etcd starts a fresh store at revision 1, so the first write is revision 2.
        let mut current_rev = FIRST_REV;
        // Every record of the key tree, read in revision order, then sorted by key and revision
        // and built into the index in one pass. The keys are copied into one buffer as they come:
        // the sort compares them about twenty times each, and packed together they stay in cache
        // far better than spread over the file's pages among the values.
        let mut keys: Vec<u8> = Vec::new();
        let mut records: Vec<RestoredRecord> = Vec::new();
        for entry in read.range(schema::TREE_KEY, ..)? {
            let (key, value) = entry?;
            let (rev, tombstone) = Revision::from_key(key).ok_or_else(|| {
                Error::Corrupt(format!("key tree holds a non-revision key {key:?}"))
            })?;
            let record = kv::decode(value).map_err(|error| Error::Corrupt(error.to_string()))?;
            current_rev = rev.main;
            records.push(RestoredRecord {
                key_start: keys.len(),
                key_len: record.key.len(),
                rev,
                tombstone,
                create_revision: record.create_revision,
                version: record.version,
            });
            keys.extend_from_slice(record.key);
        }
        drop(read);
        // The scan touched every page of the key tree, values included; keeping them all
        // resident would make a restarted server's memory grow with the data size.
        db.release_mapped_pages()?;
        let key_of = |record: &RestoredRecord| &keys[record.key_start..][..record.key_len];
        // Revisions are unique, so (key, revision) is a total order and an unstable sort keeps
        // each key's records in revision order.
        records.sort_unstable_by(|a, b| key_of(a).cmp(key_of(b)).then(a.rev.cmp(&b.rev)));
        let mut builder = Index::sorted_builder(records.len());
        for group in records.chunk_by(|a, b| key_of(a) == key_of(b)) {
            // A key first seen as a tombstone had its earlier history compacted away.
            let Some(start) = group.iter().position(|r| !r.tombstone) else {
                continue;
            };
            let first = &group[start];
            let key = key_of(first);
            let created = Revision::new(first.create_revision, 0);
            let later = &group[start + 1..];
            if later.is_empty() {
                builder.push_restored(key, created, first.rev, first.version);
                continue;
            }
            let mut history = KeyIndex::restored(created, first.rev, first.version);
            for record in later {
                if record.tombstone {
                    history.tombstone(record.rev);
                } else {
                    history.put(record.rev);
                }
            }
            builder.push(key, history);
        }
        drop(records);
        drop(keys);
        let index = builder.finish();
        let read = db.begin_read()?;
        let finished = match read.get(schema::TREE_META, schema::META_FINISHED_COMPACT_REV)? {
            Some(bytes) => decode_revision_value(bytes, "finishedCompactRev")?,
            None => -1,
        };
        let scheduled = match read.get(schema::TREE_META, schema::META_SCHEDULED_COMPACT_REV)? {
            Some(bytes) => decode_revision_value(bytes, "scheduledCompactRev")?,
            None => -1,
        };
        let consistent_index = consistent_index_of(&read)?;
        drop(read);
        let compact_rev = finished.max(scheduled);
        // A compaction at the newest revision may have removed the newest record (a tombstone).
        current_rev = current_rev.max(compact_rev);
        let state = WriterState {
            current_rev,
            compact_rev,
            consistent_index,
        };
        let view = View {
            txn: db.begin_read()?,
            rev: current_rev,
            compact_rev,
            consistent_index,
        };
        let store = Store {
            db,
            index: RwLock::new(index),
            view: RwLock::new(Arc::new(view)),
            writer: Mutex::new(state),
            poisoned: AtomicBool::new(false),
        };
        if scheduled > finished {
            let mut job = store.start_compaction(scheduled);
            loop {
                let mut write = store.begin_write()?;
                let done = write.compaction_step(&mut job)?;
                write.commit_durable()?;
                if done {
                    break;
                }
            }
        }
        Ok(store)
    }

    /// The newest published view. Cheap: a lock and an `Arc` clone.
    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Range over `view`, etcd's `Range` at the mvcc level: the keys of `range` at the requested
    /// revision, in key order.
    ///
    /// Fails with [`Error::StaleView`] if a compaction newer than the view has reached the index
    /// since the view was taken (the index can no longer answer for the view's revision): take a
    /// new view and try again.
    pub fn range<'v>(
        &self,
        view: &'v View,
        range: KeyRange<'_>,
        options: RangeOptions,
    ) -> Result<RangeResult<'v>> {
        let index = self.index.read();
        if view.rev < index.compacted_rev() {
            return Err(Error::StaleView);
        }
        range_in(
            &view.txn.tree(schema::TREE_KEY)?,
            &index,
            range,
            options,
            view.rev,
            view.compact_rev,
        )
    }

    /// etcd's `HashByRev`, for HashKV: the hash of the key tree up to `rev` (0: the newest; see
    /// [`super::hash`]), with the newest revision and the compaction revision it was taken at.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        loop {
            let view = self.view();
            let (current, compact) = (view.rev, view.compact_rev);
            if rev > 0 && rev <= compact {
                return Err(Error::Compacted);
            }
            if rev > current {
                return Err(Error::FutureRev);
            }
            let at = if rev == 0 { current } else { rev };
            let keep = {
                let index = self.index.read();
                if view.rev < index.compacted_rev() {
                    // A compaction reached the index after the view was taken: the index can no
                    // longer say what the view's records keep. Take a newer view.
                    continue;
                }
                index.keep(at)
            };
            let mut hasher = super::hash::KvHasher::new(at, compact, &keep);
            for entry in view.txn.tree(schema::TREE_KEY)?.range(..) {
                let (key, value) = entry?;
                hasher.record(key, value);
            }
            return Ok((hasher.finish(), current, compact));
        }
    }

    /// Begins the single write transaction; waits while another is open.
    pub fn begin_write(&self) -> Result<StoreWrite<'_>> {
        let state = self.writer.lock();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let txn = self.db.begin_write()?;
        Ok(StoreWrite {
            store: self,
            txn: Some(txn),
            state,
            request: None,
            dirty: false,
        })
    }

    fn start_compaction(&self, rev: i64) -> CompactionJob {
        let keep = self.index.write().compact(rev);
        CompactionJob {
            rev,
            keep,
            next: Vec::new(),
        }
    }

    /// Starts the physical part of a compaction that a committed write scheduled: compacts the
    /// index and returns the job whose steps delete the dropped revisions.
    pub fn compaction_job(&self, rev: i64) -> CompactionJob {
        self.start_compaction(rev)
    }

    /// Keys in the in-memory index (etcd's `etcd_debugging_mvcc_keys_total`).
    pub fn key_count(&self) -> usize {
        self.index.read().key_count()
    }

    /// The newest revision committed by the writer.
    pub fn current_rev(&self) -> i64 {
        self.view.read().rev
    }
}

/// The open request inside a write transaction: one main revision, its sub revisions.
#[derive(Debug)]
struct Request {
    changes: Vec<Change>,
}

/// The store's single write transaction. Requests inside it each get their own main revision.
pub struct StoreWrite<'s> {
    store: &'s Store,
    /// `None` only once committed.
    txn: Option<WriteTxn<'s>>,
    state: MutexGuard<'s, WriterState>,
    request: Option<Request>,
    /// Set by the first change; see `Drop`.
    dirty: bool,
}

impl<'s> StoreWrite<'s> {
    /// The B+tree transaction, for the other trees (leases, auth, members, alarms).
    pub fn txn(&mut self) -> &mut WriteTxn<'s> {
        self.dirty = true;
        self.txn_mut()
    }

    fn txn_mut(&mut self) -> &mut WriteTxn<'s> {
        self.txn
            .as_mut()
            .expect("the transaction is open until finished")
    }

    fn txn_ref(&self) -> &WriteTxn<'s> {
        self.txn
            .as_ref()
            .expect("the transaction is open until finished")
    }

    pub fn current_rev(&self) -> i64 {
        self.state.current_rev
    }

    pub fn compact_rev(&self) -> i64 {
        self.state.compact_rev
    }

    /// Records the Raft index whose effects this transaction holds.
    pub fn set_consistent_index(&mut self, index: u64) -> Result<()> {
        self.txn().put(
            schema::TREE_META,
            schema::META_CONSISTENT_INDEX,
            &index.to_be_bytes(),
        )?;
        self.state.consistent_index = index;
        Ok(())
    }

    /// Opens a request: later writes share its main revision until [`end_request`].
    ///
    /// [`end_request`]: StoreWrite::end_request
    pub fn begin_request(&mut self) {
        assert!(self.request.is_none(), "a request is already open");
        self.request = Some(Request {
            changes: Vec::new(),
        });
    }

    /// Closes the open request. If it changed anything, the store's revision advances by one.
    /// Returns its changes and the revision the response header carries.
    pub fn end_request(&mut self) -> (Vec<Change>, i64) {
        let request = self.request.take().expect("no request is open");
        if !request.changes.is_empty() {
            self.state.current_rev += 1;
        }
        (request.changes, self.state.current_rev)
    }

    fn request(&mut self) -> &mut Request {
        self.request.as_mut().expect("writes need an open request")
    }

    /// The revision reads inside the open request see: its own writes included.
    fn read_rev(&self) -> i64 {
        let changed = self.request.as_ref().is_some_and(|r| !r.changes.is_empty());
        self.state.current_rev + i64::from(changed)
    }

    /// Range inside the transaction, seeing the open request's own writes.
    pub fn range(&self, range: KeyRange<'_>, options: RangeOptions) -> Result<RangeResult<'_>> {
        let index = self.store.index.read();
        range_in(
            &self.txn_ref(),
            &index,
            range,
            options,
            self.read_rev(),
            self.state.compact_rev,
        )
    }

    /// Puts `key` in the open request. Returns the record written.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<KeyValue> {
        let main = self.state.current_rev + 1;
        let sub = self.request().changes.len() as i64;
        let rev = Revision::new(main, sub);
        let previous = self.store.index.read().get(key, main);
        let (create_revision, version) = match previous {
            Some(at) => (at.created.main, at.version + 1),
            None => (main, 1),
        };
        let record = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: main,
            version,
            value: value.to_vec(),
            lease,
        };
        self.txn()
            .put(schema::TREE_KEY, &rev.to_bytes(), &record.as_ref().to_vec())?;
        self.store.index.write().put(key, rev);
        self.request().changes.push(Change::Put(record.clone()));
        Ok(record)
    }

    /// Deletes every key of `range` in the open request. Returns the keys deleted, in order.
    pub fn delete_range(&mut self, range: KeyRange<'_>) -> Result<Vec<Vec<u8>>> {
        let read_rev = self.read_rev();
        let keys: Vec<Vec<u8>> = {
            let index = self.store.index.read();
            let (found, _) = index.range_at(range, read_rev, 0);
            found.into_iter().map(|found| found.key.to_vec()).collect()
        };
        let main = self.state.current_rev + 1;
        for key in &keys {
            let sub = self.request().changes.len() as i64;
            let rev = Revision::new(main, sub);
            let tombstone = KeyValueRef {
                key,
                ..KeyValueRef::default()
            };
            self.txn().put(
                schema::TREE_KEY,
                &rev.to_tombstone_bytes(),
                &tombstone.to_vec(),
            )?;
            let deleted = self.store.index.write().tombstone(key, rev);
            assert!(
                deleted,
                "a key found live in the index must accept a tombstone"
            );
            self.request().changes.push(Change::Delete {
                key: key.clone(),
                mod_revision: main,
            });
        }
        Ok(keys)
    }

    /// Schedules a compaction at `rev` (etcd's `Compact`): checks it, records it, and makes reads
    /// below it fail from this transaction on. The caller starts the physical part with
    /// [`Store::compaction_job`] once this transaction is committed.
    pub fn schedule_compaction(&mut self, rev: i64) -> Result<()> {
        if rev <= self.state.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > self.state.current_rev {
            return Err(Error::FutureRev);
        }
        self.txn().put(
            schema::TREE_META,
            schema::META_SCHEDULED_COMPACT_REV,
            &Revision::new(rev, 0).to_bytes(),
        )?;
        self.state.compact_rev = rev;
        Ok(())
    }

    /// Deletes up to [`COMPACTION_BATCH_KEYS`] dropped revisions of `job`. Returns true once the
    /// compaction is complete (and recorded as finished in this transaction).
    pub fn compaction_step(&mut self, job: &mut CompactionJob) -> Result<bool> {
        // Key-tree keys at or below the compact revision: everything before main `rev + 1`.
        let end = Revision::new(job.rev + 1, 0).to_bytes();
        let mut doomed = Vec::new();
        let mut seen = 0;
        let mut last: Option<Vec<u8>> = None;
        for entry in self
            .txn_ref()
            .range(schema::TREE_KEY, &job.next[..]..&end[..])?
        {
            let (key, _) = entry?;
            if seen == COMPACTION_BATCH_KEYS {
                break;
            }
            seen += 1;
            let (rev, _) = Revision::from_key(key).ok_or_else(|| {
                Error::Corrupt(format!("key tree holds a non-revision key {key:?}"))
            })?;
            if !job.keep.contains(&rev) {
                doomed.push(key.to_vec());
            }
            last = Some(key.to_vec());
        }
        for key in &doomed {
            self.txn().delete(schema::TREE_KEY, key)?;
        }
        if seen < COMPACTION_BATCH_KEYS {
            let finished = Revision::new(job.rev, 0).to_bytes();
            self.txn().put(
                schema::TREE_META,
                schema::META_FINISHED_COMPACT_REV,
                &finished,
            )?;
            return Ok(true);
        }
        // Resume right after the last key looked at.
        let mut next = last.expect("a full batch has a last key");
        next.push(0);
        debug_assert!(next.len() > REVISION_BYTES);
        job.next = next;
        Ok(false)
    }

    /// Commits and makes the result durable before returning (two B+tree syncs).
    pub fn commit_durable(self) -> Result<()> {
        self.finish(|txn| txn.commit())
    }

    /// Commits and publishes the result to readers at once, without waiting for the disk: it
    /// becomes durable at the next [`Database::sync`] (or durable commit). For changes the
    /// write-ahead log already holds, which a restart replays after the last durable
    /// `consistent_index`.
    pub fn commit_deferred(self) -> Result<()> {
        self.finish(|txn| txn.commit_unsynced())
    }

    fn finish(
        mut self,
        commit: impl FnOnce(WriteTxn<'s>) -> std::result::Result<(), btree::Error>,
    ) -> Result<()> {
        assert!(self.request.is_none(), "commit with a request still open");
        let txn = self
            .txn
            .take()
            .expect("the transaction is open until finished");
        // If the commit fails, `self` drops dirty and poisons the store.
        commit(txn)?;
        let state = *self.state;
        // Publish while still holding the writer slot, so views appear in commit order.
        let view = View {
            txn: self.store.db.begin_read()?,
            rev: state.current_rev,
            compact_rev: state.compact_rev,
            consistent_index: state.consistent_index,
        };
        *self.store.view.write() = Arc::new(view);
        self.dirty = false;
        Ok(())
    }
}

impl Drop for StoreWrite<'_> {
    fn drop(&mut self) {
        // The index already holds this transaction's revisions; they cannot be taken back, so a
        // transaction that changed something and did not commit leaves the store unusable.
        if self.dirty {
            self.store.poisoned.store(true, Ordering::Release);
        }
    }
}
