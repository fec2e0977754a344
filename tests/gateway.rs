//! The /v3 JSON gateway against etcd 3.4.23's, side by side: a seeded random sequence of POSTs
//! (puts, ranges with every option, deletes, txns with compares, compactions, leases, locks,
//! elections, cluster and maintenance calls, requests etcd refuses, unknown paths and methods,
//! the `/v3beta/` alias), then the streams (a watch fed by puts with a progress request, a lease
//! keep-alive, an election observer). Each answer's HTTP status and body must be equal once the
//! headers' ids and raft term, server-chosen lease ids and raft bookkeeping are masked.
//!
//! A small HTTP/1.1 client is written here: each call is one connection, bounded in time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long one call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in the random sequence; `KEELSON_GATEWAY_STEPS` raises it.
const DEFAULT_STEPS: usize = 150;
const SEED: u64 = 0x6a7e_3a11;

/// What one HTTP call answered: status and the body's chunks (one for a unary call).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// Sends one request; reads the answer until the connection closes, or for a stream until
/// `lines` newline-terminated chunks arrived.
fn call(port: u16, method: &str, path: &str, body: &str, lines: Option<usize>) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(lines) = lines
            && let Some(answer) = parse(&raw)
            && answer.body.matches('\n').count() >= lines
        {
            return answer;
        }
        assert!(
            started.elapsed() < CALL_TIMEOUT,
            "{path}: no complete answer in time: {}",
            String::from_utf8_lossy(&raw)
        );
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{path}: reading the answer: {e}"),
        }
    }
    parse(&raw).unwrap_or_else(|| panic!("{path}: malformed answer {raw:?}"))
}

/// Status and body (de-chunked) of a raw HTTP/1.1 answer, if its head is complete.
fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    if !chunked {
        return Some(Answer {
            status,
            body: rest.to_string(),
        });
    }
    let mut body = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or("");
    }
    Some(Answer { status, body })
}

