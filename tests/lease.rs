//! The Lease service through etcdctl: the same lease commands against Keelson and a real etcd
//! 3.4.23 with outputs compared after masking the lease ids (server-chosen) and remaining-TTL
//! countdowns; then, on Keelson, a short lease expiring deletes its keys, and leases with their
//! keys survive a restart.
//!
//! This file must never mask anything beyond ids, ports and the TTL countdown: a difference
//! elsewhere is a compatibility bug.

mod common;

use common::{CtlOutput, Ids, Kind, Server};
use std::time::{Duration, Instant};

/// How long a 2-second lease may take to be revoked once expired (ticks, a log round trip and a
/// loaded test machine).
const EXPIRY_DEADLINE: Duration = Duration::from_secs(10);

/// The id etcdctl printed for `lease grant`: "lease <hex> granted with TTL(<n>s)".
fn granted_id(out: &CtlOutput) -> String {
    assert!(out.success, "lease grant failed: {out:?}");
    out.stdout
        .split_whitespace()
        .nth(1)
        .expect("lease grant prints an id")
        .to_string()
}

/// `remaining(57s)` counts down between the two servers; the rest must match.
fn mask_remaining(text: &str) -> String {
    let Some(at) = text.find("remaining(") else {
        return text.to_string();
    };
    match text[at..].find(')') {
        Some(len) => format!("{}remaining(X{}", &text[..at], &text[at + len..]),
        None => text.to_string(),
    }
}

/// etcd lists a lease's keys from a Go map, so their order changes from run to run; Keelson sorts
/// them. Compare the sets: sort the names inside `attached keys([...])`.
fn sort_attached_keys(text: &str) -> String {
    let marker = "attached keys([";
    let Some(at) = text.find(marker) else {
        return text.to_string();
    };
    let start = at + marker.len();
    let Some(len) = text[start..].find("])") else {
        return text.to_string();
    };
    let mut keys: Vec<&str> = text[start..start + len].split_whitespace().collect();
    keys.sort_unstable();
    format!(
        "{}{}{}",
        &text[..start],
        keys.join(" "),
        &text[start + len..]
    )
}

/// A grant names the id the server chose: "lease <id> granted with TTL(60s)".
fn mask_new_id(text: &str) -> String {
    let parts = text
        .split_once("lease ")
        .and_then(|(head, rest)| rest.split_once(" granted").map(|(_, tail)| (head, tail)));
    match parts {
        Some((head, tail)) => format!("{head}lease NEW granted{tail}"),
        None => text.to_string(),
    }
}

