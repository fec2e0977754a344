//! etcd's alarms (`etcdserver/api/v3alarm` and the `Alarm` apply): the active alarms, persisted in
//! the `alarm` tree, and what an active NOSPACE alarm refuses.
//!
//! An alarm is stored as etcd stores it: the key is the protobuf encoding of its `AlarmMember`
//! (member id, type), the value empty, so the tree is the set of active alarms and survives
//! restart with the B+tree. Raising one that is active changes nothing; clearing one that is not
//! active answers no alarm. While NOSPACE is active, Put, a Txn with a top-level put and
//! LeaseGrant fail with `NoSpace` (etcd's `applierV3Capped`); reads, deletes, compaction and
//! alarms still work. This module must never decide when to raise NOSPACE (the API layer does,
//! from the quota) and never write anything but the alarm tree.

use super::WriteRequest;
use super::error::Error;
use super::quota::txn_cost;
use crate::errors::EtcdError;
use keelson_proto::etcdserverpb::alarm_request::AlarmAction;
use keelson_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};
use keelson_storage::btree;
use keelson_storage::mvcc::StoreWrite;
use keelson_storage::schema::TREE_ALARM;
use prost::Message;
use std::ops::Bound;

/// The whole tree, as range bounds.
const EVERY_KEY: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Unbounded, Bound::Unbounded);

fn fatal(e: btree::Error) -> Error {
    Error::from_store(e.into())
}

/// The active alarms of `alarm` type (every type for `None`), in key order, from the entries of
/// the alarm tree.
pub fn collect<'a>(
    entries: impl Iterator<Item = Result<btree::Entry<'a>, btree::Error>>,
    alarm: AlarmType,
) -> Result<Vec<AlarmMember>, btree::Error> {
    let mut out = Vec::new();
    for entry in entries {
        let (key, _) = entry?;
        // A key that does not decode was not written by Keelson or etcd; skip it rather than
        // fail every alarm request.
        let Ok(member) = AlarmMember::decode(key) else {
            continue;
        };
        if alarm == AlarmType::None || member.alarm == alarm as i32 {
            out.push(member);
        }
    }
    Ok(out)
}

/// The active alarms as a read view sees them.
pub fn active(txn: &btree::ReadTxn, alarm: AlarmType) -> Result<Vec<AlarmMember>, btree::Error> {
    collect(txn.range(TREE_ALARM, EVERY_KEY)?, alarm)
}

fn active_in(write: &mut StoreWrite<'_>, alarm: AlarmType) -> Result<Vec<AlarmMember>, Error> {
    let txn = write.txn();
    let entries = txn.range(TREE_ALARM, EVERY_KEY).map_err(fatal)?;
    collect(entries, alarm).map_err(fatal)
}

/// etcd's `AlarmMember.String()`, as Status `errors` and `etcdctl alarm list` show it (the
/// trailing space is Go's compact text format).
pub fn describe(member: &AlarmMember) -> String {
    let name = AlarmType::try_from(member.alarm)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| member.alarm.to_string());
    format!("memberID:{} alarm:{name} ", member.member_id)
}

/// Whether an active NOSPACE alarm makes apply refuse `request` (etcd's `applierV3Capped`).
pub fn refused_when_capped(request: &WriteRequest) -> bool {
    match request {
        WriteRequest::Put(_) => true,
        WriteRequest::Txn(txn) => txn_cost(txn) > 0,
        WriteRequest::LeaseGrant(_) => true,
        _ => false,
    }
}

/// Fails with `NoSpace` if NOSPACE is active and `request` is one it refuses. Reads the alarm
/// tree only for such requests.
pub fn check_capped(write: &mut StoreWrite<'_>, request: &WriteRequest) -> Result<(), Error> {
    if refused_when_capped(request) && !active_in(write, AlarmType::Nospace)?.is_empty() {
        return Err(EtcdError::NoSpace.into());
    }
    Ok(())
}

/// Applies an Alarm request (etcd's `applierV3backend.Alarm`): GET lists, ACTIVATE raises (and
/// answers the alarm, new or already active), DEACTIVATE clears (and answers the alarm if it was
/// active). The response has no header, as in etcd. Makes no revision.
pub fn apply_alarm(
    write: &mut StoreWrite<'_>,
    request: &AlarmRequest,
) -> Result<AlarmResponse, Error> {
    let alarm = AlarmType::try_from(request.alarm).unwrap_or(AlarmType::None);
    let member = AlarmMember {
        member_id: request.member_id,
        alarm: request.alarm,
    };
    let key = member.encode_to_vec();
    let alarms = match AlarmAction::try_from(request.action) {
        Ok(AlarmAction::Get) => active_in(write, alarm)?,
        Ok(AlarmAction::Activate) => {
            let txn = write.txn();
            if txn.get(TREE_ALARM, &key).map_err(fatal)?.is_none() {
                txn.put(TREE_ALARM, &key, &[]).map_err(fatal)?;
                tracing::warn!(
                    alarm = alarm.as_str_name(),
                    from = %format_args!("{:x}", member.member_id),
                    "alarm raised"
                );
            }
            vec![member]
        }
        Ok(AlarmAction::Deactivate) => {
            if write.txn().delete(TREE_ALARM, &key).map_err(fatal)? {
                tracing::warn!(
                    alarm = alarm.as_str_name(),
                    from = %format_args!("{:x}", member.member_id),
                    "alarm disarmed"
                );
                vec![member]
            } else {
                Vec::new()
            }
        }
        // The API refuses unknown actions before proposing; etcd answers nothing for them.
        Err(_) => Vec::new(),
    };
    Ok(AlarmResponse {
        header: None,
        alarms,
    })
}

#[cfg(test)]
mod tests;
