//! Range options alone and combined, on the history etcd 3.4.23 was given too:
//! rev 2 a=1, 3 b=2, 4 c=3, 5 a=11, 6 d=4, 7 b=22. At rev 7: a (create 2, mod 5, version 2),
//! b (3, 7, 2), c (4, 4, 1), d (6, 6, 1).

use super::*;
use keelson_proto::etcdserverpb::range_request::{SortOrder, SortTarget};

fn history() -> Store {
    let store = new_store();
    for (key, value) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("a", "11"),
        ("d", "4"),
        ("b", "22"),
    ] {
        put(&store, key, value);
    }
    assert_eq!(store.current_rev(), 7);
    store
}

fn sorted(target: SortTarget, order: SortOrder) -> RangeRequest {
    RangeRequest {
        sort_target: target as i32,
        sort_order: order as i32,
        ..get_req("a", "\0")
    }
}

#[test]
fn key_and_range_end_conventions() {
    let store = history();
    let one = get(&store, &get_req("a", "")).unwrap();
    assert_eq!(keys(&one), ["a"]);
    assert_eq!(one.kvs[0].value, b"11");
    assert_eq!(
        (
            one.kvs[0].create_revision,
            one.kvs[0].mod_revision,
            one.kvs[0].version
        ),
        (2, 5, 2)
    );
    assert_eq!(
        (one.count, one.more, one.header.unwrap().revision),
        (1, false, 7)
    );
    let missing = get(&store, &get_req("zz", "")).unwrap();
    assert_eq!(
        (
            missing.kvs.len(),
            missing.count,
            missing.header.unwrap().revision
        ),
        (0, 0, 7)
    );
    assert_eq!(keys(&get(&store, &get_req("a", "c")).unwrap()), ["a", "b"]);
    assert_eq!(
        keys(&get(&store, &get_req("b", "\0")).unwrap()),
        ["b", "c", "d"]
    );
    assert_eq!(
        keys(&get(&store, &get_req("\0", "\0")).unwrap()),
        ["a", "b", "c", "d"]
    );
    // An inverted range is empty.
    assert_eq!(get(&store, &get_req("c", "a")).unwrap().count, 0);
}

#[test]
fn limit_sets_more_and_count_covers_everything() {
    let store = history();
    let all = |limit| {
        get(
            &store,
            &RangeRequest {
                limit,
                ..get_req("a", "\0")
            },
        )
        .unwrap()
    };
    let two = all(2);
    assert_eq!(
        (keys(&two), two.more, two.count),
        (vec!["a".into(), "b".into()], true, 4)
    );
    let four = all(4);
    assert_eq!((four.kvs.len(), four.more, four.count), (4, false, 4));
    let five = all(5);
    assert_eq!((five.kvs.len(), five.more), (4, false));
    // A negative limit is no limit, as in etcd.
    assert_eq!(all(-1).kvs.len(), 4);
}

