//! Tests of the server's etcd semantics on a store over a memory device. Expected values follow
//! etcd 3.4's code; the ones marked "etcd 3.4.23:" were checked against the real etcd with
//! etcdctl or its JSON gateway.

mod lease;
mod model;
mod range;
mod txn;
mod validate;
mod write;

use super::apply::{Applied, LeaseLookup, apply};
use super::{Error, WriteRequest, WriteResponse};
use crate::errors::EtcdError;
use keelson_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse,
};
use keelson_storage::btree::Database;
use keelson_storage::io::MemoryDevice;
use keelson_storage::mvcc::Store;
use std::sync::Arc;

/// Leases that exist, for [`LeaseLookup`].
pub struct Leases(pub Vec<i64>);

impl LeaseLookup for Leases {
    fn exists(&self, id: i64) -> bool {
        self.0.contains(&id)
    }

    // These tests attach no keys and grant nothing: lease requests are tested in `lessor`.
    fn keys(&self, _id: i64) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn min_ttl(&self) -> i64 {
        1
    }
}

pub const NO_LEASES: Leases = Leases(Vec::new());

pub fn new_store() -> Store {
    let db = Database::open(Arc::new(MemoryDevice::new("server-test.db"))).unwrap();
    Store::open(db).unwrap()
}

/// Applies `request` in its own committed write transaction. A fatal error fails the test.
pub fn run(store: &Store, request: WriteRequest, leases: &Leases) -> Result<Applied, EtcdError> {
    let mut write = store.begin_write().unwrap();
    let result = apply(&mut write, &request, leases);
    let result = match result {
        Ok(applied) => Ok(applied),
        Err(Error::Etcd(error)) => Err(error),
        Err(Error::Fatal(error)) => panic!("fatal: {error}"),
    };
    write.commit_deferred().unwrap();
    result
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

pub fn del_req(key: &str, range_end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..DeleteRangeRequest::default()
    }
}

pub fn get_req(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..RangeRequest::default()
    }
}

/// Puts and returns the header revision.
pub fn put(store: &Store, key: &str, value: &str) -> i64 {
    let applied = run(store, WriteRequest::Put(put_req(key, value)), &NO_LEASES).unwrap();
    revision(&applied.response)
}

pub fn compact(store: &Store, revision: i64) -> Result<Applied, EtcdError> {
    run(
        store,
        WriteRequest::Compaction(CompactionRequest {
            revision,
            physical: false,
        }),
        &NO_LEASES,
    )
}

/// Compacts and runs the physical part to the end, as the node does.
pub fn compact_fully(store: &Store, revision: i64) {
    let applied = compact(store, revision).unwrap();
    assert_eq!(applied.compaction, Some(revision));
    let mut job = store.compaction_job(revision);
    loop {
        let mut write = store.begin_write().unwrap();
        let done = write.compaction_step(&mut job).unwrap();
        write.commit_deferred().unwrap();
        if done {
            break;
        }
    }
}

pub fn get(store: &Store, request: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    let view = store.view();
    super::range::range(store, &view, request).map_err(|error| match error {
        Error::Etcd(error) => error,
        Error::Fatal(error) => panic!("fatal: {error}"),
    })
}

/// The keys of a range response, as strings.
pub fn keys(response: &RangeResponse) -> Vec<String> {
    response
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

pub fn revision(response: &WriteResponse) -> i64 {
    let header = match response {
        WriteResponse::Put(r) => &r.header,
        WriteResponse::DeleteRange(r) => &r.header,
        WriteResponse::Txn(r) => &r.header,
        WriteResponse::Compaction(r) => &r.header,
        WriteResponse::LeaseGrant(r) => &r.header,
        WriteResponse::LeaseRevoke(r) => &r.header,
        WriteResponse::LeaseCheckpoint(r) => &r.header,
        WriteResponse::Alarm(_) => panic!("an alarm response has no revision"),
    };
    header
        .as_ref()
        .expect("every response has a header")
        .revision
}

/// One key as [`dump`] shows it: key, value, mod revision, lease.
pub type Record = (Vec<u8>, Vec<u8>, i64, i64);

/// Every key and value at the newest revision, for "nothing changed" checks.
pub fn dump(store: &Store) -> (i64, Vec<Record>) {
    let all = get(store, &get_req("\0", "\0")).unwrap();
    let rev = all.header.unwrap().revision;
    (
        rev,
        all.kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision, kv.lease))
            .collect(),
    )
}
