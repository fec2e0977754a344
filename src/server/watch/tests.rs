//! Hub, history and feed tests on a store over a memory device: the node's role (apply, then one
//! `notify` per batch) is played by hand, the stream's role by `feed::next`.

use super::feed::{self, Output};
use super::hub::{WATCHER_BUFFER_RESPONSES, WatchHub};
use super::watcher::{WatchSpec, event_rev};
use crate::server::WriteRequest;
use crate::server::tests::{NO_LEASES, del_req, new_store, put_req, run};
use keelson_proto::etcdserverpb::{CompactionRequest, WatchCreateRequest};
use keelson_proto::mvccpb::{Event, event::EventType};
use keelson_storage::mvcc::{Change, Store};

fn spec(key: &str, range_end: &str) -> WatchSpec {
    WatchSpec::from_request(&WatchCreateRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..WatchCreateRequest::default()
    })
}

/// Applies each request in its own batch and hands the batch to the hub, as the node does.
fn apply(store: &Store, hub: &WatchHub, requests: Vec<WriteRequest>) {
    let mut changes: Vec<Change> = Vec::new();
    let mut write = store.begin_write().unwrap();
    for request in &requests {
        let applied =
            crate::server::apply::apply(&mut write, request, &NO_LEASES).expect("applies");
        changes.extend(applied.changes);
    }
    write.commit_deferred().unwrap();
    hub.notify(store.current_rev(), &changes);
}

fn put(store: &Store, hub: &WatchHub, key: &str, value: &str) {
    apply(store, hub, vec![WriteRequest::Put(put_req(key, value))]);
}

/// Everything the stream has pending, as (watch id, events).
fn drain(hub: &WatchHub, store: &Store, stream: u64) -> Vec<(i64, Vec<Event>)> {
    let mut out = Vec::new();
    while let Some(output) = feed::next(hub, store, stream) {
        match output {
            Output::Events(d) => out.push((d.watch_id, d.events().to_vec())),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn described(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            let kind = if e.r#type == EventType::Put as i32 {
                "PUT"
            } else {
                "DELETE"
            };
            format!(
                "{kind} {}={} @{}",
                String::from_utf8_lossy(&kv.key),
                String::from_utf8_lossy(&kv.value),
                kv.mod_revision
            )
        })
        .collect()
}

#[test]
fn events_follow_range_filters_and_revision_order() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    let stream = hub.open_stream().id;
    let (prefix, _) = hub.add_watcher(stream, 0, spec("a", "b"), 0).unwrap();
    let (single, _) = hub.add_watcher(stream, 0, spec("a1", ""), 0).unwrap();
    let mut no_put = spec("", "\0");
    no_put.no_put = true;
    let (deletes, _) = hub.add_watcher(stream, 0, no_put, 0).unwrap();
    assert_eq!((prefix, single, deletes), (0, 1, 2));

    put(&store, &hub, "a1", "x");
    put(&store, &hub, "b1", "y");
    // One batch with two revisions and a two-key delete: events of a revision stay together.
    apply(
        &store,
        &hub,
        vec![
            WriteRequest::Put(put_req("a2", "z")),
            WriteRequest::DeleteRange(del_req("a", "c")),
        ],
    );
    let out = drain(&hub, &store, stream);
    let of = |id: i64| -> Vec<String> {
        out.iter()
            .filter(|(w, _)| *w == id)
            .flat_map(|(_, e)| described(e))
            .collect()
    };
    assert_eq!(
        of(prefix),
        [
            "PUT a1=x @2",
            "PUT a2=z @4",
            "DELETE a1= @5",
            "DELETE a2= @5"
        ]
    );
    assert_eq!(of(single), ["PUT a1=x @2", "DELETE a1= @5"]);
    assert_eq!(
        of(deletes),
        ["DELETE a1= @5", "DELETE a2= @5", "DELETE b1= @5"]
    );
    // The batch of revisions 4 and 5 reached the prefix watcher as one delivery.
    assert_eq!(out.iter().filter(|(w, _)| *w == prefix).count(), 2);
}

