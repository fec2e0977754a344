//! The Maintenance service: Status answers from the node's state, Alarm goes through the log (as
//! in etcd, listing too), HashKV hashes the key tree as etcd does (`storage::mvcc::hash`); the
//! calls Keelson does not have yet answer UNIMPLEMENTED with the call's name.
//!
//! This module must never report success for work it did not do (a Defragment, a Hash, an alarm
//! whose effect Keelson does not enforce: only NOSPACE can be raised).

use keelson_proto::etcdserverpb::AlarmType;
use keelson_proto::etcdserverpb::alarm_request::AlarmAction;
use keelson_proto::etcdserverpb::maintenance_server::Maintenance;
use keelson_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::codegen::tokio_stream;
use tonic::{Request, Response, Status};

use crate::api::header::fill_header;
use crate::api::status::{etcd_status, server_status};
use crate::errors::EtcdError;
use crate::node::NodeHandle;
use crate::server::{self, WriteRequest, WriteResponse, alarm};

/// The version Status reports: the etcd release whose API Keelson implements. Clients print it
/// (`etcdctl endpoint status`) and some gate features on it, so it names the etcd behaviour a
/// client gets rather than Keelson's own version (which `keelson --version` prints).
pub const ETCD_API_VERSION: &str = "3.4.23";

pub struct MaintenanceService {
    node: NodeHandle,
}

impl MaintenanceService {
    pub fn new(node: NodeHandle) -> MaintenanceService {
        MaintenanceService { node }
    }

    fn current_rev(&self) -> i64 {
        self.node.store().view().rev()
    }

    /// Status `errors` as etcd fills them: no leader, then every active alarm.
    fn errors(&self, leader: u64) -> Vec<String> {
        let mut errors = Vec::new();
        if leader == 0 {
            errors.push(EtcdError::NoLeader.message().to_string());
        }
        match alarm::active(self.node.store().view().txn(), AlarmType::None) {
            Ok(alarms) => errors.extend(alarms.iter().map(alarm::describe)),
            Err(e) => errors.push(format!("keelson: reading the alarms failed: {e}")),
        }
        errors
    }
}

/// etcd's HashKV of this member's store; also what peers compare in the corruption checks.
pub async fn hash_kv(node: &NodeHandle, request: HashKvRequest) -> Result<HashKvResponse, Status> {
    let revision = request.revision;
    let store = node.store();
    // A scan of the whole key tree: off the gRPC workers, which serve everyone else.
    let hashed = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let hashed = store.hash_kv(revision);
        crate::metrics::mvcc()
            .hash_rev_seconds
            .observe(started.elapsed().as_secs_f64());
        hashed
    })
    .await
    .map_err(|e| Status::internal(format!("keelson: computing HashKV: {e}")))?;
    let (hash, current, compact_revision) =
        hashed.map_err(|e| server_status(server::Error::from_store(e)))?;
    let mut response = HashKvResponse {
        header: None,
        hash,
        compact_revision,
    };
    fill_header(node, &mut response.header, current);
    Ok(response)
}

fn not_implemented(call: &str) -> Status {
    Status::unimplemented(format!(
        "keelson: Maintenance.{call} is not implemented yet"
    ))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = tokio_stream::Empty<Result<SnapshotResponse, Status>>;

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let request = request.into_inner();
        let Ok(action) = AlarmAction::try_from(request.action) else {
            return Err(not_implemented("Alarm(unknown action)"));
        };
        // etcd would also raise CORRUPT (refusing every KV request) or a NONE alarm (which does
        // nothing); Keelson enforces only NOSPACE, so raising another would be a false promise.
        if action == AlarmAction::Activate && request.alarm != AlarmType::Nospace as i32 {
            return Err(not_implemented(
                "Alarm(ACTIVATE) of an alarm other than NOSPACE",
            ));
        }
        match self.node.propose(WriteRequest::Alarm(request)).await {
            // No header: etcd's AlarmResponse has none.
            Ok(WriteResponse::Alarm(response)) => Ok(Response::new(response)),
            Ok(_) => Err(Status::internal(
                "keelson: the node answered an Alarm with another kind",
            )),
            Err(e) => Err(etcd_status(e)),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let status = self.node.status();
        let mut response = StatusResponse {
            header: None,
            version: ETCD_API_VERSION.to_owned(),
            db_size: i64::try_from(status.db_size).unwrap_or(i64::MAX),
            leader: status.leader,
            raft_index: status.raft_index,
            raft_term: status.raft_term,
            raft_applied_index: status.raft_applied_index,
            errors: self.errors(status.leader),
            db_size_in_use: i64::try_from(status.db_size_in_use).unwrap_or(i64::MAX),
            is_learner: false,
        };
        fill_header(&self.node, &mut response.header, self.current_rev());
        Ok(Response::new(response))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(not_implemented("Defragment"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(not_implemented("Hash"))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Ok(Response::new(
            hash_kv(&self.node, request.into_inner()).await?,
        ))
    }

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_implemented("Snapshot"))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(not_implemented("MoveLeader"))
    }
}
