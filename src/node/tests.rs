//! The node on real files (glommio/io_uring WAL, mmap B+tree) in a temporary data dir:
//! concurrent proposals, read index, clean restart, and a crash without the final B+tree sync.

use super::*;
use crate::config::Config;
use keelson_proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};
use keelson_storage::mvcc::{KeyRange, RangeOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Writers proposing at the same time.
const WRITERS: usize = 8;
/// Puts each writer makes.
const PUTS_PER_WRITER: usize = 25;

fn config(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        // Fast ticks keep the tests short; the single voter campaigns at once anyway.
        tick_interval: Duration::from_millis(10),
        ..NodeConfig::for_data_dir(dir)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn put(key: &str, value: &str) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..PutRequest::default()
    })
}

fn revision(response: &WriteResponse) -> i64 {
    match response {
        WriteResponse::Put(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::DeleteRange(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::Txn(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::Compaction(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::LeaseGrant(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::LeaseRevoke(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::LeaseCheckpoint(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::Alarm(_) => panic!("an alarm response has no revision"),
    }
}

fn value(node: &NodeHandle, key: &str) -> Option<Vec<u8>> {
    let store = node.store();
    let view = store.view();
    let found = store
        .range(
            &view,
            KeyRange::Single(key.as_bytes()),
            RangeOptions::default(),
        )
        .unwrap();
    found.kvs.first().map(|kv| kv.value.to_vec())
}

/// Puts from several tokio tasks at once; returns (key, value, revision) of each.
fn concurrent_puts(node: &NodeHandle, rt: &tokio::runtime::Runtime) -> Vec<(String, i64)> {
    rt.block_on(async {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let node = node.clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    for i in 0..PUTS_PER_WRITER {
                        let key = format!("k{w}-{i}");
                        let response = node.propose(put(&key, &key)).await.unwrap();
                        done.push((key, revision(&response)));
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    })
}

#[test]
fn concurrent_proposals_get_distinct_revisions_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let node = start(config(dir.path())).unwrap();
    let rt = runtime();
    let status = node.status();
    assert_eq!(format!("{:x}", status.member_id), "8e9e05c52164694d");
    assert_eq!(format!("{:x}", status.cluster_id), "cdf818194e3a8c32");
    assert_eq!(status.leader, status.member_id);
    assert_eq!(status.raft_term, 1);

    let done = concurrent_puts(&node, &rt);
    let mut revisions: Vec<i64> = done.iter().map(|(_, rev)| *rev).collect();
    revisions.sort_unstable();
    // A fresh store is at revision 1: the puts took 2..=N+1, each exactly once.
    let expected: Vec<i64> = (2..2 + (WRITERS * PUTS_PER_WRITER) as i64).collect();
    assert_eq!(revisions, expected);
    for (key, _) in &done {
        assert_eq!(value(&node, key).as_deref(), Some(key.as_bytes()));
    }
    let response = rt.block_on(node.propose(put("h", "v"))).unwrap();
    let WriteResponse::Put(r) = response else {
        panic!("a put answers a put")
    };
    let header = r.header.unwrap();
    assert_eq!(header.member_id, status.member_id);
    assert_eq!(header.cluster_id, status.cluster_id);
    assert_eq!(header.raft_term, 1);
    let status = node.status();
    assert_eq!(status.raft_applied_index, status.raft_index);
    assert!(status.db_size > 0);
    assert_eq!(node.members().len(), 1);
    assert_eq!(node.members()[0].name, "default");
    node.stop();
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn read_index_resolves_after_writes_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(config(dir.path())).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let writer = node.clone();
        let write = tokio::spawn(async move { writer.propose(put("a", "1")).await });
        write.await.unwrap().unwrap();
        node.read_index().await.unwrap();
        assert_eq!(value(&node, "a").as_deref(), Some(&b"1"[..]));
        // Many barriers at once share one raft-rs request.
        let reads: Vec<_> = (0..16)
            .map(|_| {
                let node = node.clone();
                tokio::spawn(async move { node.read_index().await })
            })
            .collect();
        for read in reads {
            read.await.unwrap().unwrap();
        }
    });
    let status = node.status();
    assert_eq!(status.raft_applied_index, status.raft_index);
    node.stop();
}

#[test]
fn restart_keeps_data_ids_and_term_order() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = start(config(dir.path())).unwrap();
    let first = node.status();
    let done = concurrent_puts(&node, &rt);
    node.stop();

    let node = start(config(dir.path())).unwrap();
    let status = node.status();
    assert_eq!(status.member_id, first.member_id);
    assert_eq!(status.cluster_id, first.cluster_id);
    // A restart campaigns again: a new term.
    assert_eq!(status.raft_term, 2);
    for (key, _) in &done {
        assert_eq!(value(&node, key).as_deref(), Some(key.as_bytes()));
    }
    let next = rt.block_on(node.propose(put("after", "restart"))).unwrap();
    let max = done.iter().map(|(_, rev)| *rev).max().unwrap();
    assert_eq!(revision(&next), max + 1);
    node.stop();
}

#[test]
fn crash_without_btree_sync_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let crashing = NodeConfig {
        // The background sync never runs: only the WAL holds the writes.
        sync_interval: Duration::from_secs(3600),
        ..config(dir.path())
    };
    let node = start(crashing.clone()).unwrap();
    let done = concurrent_puts(&node, &rt);
    let applied = node.status().raft_applied_index;
    node.abort();

    let node = start(config(dir.path())).unwrap();
    for (key, _) in &done {
        assert_eq!(value(&node, key).as_deref(), Some(key.as_bytes()));
    }
    let view = node.store().view();
    // Everything replayed, plus the new leader's empty entry.
    assert_eq!(view.consistent_index(), applied + 1);
    assert_eq!(view.rev(), 1 + (WRITERS * PUTS_PER_WRITER) as i64);
    node.stop();

    // And a second crash right after a restart changes nothing.
    let node = start(crashing).unwrap();
    let applied = node.status().raft_applied_index;
    node.abort();
    let node = start(config(dir.path())).unwrap();
    assert_eq!(node.store().view().consistent_index(), applied + 1);
    assert_eq!(
        node.store().view().rev(),
        1 + (WRITERS * PUTS_PER_WRITER) as i64
    );
    node.stop();
}

#[test]
fn physical_compaction_replies_when_done() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = start(config(dir.path())).unwrap();
    rt.block_on(async {
        for i in 0..10 {
            node.propose(put("c", &i.to_string())).await.unwrap();
        }
        let response = node
            .propose(WriteRequest::Compaction(CompactionRequest {
                revision: 6,
                physical: true,
            }))
            .await
            .unwrap();
        assert!(matches!(response, WriteResponse::Compaction(_)));
        let again = node
            .propose(WriteRequest::Compaction(CompactionRequest {
                revision: 6,
                physical: false,
            }))
            .await;
        assert_eq!(again, Err(EtcdError::Compacted));
    });
    assert_eq!(node.store().view().compact_rev(), 6);
    let _ = RangeRequest::default();
    node.stop();
}

#[test]
fn stop_refuses_later_proposals() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = start(config(dir.path())).unwrap();
    let keep = node.clone();
    node.stop();
    assert_eq!(
        rt.block_on(keep.propose(put("x", "y"))),
        Err(EtcdError::Stopped)
    );
}

fn wal_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(keelson_storage::schema::WAL_DIR))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy()
                .ends_with(keelson_storage::wal::SEGMENT_SUFFIX)
        })
        .count()
}