/// etcdctl 3.4 logs failed calls as JSON lines before its `Error:` line.
fn without_client_logs(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the lease scenario on one server; every output masked of ids and countdowns.
fn scenario(server: &Server, ids: &Ids) -> Vec<String> {
    let mut outputs = Vec::new();
    let mut lease_ids: Vec<String> = Vec::new();
    let mut record = |args: &[&str], lease_ids: &[String]| {
        let out = server.etcdctl(args, None);
        let mut text = format!(
            "{} | {} | {}",
            out.success,
            out.stdout.trim_end(),
            without_client_logs(&out.stderr)
        );
        for (n, id) in lease_ids.iter().enumerate() {
            text = text.replace(id, &format!("LEASE{n}"));
            if let Ok(decimal) = i64::from_str_radix(id, 16) {
                text = text.replace(&decimal.to_string(), &format!("LEASE{n}"));
            }
        }
        if args.get(1) == Some(&"grant") {
            text = mask_new_id(&text);
        }
        outputs.push(sort_attached_keys(&mask_remaining(
            &server.mask(&text, ids),
        )));
        out
    };
    let long = granted_id(&record(&["lease", "grant", "60"], &lease_ids));
    lease_ids.push(long.clone());
    let short = granted_id(&record(&["lease", "grant", "30"], &lease_ids));
    lease_ids.push(short.clone());
    for args in [
        vec!["put", "--lease", &long, "k1", "v1"],
        vec!["put", "--lease", &long, "k2", "v2"],
        vec!["put", "--lease", &short, "k3", "v3"],
        // Moving a key to no lease detaches it.
        vec!["put", "k3", "v3"],
        vec!["lease", "timetolive", &long],
        vec!["lease", "timetolive", "--keys", &long],
        vec!["lease", "timetolive", "--keys", &short],
        vec!["lease", "list"],
        vec!["lease", "keep-alive", "--once", &long],
        vec!["lease", "revoke", &long],
        vec!["get", "--prefix", "k"],
        vec!["lease", "timetolive", &long],
        vec!["lease", "keep-alive", "--once", &long],
        vec!["lease", "revoke", &long],
        vec!["lease", "grant", "9000000001"],
        vec!["put", "--lease", "1234", "k4", "v4"],
        vec!["lease", "revoke", &short],
        vec!["lease", "list"],
        // Raised to the minimum TTL (2 s with etcd's default timing). Last, as it expires soon.
        vec!["lease", "grant", "1"],
    ] {
        record(&args, &lease_ids);
    }
    outputs
}

#[test]
fn lease_commands_match_etcd() {
    let Some(common::SideBySide {
        etcd,
        etcd_ids,
        keelson,
        keelson_ids,
    }) = common::side_by_side("lease_commands_match_etcd")
    else {
        return;
    };
    let expected = scenario(&etcd, &etcd_ids);
    let actual = scenario(&keelson, &keelson_ids);
    let mismatches = common::differing_steps(&expected, &actual);
    assert!(
        mismatches.is_empty(),
        "{} lease commands differ:\n{}\nkeelson log:\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        keelson.log()
    );
}

#[test]
fn an_expired_lease_deletes_its_keys() {
    if common::require_programs("an_expired_lease_deletes_its_keys", &["etcdctl"]).is_none() {
        return;
    }
    let keelson = Server::start(Kind::Keelson);
    // Raised to the minimum TTL: 2 seconds with etcd's default timing.
    let id = granted_id(&keelson.etcdctl(&["lease", "grant", "1"], None));
    for key in ["e1", "e2"] {
        assert!(
            keelson
                .etcdctl(&["put", "--lease", &id, key, "v"], None)
                .success
        );
    }
    let started = Instant::now();
    loop {
        let keys = keelson.etcdctl(&["get", "--prefix", "e", "--keys-only"], None);
        if keys.success && keys.stdout.trim().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < EXPIRY_DEADLINE,
            "keys still there: {keys:?}\n{}",
            keelson.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ttl = keelson.etcdctl(&["lease", "timetolive", &id], None);
    assert_eq!(ttl.stdout.trim(), format!("lease {id} already expired"));
    assert_eq!(
        keelson.etcdctl(&["lease", "list"], None).stdout.trim(),
        "found 0 leases"
    );
}

#[test]
fn leases_and_their_keys_survive_a_restart() {
    if common::require_programs("leases_and_their_keys_survive_a_restart", &["etcdctl"]).is_none() {
        return;
    }
    let mut keelson = Server::start(Kind::Keelson);
    let id = granted_id(&keelson.etcdctl(&["lease", "grant", "600"], None));
    for key in ["r1", "r2"] {
        assert!(
            keelson
                .etcdctl(&["put", "--lease", &id, key, "v"], None)
                .success
        );
    }
    keelson.stop();
    keelson.spawn();
    let ttl = keelson.etcdctl(&["lease", "timetolive", "--keys", &id], None);
    let text = ttl.stdout.trim();
    assert!(
        text.starts_with(&format!("lease {id} granted with TTL(600s), remaining(")),
        "{ttl:?}"
    );
    assert!(text.ends_with("attached keys([r1 r2])"), "{ttl:?}");
    // Never checkpointed (etcd checkpoints only leases longer than 5 minutes left, every 5
    // minutes): the lease resumes with its full TTL, as etcd's does.
    let remaining: i64 = text
        .split("remaining(")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .expect("a remaining TTL");
    assert!((590..=600).contains(&remaining), "{ttl:?}");
    assert!(
        keelson
            .etcdctl(&["lease", "revoke", &id], None)
            .stdout
            .contains("revoked")
    );
    let keys = keelson.etcdctl(&["get", "--prefix", "r", "--keys-only"], None);
    assert_eq!(keys.stdout.trim(), "", "{keys:?}");
}

/// Keep-alive requests a client sends on one stream, all before reading any response.
const KEEPALIVES_PER_STREAM: usize = 200;

/// One stream carries many keep-alives, sent before any response is read: each gets its own
/// response in order, with the lease's TTL, or TTL 0 for an unknown lease (etcd's answer).
#[test]
fn one_keepalive_stream_answers_every_request() {
    use keelson_proto::etcdserverpb::lease_client::LeaseClient;
    use keelson_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
    let keelson = Server::start(Kind::Keelson);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = common::connect(&keelson.endpoint()).await.unwrap();
        let mut lease = LeaseClient::new(channel);
        let granted = lease
            .lease_grant(LeaseGrantRequest { ttl: 30, id: 0 })
            .await
            .unwrap()
            .into_inner();
        assert!(granted.id > 0 && granted.ttl == 30, "{granted:?}");
        let unknown = granted.id + 1;
        let requests: Vec<LeaseKeepAliveRequest> = (0..KEEPALIVES_PER_STREAM)
            .map(|i| LeaseKeepAliveRequest {
                id: if i % 2 == 0 { granted.id } else { unknown },
            })
            .collect();
        let mut responses = lease
            .lease_keep_alive(futures::stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        for i in 0..KEEPALIVES_PER_STREAM {
            let response = responses.message().await.unwrap().expect("a response");
            let (id, ttl) = if i % 2 == 0 {
                (granted.id, 30)
            } else {
                (unknown, 0)
            };
            assert_eq!((response.id, response.ttl), (id, ttl), "response {i}");
            assert!(response.header.unwrap().member_id != 0);
        }
        // The client's side ended, so the server ends the stream.
        assert!(responses.message().await.unwrap().is_none());
    });
}