#[test]
fn client_ids_empty_ranges_and_cancel() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    let stream = hub.open_stream().id;
    assert_eq!(hub.add_watcher(stream, 7, spec("k", ""), 0).unwrap().0, 7);
    assert_eq!(
        hub.add_watcher(stream, 7, spec("k", ""), 0),
        Err(super::hub::CreateError::DuplicateId)
    );
    assert_eq!(
        hub.add_watcher(stream, 0, spec("b", "a"), 0),
        Err(super::hub::CreateError::EmptyRange)
    );
    put(&store, &hub, "k", "1");
    assert!(hub.cancel(stream, 7));
    assert!(!hub.cancel(stream, 7));
    // Queued events of a canceled watcher are dropped with it.
    assert!(drain(&hub, &store, stream).is_empty());
}

#[test]
fn prev_kv_is_the_value_before_the_change() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    let stream = hub.open_stream().id;
    hub.add_watcher(stream, 0, spec("k", ""), 0).unwrap();
    put(&store, &hub, "k", "1");
    put(&store, &hub, "k", "2");
    apply(
        &store,
        &hub,
        vec![WriteRequest::DeleteRange(del_req("k", ""))],
    );
    let mut prevs = Vec::new();
    while let Some(Output::Events(d)) = feed::next(&hub, &store, stream) {
        let (events, _) = d.batch.with_prev_kv(&store);
        for e in events {
            prevs.push(e.prev_kv.clone().map(|kv| (kv.value, kv.mod_revision)));
        }
        // The events without prev_kv are kept apart for the watchers that did not ask.
        assert!(d.events().iter().all(|e| e.prev_kv.is_none()));
    }
    assert_eq!(
        prevs,
        [None, Some((b"1".to_vec(), 2)), Some((b"2".to_vec(), 3))]
    );
}

#[test]
fn a_slow_watcher_catches_up_from_the_store_without_loss_or_duplicates() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    let slow = hub.open_stream().id;
    let fast = hub.open_stream().id;
    hub.add_watcher(slow, 0, spec("k", "l"), 0).unwrap();
    hub.add_watcher(fast, 0, spec("k", "l"), 0).unwrap();
    let total = WATCHER_BUFFER_RESPONSES * 4;
    let mut slow_revs = Vec::new();
    let mut fast_revs = Vec::new();
    for i in 0..total {
        put(&store, &hub, &format!("k{}", i % 7), "v");
        // The fast stream drains after every batch; the slow one only now and then, in the
        // middle of its catch-up too.
        fast_revs.extend(
            drain(&hub, &store, fast)
                .iter()
                .flat_map(|(_, e)| e.iter().map(event_rev)),
        );
        if i % 150 == 149
            && let Some(Output::Events(d)) = feed::next(&hub, &store, slow)
        {
            slow_revs.extend(d.events().iter().map(event_rev));
        }
    }
    slow_revs.extend(
        drain(&hub, &store, slow)
            .iter()
            .flat_map(|(_, e)| e.iter().map(event_rev)),
    );
    let want: Vec<i64> = (2..2 + total as i64).collect();
    assert_eq!(fast_revs, want);
    assert_eq!(slow_revs, want);
    // Caught up, the slow watcher is fed by the hub again.
    put(&store, &hub, "k0", "after");
    let after = drain(&hub, &store, slow);
    assert_eq!(after.len(), 1);
    assert_eq!(event_rev(&after[0].1[0]), 2 + total as i64);
}

#[test]
fn a_start_revision_replays_history_then_follows() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    put(&store, &hub, "k", "1");
    put(&store, &hub, "other", "x");
    put(&store, &hub, "k", "2");
    let stream = hub.open_stream().id;
    let (_, created_rev) = hub.add_watcher(stream, 0, spec("k", ""), 2).unwrap();
    assert_eq!(created_rev, 4);
    put(&store, &hub, "k", "3");
    let events: Vec<String> = drain(&hub, &store, stream)
        .iter()
        .flat_map(|(_, e)| described(e))
        .collect();
    assert_eq!(events, ["PUT k=1 @2", "PUT k=2 @4", "PUT k=3 @5"]);
}

#[test]
fn a_watcher_below_the_compaction_is_canceled_with_the_compact_revision() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    for i in 0..5 {
        put(&store, &hub, "k", &i.to_string());
    }
    let compact = CompactionRequest {
        revision: 4,
        physical: false,
    };
    run(&store, WriteRequest::Compaction(compact), &NO_LEASES).unwrap();
    let stream = hub.open_stream().id;
    let (id, _) = hub.add_watcher(stream, 0, spec("k", ""), 2).unwrap();
    let (at_compaction, _) = hub.add_watcher(stream, 0, spec("k", ""), 4).unwrap();
    assert_eq!(
        feed::next(&hub, &store, stream),
        Some(Output::Compacted {
            watch_id: id,
            compact_rev: 4,
            rev: 6
        })
    );
    // The compact revision itself is still watchable (etcd compares with <).
    let rest = drain(&hub, &store, stream);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, at_compaction);
    assert_eq!(
        described(&rest[0].1),
        ["PUT k=2 @4", "PUT k=3 @5", "PUT k=4 @6"]
    );
    assert_eq!(hub.watcher_count(), 1);
}

