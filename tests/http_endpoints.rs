//! etcd's plain-HTTP endpoints, side by side with etcd 3.4.23 where it is installed: `/health`
//! (with `serializable` and `exclude`), `/version`, `/metrics`, a wrong method and an unknown
//! path on the client URL, and `/health` and `/metrics` alone on `--listen-metrics-urls`; then
//! the same after the NOSPACE alarm is raised, when health fails unless NOSPACE is excluded.
//! Statuses, the headers that matter and bodies must be equal (the date aside).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Kind, Server};

/// A quota a few hundred kilobytes of writes cross (see tests/quota_alarm.rs).
const QUOTA: &str = "300000";
/// Headers compared; the rest (date, length, transfer encoding) follow from these and the body.
const HEADERS: &[&str] = &[
    "content-type",
    "x-content-type-options",
    "allow",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
];

/// One HTTP/1.1 exchange: the status code, the compared headers and the body.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Sends `method path` to `port` on loopback and reads the whole answer.
fn request(port: u16, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let mut headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .filter(|(name, _)| HEADERS.contains(&name.as_str()))
        .collect();
    headers.sort();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Answer {
        status,
        headers,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The metric families `/metrics` declares, as their `# TYPE` lines.
fn metric_types(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.starts_with("# TYPE "))
        .map(str::to_string)
        .collect()
}

/// The sample lines of the metrics whose values are the same on any healthy single member.
fn fixed_samples(text: &str) -> Vec<String> {
    const FIXED: &[&str] = &[
        "etcd_cluster_version",
        "etcd_server_has_leader ",
        "etcd_server_is_leader ",
        "etcd_server_version",
    ];
    text.lines()
        .filter(|line| FIXED.iter().any(|name| line.starts_with(name)))
        .map(str::to_string)
        .collect()
}

struct Probed {
    /// Each request and what it got, in order.
    answers: Vec<(String, Answer)>,
    metrics: String,
}

fn probe(server: &Server, metrics_port: u16, requests: &[(&str, &str, bool)]) -> Probed {
    let answers = requests
        .iter()
        .map(|&(method, path, on_metrics_port)| {
            let port = if on_metrics_port {
                metrics_port
            } else {
                server.client_port
            };
            let label = format!("{method} {path} on the {} port", {
                if on_metrics_port { "metrics" } else { "client" }
            });
            (label, request(port, method, path))
        })
        .collect();
    let metrics = request(server.client_port, "GET", "/metrics").body;
    Probed { answers, metrics }
}

/// Starts `kind` with a small quota and a metrics URL, probes it healthy, fills the quota and
/// probes it again.
fn run(kind: Kind) -> (Probed, Probed) {
    let metrics_port = common::free_ports().0;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    let server = Server::start_with(
        kind,
        &[
            "--quota-backend-bytes",
            QUOTA,
            "--listen-metrics-urls",
            &metrics_url,
        ],
    );
    let healthy = probe(
        &server,
        metrics_port,
        &[
            ("GET", "/health", false),
            ("GET", "/health?serializable=true", false),
            ("GET", "/version", false),
            ("POST", "/health", false),
            ("PUT", "/version", false),
            ("GET", "/nothing/here", false),
            ("GET", "/health", true),
            ("GET", "/version", true),
        ],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (written, refused) = runtime.block_on(common::fill_until_refused(&server.endpoint()));
    assert!(written > 10, "{kind:?}: refused after {written} writes");
    assert_eq!(
        refused.message(),
        "etcdserver: mvcc: database space exceeded"
    );
    let alarmed = probe(
        &server,
        metrics_port,
        &[
            ("GET", "/health", false),
            ("GET", "/health?serializable=true", false),
            ("GET", "/health?exclude=NOSPACE", false),
            ("GET", "/health?exclude=CORRUPT", false),
            ("GET", "/health", true),
            ("GET", "/health?exclude=NOSPACE", true),
        ],
    );
    (healthy, alarmed)
}

#[test]
fn health_version_and_metrics_like_etcd() {
    let (healthy, alarmed) = run(Kind::Keelson);
    for (label, answer) in &healthy.answers {
        println!("keelson, healthy: {label}: {answer:?}");
    }
    for (label, answer) in &alarmed.answers {
        println!("keelson, NOSPACE: {label}: {answer:?}");
    }
    // What holds without etcd to compare with.
    let health = &healthy.answers[0].1;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"health":"true"}"#)
    );
    let alarmed_health = &alarmed.answers[0].1;
    assert_eq!(
        (alarmed_health.status, alarmed_health.body.as_str()),
        (503, "{\"health\":\"false\"}\n")
    );
    assert_eq!(alarmed.answers[2].1.status, 200, "NOSPACE excluded");
    assert!(
        fixed_samples(&healthy.metrics).contains(&"etcd_server_has_leader 1".to_string()),
        "{}",
        healthy.metrics
    );

    if common::require_programs("health_version_and_metrics_like_etcd", &["etcd"]).is_none() {
        return;
    }
    let (etcd_healthy, etcd_alarmed) = run(Kind::Etcd);
    assert_eq!(healthy.answers, etcd_healthy.answers);
    assert_eq!(alarmed.answers, etcd_alarmed.answers);
    // Every family Keelson exports is etcd's, with etcd's type.
    let etcd_types = metric_types(&etcd_healthy.metrics);
    for family in metric_types(&healthy.metrics) {
        assert!(etcd_types.contains(&family), "etcd has no {family}");
    }
    assert_eq!(
        fixed_samples(&healthy.metrics),
        fixed_samples(&etcd_healthy.metrics)
    );
}
