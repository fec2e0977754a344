//! keelson-bench against a real etcd: every workload through the library,
//! and compare end to end through the binary (etcd standing in for Keelson,
//! since it takes the same flags).
//!
//! These run whenever etcd is on PATH. With CI=true a missing etcd is a
//! failure, so CI can never pass by skipping them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use keelson_proto::etcdserverpb::RangeRequest;
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_tools::args::{self, RunSpec};
use keelson_tools::report::RunResult;
use keelson_tools::server::{self, Server};
use keelson_tools::{conn, workloads};

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn etcd() -> Option<PathBuf> {
    match server::find_program("etcd") {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but etcd is not on PATH; these tests must not be skipped in CI")
        }
        None => {
            eprintln!("note: etcd is not on PATH; skipping the etcd tests");
            None
        }
    }
}

async fn run(endpoint: &str, command: &str) -> RunResult {
    let mut tokens: Vec<String> = command.split_whitespace().map(String::from).collect();
    tokens.push(format!("--endpoints={endpoint}"));
    let args::Command::Run(spec) = args::parse(tokens).unwrap() else {
        panic!("{command} is not a workload");
    };
    let spec: RunSpec = spec;
    let result = workloads::run(&spec).await;
    assert!(
        result.all_ok(),
        "{command}: not every request succeeded:\n{}",
        result.text()
    );
    assert_eq!(
        result.latency.count(),
        result.ok,
        "{command}: one latency per success"
    );
    result
}

async fn count_keys(endpoint: &str, key: &[u8], end: &[u8]) -> i64 {
    let channel = conn::connect_one(endpoint).await.unwrap();
    let request = RangeRequest {
        key: key.to_vec(),
        range_end: end.to_vec(),
        count_only: true,
        ..Default::default()
    };
    KvClient::new(channel)
        .range(request)
        .await
        .unwrap()
        .into_inner()
        .count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_against_etcd() {
    let Some(etcd) = etcd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Server::spawn(
        "bench-test",
        &etcd,
        &dir.path().join("data"),
        &dir.path().join("etcd.log"),
    )
    .unwrap();
    if let Err(e) = etcd.wait_ready(START_TIMEOUT).await {
        panic!("etcd did not start: {e}");
    }
    let ep = etcd.endpoint();

    let put = run(&ep, "put --clients 4 --conns 2 --total 200 --key-space-size 100 --sequential-keys --val-size 64").await;
    assert_eq!((put.requests, put.ok), (200, 200));
    // Sequential keys over a space of 100: exactly keys 00000000..00000099.
    assert_eq!(count_keys(&ep, b"00000000", b"00000100").await, 100);

    for consistency in ["s", "l"] {
        let r = run(&ep, &format!("range 00000000 00000100 --consistency {consistency} --clients 4 --total 100 --limit 10")).await;
        assert_eq!(
            (r.label.as_str(), r.ok),
            (format!("range-{consistency}").as_str(), 100)
        );
    }

    let txn = run(
        &ep,
        "txn-put --clients 4 --total 50 --txn-ops 4 --key-space-size 1000",
    )
    .await;
    assert_eq!(txn.ok, 50);
    // 50 txns of 4 consecutive keys each: keys 0..200.
    assert_eq!(count_keys(&ep, b"00000000", b"00001000").await, 200);

    let mixed = run(
        &ep,
        "txn-mixed --clients 4 --total 100 --rw-ratio 1 --key-space-size 10",
    )
    .await;
    let by_class: u64 = mixed.breakdown.iter().map(|(_, l)| l.count()).sum();
    assert_eq!(by_class, 100, "every txn is a read or a write");

    let lease = run(&ep, "lease-keepalive --clients 4 --total 200").await;
    assert_eq!(lease.ok, 200);

    let wl = run(&ep, "watch-latency --clients 3 --total 20 --put-rate 200").await;
    assert_eq!(
        (wl.requests, wl.ok),
        (60, 60),
        "each of 20 puts reaches 3 watchers"
    );
    let breakdown: Vec<(&str, u64)> = wl
        .breakdown
        .iter()
        .map(|(label, l)| (label.as_str(), l.count()))
        .collect();
    assert_eq!(
        breakdown,
        [("from-send", 60), ("put", 20)],
        "every event's latency from its put's send, and 20 put latencies"
    );

    let w = run(&ep, "watch --clients 2 --streams 2 --watch-per-stream 5 --key-space-size 5 --put-total 50 --sequential-keys").await;
    // Each key has two watchers, so 50 puts make 100 events.
    assert_eq!((w.requests, w.ok), (100, 100));

    let pid = etcd.pid().unwrap();
    etcd.stop();
    assert!(etcd.pid().is_none());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "etcd {pid} still exists after stop"
    );
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keelson-bench"))
}

#[test]
fn compare_end_to_end_with_etcd_on_both_sides() {
    let Some(etcd) = etcd() else { return };
    let root = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["compare", "--etcd"])
        .arg(&etcd)
        .arg("--keelson")
        .arg(&etcd)
        .arg("--data-root")
        .arg(root.path())
        .args(["--fsync-samples", "20", "--clients", "2", "--json"])
        .args([
            "--workload",
            "put --total 100 --key-space-size 10 --sequential-keys",
        ])
        .args([
            "--workload",
            "range 00000000 00000010 --consistency s --total 100",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compare failed:\n{stdout}\n{stderr}");
    // Two rounds of 100 on each side, all successful, restarts measured.
    assert_eq!(
        stdout
            .matches("\"requests\":200,\"ok\":200,\"errors\":0")
            .count(),
        4,
        "{stdout}"
    );
    assert_eq!(stdout.matches("\"restart_s\":").count(), 2, "{stdout}");
    assert_eq!(
        stdout.matches("\"throughput_ratio\":").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("\"peak_rss_bytes\":"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "compare removes its data dirs"
    );
}

#[test]
fn compare_reports_a_keelson_that_fails_to_start() {
    let Some(etcd) = etcd() else { return };
    let fake = server::find_program("false").expect("false(1) on PATH");
    let root = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["compare", "--etcd"])
        .arg(&etcd)
        .arg("--keelson")
        .arg(&fake)
        .arg("--data-root")
        .arg(root.path())
        .args(["--fsync-samples", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Keelson failed to start (etcd stopped)"),
        "{stderr}"
    );
    assert!(stderr.contains("exited"), "{stderr}");
}
