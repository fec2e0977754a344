//! Every flag etcd 3.4.23 lists in `--help` is accepted by Keelson: on the command line with a
//! value of its type, and as its `ETCD_*` variable. The list is read from the installed etcd's
//! help text (required under CI) and kept here too, so machines without etcd check the same.
//! Then the real binary starts with the flags deployments pass most and serves.

mod common;

use std::process::Command;

use keelson::config::{Config, env_var_name};

use common::{Kind, Server, require_programs};

const CLIENT: &str = "http://127.0.0.1:2379";

/// etcd 3.4.23's `--help` flags in its order, each with a value of its type (`true` for a
/// boolean) and the other flags it needs to be valid alone.
const ETCD_FLAGS: &[(&str, &str, &[&str])] = &[
    ("name", "n1", &[]),
    ("data-dir", "/var/lib/etcd", &[]),
    ("wal-dir", "/var/lib/etcd-wal", &[]),
    ("snapshot-count", "5000", &[]),
    ("heartbeat-interval", "50", &[]),
    ("election-timeout", "500", &[]),
    ("initial-election-tick-advance", "false", &[]),
    ("listen-peer-urls", "http://127.0.0.1:2380", &[]),
    (
        "listen-client-urls",
        CLIENT,
        &["--advertise-client-urls=http://127.0.0.1:2379"],
    ),
    ("max-snapshots", "3", &[]),
    ("max-wals", "3", &[]),
    ("quota-backend-bytes", "4294967296", &[]),
    ("backend-batch-interval", "10ms", &[]),
    ("backend-batch-limit", "100", &[]),
    ("max-txn-ops", "256", &[]),
    ("max-request-bytes", "2097152", &[]),
    ("max-concurrent-streams", "1000", &[]),
    ("grpc-keepalive-min-time", "10s", &[]),
    ("grpc-keepalive-interval", "1h", &[]),
    ("grpc-keepalive-timeout", "10s", &[]),
    ("initial-advertise-peer-urls", "http://127.0.0.1:2380", &[]),
    ("initial-cluster", "n1=http://127.0.0.1:2380", &[]),
    ("initial-cluster-state", "existing", &[]),
    ("initial-cluster-token", "token-1", &[]),
    ("advertise-client-urls", CLIENT, &[]),
    ("discovery", "https://discovery.example/abc", &[]),
    ("discovery-fallback", "exit", &[]),
    ("discovery-proxy", "http://proxy.example:3128", &[]),
    ("discovery-srv", "cluster.example", &[]),
    ("discovery-srv-name", "prod", &[]),
    ("strict-reconfig-check", "false", &[]),
    ("pre-vote", "true", &[]),
    ("auto-compaction-retention", "1h", &[]),
    ("auto-compaction-mode", "revision", &[]),
    ("enable-v2", "true", &[]),
    ("cert-file", "server.pem", &[]),
    ("key-file", "server-key.pem", &[]),
    ("client-cert-auth", "true", &[]),
    ("client-crl-file", "crl.pem", &[]),
    ("client-cert-allowed-hostname", "client.example", &[]),
    ("trusted-ca-file", "ca.pem", &[]),
    ("auto-tls", "true", &[]),
    ("peer-cert-file", "peer.pem", &[]),
    ("peer-key-file", "peer-key.pem", &[]),
    ("peer-client-cert-auth", "true", &[]),
    ("peer-trusted-ca-file", "peer-ca.pem", &[]),
    ("peer-cert-allowed-cn", "etcd-peer", &[]),
    ("peer-cert-allowed-hostname", "peer.example", &[]),
    ("peer-auto-tls", "true", &[]),
    ("peer-crl-file", "peer-crl.pem", &[]),
    (
        "cipher-suites",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        &[],
    ),
    ("cors", "http://app.example:8080", &[]),
    ("host-whitelist", "a.example,b.example", &[]),
    (
        "auth-token",
        "jwt,pub-key=p.pem,priv-key=k.pem,sign-method=RS256",
        &[],
    ),
    ("bcrypt-cost", "12", &[]),
    ("auth-token-ttl", "600", &[]),
    ("enable-pprof", "true", &[]),
    ("metrics", "extensive", &[]),
    ("listen-metrics-urls", "http://127.0.0.1:2381", &[]),
    ("logger", "zap", &[]),
    ("log-outputs", "stdout", &[]),
    ("log-level", "warn", &[]),
    ("proxy", "readonly", &[]),
    ("proxy-failure-wait", "1000", &[]),
    ("proxy-refresh-interval", "1000", &[]),
    ("proxy-dial-timeout", "500", &[]),
    ("proxy-write-timeout", "500", &[]),
    ("proxy-read-timeout", "500", &[]),
    ("experimental-initial-corrupt-check", "true", &[]),
    ("experimental-corrupt-check-time", "5m", &[]),
    ("experimental-enable-v2v3", "/v2/", &[]),
    ("experimental-backend-bbolt-freelist-type", "map", &[]),
    ("experimental-enable-lease-checkpoint", "true", &[]),
    ("experimental-compaction-batch-limit", "500", &[]),
    (
        "experimental-peer-skip-client-san-verification",
        "true",
        &[],
    ),
    ("experimental-watch-progress-notify-interval", "5m", &[]),
    ("experimental-warning-apply-duration", "200ms", &[]),
    ("force-new-cluster", "true", &[]),
    ("debug", "true", &[]),
    ("log-package-levels", "etcdserver=DEBUG", &[]),
];

