//! A seeded random workload of puts, deletes and txns checked against a plain model of etcd's
//! key space after every request, and at every past revision at the end: revision accounting,
//! versions and create revisions across delete and re-create, reads at old revisions.

use super::*;
use keelson_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keelson_proto::etcdserverpb::{Compare, RequestOp, TxnRequest, request_op};
use std::collections::BTreeMap;

const SEED: u64 = 0x5eed_1234_abcd_0001;
const REQUESTS: usize = 300;
const KEYS: u64 = 8;

/// value, create revision, mod revision, version
type ModelKv = (Vec<u8>, i64, i64, i64);
type Model = BTreeMap<Vec<u8>, ModelKv>;

/// xorshift64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn key(&mut self) -> String {
        format!("k{}", self.below(KEYS))
    }
}

fn model_put(model: &mut Model, key: &str, value: &str, rev: i64) {
    let entry = model.get(key.as_bytes()).cloned();
    let (create, version) = entry.map_or((rev, 1), |(_, create, _, version)| (create, version + 1));
    model.insert(key.into(), (value.into(), create, rev, version));
}

fn model_delete(model: &mut Model, start: &str, end: &str) -> usize {
    let doomed: Vec<Vec<u8>> = model
        .keys()
        .filter(|key| key.as_slice() >= start.as_bytes() && key.as_slice() < end.as_bytes())
        .cloned()
        .collect();
    for key in &doomed {
        model.remove(key);
    }
    doomed.len()
}

fn state_at(store: &Store, revision: i64) -> Model {
    let all = get(
        store,
        &RangeRequest {
            revision,
            ..get_req("\0", "\0")
        },
    )
    .unwrap();
    all.kvs
        .into_iter()
        .map(|kv| {
            (
                kv.key,
                (kv.value, kv.create_revision, kv.mod_revision, kv.version),
            )
        })
        .collect()
}

#[test]
fn random_workload_matches_the_model() {
    let store = new_store();
    let mut rng = Rng(SEED);
    let mut model = Model::new();
    // The model at every revision, index = revision.
    let mut history: Vec<Model> = vec![Model::new(), Model::new()];
    for i in 0..REQUESTS {
        let rev = store.current_rev();
        let next = rev + 1;
        let value = format!("v{i}");
        let (request, changed) = match rng.below(3) {
            0 => {
                let key = rng.key();
                model_put(&mut model, &key, &value, next);
                (WriteRequest::Put(put_req(&key, &value)), true)
            }
            1 => {
                let (a, b) = (rng.key(), rng.key());
                let (start, end) = if a <= b { (a, b) } else { (b, a) };
                let deleted = model_delete(&mut model, &start, &end);
                (
                    WriteRequest::DeleteRange(del_req(&start, &end)),
                    deleted > 0,
                )
            }
            _ => {
                // Compare a key's version with the model's, sometimes off by one; then put one
                // key and delete another (distinct keys, so checkIntervals allows it).
                let key = rng.key();
                let version = model.get(key.as_bytes()).map_or(0, |kv| kv.3);
                let expected = version + i64::try_from(rng.below(2)).unwrap();
                let succeeded = expected == version;
                let (put_key, del_key) = (rng.key(), rng.key());
                let mut changed = false;
                if put_key != del_key {
                    let ops = if succeeded {
                        model_put(&mut model, &put_key, &value, next);
                        changed = true;
                        vec![
                            RequestOp {
                                request: Some(request_op::Request::RequestPut(put_req(
                                    &put_key, &value,
                                ))),
                            },
                            RequestOp {
                                request: Some(request_op::Request::RequestDeleteRange(del_req(
                                    &del_key, "",
                                ))),
                            },
                        ]
                    } else {
                        vec![RequestOp {
                            request: Some(request_op::Request::RequestDeleteRange(del_req(
                                &del_key, "",
                            ))),
                        }]
                    };
                    changed |= model.remove(del_key.as_bytes()).is_some();
                    let request = TxnRequest {
                        compare: vec![Compare {
                            result: CompareResult::Equal as i32,
                            target: CompareTarget::Version as i32,
                            key: key.into(),
                            range_end: Vec::new(),
                            target_union: Some(TargetUnion::Version(expected)),
                        }],
                        success: if succeeded { ops.clone() } else { Vec::new() },
                        failure: if succeeded { Vec::new() } else { ops },
                    };
                    (WriteRequest::Txn(request), changed)
                } else {
                    (WriteRequest::Txn(TxnRequest::default()), false)
                }
            }
        };
        let applied = run(&store, request, &NO_LEASES).unwrap();
        let expected_rev = if changed { next } else { rev };
        assert_eq!(revision(&applied.response), expected_rev, "request {i}");
        assert_eq!(store.current_rev(), expected_rev, "request {i}");
        assert_eq!(applied.changes.is_empty(), !changed, "request {i}");
        assert_eq!(state_at(&store, 0), model, "request {i}");
        if changed {
            history.push(model.clone());
        }
    }
    for (revision, expected) in history.iter().enumerate().skip(1) {
        let revision = i64::try_from(revision).unwrap();
        assert_eq!(&state_at(&store, revision), expected, "revision {revision}");
    }
}