fn oldest_segment(dir: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(keelson_storage::schema::WAL_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(keelson_storage::wal::SEGMENT_SUFFIX))
        .collect();
    names.sort();
    names.swap_remove(0)
}

#[test]
fn wal_segments_are_released_once_the_btree_is_durable() {
    /// Small segments so a few hundred puts rotate several times.
    const SEGMENT_BYTES: u64 = 64 << 10;
    const PUTS: usize = 400;
    /// Extra writes allowed for the last release to happen, 20 ms apart.
    const RELEASE_TRIES: usize = 250;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let small = NodeConfig {
        wal_segment_bytes: SEGMENT_BYTES,
        max_wals: 1,
        sync_interval: Duration::from_millis(10),
        ..config(dir.path())
    };
    let node = start(small.clone()).unwrap();
    let first_segment = oldest_segment(dir.path());
    let value = "v".repeat(512);
    let mut puts = 0;
    rt.block_on(async {
        for i in 0..PUTS {
            node.propose(put(&format!("r{i}"), &value)).await.unwrap();
            if i % 50 == 0 {
                // Let a sync and a tick pass so a marker is decided.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        puts = PUTS;
        // A marker rides on the next append and a release follows it: keep writing a little
        // until the log is down to the segment kept plus the one being written (or give up).
        for i in 0..RELEASE_TRIES {
            if wal_segments(dir.path()) <= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            node.propose(put(&format!("extra{i}"), "x")).await.unwrap();
            puts += 1;
        }
    });
    // 400 entries of ~540 bytes fill more than three 64 KiB segments.
    let now = wal_segments(dir.path());
    assert!(now <= 2, "{now} segments kept");
    assert_ne!(oldest_segment(dir.path()), first_segment);
    node.abort();

    // Restart from the released log: the B+tree's applied index is at or after the marker.
    let node = start(small).unwrap();
    for i in [0, PUTS / 2, PUTS - 1] {
        assert_eq!(
            super::tests::value(&node, &format!("r{i}")).as_deref(),
            Some(value.as_bytes())
        );
    }
    assert_eq!(node.store().view().rev(), 1 + puts as i64);
    node.stop();
}

#[test]
fn node_config_follows_the_server_flags() {
    let args = [
        "--name",
        "n1",
        "--data-dir",
        "/tmp/n1",
        "--heartbeat-interval",
        "50",
        "--election-timeout",
        "500",
        "--max-wals",
        "0",
        "--node-core",
        "0",
    ]
    .map(String::from);
    let config = Config::from_args_and_env(args, |_| None).unwrap();
    let node = NodeConfig::from_config(&config);
    assert_eq!(node.name, "n1");
    assert_eq!(node.wal_dir, PathBuf::from("/tmp/n1/member/wal"));
    assert_eq!(node.tick_interval, Duration::from_millis(50));
    assert_eq!(node.election_ticks, 10);
    assert_eq!(node.max_wals, usize::MAX);
    assert_eq!(node.node_core, Some(0));
    assert_eq!(node.peer_urls, vec!["http://localhost:2380".to_string()]);
    assert_eq!(node.initial_cluster_token, "etcd-cluster");
}

#[test]
fn handle_and_its_futures_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<NodeHandle>();
    let dir = tempfile::tempdir().unwrap();
    let node = start(config(dir.path())).unwrap();
    let propose = node.propose(put("s", "t"));
    send(&propose);
    let read = node.read_index();
    send(&read);
    drop((propose, read));
    node.stop();
}

#[test]
fn corrupt_wal_refuses_to_start_naming_file_and_offset() {
    /// A byte inside the log, well before its end, so a crash cannot explain it.
    const CORRUPT_AT: u64 = 4096 + 100;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = start(config(dir.path())).unwrap();
    concurrent_puts(&node, &rt);
    node.stop();
    let wal_dir = dir.path().join(keelson_storage::schema::WAL_DIR);
    let segment = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .ends_with(keelson_storage::wal::SEGMENT_SUFFIX)
        })
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[CORRUPT_AT as usize] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let error = start(config(dir.path())).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, NodeError::Wal(_)), "{message}");
    let name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        message.contains("corrupt") && message.contains(&name),
        "{message}"
    );
    assert!(message.contains("offset"), "{message}");
}

