//! Starting a node: the data dir opened, the state restored, the node thread started.
//!
//! The B+tree is opened first (it knows its durable applied index). The node thread then opens
//! the WAL from that index while this thread rebuilds the store's key index, membership and
//! lessor; the node thread restores raft-rs from both ([`restore`]) and starts serving.
//!
//! Owns: the order of the opening and the checks that the WAL and the B+tree agree. Never:
//! serves before everything the log had committed is applied.

use super::actor::Actor;
use super::core::{Attributes, Core, Restored, SystemClock};
use super::members::Membership;
use super::{Command, NodeConfig, NodeError, NodeStatus, PeerEvent, Peers, Shared};
use crate::raft::ids::IdGenerator;
use crate::raft::{self as core, ConfState, Entry, HardState, LogStore};
use crate::server::lessor::{Lessor, min_ttl_seconds};
use crate::server::watch::WatchHub;
use glommio::{LocalExecutorBuilder, Placement};
use keelson_storage::btree::Database;
use keelson_storage::io::{GlommioDirectory, LogDirectory};
use keelson_storage::mvcc::Store;
use keelson_storage::schema;
use keelson_storage::wal::{
    Record, RecoveryReport, Replay, SnapshotMarker, Wal, WalConfig, WalError,
};
use parking_lot::Mutex;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Bytes of a WAL entry body besides its data: type, index and term.
const ENTRY_BODY_FIXED_BYTES: usize = 1 + 8 + 8;

/// Opens the B+tree and membership here, then runs the node on a new pinned executor thread.
/// Returns once the node has elected itself and applied everything the log had committed.
pub(crate) fn spawn(config: NodeConfig, peers: Peers) -> Result<Arc<Shared>, NodeError> {
    spawn_with(
        config,
        |path| async move { GlommioDirectory::open(&path).await },
        peers,
    )
}

