//! etcd's metrics on Keelson: after the same load on etcd 3.4.23 and Keelson, every family etcd
//! exports under the prefixes dashboards and alerts use exists in Keelson with etcd's type and
//! label names, and the counters the load drives have moved. Then `etcdctl check datascale`,
//! which reads `/metrics` itself, runs against Keelson.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, side_by_side};

/// The prefixes compared. `etcd_network_peer_*` comes with the peer transport; etcd's v2 store,
/// snapshot-file and gRPC-proxy families have no counterpart.
const PREFIXES: &[&str] = &[
    "etcd_server_",
    "etcd_cluster_version",
    "etcd_disk_",
    "etcd_mvcc_",
    "etcd_debugging_mvcc_",
    "etcd_debugging_lease_",
    "etcd_debugging_server_lease_",
    "grpc_server_",
    "process_",
];

/// A family's type and the label names its samples carry (`le` and `quantile` aside).
type Families = BTreeMap<String, (String, BTreeSet<String>)>;

fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let body = raw.split_once("\r\n\r\n").expect("a header block").1;
    // Chunked or not, the sample lines are intact lines of the body.
    body.to_string()
}

fn families(text: &str) -> Families {
    let mut out = Families::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.insert(name.to_string(), (kind.to_string(), BTreeSet::new()));
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(open) = line.find('{') else { continue };
        let name = &line[..open];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| out.contains_key(*f)))
            .unwrap_or(name);
        let close = line.rfind('}').unwrap();
        let labels = line[open + 1..close]
            .split("\",")
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, _)| k.trim_start_matches(',').to_string())
            .filter(|k| k != "le" && k != "quantile");
        if let Some((_, names)) = out.get_mut(family) {
            names.extend(labels);
        }
    }
    out
}

/// The value of the first sample line starting with `prefix`.
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix}"))
}

/// Puts, reads, a delete, a txn, a lease with a key and a keep-alive, and a compaction.
fn load(server: &Server) {
    let ok = |args: &[&str], stdin: Option<&str>| {
        let out = server.etcdctl(args, stdin);
        assert!(out.success, "{args:?}: {out:?}");
        out.stdout
    };
    for i in 0..5 {
        ok(&["put", &format!("k{i}"), "v"], None);
    }
    ok(&["get", "k", "--prefix"], None);
    ok(&["del", "k0"], None);
    ok(&["txn", "-i"], Some("\nput t 1\n\n\n"));
    let granted = ok(&["lease", "grant", "60"], None);
    let lease = granted.split_whitespace().nth(1).unwrap().to_string();
    ok(&["put", "leased", "v", &format!("--lease={lease}")], None);
    ok(&["lease", "keep-alive", "--once", &lease], None);
    ok(&["compact", "3"], None);
}

#[test]
fn etcds_families_types_and_labels_after_the_same_load() {
    let Some(servers) = side_by_side("etcds_families_types_and_labels") else {
        return;
    };
    load(&servers.etcd);
    load(&servers.keelson);
    let etcd_text = scrape(servers.etcd.client_port);
    let keelson_text = scrape(servers.keelson.client_port);
    let etcd = families(&etcd_text);
    let keelson = families(&keelson_text);
    let mut missing = Vec::new();
    for (name, (kind, labels)) in &etcd {
        if !PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        match keelson.get(name) {
            None => missing.push(format!("{name}: missing")),
            Some((k, l)) if k != kind || l != labels => {
                missing.push(format!("{name}: etcd {kind} {labels:?}, keelson {k} {l:?}"))
            }
            Some(_) => {}
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // The load moved what it drives.
    for sample in [
        "etcd_mvcc_put_total ",
        "etcd_mvcc_delete_total ",
        "etcd_mvcc_txn_total ",
        "etcd_mvcc_range_total ",
        "etcd_debugging_mvcc_keys_total ",
        "etcd_debugging_lease_granted_total ",
        "etcd_debugging_lease_renewed_total ",
        "etcd_disk_wal_fsync_duration_seconds_count ",
        "etcd_server_proposals_committed_total ",
        "grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}",
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}",
        "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"}",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(value(&keelson_text, sample) > 0.0, "{sample} did not move");
    }
    assert_eq!(
        value(&keelson_text, "etcd_mvcc_put_total "),
        value(&etcd_text, "etcd_mvcc_put_total ")
    );
    assert_eq!(value(&keelson_text, "etcd_server_has_leader "), 1.0);
}

#[test]
fn etcdctl_check_datascale_runs() {
    if common::require_programs("etcdctl_check_datascale_runs", &["etcdctl"]).is_none() {
        return;
    }
    let server = Server::start(common::Kind::Keelson);
    let out = common::etcdctl(
        &server.endpoint(),
        &[
            "check",
            "datascale",
            "--load=s",
            "--auto-compact",
            "--auto-defrag=false",
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("PASS"), "{out:?}");
}
