//! Exact behaviour of the Raft core as the node drives it: a single voter, async persistence,
//! read index, restart from the persisted state.

use super::*;
use raft::Ready;

const ID: u64 = 0x8e9e_05c5_2164_694d;
const ELECTION_TICKS: usize = 10;

fn settings(applied: u64) -> RaftSettings {
    RaftSettings {
        id: ID,
        election_ticks: ELECTION_TICKS,
        heartbeat_ticks: 1,
        applied,
    }
}

fn voters() -> ConfState {
    ConfState::from((vec![ID], vec![]))
}

fn fresh() -> RawNode<LogStore> {
    let store = LogStore::new(HardState::default(), voters(), 0, 0);
    raw_node(&settings(0), store, &discard_logger()).unwrap()
}

/// Does what the node does with a `Ready` before the WAL write: entries and hard state into the
/// cache, then `advance_append_async`. Returns the ready's number and its committed entries.
fn hand_off(node: &mut RawNode<LogStore>, mut rd: Ready) -> (u64, Vec<Entry>) {
    let number = rd.number();
    let committed = rd.take_committed_entries();
    node.mut_store().append(rd.entries());
    if let Some(hs) = rd.hs() {
        node.mut_store().set_hard_state(hs.clone());
    }
    node.advance_append_async(rd);
    (number, committed)
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.index).collect()
}

/// Campaigns and persists until the leader's empty entry is committed and applied.
fn elected() -> RawNode<LogStore> {
    let mut node = fresh();
    node.campaign().unwrap();
    let rd = node.ready();
    let (number, _) = hand_off(&mut node, rd);
    node.on_persist_ready(number);
    let rd = node.ready();
    let (_, committed) = hand_off(&mut node, rd);
    assert_eq!(indexes(&committed), vec![1]);
    node.advance_apply_to(1);
    node
}

#[test]
fn single_voter_elects_itself_on_campaign() {
    let mut node = fresh();
    assert_eq!(node.raft.state, StateRole::Follower);
    node.campaign().unwrap();
    assert_eq!(node.raft.state, StateRole::Leader);
    assert_eq!(node.raft.term, 1);
    assert_eq!(node.raft.leader_id, ID);
    let rd = node.ready();
    let hs = rd.hs().expect("term and vote changed").clone();
    assert_eq!((hs.term, hs.vote, hs.commit), (1, ID, 0));
    // The new leader's empty entry, not yet committed: nothing is persisted.
    assert_eq!(indexes(rd.entries()), vec![1]);
    assert!(rd.entries()[0].data.is_empty());
    assert!(rd.committed_entries().is_empty());
    assert!(rd.must_sync());
}

#[test]
fn single_voter_elects_itself_after_election_timeout() {
    let mut node = fresh();
    // raft-rs randomizes the timeout in [election, 2 * election).
    for _ in 0..2 * ELECTION_TICKS {
        node.tick();
    }
    assert_eq!(node.raft.state, StateRole::Leader);
}

#[test]
fn proposals_commit_only_after_persistence_is_acknowledged() {
    let mut node = elected();
    node.propose(vec![], b"a".to_vec()).unwrap();
    node.propose(vec![], b"b".to_vec()).unwrap();
    let rd = node.ready();
    let (first, committed) = hand_off(&mut node, rd);
    assert!(committed.is_empty());
    // A second batch while the first is being written: pipelined, still nothing committed.
    node.propose(vec![], b"c".to_vec()).unwrap();
    let rd = node.ready();
    assert_eq!(indexes(rd.entries()), vec![4]);
    let (second, committed) = hand_off(&mut node, rd);
    assert!(committed.is_empty());
    assert_eq!(node.raft.raft_log.committed, 1);
    assert!(!node.has_ready());

    // The first write is durable: exactly its entries commit.
    node.on_persist_ready(first);
    assert!(node.has_ready());
    let rd = node.ready();
    assert_eq!(rd.hs().map(|hs| hs.commit), Some(3));
    let (_, committed) = hand_off(&mut node, rd);
    assert_eq!(indexes(&committed), vec![2, 3]);
    assert_eq!(committed[0].data.as_ref(), b"a");
    node.advance_apply_to(3);

    node.on_persist_ready(second);
    let rd = node.ready();
    let (_, committed) = hand_off(&mut node, rd);
    assert_eq!(indexes(&committed), vec![4]);
    node.advance_apply_to(4);
    assert!(!node.has_ready());
}

