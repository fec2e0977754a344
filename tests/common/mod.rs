//! Shared helpers of the integration tests: starting Keelson (the binary built with the tests) or
//! a real etcd on free loopback ports with a temporary data dir, gRPC clients to them, running
//! etcdctl, and masking what legitimately differs between two servers' outputs.
//!
//! Every server is stopped through the child handle spawned here (a signal to its PID, then a
//! wait); nothing is ever looked up or killed by name. A dying test process takes its servers
//! with it (PR_SET_PDEATHSIG), so a failed test never leaves one running.

#![allow(dead_code)] // Each test file uses a different part of these helpers.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keelson_proto::etcdserverpb::response_op::Response as TxnOpResponse;
use keelson_proto::etcdserverpb::{RangeRequest, ResponseHeader, StatusRequest, TxnResponse};
use rand::Rng;
use rand::rngs::StdRng;
use tonic::transport::{Channel, Endpoint};

/// How long a server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long a server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Set (to anything) to run etcd where a test asks for Keelson: a check of the tests themselves.
pub const KEELSON_IS_ETCD: &str = "KEELSON_TEST_WITH_ETCD_ONLY";
/// The member name every test server gets, so member lists agree.
pub const MEMBER_NAME: &str = "node1";

/// Which server a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Keelson,
    Etcd,
}

/// The path of `program` on PATH, if any.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// The paths of `programs` when all are on PATH. When one is missing the test must fail under CI
/// (`CI=true`), where they are installed on purpose; elsewhere it returns `None` with a note so
/// the caller can skip.
pub fn require_programs(test: &str, programs: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = programs.iter().map(|p| on_path(p)).collect();
    let missing: Vec<&str> = programs
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{test}: {missing:?} not on PATH, and CI=true requires them"
    );
    eprintln!("note: {test} skipped: {missing:?} not on PATH");
    None
}

/// Two distinct free loopback ports (both listeners stay open until both are chosen).
pub fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A server process this test started.
pub struct Server {
    pub kind: Kind,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    /// Keeps the temporary directory alive; `None` when the caller owns the data dir.
    _temp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server of `kind` with a fresh data dir and waits until it answers.
    pub fn start(kind: Kind) -> Server {
        Server::start_with(kind, &[])
    }

