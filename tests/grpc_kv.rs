//! The KV API end to end over gRPC with the tonic clients: Keelson started as a real process,
//! requests checked for their results, header revisions and exact error statuses, plus the
//! transport limits, the services not served yet and a graceful stop.
//!
//! This file must never need etcd: it pins etcd's behaviour as observed, so it runs everywhere.

mod common;

use common::{Kind, Server};
use keelson_proto::etcdserverpb::auth_client::AuthClient;
use keelson_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keelson_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keelson_proto::etcdserverpb::request_op::Request as Op;
use keelson_proto::etcdserverpb::response_op::Response as OpResponse;
use keelson_proto::etcdserverpb::{
    AuthUserListRequest, CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, StatusRequest, TxnRequest,
};
use tonic::Code;
use tonic::transport::Channel;

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn keys(kvs: &[keelson_proto::mvccpb::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

fn assert_status(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("expected an error status");
    assert_eq!((status.code(), status.message()), (code, message));
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn kv(server: &Server) -> KvClient<Channel> {
    KvClient::new(common::connect(&server.endpoint()).await.unwrap())
}

#[test]
fn kv_requests_end_to_end() {
    let server = Server::start(Kind::Keelson);
    block_on(async {
        let mut kv = kv(&server).await;
        let first = kv.put(put("a", "1")).await.unwrap().into_inner();
        let header = first.header.unwrap();
        assert!(header.cluster_id != 0 && header.member_id != 0 && header.raft_term > 0);
        let base = header.revision;
        for (i, key) in ["b", "c", "d"].iter().enumerate() {
            let r = kv.put(put(key, "x")).await.unwrap().into_inner();
            assert_eq!(r.header.unwrap().revision, base + 1 + i as i64);
        }
        // Overwrite with prev_kv.
        let r = kv
            .put(PutRequest {
                prev_kv: true,
                ..put("a", "2")
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.prev_kv.unwrap().value, b"1");
        let now = r.header.unwrap().revision;
        assert_eq!(now, base + 4);

        // Plain get, serializable get, and a past revision.
        let r = kv.range(get("a")).await.unwrap().into_inner();
        assert_eq!((r.count, r.kvs[0].value.as_slice()), (1, &b"2"[..]));
        assert_eq!(r.kvs[0].version, 2);
        assert_eq!(r.header.unwrap().revision, now);
        let r = kv
            .range(RangeRequest {
                serializable: true,
                revision: base,
                ..get("a")
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.kvs[0].value, b"1");

        // Ranges: [a, d), limit with more, sort, keys_only, count_only.
        let all = RangeRequest {
            range_end: b"d".to_vec(),
            ..get("a")
        };
        let r = kv.range(all.clone()).await.unwrap().into_inner();
        assert_eq!(keys(&r.kvs), ["a", "b", "c"]);
        let r = kv
            .range(RangeRequest {
                limit: 2,
                ..all.clone()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((keys(&r.kvs).len(), r.more, r.count), (2, true, 3));
        let r = kv
            .range(RangeRequest {
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Mod as i32,
                keys_only: true,
                ..all.clone()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(keys(&r.kvs), ["a", "c", "b"]);
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
        let r = kv
            .range(RangeRequest {
                count_only: true,
                ..all.clone()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.count, r.kvs.len()), (3, 0));

        // Delete with prev_kv.
        let r = kv
            .delete_range(DeleteRangeRequest {
                key: b"b".to_vec(),
                range_end: b"d".to_vec(),
                prev_kv: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (r.deleted, keys(&r.prev_kvs)),
            (2, vec!["b".into(), "c".into()])
        );
        assert_eq!(r.header.unwrap().revision, now + 1);

        // Txn: the compare holds, so success runs, at one revision.
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: b"a".to_vec(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::Value(b"2".to_vec())),
            }],
            success: vec![
                RequestOp {
                    request: Some(Op::RequestPut(put("e", "txn"))),
                },
                RequestOp {
                    request: Some(Op::RequestRange(get("e"))),
                },
            ],
            failure: vec![RequestOp {
                request: Some(Op::RequestPut(put("f", "txn"))),
            }],
        };
        let r = kv.txn(txn.clone()).await.unwrap().into_inner();
        assert!(r.succeeded);
        assert_eq!(r.header.unwrap().revision, now + 2);
        match &r.responses[1].response {
            Some(OpResponse::ResponseRange(range)) => assert_eq!(range.kvs[0].value, b"txn"),
            other => panic!("unexpected {other:?}"),
        }
        // The same txn again: "a" still equals "2", but now fail on a version compare.
        let failing = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Version as i32,
                key: b"e".to_vec(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::Version(5)),
            }],
            ..txn
        };
        let r = kv.txn(failing).await.unwrap().into_inner();
        assert!(!r.succeeded);
        assert_eq!(kv.range(get("f")).await.unwrap().into_inner().count, 1);

        // Compaction, then reads below it and beyond the head.
        let head = kv
            .range(get("a"))
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        kv.compact(CompactionRequest {
            revision: base + 2,
            physical: true,
        })
        .await
        .unwrap();
        let compacted = "etcdserver: mvcc: required revision has been compacted";
        let future = "etcdserver: mvcc: required revision is a future revision";
        assert_status(
            kv.range(RangeRequest {
                revision: base,
                ..get("a")
            })
            .await,
            Code::OutOfRange,
            compacted,
        );
        assert_status(
            kv.compact(CompactionRequest {
                revision: base + 1,
                physical: false,
            })
            .await,
            Code::OutOfRange,
            compacted,
        );
        assert_status(
            kv.range(RangeRequest {
                revision: head + 10,
                ..get("a")
            })
            .await,
            Code::OutOfRange,
            future,
        );
        assert_status(
            kv.compact(CompactionRequest {
                revision: head + 10,
                physical: false,
            })
            .await,
            Code::OutOfRange,
            future,
        );
    });
}

#[test]
fn validation_errors_have_etcds_codes_and_messages() {
    let server = Server::start(Kind::Keelson);
    block_on(async {
        let mut kv = kv(&server).await;
        let no_key = "etcdserver: key is not provided";
        assert_status(kv.put(put("", "v")).await, Code::InvalidArgument, no_key);
        assert_status(kv.range(get("")).await, Code::InvalidArgument, no_key);
        assert_status(
            kv.put(PutRequest {
                ignore_value: true,
                ..put("missing", "")
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: key not found",
        );
        let twice = RequestOp {
            request: Some(Op::RequestPut(put("dup", "v"))),
        };
        assert_status(
            kv.txn(TxnRequest {
                compare: Vec::new(),
                success: vec![twice.clone(), twice.clone()],
                failure: Vec::new(),
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        );
        assert_status(
            kv.txn(TxnRequest {
                compare: Vec::new(),
                success: (0..129)
                    .map(|i| RequestOp {
                        request: Some(Op::RequestPut(put(&format!("k{i}"), "v"))),
                    })
                    .collect(),
                failure: Vec::new(),
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        // Nothing of the refused requests was applied.
        let r = kv
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.count, 0);
    });
}

/// Status reports the etcd API version, and the services not built yet answer UNIMPLEMENTED.
#[test]
fn status_and_unserved_services() {
    let server = Server::start(Kind::Keelson);
    block_on(async {
        let channel = common::connect(&server.endpoint()).await.unwrap();
        let status = MaintenanceClient::new(channel.clone())
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.version, "3.4.23");
        assert_eq!(status.leader, status.header.unwrap().member_id);
        assert!(status.raft_index > 0 && status.db_size > 0);
        let auth = AuthClient::new(channel)
            .user_list(AuthUserListRequest {})
            .await;
        assert_eq!(auth.unwrap_err().code(), Code::Unimplemented);
    });
}

/// `--max-request-bytes`: above it etcd's RequestTooLarge; above it plus the gRPC overhead,
/// grpc-go's transport message with both sizes.
#[test]
fn request_size_limits() {
    const LIMIT: usize = 1024;
    const OVERHEAD: usize = 512 * 1024;
    let server = Server::start_with(Kind::Keelson, &["--max-request-bytes=1024"]);
    block_on(async {
        let mut kv = kv(&server).await;
        kv.put(put("small", &"x".repeat(LIMIT / 2))).await.unwrap();
        assert_status(
            kv.put(put("big", &"x".repeat(2 * LIMIT))).await,
            Code::InvalidArgument,
            "etcdserver: request is too large",
        );
        let huge = put("huge", &"x".repeat(LIMIT + OVERHEAD));
        let size = prost::Message::encoded_len(&huge);
        assert_status(
            kv.put(huge).await,
            Code::ResourceExhausted,
            &format!(
                "grpc: received message larger than max ({size} vs. {})",
                LIMIT + OVERHEAD
            ),
        );
        // The connection still serves.
        assert_eq!(kv.range(get("small")).await.unwrap().into_inner().count, 1);
    });
}

/// SIGTERM stops serving and the node cleanly: exit status 0, and the data is there on restart.
#[test]
fn sigterm_stops_cleanly_and_data_survives() {
    let mut server = Server::start(Kind::Keelson);
    block_on(async {
        kv(&server).await.put(put("kept", "yes")).await.unwrap();
    });
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
    server.spawn();
    block_on(async {
        let r = kv(&server)
            .await
            .range(get("kept"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.kvs[0].value, b"yes");
    });
}
