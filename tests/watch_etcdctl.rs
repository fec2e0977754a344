//! `etcdctl watch` against Keelson and against a real etcd 3.4.23: the same watchers (plain,
//! `--prefix`, `--rev`, `--prev-kv`, `-w json`, interactive `watch -i` from stdin, a watch from a
//! compacted revision) over the same writes, with outputs compared after masking ids and raft
//! term.
//!
//! Every watcher starts from an explicit revision after the writes were made (see [`scenario`]),
//! so its output does not depend on how quickly it registered. This file must never loosen a
//! comparison beyond the masks.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Ids, Server, zero_json_number};

/// How long a watcher may take to print a marker.
const END_TIMEOUT: Duration = Duration::from_secs(15);

/// The watchers: etcdctl arguments and, for `watch -i`, the commands fed on stdin.
const WATCHERS: &[(&[&str], Option<&str>)] = &[
    (&["watch", "--rev=2", "foo"], None),
    (&["watch", "--rev=2", "--prefix", "fo"], None),
    (&["watch", "--rev=3", "--prev-kv", "foo"], None),
    (&["watch", "--rev=2", "-w", "json", "--prefix", "f"], None),
    (&["watch", "--rev=2", "foo", "fop"], None),
    (
        &["watch", "-i"],
        // One watch per process: two watchers on one stream get a revision's events in an
        // order etcd leaves to map iteration, which no comparison could rely on.
        Some("watch --rev=4 --prefix fo --prev-kv\n"),
    ),
];

/// The writes made before the watchers start.
const WRITES: &[&[&str]] = &[
    &["put", "foo", "1"],
    &["put", "foo", "2"],
    &["put", "fob", "x"],
    &["put", "bar", "y"],
    &["del", "foo"],
    &["put", "foo", "3"],
    &["del", "--prefix", "fo"],
    &["txn", "-i"],
];

const TXN: &str = "\nput foo 4\nput fob 5\n\n\n";

fn spawn_watcher(server: &Server, args: &[&str], stdin: Option<&str>) -> Child {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=127.0.0.1:{}", server.client_port))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        // Stdin stays open: interactive watch keeps serving until killed.
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child
}

/// A running `etcdctl watch` whose stdout is gathered by a thread.
struct Watcher {
    child: Child,
    stdout: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The end marker as this watcher prints it (JSON shows values in base64).
    json: bool,
}

impl Watcher {
    fn start(server: &Server, args: &[&str], stdin: Option<&str>) -> Watcher {
        let mut child = spawn_watcher(server, args, stdin);
        let (stdout, reader) = common::gather(child.stdout.take().unwrap());
        Watcher {
            child,
            stdout,
            reader: Some(reader),
            json: args.contains(&"json"),
        }
    }

    /// Waits until the watcher printed `value` (a put of it on `foo`).
    fn wait_for(&mut self, value: &str) {
        let marker = if self.json {
            common::base64(value.as_bytes())
        } else {
            value.to_string()
        };
        let started = Instant::now();
        while !self.stdout.lock().unwrap().contains(&marker) {
            if started.elapsed() > END_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let mut stderr = String::new();
                let _ = self
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr);
                panic!(
                    "no {value} from the watcher; stdout:\n{}\nstderr:\n{stderr}",
                    self.stdout.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the watcher (by its own PID, through the child handle) and returns its output.
    fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.stdout.lock().unwrap().clone()
    }
}

fn mask(server: &Server, ids: &Ids, text: &str) -> String {
    let masked = server.mask(text, ids);
    zero_json_number(&masked, "raft_term")
}

/// Runs the whole scenario on one server and returns every output, masked.
///
/// The writes happen before any watcher starts and end with `put foo MARK`; once every watcher
/// printed MARK its history is complete (sent as one catch-up, whatever the timing), and a final
/// `put foo END` arrives as a live event. So the grouping of events into responses, which
/// `-w json` shows, does not depend on timing.
fn scenario(server: &Server, ids: &Ids) -> Vec<String> {
    for write in WRITES {
        let stdin = (write[0] == "txn").then_some(TXN);
        let out = server.etcdctl(write, stdin);
        assert!(out.success, "{write:?}: {}", out.stderr);
    }
    assert!(server.etcdctl(&["put", "foo", "MARK"], None).success);
    let mut watchers: Vec<Watcher> = WATCHERS
        .iter()
        .map(|(args, stdin)| Watcher::start(server, args, *stdin))
        .collect();
    for watcher in &mut watchers {
        watcher.wait_for("MARK");
    }
    assert!(server.etcdctl(&["put", "foo", "END"], None).success);
    let mut outputs = Vec::new();
    for mut watcher in watchers {
        watcher.wait_for("END");
        outputs.push(mask(server, ids, &watcher.finish()));
    }
    // A watch from below the compaction is canceled and etcdctl exits with the reason.
    assert!(server.etcdctl(&["compaction", "5"], None).success);
    for rev in ["--rev=2", "--rev=4"] {
        let out = server.etcdctl(&["watch", rev, "foo"], None);
        outputs.push(format!("{} {} {}", out.success, out.stdout, out.stderr));
    }
    outputs
}

#[test]
fn etcdctl_watch_matches_etcd() {
    let Some(common::SideBySide {
        etcd,
        etcd_ids,
        keelson,
        keelson_ids,
    }) = common::side_by_side("etcdctl_watch_matches_etcd")
    else {
        return;
    };
    let want = scenario(&etcd, &etcd_ids);
    let got = scenario(&keelson, &keelson_ids);
    assert_eq!(want.len(), got.len());
    for (i, (want, got)) in want.iter().zip(&got).enumerate() {
        assert_eq!(got, want, "output {i} differs (watchers: {WATCHERS:?})");
    }
    assert!(
        want[0].contains("END"),
        "the scenario saw no events: {want:?}"
    );
}
