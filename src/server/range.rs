//! etcd's server-level Range (`applierV3backend.Range` in etcd 3.4): over a store view for reads
//! on the gRPC threads, or inside the apply loop's `StoreWrite` for the reads of a txn.
//!
//! Owns what etcd does above the mvcc range: the limit + 1 fetch for `more`, fetching everything
//! when sorting or filtering, the mod/create revision filters, sorting, truncation, keys_only. It
//! must never write, and never hold a view or the index lock longer than one request.

use super::error::Error;
use crate::errors::EtcdError;
use keelson_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keelson_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use keelson_proto::mvccpb;
use keelson_storage::mvcc::kv::KeyValueRef;
use keelson_storage::mvcc::{KeyRange, RangeOptions, Store, StoreWrite, View, store};

/// Range over `view` (etcd's Range for serializable and, after a read-index barrier,
/// linearizable reads). `request` must have passed [`validate_range`]; it is checked again here.
///
/// If a compaction reached the index after `view` was taken, a request for the latest revision
/// is retried on a new view (still at least as new as the one asked about); a request for a
/// fixed revision then necessarily asked for a revision below the compaction, so it gets
/// `Compacted`.
pub fn range(store: &Store, view: &View, request: &RangeRequest) -> Result<RangeResponse, Error> {
    crate::metrics::count_range();
    validate_range(request)?;
    let plan = Plan::new(request);
    match store.range(view, plan.key_range(request), plan.options) {
        Ok(result) => Ok(plan.finish(request, result.kvs, result.count, result.rev)),
        Err(store::Error::StaleView) if request.revision <= 0 => loop {
            let view = store.view();
            match store.range(&view, plan.key_range(request), plan.options) {
                Ok(result) => {
                    return Ok(plan.finish(request, result.kvs, result.count, result.rev));
                }
                Err(store::Error::StaleView) => continue,
                Err(error) => return Err(Error::from_store(error)),
            }
        },
        Err(store::Error::StaleView) => Err(Error::Etcd(EtcdError::Compacted)),
        Err(error) => Err(Error::from_store(error)),
    }
}

/// Range inside the write transaction, seeing the open request's own writes (a txn's reads).
/// The header revision is the txn's revision so far: the store's revision, plus one once the txn
/// has changed something, as etcd's `storeTxnWrite.Range` reports it.
pub fn range_in_write(
    write: &StoreWrite<'_>,
    request: &RangeRequest,
) -> Result<RangeResponse, Error> {
    crate::metrics::count_range();
    let plan = Plan::new(request);
    let result = write
        .range(plan.key_range(request), plan.options)
        .map_err(Error::from_store)?;
    Ok(plan.finish(request, result.kvs, result.count, result.rev))
}

/// etcd's checks on a RangeRequest before it is served or proposed (v3rpc `checkRangeRequest`,
/// with the sort option checks etcd 3.5 added; see [`EtcdError::InvalidSortOption`]).
pub fn validate_range(request: &RangeRequest) -> Result<(), EtcdError> {
    if request.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if SortOrder::try_from(request.sort_order).is_err()
        || SortTarget::try_from(request.sort_target).is_err()
    {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

/// How one request reads from the mvcc layer.
struct Plan {
    options: RangeOptions,
    /// The sort order after etcd's defaulting (a non-key target sorts ascending by default).
    order: SortOrder,
    target: SortTarget,
}

impl Plan {
    fn new(request: &RangeRequest) -> Plan {
        let order = SortOrder::try_from(request.sort_order).unwrap_or(SortOrder::None);
        let target = SortTarget::try_from(request.sort_target).unwrap_or(SortTarget::Key);
        let filters = request.min_mod_revision != 0
            || request.max_mod_revision != 0
            || request.min_create_revision != 0
            || request.max_create_revision != 0;
        // etcd fetches everything only for an explicit sort order or a filter. A non-key target
        // with order NONE still sorts (ascending, below) but only the first `limit + 1` keys by
        // key order: etcd 3.4's behaviour, kept on purpose.
        let limit = if request.sort_order != SortOrder::None as i32 || filters || request.limit <= 0
        {
            0
        } else {
            // One more than asked, so `more` can be told.
            usize::try_from(request.limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
        };
        let order = if target != SortTarget::Key && order == SortOrder::None {
            SortOrder::Ascend
        } else {
            order
        };
        Plan {
            options: RangeOptions {
                limit,
                rev: request.revision,
                count_only: request.count_only,
            },
            order,
            target,
        }
    }

    fn key_range<'r>(&self, request: &'r RangeRequest) -> KeyRange<'r> {
        KeyRange::from_request(&request.key, &request.range_end)
    }

    /// Filters, sorts, truncates and converts what the mvcc range returned. `count` stays the
    /// mvcc count (every key in range at the revision), as in etcd: filters only drop kvs.
    fn finish(
        &self,
        request: &RangeRequest,
        kvs: Vec<KeyValueRef<'_>>,
        count: usize,
        rev: i64,
    ) -> RangeResponse {
        let mut kvs: Vec<KeyValueRef<'_>> = kvs
            .into_iter()
            .filter(|kv| {
                (request.max_mod_revision == 0 || kv.mod_revision <= request.max_mod_revision)
                    && (request.min_mod_revision == 0
                        || kv.mod_revision >= request.min_mod_revision)
                    && (request.max_create_revision == 0
                        || kv.create_revision <= request.max_create_revision)
                    && (request.min_create_revision == 0
                        || kv.create_revision >= request.min_create_revision)
            })
            .collect();
        sort(&mut kvs, self.order, self.target);
        let mut more = false;
        if let Ok(limit) = usize::try_from(request.limit)
            && limit > 0
            && kvs.len() > limit
        {
            kvs.truncate(limit);
            more = true;
        }
        RangeResponse {
            header: Some(ResponseHeader {
                revision: rev,
                ..ResponseHeader::default()
            }),
            kvs: kvs
                .iter()
                .map(|kv| to_proto(kv, request.keys_only))
                .collect(),
            more,
            count: i64::try_from(count).unwrap_or(i64::MAX),
        }
    }
}

/// Sorts like etcd. etcd's `sort.Sort` is not stable in general, but for the small slices it
/// sorts with insertion sort, which is; a stable sort here gives etcd's order for equal elements
/// there (key order, also for DESCEND, which etcd gets from `sort.Reverse`) and a defined order
/// everywhere.
fn sort(kvs: &mut [KeyValueRef<'_>], order: SortOrder, target: SortTarget) {
    let key = |kv: &KeyValueRef<'_>, other: &KeyValueRef<'_>| match target {
        SortTarget::Key => kv.key.cmp(other.key),
        SortTarget::Version => kv.version.cmp(&other.version),
        SortTarget::Create => kv.create_revision.cmp(&other.create_revision),
        SortTarget::Mod => kv.mod_revision.cmp(&other.mod_revision),
        SortTarget::Value => kv.value.cmp(other.value),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(key),
        SortOrder::Descend => kvs.sort_by(|a, b| key(b, a)),
    }
}

/// The wire form of a stored record; `keys_only` drops the value after sorting, as etcd does.
pub fn to_proto(kv: &KeyValueRef<'_>, keys_only: bool) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: if keys_only {
            Vec::new()
        } else {
            kv.value.to_vec()
        },
        lease: kv.lease,
    }
}
