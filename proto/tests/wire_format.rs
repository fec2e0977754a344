//! Byte-level checks that the generated messages encode exactly as etcd's do.
//!
//! Each expected buffer is written out by hand from etcd's field numbers and
//! wire types (tag byte = field_number << 3 | wire_type, with wire type 0 for
//! varints and 2 for length-delimited values), so a renumbered field, a
//! changed type or a lost oneof shows up as a byte mismatch. Every check runs
//! in both directions: our encoding must equal the bytes an etcd peer sends,
//! and those bytes must decode back to the same message.
//!
//! The high and late-added field numbers get the most attention, since they
//! are the easiest to get wrong when transcribing a .proto.

use keelson_proto::authpb::{Permission, UserAddOptions, permission};
use keelson_proto::etcdserverpb::{
    AlarmRequest, AlarmType, AuthRoleGrantPermissionRequest, AuthUserAddRequest, Compare,
    LeaseGrantRequest, LeaseGrantResponse, LeaseTimeToLiveResponse, Member, MemberListRequest,
    PutRequest, RangeRequest, RequestOp, ResponseHeader, StatusResponse, TxnRequest,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
    alarm_request, compare, range_request, request_op, watch_create_request, watch_request,
};
use keelson_proto::mvccpb::{Event, KeyValue, event};
use prost::Message;

/// Asserts `msg` encodes to `wire` and that `wire` decodes to `msg`.
fn assert_wire<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, wire: &[u8]) {
    assert_eq!(msg.encode_to_vec(), wire, "encoding of {msg:?}");
    assert_eq!(&M::decode(wire).expect("decode"), msg, "decoding");
}

#[test]
fn range_request_all_fields() {
    let msg = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        limit: 5,
        revision: 7,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 1, b'a', // 1: key
        0x12, 1, b'b', // 2: range_end
        0x18, 5,       // 3: limit
        0x20, 7,       // 4: revision
        0x28, 2,       // 5: sort_order = DESCEND
        0x30, 3,       // 6: sort_target = MOD
        0x38, 1,       // 7: serializable
        0x40, 1,       // 8: keys_only
        0x48, 1,       // 9: count_only
        0x50, 1,       // 10: min_mod_revision
        0x58, 2,       // 11: max_mod_revision
        0x60, 3,       // 12: min_create_revision
        0x68, 4,       // 13: max_create_revision
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn negative_int64_is_a_ten_byte_varint() {
    // int64, not sint64: clients send revision -1 as a sign-extended varint,
    // and a zigzag-encoded field would misread it.
    let msg = RangeRequest {
        revision: -1,
        ..Default::default()
    };
    let wire = [
        0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn put_request_all_fields() {
    let msg = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 0x1234,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 1, b'k',    // 1: key
        0x12, 1, b'v',    // 2: value
        0x18, 0xb4, 0x24, // 3: lease = 0x1234
        0x20, 1,          // 4: prev_kv
        0x28, 1,          // 5: ignore_value
        0x30, 1,          // 6: ignore_lease
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn txn_request_with_lease_compare_range_end_and_nested_txn() {
    let msg = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Lease as i32,
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            target_union: Some(compare::TargetUnion::Lease(9)),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest::default())),
        }],
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 13,             // 1: compare
          0x08, 3,            //   1: result = NOT_EQUAL
          0x10, 4,            //   2: target = LEASE
          0x1a, 1, b'k',      //   3: key
          0x40, 9,            //   8: lease (oneof target_union)
          0x82, 0x04, 1, b'z', //  64: range_end, two-byte tag (64 << 3 | 2 = 514)
        0x12, 5,              // 2: success
          0x12, 3,            //   2: request_put
            0x0a, 1, b'k',    //     1: key
        0x1a, 2,              // 3: failure
          0x22, 0,            //   4: request_txn, empty but present
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn compare_oneof_keeps_an_empty_value() {
    // `value == ""` is a meaningful guard; the oneof must carry presence so
    // the empty value is still sent rather than dropped as a default.
    let msg = Compare {
        target: compare::CompareTarget::Value as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::Value(Vec::new())),
        ..Default::default()
    };
    #[rustfmt::skip]
    let wire = [
        0x10, 3,        // 2: target = VALUE
        0x1a, 1, b'k',  // 3: key
        0x3a, 0,        // 7: value (oneof), empty
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn watch_create_request_all_fields() {
    let msg = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
                start_revision: 10,
                progress_notify: true,
                filters: vec![
                    watch_create_request::FilterType::Noput as i32,
                    watch_create_request::FilterType::Nodelete as i32,
                ],
                prev_kv: true,
                watch_id: 3,
                fragment: true,
            },
        )),
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 20,         // 1: create_request
          0x0a, 1, b'a',  //   1: key
          0x12, 1, b'b',  //   2: range_end
          0x18, 10,       //   3: start_revision
          0x20, 1,        //   4: progress_notify
          0x2a, 2, 0, 1,  //   5: filters, packed as proto3 repeated scalars are
          0x30, 1,        //   6: prev_kv
          0x38, 3,        //   7: watch_id
          0x40, 1,        //   8: fragment
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn watch_filters_also_decode_unpacked() {
    // Decoders must accept both layouts of a repeated enum; some encoders
    // still emit one tag per element.
    let wire = [0x28, 0, 0x28, 1];
    let msg = WatchCreateRequest::decode(&wire[..]).expect("decode");
    assert_eq!(msg.filters, vec![0, 1]);
}