/// The flag names in the order `etcd --help` lists them.
fn help_flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| rest.split([' ', '=']).next())
        .map(str::to_string)
        .collect()
}

fn args(list: &[String]) -> impl Iterator<Item = String> + '_ {
    list.iter().cloned()
}

#[test]
fn etcd_help_lists_the_flags_this_test_walks() {
    let Some(programs) = require_programs("etcd_help_lists_the_flags", &["etcd"]) else {
        return;
    };
    let output = Command::new(&programs[0]).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let listed = help_flags(&help);
    let walked: Vec<&str> = ETCD_FLAGS.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(
        listed, walked,
        "etcd --help lists other flags than this test walks"
    );
}

#[test]
fn every_etcd_flag_is_accepted_with_a_value_of_its_type_and_as_a_variable() {
    for (name, value, companions) in ETCD_FLAGS {
        let companions: Vec<String> = companions.iter().map(|c| c.to_string()).collect();
        let forms = [
            vec![format!("--{name}={value}")],
            vec![format!("-{name}={value}")],
        ];
        for form in forms {
            let mut list = form.clone();
            list.extend(companions.iter().cloned());
            if let Err(e) = Config::from_args_and_env(args(&list), |_| None) {
                panic!("{list:?} refused: {e}");
            }
        }
        // Booleans also take the bare form (true); others the separate value.
        let separate: Vec<String> = match *value {
            "true" | "false" => vec![format!("--{name}")],
            _ => vec![format!("--{name}"), value.to_string()],
        };
        let list: Vec<String> = separate.into_iter().chain(companions.clone()).collect();
        if let Err(e) = Config::from_args_and_env(args(&list), |_| None) {
            panic!("{list:?} refused: {e}");
        }
        // The variable alone (companions as variables too, so nothing is on the command line).
        let mut vars = vec![(env_var_name(name), value.to_string())];
        for companion in &companions {
            let (flag, v) = companion.trim_start_matches('-').split_once('=').unwrap();
            vars.push((env_var_name(flag), v.to_string()));
        }
        let lookup = |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if let Err(e) = Config::from_args_and_env(std::iter::empty(), lookup) {
            panic!("{vars:?} refused: {e}");
        }
    }
}

#[test]
fn typed_flags_refuse_a_value_of_another_type() {
    for (name, value, _) in ETCD_FLAGS {
        let is_duration = value.starts_with(|c: char| c.is_ascii_digit())
            && value.ends_with(['s', 'm', 'h'])
            && value.parse::<u64>().is_err();
        let wrong = if matches!(*value, "true" | "false") {
            format!("--{name}=maybe")
        } else if value.parse::<u64>().is_ok() || is_duration {
            format!("--{name}=x1")
        } else {
            continue;
        };
        if *name == "auto-compaction-retention" {
            continue; // A string checked when the server starts, with its own message.
        }
        assert!(
            Config::from_args_and_env([wrong.clone()], |_| None).is_err(),
            "{wrong} accepted"
        );
    }
}

/// The flags deployment manifests and etcd test harnesses pass, which Keelson used to refuse.
#[test]
fn the_binary_starts_and_serves_with_etcds_deployment_flags() {
    let mut server = Server::start_with(
        Kind::Keelson,
        &[
            "--experimental-initial-corrupt-check",
            "--strict-reconfig-check",
            "--auth-token=simple",
            "--cert-file=",
            "--key-file=",
            "--peer-auto-tls=false",
            "--enable-v2=false",
            "--snapshot-count=10000",
            "--logger=zap",
            "--log-level=info",
            "--v",
        ],
    );
    let put = server.etcdctl(&["put", "k", "v"], None);
    assert!(put.success, "{put:?}");
    server.stop();
    let log = server.log();
    assert!(
        log.contains("flag \\\"-v\\\" is no longer supported - ignoring."),
        "the retired flag's warning is logged: {log}"
    );
}