/// [`spawn`] with the WAL in the directory `open_dir` opens on the node thread (tests use an
/// in-memory directory that can fail syncs).
pub(crate) fn spawn_with<D, F, Fut>(
    config: NodeConfig,
    open_dir: F,
    peers: Peers,
) -> Result<Arc<Shared>, NodeError>
where
    D: LogDirectory + 'static,
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<D>> + 'static,
{
    let db_path = config.data_dir.join(schema::DB_FILE);
    if let Some(parent) = db_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| NodeError::Storage(format!("create {}: {e}", parent.display())))?;
    }
    for leftover in super::snapshots::leftovers(&config.data_dir.join(schema::SNAP_DIR)) {
        std::fs::remove_file(&leftover)
            .map_err(|e| NodeError::Storage(format!("remove {}: {e}", leftover.display())))?;
    }
    let db = Database::open_file(&db_path)
        .map_err(|e| NodeError::Storage(format!("open {}: {e}", db_path.display())))?;
    // The WAL needs only the B+tree's durable applied index, so the node thread opens it while
    // this thread rebuilds the store's key index; the node checks the store agrees.
    let applied = Store::consistent_index_in(&db).map_err(|e| NodeError::Storage(e.to_string()))?;
    let placement = match config.node_core {
        Some(core) => Placement::Fixed(core),
        None => Placement::Unbound,
    };
    let (setup_sender, setup) = flume::bounded::<Setup>(1);
    let (ready, started) = std::sync::mpsc::channel();
    let node_config = config.clone();
    let Peers {
        transport,
        events: peer_events,
        inbox: peer_inbox,
    } = peers;
    let mut builder = LocalExecutorBuilder::new(placement).name("keelson-node");
    if !config.busy_poll.is_zero() {
        builder = builder.spin_before_park(config.busy_poll);
    }
    let executor = builder
        .spawn(move || async move {
            let config = node_config;
            let opened = match open_dir(config.wal_dir.clone()).await {
                Ok(dir) => Wal::open_from(dir, wal_config(&config), applied)
                    .await
                    .map_err(wal_error),
                Err(e) => Err(NodeError::Wal(format!(
                    "open {}: {e}",
                    config.wal_dir.display()
                ))),
            };
            // No setup means the store failed to open; the caller reports that.
            let Ok(setup) = setup.recv_async().await else {
                return;
            };
            let commands = setup.commands.clone();
            let shared = setup.shared.clone();
            let restored = match opened {
                Ok(opened) => restore(&config, opened, applied, setup),
                Err(e) => Err(e),
            };
            match restored {
                Ok((core, wal, marker)) => {
                    glommio::spawn_local(wal.clone().prepare_segments()).detach();
                    let actor = Actor::new(
                        config, core, wal, commands, peer_inbox, transport, shared, applied,
                    );
                    actor.serve(ready, marker).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })
        .map_err(|e| NodeError::Thread(format!("start the node executor: {e}")))?;
    let shared = match open_store(db, &config, peer_events) {
        Ok((shared, commands, membership)) => {
            let setup = Setup {
                shared: shared.clone(),
                commands,
                membership,
            };
            // If the node thread is already gone, `started` below finds out why.
            let _ = setup_sender.send(setup);
            shared
        }
        Err(e) => {
            drop(setup_sender);
            let _ = executor.join();
            return Err(e);
        }
    };
    let outcome = started.recv();
    match outcome {
        Ok(Ok(())) => {
            *shared.thread.lock() = Some(executor);
            Ok(shared)
        }
        Ok(Err(e)) => {
            let _ = executor.join();
            Err(e)
        }
        Err(_) => {
            let why = match executor.join() {
                Ok(()) => "exited during start".to_string(),
                Err(e) => format!("failed during start: {e}"),
            };
            Err(NodeError::Thread(why))
        }
    }
}

/// What the node thread gets once the store is open.
struct Setup {
    shared: Arc<Shared>,
    commands: flume::Receiver<Command>,
    membership: Membership,
}

/// Opens the store (rebuilding its key index), the membership and the lessor.
fn open_store(
    db: Database,
    config: &NodeConfig,
    peer_events: flume::Sender<PeerEvent>,
) -> Result<(Arc<Shared>, flume::Receiver<Command>, Membership), NodeError> {
    let store = Arc::new(Store::open(db).map_err(|e| NodeError::Storage(e.to_string()))?);
    let membership = super::members::load_or_bootstrap(&store, config)?;
    let (inbox, commands) = flume::bounded(config.inbox_requests_max.max(1));
    // Before the WAL replay, which brings the lessor up to date like any other apply.
    let min_ttl = min_ttl_seconds(config.election_ticks, config.tick_interval);
    let mut lessor =
        Lessor::restore(&store, min_ttl, std::time::Instant::now()).map_err(NodeError::Storage)?;
    // Only a leader expires leases; this member promotes its lessor when it becomes one.
    lessor.demote();
    let store_rev = store.current_rev();
    let shared = Arc::new(Shared {
        inbox,
        peer_events,
        data_dir: config.data_dir.clone(),
        store: arc_swap::ArcSwap::new(store),
        status: Mutex::new(NodeStatus {
            member_id: membership.member_id,
            cluster_id: membership.cluster_id,
            ..NodeStatus::default()
        }),
        members: Mutex::new(membership.members.clone()),
        ids: Arc::new(IdGenerator::starting_now(membership.member_id)),
        poisoned: AtomicBool::new(false),
        thread: Mutex::new(None),
        lessor: Mutex::new(lessor),
        watch: Arc::new(WatchHub::new(store_rev)),
    });
    Ok((shared, commands, membership))
}

pub(super) fn wal_config(config: &NodeConfig) -> WalConfig {
    WalConfig {
        segment_bytes: config.wal_segment_bytes,
        segments_kept: config.max_wals.max(1),
    }
}

fn wal_error(e: WalError) -> NodeError {
    NodeError::Wal(e.to_string())
}

/// Restores raft-rs from the B+tree's durable applied index `applied` and the WAL opened from
/// there: the hard state, the voters, and every entry after `applied` (committed ones are applied
/// by the first `Ready`s).
fn restore<D: LogDirectory>(
    config: &NodeConfig,
    (wal, report, replay): (Wal<D>, RecoveryReport, Replay),
    applied: u64,
    setup: Setup,
) -> Result<(Core, Wal<D>, Option<Record>), NodeError> {
    let Setup {
        shared, membership, ..
    } = setup;
    let entry_data_max = wal_config(config).record_body_max() - ENTRY_BODY_FIXED_BYTES;
    // The B+tree holds everything up to its consistent index; the WAL, opened from there,
    // the rest.
    let store_applied = shared.store.load().view().consistent_index();
    if store_applied != applied {
        return Err(NodeError::Inconsistent(format!(
            "the store opened at applied index {store_applied}, the B+tree said {applied}"
        )));
    }
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(
            file = %torn.file,
            offset = torn.offset,
            discarded_bytes = torn.bytes_discarded,
            "WAL tail torn; discarded the partial record"
        );
    }
    let mut marker = replay.snapshot.unwrap_or_default();
    let mut unrecorded = None;
    let applied_term = if applied == 0 {
        0
    } else if let Some(e) = replay.entries.iter().find(|e| e.index == applied) {
        e.term
    } else if marker.index == applied {
        marker.term
    } else if let Some((index, term)) = installed_snapshot(&shared)?
        && index == applied
    {
        // A snapshot installed just before a crash, before its WAL marker was durable.
        marker = SnapshotMarker { index, term };
        unrecorded = Some(Record::Snapshot(marker));
        term
    } else {
        return Err(NodeError::Inconsistent(format!(
            "the B+tree applied index {applied} is not in the WAL (last index {})",
            wal.last_index()
        )));
    };
    let mut hard_state = HardState::default();
    if let Some(hs) = replay.hard_state {
        hard_state.term = hs.term;
        hard_state.vote = hs.vote;
        hard_state.commit = hs.commit;
    }
    // Applied entries were committed, even if the hard state saying so was not written.
    hard_state.commit = hard_state.commit.max(applied);
    let (learners, voters): (Vec<_>, Vec<_>) =
        membership.members.iter().partition(|m| m.is_learner);
    let ids = |members: Vec<&super::MemberInfo>| members.iter().map(|m| m.id).collect::<Vec<_>>();
    let mut log = LogStore::new(
        hard_state,
        ConfState::from((ids(voters), ids(learners))),
        applied,
        applied_term,
    );
    let entries: Vec<Entry> = replay
        .entries
        .into_iter()
        .filter(|e| e.index > applied && unrecorded.is_none())
        .map(|e| Entry {
            index: e.index,
            term: e.term,
            data: e.data.into(),
            ..Entry::default()
        })
        .collect();
    log.append(&entries);
    let logger = match config.raft_log_level {
        Some(level) => core::tracing_logger(level),
        None => core::discard_logger(),
    };
    let settings = core::RaftSettings {
        id: membership.member_id,
        election_ticks: config.election_ticks,
        heartbeat_ticks: 1,
        applied,
    };
    let raw =
        core::raw_node(&settings, log, &logger).map_err(|e| NodeError::Raft(e.to_string()))?;
    let core = Core::new(Restored {
        raw,
        shared,
        member_id: membership.member_id,
        cluster_id: membership.cluster_id,
        election_ticks: config.election_ticks,
        entry_data_max,
        applied,
        marker_index: marker.index,
        clock: Box::new(SystemClock),
        request_timeout_ticks: ticks_in(config.request_timeout, config.tick_interval),
        election_timeout: config.tick_interval * config.election_ticks as u32,
        attributes: Attributes {
            name: config.name.clone(),
            client_urls: config.client_urls.clone(),
        },
        data_dir: config.data_dir.clone(),
        min_ttl: min_ttl_seconds(config.election_ticks, config.tick_interval),
    });
    Ok((core, wal, unrecorded))
}

/// The index and term of the snapshot the store was installed from, if it was.
fn installed_snapshot(shared: &Shared) -> Result<Option<(u64, u64)>, NodeError> {
    let store = shared.store.load();
    let view = store.view();
    let bytes = view
        .txn()
        .get(schema::TREE_LOCAL, schema::LOCAL_SNAPSHOT_KEY)
        .map_err(|e| NodeError::Storage(format!("read the installed snapshot: {e}")))?;
    Ok(bytes.and_then(|b| {
        let index = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let term = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        Some((index, term))
    }))
}

/// Whole ticks of `interval` in `duration`, at least one.
fn ticks_in(duration: std::time::Duration, interval: std::time::Duration) -> u64 {
    (duration.as_nanos() / interval.as_nanos().max(1)).max(1) as u64
}