#[test]
fn watch_cancel_and_progress_requests() {
    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: 5 },
        )),
    };
    assert_wire(&cancel, &[0x12, 2, 0x08, 5]);

    let progress = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    };
    assert_wire(&progress, &[0x1a, 0]);
}

#[test]
fn watch_response_events_are_field_11() {
    let msg = WatchResponse {
        header: Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        }),
        watch_id: 1,
        created: true,
        canceled: true,
        compact_revision: 2,
        cancel_reason: "x".to_owned(),
        fragment: true,
        events: vec![Event {
            r#type: event::EventType::Delete as i32,
            kv: Some(KeyValue {
                key: b"a".to_vec(),
                mod_revision: 5,
                ..Default::default()
            }),
            prev_kv: None,
        }],
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 8,                            // 1: header
          0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4, //   cluster_id, member_id, revision, raft_term
        0x10, 1,                            // 2: watch_id
        0x18, 1,                            // 3: created
        0x20, 1,                            // 4: canceled
        0x28, 2,                            // 5: compact_revision
        0x32, 1, b'x',                      // 6: cancel_reason
        0x38, 1,                            // 7: fragment
        0x5a, 9,                            // 11: events
          0x08, 1,                          //   1: type = DELETE
          0x12, 5,                          //   2: kv
            0x0a, 1, b'a',                  //     1: key
            0x18, 5,                        //     3: mod_revision
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn key_value_all_fields() {
    let msg = KeyValue {
        key: b"k".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 4,
        value: b"v".to_vec(),
        lease: 6,
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 1, b'k', // 1: key
        0x10, 2,       // 2: create_revision
        0x18, 3,       // 3: mod_revision
        0x20, 4,       // 4: version
        0x2a, 1, b'v', // 5: value
        0x30, 6,       // 6: lease
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn lease_grant_request_and_response() {
    // The proto names are upper-case (TTL, ID); only the Rust names change.
    let req = LeaseGrantRequest { ttl: 60, id: 0x10 };
    assert_wire(&req, &[0x08, 60, 0x10, 0x10]);

    let resp = LeaseGrantResponse {
        header: None,
        id: 0x10,
        ttl: 60,
        error: "e".to_owned(),
    };
    assert_wire(&resp, &[0x10, 0x10, 0x18, 60, 0x22, 1, b'e']);
}

#[test]
fn lease_time_to_live_response_granted_ttl_and_keys() {
    let msg = LeaseTimeToLiveResponse {
        header: None,
        id: 1,
        ttl: 2,
        granted_ttl: 3,
        keys: vec![b"a".to_vec(), b"b".to_vec()],
    };
    #[rustfmt::skip]
    let wire = [
        0x10, 1,          // 2: ID
        0x18, 2,          // 3: TTL
        0x20, 3,          // 4: grantedTTL
        0x2a, 1, b'a',    // 5: keys, one tag per element (bytes never pack)
        0x2a, 1, b'b',
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn member_and_member_list_request() {
    let msg = Member {
        id: 1,
        name: "n".to_owned(),
        peer_ur_ls: vec!["p".to_owned()],
        client_ur_ls: vec!["c".to_owned()],
        is_learner: true,
    };
    #[rustfmt::skip]
    let wire = [
        0x08, 1,       // 1: ID
        0x12, 1, b'n', // 2: name
        0x1a, 1, b'p', // 3: peerURLs
        0x22, 1, b'c', // 4: clientURLs
        0x28, 1,       // 5: isLearner
    ];
    assert_wire(&msg, &wire);

    // v3.5 addition carried on top of 3.4.23.
    assert_wire(&MemberListRequest { linearizable: true }, &[0x08, 1]);
}

#[test]
fn status_response_late_fields() {
    let msg = StatusResponse {
        errors: vec!["e".to_owned()],
        db_size_in_use: 9,
        is_learner: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let wire = [
        0x42, 1, b'e', // 8: errors
        0x48, 9,       // 9: dbSizeInUse
        0x50, 1,       // 10: isLearner
    ];
    assert_wire(&msg, &wire);
}

#[test]
fn alarm_request_enums() {
    let msg = AlarmRequest {
        action: alarm_request::AlarmAction::Deactivate as i32,
        member_id: 7,
        alarm: AlarmType::Nospace as i32,
    };
    assert_wire(&msg, &[0x08, 2, 0x10, 7, 0x18, 1]);
}

#[test]
fn auth_messages() {
    let add = AuthUserAddRequest {
        name: "u".to_owned(),
        password: "p".to_owned(),
        options: Some(UserAddOptions { no_password: true }),
        hashed_password: "h".to_owned(),
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 1, b'u',   // 1: name
        0x12, 1, b'p',   // 2: password
        0x1a, 2,         // 3: options
          0x08, 1,       //   1: no_password
        0x22, 1, b'h',   // 4: hashedPassword (v3.5 addition)
    ];
    assert_wire(&add, &wire);

    let grant = AuthRoleGrantPermissionRequest {
        name: "r".to_owned(),
        perm: Some(Permission {
            perm_type: permission::Type::Readwrite as i32,
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        }),
    };
    #[rustfmt::skip]
    let wire = [
        0x0a, 1, b'r',     // 1: name
        0x12, 8,           // 2: perm
          0x08, 2,         //   1: permType = READWRITE
          0x12, 1, b'a',   //   2: key
          0x1a, 1, b'b',   //   3: range_end
    ];
    assert_wire(&grant, &wire);
}

#[test]
fn enum_values_match_etcd() {
    use compare::{CompareResult, CompareTarget};
    use range_request::{SortOrder, SortTarget};

    let values = [
        (SortOrder::None as i32, 0),
        (SortOrder::Ascend as i32, 1),
        (SortOrder::Descend as i32, 2),
        (SortTarget::Key as i32, 0),
        (SortTarget::Version as i32, 1),
        (SortTarget::Create as i32, 2),
        (SortTarget::Mod as i32, 3),
        (SortTarget::Value as i32, 4),
        (CompareResult::Equal as i32, 0),
        (CompareResult::Greater as i32, 1),
        (CompareResult::Less as i32, 2),
        (CompareResult::NotEqual as i32, 3),
        (CompareTarget::Version as i32, 0),
        (CompareTarget::Create as i32, 1),
        (CompareTarget::Mod as i32, 2),
        (CompareTarget::Value as i32, 3),
        (CompareTarget::Lease as i32, 4),
        (event::EventType::Put as i32, 0),
        (event::EventType::Delete as i32, 1),
        (AlarmType::None as i32, 0),
        (AlarmType::Nospace as i32, 1),
        (AlarmType::Corrupt as i32, 2),
        (alarm_request::AlarmAction::Get as i32, 0),
        (alarm_request::AlarmAction::Activate as i32, 1),
        (alarm_request::AlarmAction::Deactivate as i32, 2),
        (watch_create_request::FilterType::Noput as i32, 0),
        (watch_create_request::FilterType::Nodelete as i32, 1),
        (permission::Type::Read as i32, 0),
        (permission::Type::Write as i32, 1),
        (permission::Type::Readwrite as i32, 2),
    ];
    for (i, (got, want)) in values.into_iter().enumerate() {
        assert_eq!(got, want, "entry {i}");
    }
}
