//! A lease expiring while Keelson is down after kill -9 still deletes its keys, exactly once.
//!
//! A short lease and a long lease get keys, beside keys with no lease; the server is killed
//! (SIGKILL) before the short TTL runs out and stays down well past it. After the restart the short
//! lease must expire (etcd restarts every lease's countdown at restart, so within one TTL plus the
//! revoke), deleting all its keys in one revision, while the long lease and its keys, and the
//! unleased keys, stay. A second kill -9 right after the revoke checks that the revoke is durable:
//! the lease stays gone, and a watch from before the revoke still shows each delete once.
//!
//! This file must never stop the server gracefully between the steps: the point is a crash.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Kind, Server};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::lease_client::LeaseClient;
use keelson_proto::etcdserverpb::watch_client::WatchClient;
use keelson_proto::etcdserverpb::watch_request::RequestUnion;
use keelson_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseLeasesRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
    WatchCreateRequest, WatchRequest,
};
use keelson_proto::mvccpb::Event;
use keelson_proto::mvccpb::event::EventType;
use tonic::transport::Channel;

/// The short lease's TTL: above etcd's 2-second minimum, so the kill surely comes first even on a
/// loaded machine (the grant, four puts and the kill take well under a second; checked).
const SHORT_TTL: i64 = 3;
/// The long lease's TTL: far beyond the test's length, so it must never expire here.
const LONG_TTL: i64 = 120;
/// How long the server stays down: well past the short TTL.
const DOWN_FOR: Duration = Duration::from_secs(SHORT_TTL as u64 + 2);
/// After a restart the short lease gets its TTL again; this bounds its expiry and revoke (ticks,
/// one log round trip, a loaded machine).
const EXPIRY_DEADLINE: Duration = Duration::from_secs(SHORT_TTL as u64 + 12);
/// How long a watch response that must come may take.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

const SHORT_KEYS: &[&str] = &["short/a", "short/b", "short/c", "short/d"];
const LONG_KEYS: &[&str] = &["long/a", "long/b"];
const PLAIN_KEYS: &[&str] = &["plain/a", "plain/b", "plain/c"];

fn value_of(key: &str) -> Vec<u8> {
    format!("value-of-{key}").into_bytes()
}

/// The ids of the two leases.
#[derive(Clone, Copy)]
struct Leases {
    short: i64,
    long: i64,
}

async fn channel(server: &Server) -> Channel {
    common::connect(&server.endpoint()).await.unwrap()
}

async fn put(kv: &mut KvClient<Channel>, key: &str, lease: i64) -> i64 {
    let put = PutRequest {
        key: key.into(),
        value: value_of(key),
        lease,
        ..Default::default()
    };
    kv.put(put)
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
}

/// Every key with its value and lease, and the revision the read saw.
async fn everything(server: &Server) -> (BTreeMap<String, (Vec<u8>, i64)>, i64) {
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let response = KvClient::new(channel(server).await)
        .range(all)
        .await
        .unwrap()
        .into_inner();
    let kvs = response
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8(kv.key).unwrap(), (kv.value, kv.lease)))
        .collect();
    (kvs, response.header.unwrap().revision)
}