#[test]
fn read_index_waits_for_a_commit_in_the_current_term_then_resolves() {
    let mut node = fresh();
    node.campaign().unwrap();
    let rd = node.ready();
    let (number, _) = hand_off(&mut node, rd);
    // The leader's empty entry is not committed: raft-rs drops the request, the node retries.
    node.read_index(b"early".to_vec());
    assert!(node.raft.read_states.is_empty());
    assert!(!node.raft.commit_to_current_term());

    node.on_persist_ready(number);
    let rd = node.ready();
    hand_off(&mut node, rd);
    node.advance_apply_to(1);
    assert!(node.raft.commit_to_current_term());
    node.read_index(b"ctx".to_vec());
    let mut rd = node.ready();
    let states = rd.take_read_states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].index, 1);
    assert_eq!(states[0].request_ctx, b"ctx".to_vec());
    node.advance_append_async(rd);
}

#[test]
fn restart_from_persisted_hard_state_and_entries_restores_term_and_commit() {
    let mut node = elected();
    for data in [b"x", b"y"] {
        node.propose(vec![], data.to_vec()).unwrap();
    }
    let rd = node.ready();
    let (number, _) = hand_off(&mut node, rd);
    node.on_persist_ready(number);
    let rd = node.ready();
    let (_, committed) = hand_off(&mut node, rd);
    assert_eq!(indexes(&committed), vec![2, 3]);
    // Persisted: entries 1..=3 and hard state (term 1, commit 3). Applied (durably): 2.
    let persisted = node.store().clone();
    assert_eq!(persisted.hard_state().commit, 3);

    let mut store = LogStore::new(persisted.hard_state().clone(), voters(), 0, 0);
    let entries = raft::Storage::entries(
        &persisted,
        1,
        4,
        None,
        raft::GetEntriesContext::empty(false),
    )
    .unwrap();
    store.append(&entries);
    store.compact_to(2);
    let mut restarted = raw_node(&settings(2), store, &discard_logger()).unwrap();
    assert_eq!(restarted.raft.term, 1);
    assert_eq!(restarted.raft.raft_log.committed, 3);
    assert_eq!(restarted.raft.raft_log.applied, 2);
    assert_eq!(restarted.raft.state, StateRole::Follower);
    // What was committed but not applied is handed out again, and only that.
    let rd = restarted.ready();
    let (_, committed) = hand_off(&mut restarted, rd);
    assert_eq!(indexes(&committed), vec![3]);
    assert_eq!(committed[0].data.as_ref(), b"y");
    restarted.advance_apply_to(3);

    // Campaigning again moves to term 2 and appends after the restored log.
    restarted.campaign().unwrap();
    assert_eq!(restarted.raft.term, 2);
    let rd = restarted.ready();
    assert_eq!(indexes(rd.entries()), vec![4]);
}

#[test]
fn log_store_truncates_on_conflict_and_compacts() {
    let entry = |index, term| Entry {
        index,
        term,
        ..Entry::default()
    };
    let mut store = LogStore::new(HardState::default(), voters(), 0, 0);
    store.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
    store.append(&[entry(2, 2)]);
    assert_eq!(store.last_index(), 2);
    assert_eq!(store.term_of(2), Some(2));
    store.compact_to(1);
    assert_eq!(store.compacted(), (1, 1));
    assert_eq!(raft::Storage::first_index(&store).unwrap(), 2);
    // Entries at or below the compaction point are already applied and are ignored.
    store.append(&[entry(1, 1), entry(2, 2), entry(3, 2)]);
    assert_eq!(store.last_index(), 3);
    assert_eq!(store.len(), 2);
    assert!(
        raft::Storage::entries(&store, 1, 3, None, raft::GetEntriesContext::empty(false)).is_err()
    );
}
