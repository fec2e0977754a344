//! The space quota and the NOSPACE alarm end to end, against etcd 3.4.23 where it is installed:
//! writing until the B+tree file reaches `--quota-backend-bytes` fails with etcd's error and
//! raises NOSPACE; while it is raised Put, Txn and LeaseGrant are refused and reads, deletes and
//! compaction work; `etcdctl alarm list`/`alarm disarm` print what etcd prints; Status lists the
//! alarm; the alarm survives SIGKILL and restart; and with room again (Keelson has no defrag yet,
//! so the restart raises the quota instead) disarming restores writes.

mod common;

use common::{Ids, Kind, Server};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keelson_proto::etcdserverpb::{PutRequest, StatusRequest};

/// A fresh Keelson B+tree file is 64 KiB and grows by doubling, so this quota is crossed when the
/// file grows from 256 KiB to 512 KiB: a few hundred kilobytes of writes.
const QUOTA: &str = "300000";
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn status_errors(endpoint: &str) -> Vec<String> {
    let channel = common::connect(endpoint).await.unwrap();
    MaintenanceClient::new(channel)
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .errors
}

/// The last line of what etcdctl printed (stderr starts with client retry logs that carry
/// timestamps), with the server's ids masked.
fn ctl(server: &Server, ids: &Ids, args: &[&str], stdin: Option<&str>) -> String {
    let out = server.etcdctl(args, stdin);
    let text = if out.success { out.stdout } else { out.stderr };
    let last = text.lines().last().unwrap_or("").to_string();
    format!("{}: {}", out.success, server.mask(&last, ids))
}

/// What a server answers after reaching its quota, step by step.
fn after_quota(server: &Server, ids: &Ids, with_etcdctl: bool) -> Vec<String> {
    let runtime = runtime();
    let (written, status) = runtime.block_on(common::fill_until_refused(&server.endpoint()));
    assert!(
        written > 10,
        "{:?}: NOSPACE after {written} writes",
        server.kind
    );
    let mut out = vec![format!("{:?}: {}", status.code(), status.message())];
    let errors = runtime.block_on(status_errors(&server.endpoint()));
    out.push(format!(
        "status errors: {:?}",
        mask_all(server, ids, &errors)
    ));
    if !with_etcdctl {
        return out;
    }
    let txn_put = "\n\nput a b\n\n";
    for (args, stdin) in [
        (&["alarm", "list"][..], None),
        (&["put", "x", "y"][..], None),
        (&["txn"][..], Some(txn_put)),
        (&["lease", "grant", "60"][..], None),
        (&["get", "k1", "--print-value-only"][..], None),
        (&["del", "k1"][..], None),
        (&["compact", "3"][..], None),
        (&["alarm", "disarm"][..], None),
        (&["alarm", "list"][..], None),
        (&["alarm", "disarm"][..], None),
        // Still over the quota: the put raises the alarm again.
        (&["put", "x", "y"][..], None),
        (&["alarm", "list"][..], None),
        (&["alarm", "list", "-w", "json"][..], None),
    ] {
        let line = ctl(server, ids, args, stdin);
        // A value is long; its length is what matters.
        let line = if args[0] == "get" {
            format!("{} bytes", line.len())
        } else {
            line
        };
        out.push(format!("{args:?} -> {line}"));
    }
    out
}

fn mask_all(server: &Server, ids: &Ids, texts: &[String]) -> Vec<String> {
    texts.iter().map(|t| server.mask(t, ids)).collect()
}

#[test]
fn nospace_alarm_like_etcd_and_survives_restart() {
    let with_etcdctl =
        common::require_programs("nospace_alarm_like_etcd", &["etcd", "etcdctl"]).is_some();
    let args = ["--quota-backend-bytes", QUOTA];
    let mut keelson = Server::start_with(Kind::Keelson, &args);
    let ids = runtime().block_on(common::ids(&keelson.endpoint()));
    let got = after_quota(&keelson, &ids, with_etcdctl);
    println!("{got:#?}");
    assert_eq!(got[0], format!("ResourceExhausted: {NOSPACE}"));
    assert_eq!(
        got[1],
        "status errors: [\"memberID:MEMBER_ID alarm:NOSPACE \"]"
    );
    if with_etcdctl {
        let etcd = Server::start_with(Kind::Etcd, &args);
        let etcd_ids = runtime().block_on(common::ids(&etcd.endpoint()));
        let want = after_quota(&etcd, &etcd_ids, true);
        assert_eq!(got, want);
    }

    // A crash does not lose the alarm: it went through the log.
    keelson.kill();
    keelson.spawn();
    let runtime = runtime();
    let errors = runtime.block_on(status_errors(&keelson.endpoint()));
    assert_eq!(
        mask_all(&keelson, &ids, &errors),
        vec!["memberID:MEMBER_ID alarm:NOSPACE ".to_string()]
    );
    let put = |kv: &mut KvClient<_>| {
        let put = PutRequest {
            key: b"after".to_vec(),
            value: b"restart".to_vec(),
            ..Default::default()
        };
        runtime.block_on(kv.put(put))
    };
    let channel = runtime
        .block_on(common::connect(&keelson.endpoint()))
        .unwrap();
    let mut kv = KvClient::new(channel);
    assert_eq!(put(&mut kv).unwrap_err().message(), NOSPACE);

    // With room (the default 2 GiB quota) the alarm still refuses writes until it is disarmed.
    keelson.stop();
    keelson.set_extra_args(&[]);
    keelson.spawn();
    let channel = runtime
        .block_on(common::connect(&keelson.endpoint()))
        .unwrap();
    let mut kv = KvClient::new(channel);
    assert_eq!(put(&mut kv).unwrap_err().message(), NOSPACE);
    if with_etcdctl {
        assert_eq!(
            ctl(&keelson, &ids, &["alarm", "disarm"], None),
            "true: memberID:MEMBER_ID alarm:NOSPACE "
        );
    } else {
        let channel = runtime
            .block_on(common::connect(&keelson.endpoint()))
            .unwrap();
        let disarm = keelson_proto::etcdserverpb::AlarmRequest {
            action: 2,
            member_id: ids.member_id,
            alarm: 1,
        };
        runtime
            .block_on(MaintenanceClient::new(channel).alarm(disarm))
            .unwrap();
    }
    put(&mut kv).unwrap();
    assert!(
        runtime
            .block_on(status_errors(&keelson.endpoint()))
            .is_empty()
    );
}

/// Keelson enforces only NOSPACE, so raising another alarm is refused rather than stored as a
/// promise it cannot keep (etcd would store it); listing and clearing work on a fresh server.
#[test]
fn only_nospace_can_be_raised() {
    use keelson_proto::etcdserverpb::AlarmRequest;
    let server = Server::start(Kind::Keelson);
    let runtime = runtime();
    runtime.block_on(async {
        let channel = common::connect(&server.endpoint()).await.unwrap();
        let mut maintenance = MaintenanceClient::new(channel);
        for (action, alarm) in [(1, 2), (1, 0), (7, 1)] {
            let request = AlarmRequest {
                action,
                member_id: 1,
                alarm,
            };
            let status = maintenance.alarm(request).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unimplemented,
                "{action} {alarm}"
            );
        }
        for action in [0, 2] {
            let request = AlarmRequest {
                action,
                member_id: 1,
                alarm: 1,
            };
            let response = maintenance.alarm(request).await.unwrap().into_inner();
            assert!(response.alarms.is_empty());
            assert!(
                response.header.is_none(),
                "etcd's AlarmResponse has no header"
            );
        }
    });
}