#[test]
fn a_compacted_watcher_keeps_its_id_until_the_client_cancels_it() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    for i in 0..3 {
        put(&store, &hub, "k", &i.to_string());
    }
    let compact = CompactionRequest {
        revision: 3,
        physical: false,
    };
    run(&store, WriteRequest::Compaction(compact), &NO_LEASES).unwrap();
    let stream = hub.open_stream().id;
    assert_eq!(hub.add_watcher(stream, 1, spec("k", ""), 2).unwrap().0, 1);
    assert!(matches!(
        feed::next(&hub, &store, stream),
        Some(Output::Compacted { watch_id: 1, .. })
    ));
    // Not a watcher any more: nothing reaches it and the hub does no work for it.
    assert_eq!(hub.watcher_count(), 0);
    put(&store, &hub, "k", "3");
    assert!(drain(&hub, &store, stream).is_empty());
    // But the id is taken, as etcd 3.4 keeps the watcher on the stream: a client id is a
    // duplicate and the server's ids go round it.
    assert_eq!(
        hub.add_watcher(stream, 1, spec("k", ""), 0),
        Err(super::hub::CreateError::DuplicateId)
    );
    assert_eq!(hub.add_watcher(stream, 0, spec("k", ""), 0).unwrap().0, 0);
    assert_eq!(hub.add_watcher(stream, 0, spec("k", ""), 0).unwrap().0, 2);
    // The client's cancel frees it, once.
    assert!(hub.cancel(stream, 1));
    assert!(!hub.cancel(stream, 1));
    assert_eq!(hub.add_watcher(stream, 1, spec("k", ""), 0).unwrap().0, 1);
}

#[test]
fn watchers_handed_the_same_events_share_one_batch_and_its_encoding() {
    let store = new_store();
    let hub = WatchHub::new(store.current_rev());
    let (a, b) = (hub.open_stream().id, hub.open_stream().id);
    hub.add_watcher(a, 0, spec("k", ""), 0).unwrap();
    hub.add_watcher(b, 0, spec("k", ""), 0).unwrap();
    // A range watcher sees the other key too: a different set of events, its own batch.
    hub.add_watcher(b, 0, spec("k", "m"), 0).unwrap();
    apply(
        &store,
        &hub,
        vec![
            WriteRequest::Put(put_req("k", "1")),
            WriteRequest::Put(put_req("l", "2")),
        ],
    );
    let mut queued = Vec::new();
    hub.pop_all(a, &mut queued);
    hub.pop_all(b, &mut queued);
    assert_eq!(queued.len(), 3);
    assert!(std::sync::Arc::ptr_eq(&queued[0].batch, &queued[1].batch));
    assert!(!std::sync::Arc::ptr_eq(&queued[0].batch, &queued[2].batch));
    assert_eq!(described(queued[0].events()), ["PUT k=1 @2"]);
    assert_eq!(described(queued[2].events()), ["PUT k=1 @2", "PUT l=2 @3"]);
    // Taken once, nothing is left; the encoding is made once and shared.
    assert!(feed::next(&hub, &store, a).is_none());
    assert!(std::ptr::eq(
        queued[0].batch.encoded().as_ptr(),
        queued[1].batch.encoded().as_ptr()
    ));
}

#[tokio::test]
async fn the_dispatch_task_wakes_the_streams_with_events() {
    let store = new_store();
    let hub = std::sync::Arc::new(WatchHub::new(store.current_rev()));
    let handle = hub.open_stream();
    hub.add_watcher(handle.id, 0, spec("k", ""), 0).unwrap();
    let dispatch = tokio::spawn(WatchHub::dispatch(std::sync::Arc::downgrade(&hub)));
    // Let the task register itself, then notify as the node does.
    tokio::task::yield_now().await;
    let woken = handle.wake.notified();
    put(&store, &hub, "k", "1");
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .expect("the stream is woken");
    assert_eq!(drain(&hub, &store, handle.id).len(), 1);
    dispatch.abort();
}
