//! Starting and stopping a server that takes etcd's flags (etcd itself or
//! Keelson) on loopback ports, for compare and the tests.
//!
//! A server is only ever stopped through the child handle this module
//! spawned: a signal to that PID, then a wait. Nothing is looked up or
//! killed by name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb::RangeRequest;
use keelson_proto::etcdserverpb::kv_client::KvClient;

use crate::conn;

/// Time between readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// Bound on one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of the server's log quoted when it fails.
const LOG_TAIL_LINES: usize = 20;
/// Bytes read from the end of the log to find those lines.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// Two distinct free loopback ports. Both listeners stay open until both
/// ports are chosen, so the kernel cannot hand out the same one twice.
pub fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Finds `name` on PATH, or accepts it as is when it already has a slash.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// A running server process we spawned.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    binary: PathBuf,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    spawned_at: Instant,
}

impl Server {
    /// Starts `binary` as a single-member cluster named `name`, with its data
    /// in `data_dir` and its output in `log_path`, on fresh loopback ports.
    pub fn spawn(
        name: &str,
        binary: &Path,
        data_dir: &Path,
        log_path: &Path,
    ) -> Result<Server, String> {
        let (client_port, peer_port) = free_ports().map_err(|e| format!("picking ports: {e}"))?;
        let mut server = Server {
            name: name.into(),
            binary: binary.into(),
            data_dir: data_dir.into(),
            log_path: log_path.into(),
            client_port,
            peer_port,
            child: None,
            spawned_at: Instant::now(),
        };
        server.start()?;
        Ok(server)
    }

    /// The etcd flags Keelson must accept too; nothing beyond them.
    fn args(&self) -> Vec<String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}={peer}", self.name),
        ]
    }

    fn start(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("opening {}: {e}", self.log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        self.spawned_at = Instant::now();
        let child = Command::new(&self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {} ({}): {e}", self.name, self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until a linearizable Range succeeds, the process exits, or
    /// `timeout` passes. Returns the time since the process was spawned.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let url = conn::endpoint_url(&self.endpoint());
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "{} exited ({status}) before answering on {url}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if self.child.is_none() {
                return Err(format!("{} is not running", self.name));
            }
            if tokio::time::timeout(PROBE_TIMEOUT, probe(&self.endpoint()))
                .await
                .is_ok_and(|ok| ok)
            {
                return Ok(self.spawned_at.elapsed());
            }
            if self.spawned_at.elapsed() > timeout {
                return Err(format!(
                    "{} did not answer a Range on {url} within {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// Stops the process: SIGTERM to its PID, then SIGKILL after a grace
    /// period, and always a wait so no zombie is left.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) with the PID of a child we have not yet waited
            // for, so the PID cannot have been reused by another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(PROBE_EVERY);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server and starts it again on the same data dir and ports.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.start()
    }

    /// The last lines the server wrote to its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log_path, LOG_TAIL_LINES)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn probe(endpoint: &str) -> bool {
    let Ok(channel) = conn::connect_one(endpoint).await else {
        return false;
    };
    let request = RangeRequest {
        key: b"keelson-bench-probe".to_vec(),
        ..Default::default()
    };
    KvClient::new(channel).range(request).await.is_ok()
}

/// The last `lines` lines of a file (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Creates `dir` (and parents) for a server's data.
pub fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        return Err(format!(
            "{} already exists; data dirs must be fresh",
            dir.display()
        ));
    }
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_tail() {
        let (a, b) = free_ports().unwrap();
        assert_ne!(a, b);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        fs::write(
            &log,
            (1..=30).map(|i| format!("line {i}\n")).collect::<String>(),
        )
        .unwrap();
        let t = tail(&log, 3);
        assert_eq!(t, "line 28\nline 29\nline 30");
        assert_eq!(tail(&dir.path().join("missing"), 3), "");
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-keelson").is_none());
    }

    #[tokio::test]
    async fn reports_a_server_that_exits() {
        let dir = tempfile::tempdir().unwrap();
        let fake = find_program("false").expect("false(1) on PATH");
        let mut s = Server::spawn(
            "fake",
            &fake,
            &dir.path().join("data"),
            &dir.path().join("log"),
        )
        .unwrap();
        let err = s.wait_ready(Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("fake exited"), "{err}");
        assert!(s.pid().is_none());
    }
}