#[test]
fn a_proposal_larger_than_a_wal_record_is_refused_without_harm() {
    /// The smallest segment the WAL accepts, so a modest value is too large for it.
    const SEGMENT_BYTES: u64 = 2 * 4096;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = start(NodeConfig {
        wal_segment_bytes: SEGMENT_BYTES,
        ..config(dir.path())
    })
    .unwrap();
    let huge = "x".repeat(SEGMENT_BYTES as usize);
    let refused = rt.block_on(node.propose(put("big", &huge)));
    assert_eq!(refused, Err(EtcdError::RequestTooLarge));
    let fine = rt.block_on(node.propose(put("small", "v"))).unwrap();
    assert_eq!(revision(&fine), 2);
    node.stop();
}

thread_local! {
    /// The in-memory WAL directory of the node running on this thread, to arm faults in.
    static MEMORY_WAL: std::cell::RefCell<Option<keelson_storage::io::MemoryDirectory>> =
        const { std::cell::RefCell::new(None) };
}

#[test]
fn a_failed_wal_sync_poisons_the_node_and_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let shared = spawn::spawn_with(
        config(dir.path()),
        |_| async {
            let wal = keelson_storage::io::MemoryDirectory::new();
            MEMORY_WAL.with(|d| *d.borrow_mut() = Some(wal.clone()));
            Ok(wal)
        },
        Peers::none(),
    )
    .unwrap();
    let node = NodeHandle { shared };
    rt.block_on(node.propose(put("kept", "1"))).unwrap();
    node.run_on_node(|| {
        MEMORY_WAL.with(|d| d.borrow().as_ref().unwrap().fail_file_sync_after(0));
    });
    let failed = rt.block_on(node.propose(put("lost", "2")));
    assert_eq!(failed, Err(EtcdError::Stopped));
    // Never applied: its record is not durable.
    assert_eq!(value(&node, "lost"), None);
    let after = rt.block_on(node.propose(put("after", "3")));
    assert_eq!(after, Err(EtcdError::Stopped));
    assert_eq!(value(&node, "kept").as_deref(), Some(&b"1"[..]));
    // Reads of what was applied go on.
    rt.block_on(node.read_index()).unwrap();
    node.stop();
}

#[test]
fn txn_and_delete_range_go_through_the_log_with_headers() {
    use keelson_proto::etcdserverpb::{DeleteRangeRequest, RequestOp, TxnRequest, request_op};
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = start(config(dir.path())).unwrap();
    let status = node.status();
    let WriteRequest::Put(inner) = put("t", "1") else {
        unreachable!("put builds a put")
    };
    let txn = WriteRequest::Txn(TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(inner)),
        }],
        ..TxnRequest::default()
    });
    let response = rt.block_on(node.propose(txn)).unwrap();
    let WriteResponse::Txn(txn) = response else {
        panic!("a txn answers a txn")
    };
    assert!(txn.succeeded);
    let header = txn.header.unwrap();
    assert_eq!((header.revision, header.raft_term), (2, 1));
    assert_eq!(header.member_id, status.member_id);
    let delete = WriteRequest::DeleteRange(DeleteRangeRequest {
        key: b"t".to_vec(),
        ..DeleteRangeRequest::default()
    });
    let response = rt.block_on(node.propose(delete)).unwrap();
    let WriteResponse::DeleteRange(deleted) = response else {
        panic!("a delete answers a delete")
    };
    assert_eq!(deleted.deleted, 1);
    assert_eq!(deleted.header.unwrap().revision, 3);
    assert_eq!(value(&node, "t"), None);
    node.stop();
}