#[test]
fn revision_reads_the_past_and_rejects_the_future() {
    let store = history();
    let at3 = get(
        &store,
        &RangeRequest {
            revision: 3,
            ..get_req("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(keys(&at3), ["a", "b"]);
    assert_eq!(at3.kvs[0].value, b"1");
    // The header carries the store's revision, not the one read.
    assert_eq!((at3.count, at3.header.unwrap().revision), (2, 7));
    assert_eq!(
        get(
            &store,
            &RangeRequest {
                revision: 8,
                ..get_req("a", "")
            }
        ),
        Err(EtcdError::FutureRev)
    );
    let latest = get(
        &store,
        &RangeRequest {
            revision: -1,
            ..get_req("a", "")
        },
    )
    .unwrap();
    assert_eq!(latest.kvs[0].value, b"11");
}

#[test]
fn sorting_by_every_target() {
    let store = history();
    let order = |target, order| keys(&get(&store, &sorted(target, order)).unwrap());
    assert_eq!(
        order(SortTarget::Key, SortOrder::Descend),
        ["d", "c", "b", "a"]
    );
    assert_eq!(
        order(SortTarget::Key, SortOrder::Ascend),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        order(SortTarget::Key, SortOrder::None),
        ["a", "b", "c", "d"]
    );
    // Equal versions keep key order, ascending and descending (etcd's insertion sort).
    assert_eq!(
        order(SortTarget::Version, SortOrder::Ascend),
        ["c", "d", "a", "b"]
    );
    assert_eq!(
        order(SortTarget::Version, SortOrder::Descend),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        order(SortTarget::Create, SortOrder::Descend),
        ["d", "c", "b", "a"]
    );
    assert_eq!(
        order(SortTarget::Mod, SortOrder::Ascend),
        ["c", "a", "d", "b"]
    );
    assert_eq!(
        order(SortTarget::Mod, SortOrder::Descend),
        ["b", "d", "a", "c"]
    );
    assert_eq!(
        order(SortTarget::Value, SortOrder::Ascend),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        order(SortTarget::Value, SortOrder::Descend),
        ["d", "c", "b", "a"]
    );
    // A non-key target without an order sorts ascending.
    assert_eq!(
        order(SortTarget::Mod, SortOrder::None),
        ["c", "a", "d", "b"]
    );
}

#[test]
fn sort_with_limit_fetches_all_only_for_an_explicit_order() {
    let store = history();
    // etcd 3.4.23: `get a --from-key --sort-by=MODIFY --limit 1` (order NONE) returns a, more,
    // count 4: only the first two keys by key order are fetched, then sorted.
    let none = get(
        &store,
        &RangeRequest {
            limit: 1,
            ..sorted(SortTarget::Mod, SortOrder::None)
        },
    )
    .unwrap();
    assert_eq!(
        (keys(&none), none.more, none.count),
        (vec!["a".into()], true, 4)
    );
    // etcd 3.4.23: with `--order=ASCEND` it returns c (everything fetched, then sorted).
    let ascend = get(
        &store,
        &RangeRequest {
            limit: 1,
            ..sorted(SortTarget::Mod, SortOrder::Ascend)
        },
    )
    .unwrap();
    assert_eq!(
        (keys(&ascend), ascend.more, ascend.count),
        (vec!["c".into()], true, 4)
    );
    let descend = get(
        &store,
        &RangeRequest {
            limit: 2,
            ..sorted(SortTarget::Create, SortOrder::Descend)
        },
    )
    .unwrap();
    assert_eq!(keys(&descend), ["d", "c"]);
}

#[test]
fn revision_filters_prune_kvs_but_not_count() {
    let store = history();
    let filtered = |request: RangeRequest| get(&store, &request).unwrap();
    let min_mod = filtered(RangeRequest {
        min_mod_revision: 6,
        ..get_req("a", "\0")
    });
    assert_eq!(
        (keys(&min_mod), min_mod.count, min_mod.more),
        (vec!["b".into(), "d".into()], 4, false)
    );
    // etcd 3.4.23 (JSON gateway, same shape): min_mod_revision with limit 1 gives the first
    // match, more = true, and the unfiltered count.
    let limited = filtered(RangeRequest {
        min_mod_revision: 6,
        limit: 1,
        ..get_req("a", "\0")
    });
    assert_eq!(
        (keys(&limited), limited.count, limited.more),
        (vec!["b".into()], 4, true)
    );
    let max_mod = filtered(RangeRequest {
        max_mod_revision: 5,
        ..get_req("a", "\0")
    });
    assert_eq!(keys(&max_mod), ["a", "c"]);
    let create = filtered(RangeRequest {
        min_create_revision: 3,
        max_create_revision: 4,
        ..get_req("a", "\0")
    });
    assert_eq!(keys(&create), ["b", "c"]);
    let all_four = filtered(RangeRequest {
        min_mod_revision: 5,
        max_mod_revision: 6,
        min_create_revision: 2,
        max_create_revision: 6,
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Mod as i32,
        ..get_req("a", "\0")
    });
    assert_eq!(
        (keys(&all_four), all_four.count),
        (vec!["d".into(), "a".into()], 4)
    );
    // A limit 0 fetch with a filter: every match, no `more`.
    let none_left = filtered(RangeRequest {
        min_mod_revision: 8,
        limit: 1,
        ..get_req("a", "\0")
    });
    assert_eq!(
        (none_left.kvs.len(), none_left.more, none_left.count),
        (0, false, 4)
    );
}

#[test]
fn keys_only_and_count_only() {
    let store = history();
    let keys_only = get(
        &store,
        &RangeRequest {
            keys_only: true,
            ..get_req("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(keys(&keys_only), ["a", "b", "c", "d"]);
    assert!(
        keys_only
            .kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.version > 0)
    );
    // Values are dropped after sorting, so sorting by value still works.
    let by_value = get(
        &store,
        &RangeRequest {
            keys_only: true,
            ..sorted(SortTarget::Value, SortOrder::Descend)
        },
    )
    .unwrap();
    assert_eq!(keys(&by_value), ["d", "c", "b", "a"]);
    // etcd 3.4.23: count_only with limit 1 gives count 5 (there), no kvs, more false.
    let count = get(
        &store,
        &RangeRequest {
            count_only: true,
            limit: 1,
            ..get_req("a", "\0")
        },
    )
    .unwrap();
    assert_eq!((count.kvs.len(), count.count, count.more), (0, 4, false));
    let count_filtered = get(
        &store,
        &RangeRequest {
            count_only: true,
            min_mod_revision: 7,
            revision: 5,
            ..get_req("a", "\0")
        },
    )
    .unwrap();
    assert_eq!((count_filtered.kvs.len(), count_filtered.count), (0, 3));
    // serializable changes nothing here.
    let serializable = get(
        &store,
        &RangeRequest {
            serializable: true,
            ..get_req("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(serializable.count, 4);
}

#[test]
fn invalid_requests() {
    let store = history();
    assert_eq!(get(&store, &get_req("", "")), Err(EtcdError::EmptyKey));
    let bad_order = RangeRequest {
        sort_order: 3,
        ..get_req("a", "")
    };
    assert_eq!(get(&store, &bad_order), Err(EtcdError::InvalidSortOption));
    let bad_target = RangeRequest {
        sort_target: 5,
        ..get_req("a", "")
    };
    assert_eq!(get(&store, &bad_target), Err(EtcdError::InvalidSortOption));
}

#[test]
fn reads_below_the_compaction_fail() {
    let store = history();
    compact_fully(&store, 5);
    let at = |revision| {
        get(
            &store,
            &RangeRequest {
                revision,
                ..get_req("a", "\0")
            },
        )
    };
    assert_eq!(at(4), Err(EtcdError::Compacted));
    assert_eq!(at(1), Err(EtcdError::Compacted));
    let at5 = at(5).unwrap();
    assert_eq!(keys(&at5), ["a", "b", "c"]);
    assert_eq!(at5.kvs[1].value, b"2");
    assert_eq!(at(0).unwrap().count, 4);
}

#[test]
fn a_stale_view_is_retried_for_the_latest_revision_only() {
    let store = history();
    let old = store.view();
    put(&store, "e", "5");
    compact_fully(&store, 8);
    let latest = super::super::range::range(&store, &old, &get_req("a", "\0")).unwrap();
    assert_eq!((latest.count, latest.header.unwrap().revision), (5, 8));
    let fixed = RangeRequest {
        revision: 6,
        ..get_req("a", "\0")
    };
    assert!(matches!(
        super::super::range::range(&store, &old, &fixed),
        Err(Error::Etcd(EtcdError::Compacted))
    ));
}
