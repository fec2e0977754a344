//! The space quota check before proposing (etcd's `quotaKVServer`, `quotaLeaseServer`,
//! `quotaAlarmer`): a Put, a Txn
//! or a LeaseGrant that would take the B+tree file to the quota raises the NOSPACE alarm through
//! the log and fails with `NoSpace`.
//!
//! Owns only the check; the cost estimate is `server::quota`, and refusing writes while the alarm
//! is active is apply's job (`server::alarm`), so a request that passed here before the alarm was
//! raised is still refused. It must never write anything but the alarm proposal.

use keelson_proto::etcdserverpb::alarm_request::AlarmAction;
use keelson_proto::etcdserverpb::{AlarmRequest, AlarmType};

use crate::errors::EtcdError;
use crate::node::NodeHandle;
use crate::server::WriteRequest;
use crate::server::quota::{available, put_cost, txn_cost};

/// The quota of one server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Quota {
    node: NodeHandle,
    /// `None`: no quota (a negative `--quota-backend-bytes`).
    limit: Option<u64>,
}

impl Quota {
    pub fn new(node: NodeHandle, limit: Option<u64>) -> Quota {
        Quota { node, limit }
    }

    /// Checks a write about to be proposed; requests without a cost pass untouched.
    pub async fn check_write(&self, request: &WriteRequest) -> Result<(), EtcdError> {
        let cost = match request {
            WriteRequest::Put(put) => put_cost(put),
            WriteRequest::Txn(txn) => txn_cost(txn),
            _ => return Ok(()),
        };
        self.check(cost).await
    }

    /// Checks a request of `cost` bytes (a LeaseGrant: `server::quota::lease_grant_cost`).
    pub async fn check(&self, cost: u64) -> Result<(), EtcdError> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        // The file size as etcd takes it (`backend.Size()`).
        let size = self.node.db_size();
        if available(size, cost, limit) {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.node.header_ids().1,
            alarm: AlarmType::Nospace as i32,
        };
        // As etcd: the request fails with NoSpace whether or not raising the alarm worked.
        if let Err(e) = self.node.propose(WriteRequest::Alarm(raise)).await {
            tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
        }
        Err(EtcdError::NoSpace)
    }
}