/// Every event from `start` on, over all keys, up to and including the put of `marker`.
async fn events_until(server: &Server, start: i64, marker: &str) -> Vec<Event> {
    let (requests, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchCreateRequest {
        key: vec![0],
        range_end: vec![0],
        start_revision: start,
        ..Default::default()
    };
    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await
        .unwrap();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut responses = WatchClient::new(channel(server).await)
        .watch(stream)
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    loop {
        let response = tokio::time::timeout(WATCH_TIMEOUT, responses.message())
            .await
            .unwrap_or_else(|_| panic!("no put of {marker} watched; events so far: {events:?}"))
            .unwrap()
            .expect("the stream stays open");
        assert!(!response.canceled, "watch canceled: {response:?}");
        for event in response.events {
            let done = event
                .kv
                .as_ref()
                .is_some_and(|kv| kv.key == marker.as_bytes());
            events.push(event);
            if done {
                // Dropping `requests` ends the stream from our side.
                return events;
            }
        }
    }
}

/// Waits until no key of the short lease is left; returns the revision the first empty read saw.
fn wait_short_keys_gone(runtime: &tokio::runtime::Runtime, server: &Server) -> i64 {
    let started = Instant::now();
    loop {
        let (kvs, revision) = runtime.block_on(everything(server));
        if !kvs.keys().any(|k| k.starts_with("short/")) {
            return revision;
        }
        assert!(
            started.elapsed() < EXPIRY_DEADLINE,
            "short lease's keys still there after {EXPIRY_DEADLINE:?}: {:?}\nlog:\n{}",
            kvs.keys().collect::<Vec<_>>(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything that must hold once the short lease expired, whichever restart came last: the
/// survivors with their values and leases, the leases the server lists, their TTLs, and a watch
/// from `noted + 1` showing each expired key deleted exactly once, all in revision `noted + 1`,
/// then the puts of `markers` in their revisions after it, and nothing else.
fn check_after_expiry(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    leases: Leases,
    noted: i64,
    markers: &[&str],
) {
    let (kvs, revision) = runtime.block_on(everything(server));
    let mut want: BTreeMap<String, (Vec<u8>, i64)> = BTreeMap::new();
    for key in LONG_KEYS {
        want.insert(key.to_string(), (value_of(key), leases.long));
    }
    for key in PLAIN_KEYS.iter().chain(markers) {
        want.insert(key.to_string(), (value_of(key), 0));
    }
    assert_eq!(kvs, want, "the keys after expiry");
    // The revoke and the markers are the only writes after the noted revision: a revoke
    // re-applied after a restart would add one.
    assert_eq!(revision, noted + 1 + markers.len() as i64, "revision");

    runtime.block_on(async {
        let mut lease = LeaseClient::new(channel(server).await);
        let listed: Vec<i64> = lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .unwrap()
            .into_inner()
            .leases
            .iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(listed, vec![leases.long], "LeaseLeases");

        let short = lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: leases.short,
                keys: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (short.id, short.ttl, short.granted_ttl, short.keys.len()),
            (leases.short, -1, 0, 0),
            "TimeToLive of the expired lease"
        );

        let long = lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: leases.long,
                keys: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(long.granted_ttl, LONG_TTL, "{long:?}");
        // Never checkpointed (it has less than 5 minutes), so each restart resumes it with its
        // full TTL, as etcd does: never more than granted, and never nearly run out.
        assert!(
            (LONG_TTL - 30..=LONG_TTL).contains(&long.ttl),
            "long lease's remaining TTL: {long:?}"
        );
        let mut attached: Vec<Vec<u8>> = long.keys.clone();
        attached.sort();
        let want: Vec<Vec<u8>> = LONG_KEYS.iter().map(|k| k.as_bytes().to_vec()).collect();
        assert_eq!(attached, want, "long lease's keys");
    });

    let last_marker = markers.last().expect("a marker to watch up to");
    let events = runtime.block_on(events_until(server, noted + 1, last_marker));
    let (deletes, rest) = events.split_at(SHORT_KEYS.len().min(events.len()));
    let mut deleted: Vec<&[u8]> = Vec::new();
    for event in deletes {
        let kv = event.kv.as_ref().unwrap();
        assert_eq!(event.r#type, EventType::Delete as i32, "{events:?}");
        // One revoke, one revision: every key of the lease goes at noted + 1.
        assert_eq!(kv.mod_revision, noted + 1, "{events:?}");
        deleted.push(&kv.key);
    }
    deleted.sort();
    let want: Vec<&[u8]> = SHORT_KEYS.iter().map(|k| k.as_bytes()).collect();
    assert_eq!(
        deleted, want,
        "each expired key deleted exactly once: {events:?}"
    );
    let puts: Vec<(EventType, &[u8], i64)> = rest
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (e.r#type(), kv.key.as_slice(), kv.mod_revision)
        })
        .collect();
    let want: Vec<(EventType, &[u8], i64)> = markers
        .iter()
        .enumerate()
        .map(|(i, m)| (EventType::Put, m.as_bytes(), noted + 2 + i as i64))
        .collect();
    assert_eq!(puts, want, "after the revoke, only the markers: {events:?}");
}

#[test]
fn a_lease_expiring_across_kill_9_deletes_its_keys_once() {
    let mut server = Server::start(Kind::Keelson);
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let (leases, granted_at, noted) = runtime.block_on(async {
        let channel = channel(&server).await;
        let mut lease = LeaseClient::new(channel.clone());
        let mut kv = KvClient::new(channel);
        let long = lease
            .lease_grant(LeaseGrantRequest {
                ttl: LONG_TTL,
                id: 0,
            })
            .await
            .unwrap()
            .into_inner();
        for key in LONG_KEYS {
            put(&mut kv, key, long.id).await;
        }
        for key in PLAIN_KEYS {
            put(&mut kv, key, 0).await;
        }
        // The short lease last, so its countdown runs only through its own puts before the
        // kill; measured from before the request, which is no later than the server's start.
        let granted_at = Instant::now();
        let short = lease
            .lease_grant(LeaseGrantRequest {
                ttl: SHORT_TTL,
                id: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(short.ttl, SHORT_TTL, "{short:?}");
        let mut noted = 0;
        for key in SHORT_KEYS {
            noted = put(&mut kv, key, short.id).await;
        }
        let leases = Leases {
            short: short.id,
            long: long.id,
        };
        (leases, granted_at, noted)
    });
    server.kill();
    // The precondition of the whole test: the short lease could not have expired yet.
    let before_kill = granted_at.elapsed();
    assert!(
        before_kill < Duration::from_secs(SHORT_TTL as u64),
        "the kill came {before_kill:?} after the grant, past the short TTL"
    );
    // Each put took one revision after the initial 1: every key was written before the kill.
    let all_keys = SHORT_KEYS.len() + LONG_KEYS.len() + PLAIN_KEYS.len();
    assert_eq!(noted, 1 + all_keys as i64, "revision of the last put");
    std::thread::sleep(DOWN_FOR.saturating_sub(before_kill));

    server.spawn();
    let revoked_at = wait_short_keys_gone(&runtime, &server);
    // At once, so the revoke is most likely still only in the WAL, not yet in a synced B+tree.
    server.kill();
    assert_eq!(
        revoked_at,
        noted + 1,
        "the revoke is the first write after the kill"
    );

    server.spawn();
    let marker = runtime.block_on(async {
        let mut kv = KvClient::new(channel(&server).await);
        put(&mut kv, "marker/1", 0).await
    });
    assert_eq!(
        marker,
        noted + 2,
        "nothing written between the revoke and marker/1"
    );
    check_after_expiry(&runtime, &server, leases, noted, &["marker/1"]);

    // Another crash after everything settled: still no second delete, the lease still gone.
    server.kill();
    server.spawn();
    let marker = runtime.block_on(async {
        let mut kv = KvClient::new(channel(&server).await);
        put(&mut kv, "marker/2", 0).await
    });
    assert_eq!(marker, noted + 3, "nothing written by the restart");
    check_after_expiry(&runtime, &server, leases, noted, &["marker/1", "marker/2"]);
    // Past another short TTL, nothing has happened on its own: no revoke re-applied, no
    // revision taken, the long lease untouched.
    std::thread::sleep(Duration::from_secs(SHORT_TTL as u64 + 1));
    check_after_expiry(&runtime, &server, leases, noted, &["marker/1", "marker/2"]);
}