    /// As [`Server::start`], with extra flags.
    pub fn start_with(kind: Kind, extra_args: &[&str]) -> Server {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        let (client_port, peer_port) = free_ports();
        let mut server = Server {
            kind,
            client_port,
            peer_port,
            data_dir,
            _temp: Some(temp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn binary(&self) -> PathBuf {
        match self.kind {
            // Lets the harness itself be checked against etcd on both sides.
            Kind::Keelson if std::env::var_os(KEELSON_IS_ETCD).is_some() => {
                on_path("etcd").expect("etcd on PATH")
            }
            Kind::Keelson => PathBuf::from(env!("CARGO_BIN_EXE_keelson")),
            Kind::Etcd => on_path("etcd").expect("etcd on PATH"),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    /// etcd's flags for a single member on our ports; Keelson takes the same.
    fn args(&self) -> Vec<String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args = vec![
            format!("--name={MEMBER_NAME}"),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={MEMBER_NAME}={peer}"),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Replaces the extra flags the next [`Server::spawn`] passes (a restart with another
    /// configuration on the same data dir).
    pub fn set_extra_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
    }

    /// Starts the process (on the same ports and data dir as before) and waits until a Range
    /// succeeds.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(self.binary());
        command
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl only sets an attribute of the child process; it allocates nothing and
        // is async-signal-safe, as code between fork and exec must be.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(command.spawn().unwrap());
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{:?} exited ({status}) before answering; log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            let endpoint = self.endpoint();
            let ready = runtime.block_on(async move {
                let Ok(channel) = connect(&endpoint).await else {
                    return false;
                };
                let probe = RangeRequest {
                    key: b"probe".to_vec(),
                    ..Default::default()
                };
                KvClient::new(channel).range(probe).await.is_ok()
            });
            if ready {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "{:?} not ready after {READY_TIMEOUT:?}; log:\n{}",
                self.kind,
                self.log()
            );
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` to the server's PID and waits for it to exit (SIGKILL after a grace
    /// period). Returns the exit status.
    pub fn signal_and_wait(&mut self, signal: libc::c_int) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on the PID of our own child that has not been waited for, so the PID
        // cannot belong to another process.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            std::thread::sleep(PROBE_EVERY);
        }
        let _ = child.kill();
        child.wait().unwrap()
    }

    /// Stops gracefully (SIGTERM).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// Kills without warning (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// etcdctl against this server, its endpoint given as a URL (`http://127.0.0.1:PORT`, the
    /// form clientv3 sends as the HTTP/2 `:authority`): exit success, stdout and stderr.
    pub fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        etcdctl(&self.endpoint(), args, stdin)
    }

    /// etcdctl against this server with the endpoint as `127.0.0.1:PORT`.
    pub fn etcdctl_host_port(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        etcdctl(&format!("127.0.0.1:{}", self.client_port), args, stdin)
    }

    /// Replaces everything in `text` that names this server rather than describing the data: its
    /// ports, its member and cluster ids (decimal and hex).
    pub fn mask(&self, text: &str, ids: &Ids) -> String {
        let mut out = text.replace(&self.client_port.to_string(), "CLIENT_PORT");
        out = out.replace(&self.peer_port.to_string(), "PEER_PORT");
        for (id, name) in [(ids.member_id, "MEMBER_ID"), (ids.cluster_id, "CLUSTER_ID")] {
            out = out.replace(&id.to_string(), name);
            out = out.replace(&format!("{id:x}"), name);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// A server's identity, read from a response header.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// Opens a gRPC channel to `endpoint`.
pub async fn connect(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
}

/// The member and cluster ids of the server at `endpoint`.
pub async fn ids(endpoint: &str) -> Ids {
    let channel = connect(endpoint).await.unwrap();
    let status = MaintenanceClient::new(channel)
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let header = status.header.unwrap();
    Ids {
        member_id: header.member_id,
        cluster_id: header.cluster_id,
    }
}

/// A real etcd and a Keelson started side by side, with the ids each reports, for tests that run
/// one scenario on both and compare what they print.
pub struct SideBySide {
    pub etcd: Server,
    pub etcd_ids: Ids,
    pub keelson: Server,
    pub keelson_ids: Ids,
}

/// Starts [`SideBySide`] servers, or returns `None` (after [`require_programs`] printed why) when
/// etcd or etcdctl is missing outside CI.
pub fn side_by_side(test: &str) -> Option<SideBySide> {
    require_programs(test, &["etcd", "etcdctl"])?;
    let etcd = Server::start(Kind::Etcd);
    let keelson = Server::start(Kind::Keelson);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd_ids = runtime.block_on(ids(&etcd.endpoint()));
    let keelson_ids = runtime.block_on(ids(&keelson.endpoint()));
    Some(SideBySide {
        etcd,
        etcd_ids,
        keelson,
        keelson_ids,
    })
}

/// What one etcdctl run printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs etcdctl (API v3) against `endpoint`.
pub fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> CtlOutput {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    CtlOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// JSON fields of raft bookkeeping and database sizes, which differ between two servers that
/// hold the same data.
pub const RAFT_AND_SIZE_JSON_FIELDS: &[&str] = &[
    "raft_term",
    "raftTerm",
    "raftIndex",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
];

/// Replaces the number after every `"field":` in JSON text with 0.
pub fn zero_json_number(text: &str, field: &str) -> String {
    let needle = format!("\"{field}\":");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let after = at + needle.len();
        out.push_str(&rest[..after]);
        let digits = rest[after..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - after);
        out.push('0');
        rest = &rest[after + digits..];
    }
    out.push_str(rest);
    out
}

/// Clears what names the server or counts elections in a response header, so two servers'
/// answers compare equal when their content is.
pub fn scrub(header: &mut Option<ResponseHeader>) {
    if let Some(h) = header {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// [`scrub`] for a Txn answer and every response nested in it.
pub fn scrub_txn(response: &mut TxnResponse) {
    scrub(&mut response.header);
    for op in &mut response.responses {
        match &mut op.response {
            Some(TxnOpResponse::ResponseRange(r)) => scrub(&mut r.header),
            Some(TxnOpResponse::ResponsePut(r)) => scrub(&mut r.header),
            Some(TxnOpResponse::ResponseDeleteRange(r)) => scrub(&mut r.header),
            Some(TxnOpResponse::ResponseTxn(r)) => scrub_txn(r),
            None => {}
        }
    }
}

/// Collects everything `pipe` yields (a child's stdout or stderr) on a thread of its own, so the
/// child never blocks on a full pipe; the text so far is readable at any time.
pub fn gather(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}

/// The steps whose outputs differ between etcd and Keelson, each shown both ways for a failure
/// message. Steps past the shorter list are not compared: callers that care check the lengths.
pub fn differing_steps(etcd: &[String], keelson: &[String]) -> Vec<String> {
    etcd.iter()
        .zip(keelson)
        .filter(|(e, k)| e != k)
        .map(|(e, k)| format!("  etcd:    {e}\n  keelson: {k}"))
        .collect()
}

/// A random range end for a non-empty `key`: none (single key), a later key, the prefix end of
/// `k0`/`k`, or "from key". An empty key gets none.
pub fn random_range_end(rng: &mut StdRng, key: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        return Vec::new();
    }
    match rng.random_range(0..5) {
        0 | 1 => Vec::new(),
        2 => {
            let mut end = key.to_vec();
            *end.last_mut().unwrap() += rng.random_range(1..4);
            end
        }
        3 => b"l".to_vec(),
        _ => vec![0],
    }
}

/// Bytes of each value [`fill_until_refused`] writes.
const FILL_VALUE_BYTES: usize = 3000;
/// Writes before [`fill_until_refused`] gives up.
const FILL_WRITES_MAX: usize = 2000;

/// Puts `k0`, `k1`, ... with 3,000-byte values until one fails (with a small
/// `--quota-backend-bytes`, NOSPACE); returns how many succeeded and the failure.
pub async fn fill_until_refused(endpoint: &str) -> (usize, tonic::Status) {
    let mut kv = KvClient::new(connect(endpoint).await.unwrap());
    for i in 0..FILL_WRITES_MAX {
        let put = keelson_proto::etcdserverpb::PutRequest {
            key: format!("k{i}").into_bytes(),
            value: vec![b'v'; FILL_VALUE_BYTES],
            ..Default::default()
        };
        if let Err(status) = kv.put(put).await {
            return (i, status);
        }
    }
    panic!("{endpoint}: no refusal after {FILL_WRITES_MAX} writes");
}

/// Standard padded base64, as etcd's JSON writes bytes.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
