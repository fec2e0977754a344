//! Patroni (PostgreSQL high availability) end to end on Keelson, then on etcd 3.4.23 to compare:
//! Patroni configured for `etcd3` bootstraps a PostgreSQL primary in a temporary directory on
//! loopback, takes the leader key and keeps refreshing its lease, and `patronictl list` shows the
//! member as the running leader. Patroni speaks to the server through the /v3 JSON gateway
//! (ranges, txns, leases, keep-alives, watches).
//!
//! PostgreSQL refuses to run as root, so Patroni runs as the `postgres` user (runuser), which owns
//! the temporary directory. Patroni and everything it starts form one process group, stopped by
//! its id at the end. Every wait is bounded: a server that never serves Patroni fails the test.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kind, Server};

/// How long Patroni gets to initialise PostgreSQL and take the leader key.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long Patroni gets to stop PostgreSQL after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(500);
/// The user PostgreSQL runs as (Debian's package creates it).
const PG_USER: &str = "postgres";
/// Patroni's DCS timing: the leader lease TTL and how often Patroni refreshes it.
const TTL_SECONDS: u64 = 30;
const LOOP_WAIT_SECONDS: u64 = 2;
const SCOPE: &str = "keelson-test";

/// The newest PostgreSQL's binaries directory, if one is installed.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// A running Patroni and what it was given.
struct Patroni {
    child: Child,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Patroni {
    fn start(server: &Server, bin_dir: &Path) -> Patroni {
        let dir = tempfile::tempdir().unwrap();
        let (rest_port, pg_port) = common::free_ports();
        let data = dir.path().join("pgdata");
        let config = dir.path().join("patroni.yml");
        let text = format!(
            "scope: {SCOPE}\n\
             name: pg1\n\
             restapi:\n  listen: 127.0.0.1:{rest_port}\n  connect_address: 127.0.0.1:{rest_port}\n\
             etcd3:\n  hosts: 127.0.0.1:{client}\n\
             bootstrap:\n  dcs:\n    ttl: {TTL_SECONDS}\n    loop_wait: {LOOP_WAIT_SECONDS}\n    retry_timeout: 10\n\
             \x20 initdb:\n  - encoding: UTF8\n\
             postgresql:\n  listen: 127.0.0.1:{pg_port}\n  connect_address: 127.0.0.1:{pg_port}\n\
             \x20 data_dir: {data}\n  bin_dir: {bin}\n  pgpass: {pgpass}\n\
             \x20 authentication:\n    superuser:\n      username: postgres\n      password: pg\n\
             \x20   replication:\n      username: replicator\n      password: rep\n\
             \x20 parameters:\n    unix_socket_directories: {socket}\n",
            client = server.client_port,
            data = data.display(),
            bin = bin_dir.display(),
            pgpass = dir.path().join("pgpass").display(),
            socket = dir.path().display(),
        );
        std::fs::write(&config, text).unwrap();
        // The directory belongs to the user PostgreSQL runs as.
        let chown = Command::new("chown")
            .args(["-R", &format!("{PG_USER}:{PG_USER}")])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let log = std::fs::File::create(dir.path().join("patroni.log")).unwrap();
        let mut command = Command::new("runuser");
        command
            .args(["-u", PG_USER, "--", "patroni"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so Patroni and the PostgreSQL it starts stop together.
            .process_group(0);
        Patroni {
            child: command.spawn().unwrap(),
            config,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("patroni.log")).unwrap_or_default()
    }

    /// `patronictl list` as JSON: (member, role, state) of each member.
    fn members(&self) -> Vec<(String, String, String)> {
        let out = Command::new("patronictl")
            .arg("-c")
            .arg(&self.config)
            .args(["list", "-f", "json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Ok(serde_json::Value::Array(members)) = serde_json::from_str(&text) else {
            return Vec::new();
        };
        let field = |m: &serde_json::Value, name: &str| {
            m.get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        members
            .iter()
            .map(|m| (field(m, "Member"), field(m, "Role"), field(m, "State")))
            .collect()
    }

    fn stop(&mut self) {
        let group = -libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the process group this test created for its own child, which has
        // not been waited for, so the id cannot name another group.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(POLL);
        }
        // SAFETY: as above; SIGKILL for whatever is left of the group.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Patroni {
    fn drop(&mut self) {
        self.stop();
    }
}

/// POSTs `body` to the server's gateway and parses the answer.
fn gateway(server: &Server, path: &str, body: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-X", "POST"])
        .arg(format!("{}{path}", server.endpoint()))
        .args(["-d", body])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn b64(text: &str) -> String {
    common::base64(text.as_bytes())
}

/// The leader key's value and the remaining TTL of its lease.
fn leader_key(server: &Server) -> Option<(String, i64)> {
    let key = b64(&format!("/service/{SCOPE}/leader"));
    let found = gateway(server, "/v3/kv/range", &format!("{{\"key\":\"{key}\"}}"));
    let kv = found.get("kvs")?.get(0)?;
    let value = kv.get("value")?.as_str()?.to_string();
    let lease = kv.get("lease")?.as_str()?.to_string();
    let ttl = gateway(
        server,
        "/v3/lease/timetolive",
        &format!("{{\"ID\":\"{lease}\"}}"),
    );
    let ttl = ttl.get("TTL")?.as_str()?.parse().ok()?;
    Some((value, ttl))
}

/// What Patroni did on `kind`: the member list once it leads, the leader key's value, and
/// whether the lease was refreshed while the test watched it.
fn scenario(kind: Kind, bin_dir: &Path) -> (Vec<(String, String, String)>, String, bool) {
    let server = Server::start(kind);
    let patroni = Patroni::start(&server, bin_dir);
    let started = Instant::now();
    let members = loop {
        let members = patroni.members();
        if members
            .iter()
            .any(|(_, role, state)| role == "Leader" && state == "running")
        {
            break members;
        }
        assert!(
            started.elapsed() < BOOTSTRAP_TIMEOUT,
            "{kind:?}: Patroni did not lead in {BOOTSTRAP_TIMEOUT:?}: {members:?}\npatroni log:\n{}\nserver log:\n{}",
            patroni.log(),
            server.log()
        );
        std::thread::sleep(POLL);
    };
    let (value, first_ttl) = leader_key(&server).expect("a leader key with a lease");
    // Without refreshes the lease would lose this much; Patroni renews every loop_wait.
    let watched = Duration::from_secs(3 * LOOP_WAIT_SECONDS);
    std::thread::sleep(watched);
    let (still, second_ttl) = leader_key(&server).expect("the leader key is still held");
    assert_eq!(still, value);
    let refreshed = second_ttl > first_ttl - watched.as_secs() as i64 + 1;
    (members, value, refreshed)
}

#[test]
fn patroni_leads_on_keelson_as_on_etcd() {
    let Some(_) = common::require_programs(
        "patroni_leads_on_keelson_as_on_etcd",
        &["etcd", "patroni", "patronictl", "runuser", "curl"],
    ) else {
        return;
    };
    let Some(bin_dir) = pg_bin_dir() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "PostgreSQL is not installed, and CI=true requires it");
        eprintln!("note: patroni test skipped: PostgreSQL is not installed");
        return;
    };
    let keelson = scenario(Kind::Keelson, &bin_dir);
    let etcd = scenario(Kind::Etcd, &bin_dir);
    assert_eq!(
        keelson.0,
        vec![(
            "pg1".to_string(),
            "Leader".to_string(),
            "running".to_string()
        )]
    );
    assert_eq!(keelson, etcd);
    assert!(
        keelson.2,
        "Patroni did not refresh its leader lease on Keelson"
    );
}
