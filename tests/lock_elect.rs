//! `etcdctl lock` and `etcdctl elect` against Keelson and a real etcd 3.4.23, side by side: a
//! command run under a lock (its output, environment and exit code), contenders queueing on one
//! lock and taking it in order as holders exit cleanly or die with their lease, an election with
//! an observer, leadership passing on a clean exit and after a crash once the dead leader's lease
//! is revoked, and the lock and election keys (`NAME/<lease hex>`) gone after each release.
//!
//! etcdctl implements both commands on the client (clientv3's concurrency package: a session
//! lease, a key under the name, watches for the deletion of older keys), so they exercise leases,
//! txns, ranges sorted by create revision and watches together.
//!
//! Outputs are compared after masking lease ids (server-chosen), ports, member and cluster ids,
//! and remaining-TTL countdowns; nothing else may be loosened. Every etcdctl run is bounded: a
//! server that never answers fails the test instead of hanging it.

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Ids, Server};

/// How long any one step may take: an etcdctl run, a contender taking a lock, a lease expiring.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a contender that must still be waiting is watched for not taking the lock.
const STILL_WAITING: Duration = Duration::from_millis(500);
/// Time between polls.
const POLL: Duration = Duration::from_millis(20);

/// A running etcdctl whose stdout and stderr are gathered by threads.
struct Ctl {
    args: Vec<String>,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// What a finished etcdctl printed and how it ended.
struct Finished {
    status: String,
    stdout: String,
    stderr: String,
}

impl Ctl {
    fn start(server: &Server, args: &[&str]) -> Ctl {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", server.client_port))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl only sets an attribute of the child process; it allocates nothing and is
        // async-signal-safe, as code between fork and exec must be. A dying test thus takes its
        // lock holders with it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let (stdout, out_reader) = common::gather(child.stdout.take().unwrap());
        let (stderr, err_reader) = common::gather(child.stderr.take().unwrap());
        Ctl {
            args: args.iter().map(|s| s.to_string()).collect(),
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn describe(&self) -> String {
        format!(
            "etcdctl {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout(),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits (bounded) until stdout has at least `lines` lines; returns it.
    fn wait_lines(&mut self, lines: usize) -> String {
        let started = Instant::now();
        loop {
            let out = self.stdout();
            if out.lines().count() >= lines {
                return out;
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < STEP_TIMEOUT,
                "no {lines} lines (exit: {exited:?}) from {}",
                self.describe()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Asserts that the process is still running and has printed nothing yet, for a while.
    fn assert_waiting(&mut self) {
        let started = Instant::now();
        while started.elapsed() < STILL_WAITING {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && self.stdout().is_empty(),
                "should still be waiting (exit: {exited:?}): {}",
                self.describe()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` to this etcdctl's own PID.
    fn signal(&mut self, signal: libc::c_int) {
        assert!(self.status.is_none(), "already exited");
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the PID of our own child, not yet waited for, so the PID cannot
        // belong to another process.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits (bounded) for the exit; returns how it ended and everything printed.
    fn finish(mut self) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > STEP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit in {STEP_TIMEOUT:?}: {}", self.describe());
            }
            std::thread::sleep(POLL);
        };
        self.status = Some(status);
        // The pipes close when the last process holding them (etcdctl, or a command it ran)
        // exits; a grandchild still holding them fails the step rather than hanging it.
        while !self.readers.iter().all(|r| r.is_finished()) {
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "output still open after the exit: {}",
                self.describe()
            );
            std::thread::sleep(POLL);
        }
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => format!("{status}"),
        };
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// etcdctl 3.4 logs failed calls as JSON lines (with timestamps) before its `Error:` line.
fn without_client_logs(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `remaining(57s)` counts down differently on the two servers; everything else must match.
fn mask_remaining(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("remaining(") {
        let start = at + "remaining(".len();
        out.push_str(&rest[..start]);
        out.push('X');
        rest = match rest[start..].find(')') {
            Some(len) => &rest[start + len..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// One server's run of the scenario: the outputs so far, masked, and the lease ids learned from
/// the keys printed (in order of first appearance, the same on both servers).
struct Run<'a> {
    server: &'a Server,
    ids: Ids,
    leases: Vec<String>,
    outputs: Vec<String>,
}

impl<'a> Run<'a> {
    /// Learns the lease ids in `text`: every `NAME/<hex>` key names its session's lease.
    fn learn(&mut self, text: &str) {
        for token in text.split(|c: char| c.is_whitespace() || c == '"') {
            let Some((_, hex)) = token.rsplit_once('/') else {
                continue;
            };
            if hex.len() >= 8
                && hex.chars().all(|c| c.is_ascii_hexdigit())
                && !self.leases.iter().any(|l| l == hex)
            {
                self.leases.push(hex.to_string());
            }
        }
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (n, hex) in self.leases.iter().enumerate() {
            let name = format!("LEASE{n}");
            if let Ok(decimal) = i64::from_str_radix(hex, 16) {
                // Keys carry the id as `%x`, `lease` commands print it as `%016x`: an id whose
                // top digit is 0 (the server's choice) shows with and without it.
                text = text.replace(&format!("{decimal:016x}"), &name);
                text = text.replace(&decimal.to_string(), &name);
            }
            text = text.replace(hex, &name);
        }
        mask_remaining(&self.server.mask(&text, &self.ids))
    }

    /// Records a step's output under `label`, masked.
    fn record(&mut self, label: &str, text: &str) {
        self.learn(text);
        let masked = format!("{label}: {}", self.mask(text));
        self.outputs.push(masked);
    }

    fn record_finished(&mut self, label: &str, finished: &Finished) {
        let text = format!(
            "{} | {} | {}",
            finished.status,
            finished.stdout.trim_end(),
            without_client_logs(&finished.stderr)
        );
        self.record(label, &text);
    }

    /// Runs etcdctl to its end (bounded) and records it.
    fn ctl(&mut self, label: &str, args: &[&str]) -> Finished {
        let finished = Ctl::start(self.server, args).finish();
        self.record_finished(label, &finished);
        finished
    }

    /// The keys under `prefix`, oldest first.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out = Ctl::start(
            self.server,
            &["get", "--prefix", prefix, "--sort-by=CREATE", "--keys-only"],
        )
        .finish();
        assert_eq!(out.status, "exit 0", "{}", out.stderr);
        out.stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until `prefix` holds `count` keys: a contender has queued.
    fn wait_keys(&self, prefix: &str, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let keys = self.keys(prefix);
            if keys.len() == count {
                return keys;
            }
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "{prefix}: {keys:?}, want {count} keys"
            );
            std::thread::sleep(POLL);
        }
    }

    /// The lease id in a lock or election key.
    fn lease_of(key: &str) -> String {
        key.rsplit_once('/')
            .expect("NAME/<lease hex>")
            .1
            .to_string()
    }

    /// Waits (bounded) until the lease is gone: `lease timetolive` says it expired.
    fn wait_lease_expired(&mut self, label: &str, lease: &str) {
        let started = Instant::now();
        loop {
            let out = Ctl::start(self.server, &["lease", "timetolive", lease]).finish();
            if out.stdout.contains("already expired") {
                self.record_finished(label, &out);
                return;
            }
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "lease {lease} not expired: {}",
                out.stdout
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A command run under the lock: it sees the lock's key and revision, the key exists (with the
/// session's lease) while it runs and is gone after; its exit code comes back as etcdctl's.
fn lock_with_command(run: &mut Run) {
    let endpoint = format!("127.0.0.1:{}", run.server.client_port);
    let script = format!(
        "echo \"key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV\"; \
         etcdctl --endpoints={endpoint} get --prefix cmd/ -w fields \
         | grep -e '\"Key\"' -e CreateRevision -e '\"Lease\"' -e Count; echo done"
    );
    let ok = run.ctl(
        "lock cmd -- script",
        &["lock", "cmd", "--", "sh", "-c", &script],
    );
    assert_eq!(ok.status, "exit 0", "{}", ok.stderr);
    let key = ok
        .stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("key="))
        .and_then(|l| l.split_whitespace().next())
        .expect("the script printed the lock key")
        .to_string();
    assert!(
        key.starts_with("cmd/") && ok.stdout.contains(&format!("\"Key\" : \"{key}\"")),
        "the lock key exists while the command runs: {}",
        ok.stdout
    );
    // NAME/<lease hex>: the key names the session's lease, which it is attached to.
    let lease = i64::from_str_radix(&Run::lease_of(&key), 16).expect("a hex lease id");
    assert!(
        ok.stdout.contains(&format!("\"Lease\" : {lease}\n")),
        "the lock key carries its lease {lease}: {}",
        ok.stdout
    );
    // The key goes at once; the session's lease stays (etcdctl 3.4 never closes the session) with
    // nothing attached, until its TTL (10 s by default) runs out.
    run.ctl("after lock cmd: keys", &["get", "--prefix", "cmd/"]);
    run.ctl(
        "after lock cmd: lease",
        &["lease", "timetolive", "--keys", &Run::lease_of(&key)],
    );

    let failing = run.ctl(
        "lock cmd -- failing",
        &["lock", "cmd", "--", "sh", "-c", "echo failing; exit 3"],
    );
    assert!(
        failing.status != "exit 0",
        "a failing command fails etcdctl"
    );
    run.ctl(
        "lock cmd -- missing",
        &["lock", "cmd", "--", "/nonexistent"],
    );
    run.ctl("after failing: keys", &["get", "--prefix", "cmd/"]);
    run.ctl("lock without a name", &["lock"]);
}

/// Three commands under one lock at once never overlap: each one's start and end are adjacent in
/// the file they append to.
fn lock_excludes(run: &mut Run, dir: &std::path::Path) {
    let file = dir.join("exclusive.log");
    let script = format!(
        "echo \"start $ETCD_LOCK_KEY\" >> {0}; sleep 0.2; echo \"end $ETCD_LOCK_KEY\" >> {0}",
        file.display()
    );
    let contenders: Vec<Ctl> = (0..3)
        .map(|_| Ctl::start(run.server, &["lock", "excl", "--", "sh", "-c", &script]))
        .collect();
    for contender in contenders {
        let finished = contender.finish();
        assert_eq!(finished.status, "exit 0", "{}", finished.stderr);
    }
    let log = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    for pair in lines.chunks(2) {
        let start = pair[0].strip_prefix("start ");
        let end = pair[1].strip_prefix("end ");
        assert!(
            start.is_some() && start == end,
            "overlapping holders:\n{log}"
        );
    }
    run.record("three commands under one lock", &log);
    run.ctl("after excl: keys", &["get", "--prefix", "excl/"]);
}

/// Interactive holders: the first prints its key and holds; a second queues (its key exists, it
/// prints nothing) and takes the lock only when the first exits on SIGTERM, which deletes the
/// first's key; a command queued behind the second runs when the second exits. Then a holder
/// dies with SIGKILL: the next one takes the lock when the dead one's lease (TTL 2 s) expires
/// and the lease's revoke deletes its key.
fn lock_queue(run: &mut Run) {
    let mut first = Ctl::start(run.server, &["lock", "queue"]);
    let printed = first.wait_lines(1);
    run.record("first holder", &printed);
    let mut second = Ctl::start(run.server, &["lock", "queue"]);
    let keys = run.wait_keys("queue/", 2);
    assert_eq!(keys[0], printed.trim(), "the holder's key is the oldest");
    run.record("queue keys", &keys.join("\n"));
    second.assert_waiting();
    first.signal(libc::SIGTERM);
    let finished = first.finish();
    run.record_finished("first holder after SIGTERM", &finished);
    let taken = second.wait_lines(1);
    assert_eq!(taken.trim(), keys[1], "the waiter's own key");
    run.record("second holder", &taken);
    assert_eq!(run.keys("queue/"), vec![keys[1].clone()]);
    run.ctl(
        "first holder's lease",
        &["lease", "timetolive", "--keys", &Run::lease_of(&keys[0])],
    );
    // A command queued behind an interactive holder runs once the holder lets go, and sees the
    // revision at which it got the lock (the holder's delete), not the one it queued at.
    let mut third = Ctl::start(
        run.server,
        &[
            "lock",
            "queue",
            "--",
            "sh",
            "-c",
            "echo \"$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV\"",
        ],
    );
    let keys = run.wait_keys("queue/", 2);
    third.assert_waiting();
    second.signal(libc::SIGINT);
    let finished = second.finish();
    run.record_finished("second holder after SIGINT", &finished);
    let finished = third.finish();
    assert!(
        finished.stdout.starts_with(&format!("{} rev=", keys[1])),
        "the queued command ran under its own key: {}",
        finished.stdout
    );
    run.record_finished("queued command", &finished);
    run.ctl("after queue: keys", &["get", "--prefix", "queue/"]);

    let mut doomed = Ctl::start(run.server, &["lock", "--ttl=2", "held"]);
    let printed = doomed.wait_lines(1);
    run.record("doomed holder", &printed);
    let mut next = Ctl::start(run.server, &["lock", "held"]);
    let keys = run.wait_keys("held/", 2);
    doomed.signal(libc::SIGKILL);
    let finished = doomed.finish();
    assert_eq!(finished.status, "signal 9");
    // The dead holder's lease outlives it by up to its TTL: the lock is not free yet.
    next.assert_waiting();
    let taken = next.wait_lines(1);
    assert_eq!(taken.trim(), keys[1], "the waiter's own key");
    run.record("holder after the crash", &taken);
    run.wait_lease_expired("dead holder's lease", &Run::lease_of(&keys[0]));
    assert_eq!(run.keys("held/"), vec![keys[1].clone()]);
    next.signal(libc::SIGTERM);
    let finished = next.finish();
    run.record_finished("holder after the crash, SIGTERM", &finished);

    // A clean exit leaves the session's lease to run out its TTL, with nothing attached.
    let mut short = Ctl::start(run.server, &["lock", "--ttl=2", "brief"]);
    let printed = short.wait_lines(1);
    short.signal(libc::SIGTERM);
    let finished = short.finish();
    run.record_finished("brief holder", &finished);
    run.ctl("after brief: keys", &["get", "--prefix", "brief/"]);
    run.wait_lease_expired("brief holder's lease", &Run::lease_of(printed.trim()));
}

/// An election: the leader prints its key and proposal; an observer prints each leader; a second
/// candidate queues and leads when the first exits (SIGTERM resigns); a third leads after the
/// second is killed (SIGKILL) and its lease revoked, which deletes its key.
fn election(run: &mut Run) {
    let mut first = Ctl::start(run.server, &["elect", "vote", "p1"]);
    let printed = first.wait_lines(2);
    run.record("first leader", &printed);
    let mut observer = Ctl::start(run.server, &["elect", "-l", "vote"]);
    run.record("observer sees p1", &observer.wait_lines(2));
    let mut second = Ctl::start(run.server, &["elect", "vote", "p2"]);
    let keys = run.wait_keys("vote/", 2);
    assert_eq!(format!("{}\np1\n", keys[0]), printed);
    run.ctl(
        "candidates",
        &["get", "--prefix", "vote/", "--sort-by=CREATE"],
    );
    second.assert_waiting();
    first.signal(libc::SIGTERM);
    let finished = first.finish();
    run.record_finished("first leader after SIGTERM", &finished);
    let led = second.wait_lines(2);
    assert_eq!(led, format!("{}\np2\n", keys[1]));
    run.record("second leader", &led);
    run.record("observer sees p2", &observer.wait_lines(4));
    run.ctl(
        "first leader's lease",
        &["lease", "timetolive", "--keys", &Run::lease_of(&keys[0])],
    );

    let mut third = Ctl::start(run.server, &["elect", "vote", "p3"]);
    let keys = run.wait_keys("vote/", 2);
    second.signal(libc::SIGKILL);
    assert_eq!(second.finish().status, "signal 9");
    // The dead leader's key lives as long as its lease (60 s): no new leader until revoked.
    third.assert_waiting();
    run.ctl(
        "revoke the dead leader's lease",
        &["lease", "revoke", &Run::lease_of(&keys[0])],
    );
    let led = third.wait_lines(2);
    assert_eq!(led, format!("{}\np3\n", keys[1]));
    run.record("third leader", &led);
    run.record("observer sees p3", &observer.wait_lines(6));
    third.signal(libc::SIGINT);
    let finished = third.finish();
    run.record_finished("third leader after SIGINT", &finished);
    run.ctl("after the election: keys", &["get", "--prefix", "vote/"]);
    observer.signal(libc::SIGINT);
    let finished = observer.finish();
    run.record_finished("observer after SIGINT", &finished);

    run.ctl("elect without a proposal", &["elect", "vote"]);
    run.ctl("elect -l with a proposal", &["elect", "-l", "vote", "p"]);
}

fn scenario(server: &Server, ids: Ids) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run {
        server,
        ids,
        leases: Vec::new(),
        outputs: Vec::new(),
    };
    lock_with_command(&mut run);
    lock_excludes(&mut run, dir.path());
    lock_queue(&mut run);
    election(&mut run);
    run.outputs
}

#[test]
fn etcdctl_lock_and_elect_match_etcd() {
    let Some(common::SideBySide {
        etcd,
        etcd_ids,
        keelson,
        keelson_ids,
    }) = common::side_by_side("etcdctl_lock_and_elect_match_etcd")
    else {
        return;
    };
    let want = scenario(&etcd, etcd_ids);
    let got = scenario(&keelson, keelson_ids);
    let mismatches = common::differing_steps(&want, &got);
    assert!(
        mismatches.is_empty() && want.len() == got.len(),
        "{} steps differ:\n{}\nkeelson log:\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        keelson.log()
    );
}