/// Replaces the values of `"field":"digits"` in `text` by `f(digits)`.
fn replace_numbers(text: &str, field: &str, f: impl Fn(&str) -> String) -> String {
    let needle = format!("\"{field}\":\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let start = at + needle.len();
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('"').unwrap_or(0);
        out.push_str(&f(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Masks what names a server or counts its raft work, and the ids of leases the server chose;
/// the test's own lease ids (1-3, 10) compare as they are.
fn mask(text: &str) -> String {
    let mut out = text.to_string();
    let named = ["cluster_id", "member_id", "leader"];
    for field in named.iter().chain(common::RAFT_AND_SIZE_JSON_FIELDS) {
        out = replace_numbers(&out, field, |_| "X".into());
    }
    // Leases etcd grants on its own (a session for a proclaim without a lease) get ids the
    // server picks; the test's own are 1-3 and 10.
    out = replace_numbers(&out, "ID", |id| {
        if id.len() > 2 {
            "SERVER_CHOSEN".into()
        } else {
            id.to_string()
        }
    });
    // etcd lists leases and a lease's keys in Go's map order, which varies: sorted here.
    for list in ["\"keys\":[", "\"leases\":["] {
        if let Some(at) = out.find(list) {
            let start = at + list.len();
            let end = start + out[start..].find(']').unwrap_or(0);
            let mut items: Vec<&str> = out[start..end].split(',').collect();
            items.sort_unstable();
            out = format!("{}{}{}", &out[..start], items.join(","), &out[end..]);
        }
    }
    // A member list names the server's own id and URLs.
    match out.find("\"members\":") {
        Some(at) => format!("{}\"members\":X}}", &out[..at]),
        None => out,
    }
}

fn b64(text: &str) -> String {
    common::base64(text.as_bytes())
}

/// One step of the sequence: method, path, body.
struct Step {
    method: &'static str,
    path: String,
    body: String,
}

fn post(path: &str, body: String) -> Step {
    Step {
        method: "POST",
        path: path.to_string(),
        body,
    }
}

/// Keys of the random steps; none under `lock/`, so the lock step never waits.
const KEYS: &[&str] = &["a", "b", "b1", "b2", "c", "l/x", "z"];

fn key(rng: &mut StdRng) -> &'static str {
    KEYS[rng.random_range(0..KEYS.len())]
}

/// The seeded random sequence; `revision` is how many writes succeeded so far (both servers see
/// the same, so revisions in requests are meaningful on both).
fn random_step(rng: &mut StdRng, step: usize) -> Step {
    let prefix = if rng.random_bool(0.1) {
        "/v3beta"
    } else {
        "/v3"
    };
    let p = |route: &str| format!("{prefix}/{route}");
    let k = b64(key(rng));
    match rng.random_range(0..20) {
        0..=4 => {
            let lease = if rng.random_bool(0.15) {
                format!(",\"lease\":\"{}\"", rng.random_range(1..4))
            } else {
                String::new()
            };
            let prev = if rng.random_bool(0.3) {
                ",\"prev_kv\":true"
            } else {
                ""
            };
            let ignore = if rng.random_bool(0.1) {
                ",\"ignore_value\":true"
            } else {
                ""
            };
            post(
                &p("kv/put"),
                format!(
                    "{{\"key\":\"{k}\",\"value\":\"{}\"{lease}{prev}{ignore}}}",
                    b64(&format!("v{step}"))
                ),
            )
        }
        5..=8 => {
            let mut body = format!("{{\"key\":\"{k}\"");
            match rng.random_range(0..4) {
                0 => body.push_str(&format!(",\"range_end\":\"{}\"", b64("c"))),
                1 => body.push_str(",\"range_end\":\"AA==\""),
                2 => body.push_str(&format!(",\"range_end\":\"{}\"", b64("b3"))),
                _ => {}
            }
            if rng.random_bool(0.3) {
                body.push_str(&format!(",\"limit\":{}", rng.random_range(1..3)));
            }
            if rng.random_bool(0.3) {
                let order = ["NONE", "ASCEND", "DESCEND"][rng.random_range(0..3)];
                let target = ["KEY", "VERSION", "CREATE", "MOD", "VALUE"][rng.random_range(0..5)];
                body.push_str(&format!(
                    ",\"sort_order\":\"{order}\",\"sortTarget\":\"{target}\""
                ));
            }
            if rng.random_bool(0.2) {
                body.push_str(&format!(
                    ",\"revision\":\"{}\"",
                    rng.random_range(0..step as i64 + 3)
                ));
            }
            for flag in ["keys_only", "count_only", "serializable"] {
                if rng.random_bool(0.15) {
                    body.push_str(&format!(",\"{flag}\":true"));
                }
            }
            body.push('}');
            post(&p("kv/range"), body)
        }
        9 => post(
            &p("kv/deleterange"),
            format!("{{\"key\":\"{k}\",\"prev_kv\":{}}}", rng.random_bool(0.5)),
        ),
        10 | 11 => {
            let target = ["VALUE", "VERSION", "CREATE", "MOD"][rng.random_range(0..4)];
            let result = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"][rng.random_range(0..4)];
            let operand = match target {
                "VALUE" => format!(
                    "\"value\":\"{}\"",
                    b64(&format!("v{}", rng.random_range(0..step + 1)))
                ),
                "VERSION" => format!("\"version\":\"{}\"", rng.random_range(0..3)),
                "CREATE" => format!("\"create_revision\":\"{}\"", rng.random_range(0..step + 2)),
                _ => format!("\"mod_revision\":\"{}\"", rng.random_range(0..step + 2)),
            };
            post(
                &p("kv/txn"),
                format!(
                    "{{\"compare\":[{{\"key\":\"{k}\",\"target\":\"{target}\",\"result\":\"{result}\",{operand}}}],\
                     \"success\":[{{\"request_put\":{{\"key\":\"{k}\",\"value\":\"{}\"}}}},{{\"request_range\":{{\"key\":\"{k}\"}}}}],\
                     \"failure\":[{{\"request_delete_range\":{{\"key\":\"{k}\",\"prev_kv\":true}}}}]}}",
                    b64(&format!("t{step}"))
                ),
            )
        }
        12 => post(
            &p("kv/compaction"),
            format!(
                "{{\"revision\":\"{}\"}}",
                rng.random_range(1..step as i64 / 4 + 2)
            ),
        ),
        13 => {
            let id = rng.random_range(1..4);
            match rng.random_range(0..4) {
                0 => post(
                    &p("lease/grant"),
                    format!("{{\"TTL\":\"60\",\"ID\":\"{id}\"}}"),
                ),
                1 => post(&p("lease/revoke"), format!("{{\"ID\":\"{id}\"}}")),
                2 => post(
                    &p("lease/timetolive"),
                    format!("{{\"ID\":\"{id}\",\"keys\":true}}"),
                ),
                _ => post(&p("lease/leases"), "{}".into()),
            }
        }
        14 => match rng.random_range(0..4) {
            0 => post(&p("kv/range"), "{\"key\":\"\"}".into()),
            1 => post(
                &p("kv/put"),
                format!("{{\"key\":\"{k}\",\"lease\":\"999\"}}"),
            ),
            2 => post(
                &p("kv/range"),
                format!("{{\"key\":\"{k}\",\"revision\":\"100000\"}}"),
            ),
            _ => post(
                &p("kv/txn"),
                format!(
                    "{{\"success\":[{{\"request_put\":{{\"key\":\"{k}\"}}}},{{\"request_put\":{{\"key\":\"{k}\"}}}}]}}"
                ),
            ),
        },
        15 => match rng.random_range(0..4) {
            0 => post(&p("cluster/member/list"), "{}".into()),
            1 => post(&p("maintenance/alarm"), "{\"action\":\"GET\"}".into()),
            2 => post(&p("maintenance/status"), "{}".into()),
            _ => post(&p("kv/range"), String::new()),
        },
        16 => match rng.random_range(0..3) {
            0 => post("/v3/nothing/here", "{}".into()),
            1 => Step {
                method: "GET",
                path: p("kv/range"),
                body: String::new(),
            },
            _ => post("/v3alpha/kv/range", format!("{{\"key\":\"{k}\"}}")),
        },
        17 => match rng.random_range(0..2) {
            // Always lease 1: a second holder would wait for the first.
            0 => post(
                &p("lock/lock"),
                format!("{{\"name\":\"{}\",\"lease\":\"1\"}}", b64("lock")),
            ),
            _ => post(
                &p("lock/unlock"),
                format!("{{\"key\":\"{}\"}}", b64("lock/1")),
            ),
        },
        _ => match rng.random_range(0..3) {
            0 => post(
                &p("election/leader"),
                format!("{{\"name\":\"{}\"}}", b64("vote")),
            ),
            1 => post(
                &p("election/proclaim"),
                format!(
                    "{{\"leader\":{{\"name\":\"{}\",\"key\":\"{}\",\"rev\":\"1\"}},\"value\":\"eA==\"}}",
                    b64("vote"),
                    b64("vote/1")
                ),
            ),
            _ => post(&p("election/resign"), "{}".into()),
        },
    }
}

/// Runs the sequence on the server at `port`; one line per answer.
fn run_sequence(port: u16, steps: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut lines = Vec::new();
    // Leases 1-3 exist at first so puts and locks can use them.
    for id in 1..4 {
        let answer = call(
            port,
            "POST",
            "/v3/lease/grant",
            &format!("{{\"TTL\":60,\"ID\":{id}}}"),
            None,
        );
        lines.push(format!(
            "grant {id}: {} {}",
            answer.status,
            mask(&answer.body)
        ));
    }
    for step in 0..steps {
        let s = random_step(&mut rng, step);
        let answer = call(port, s.method, &s.path, &s.body, None);
        lines.push(format!(
            "{} {} {}: {} {}",
            s.method,
            s.path,
            s.body,
            answer.status,
            mask(answer.body.trim_end())
        ));
    }
    lines.extend(streams(port));
    lines
}

/// The streams: a watch from a past revision (its created answer, then the put it missed), a
/// keep-alive of a live and an unknown lease, and an election observer after a campaign.
fn streams(port: u16) -> Vec<String> {
    let mut lines = Vec::new();
    let put = call(
        port,
        "POST",
        "/v3/kv/put",
        &format!(
            "{{\"key\":\"{}\",\"value\":\"{}\",\"prev_kv\":true}}",
            b64("w"),
            b64("w1")
        ),
        None,
    );
    let revision = put
        .body
        .split("\"revision\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let body = format!(
        "{{\"create_request\":{{\"key\":\"{}\",\"start_revision\":\"{revision}\",\"prev_kv\":true}}}}",
        b64("w")
    );
    let mut record = |label: &str, path: &str, body: &str, chunks: Option<usize>| {
        let answer = call(port, "POST", path, body, chunks);
        lines.push(format!(
            "{label}: {} {}",
            answer.status,
            mask(answer.body.trim_end())
        ));
    };
    record("watch", "/v3/watch", &body, Some(2));
    record(
        "keepalive",
        "/v3/lease/keepalive",
        "{\"ID\":\"2\"}",
        Some(1),
    );
    record(
        "keepalive unknown",
        "/v3/lease/keepalive",
        "{\"ID\":\"4242\"}",
        Some(1),
    );
    // A lease of its own: the random steps may have revoked theirs.
    record(
        "grant 10",
        "/v3/lease/grant",
        "{\"TTL\":60,\"ID\":10}",
        None,
    );
    let campaign = format!(
        "{{\"name\":\"{}\",\"lease\":\"10\",\"value\":\"{}\"}}",
        b64("elect"),
        b64("me")
    );
    record("campaign", "/v3/election/campaign", &campaign, None);
    let observe = format!("{{\"name\":\"{}\"}}", b64("elect"));
    record("observe", "/v3/election/observe", &observe, Some(1));
    lines
}

#[test]
fn gateway_answers_match_etcd() {
    let Some(servers) = common::side_by_side("gateway_answers_match_etcd") else {
        return;
    };
    let steps = std::env::var("KEELSON_GATEWAY_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_STEPS);
    let etcd = run_sequence(servers.etcd.client_port, steps);
    let keelson = run_sequence(servers.keelson.client_port, steps);
    let differing = common::differing_steps(&etcd, &keelson);
    assert!(
        differing.is_empty() && etcd.len() == keelson.len(),
        "{} of {} answers differ:\n{}",
        differing.len(),
        etcd.len(),
        differing.join("\n")
    );
}
