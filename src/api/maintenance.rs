//! The Maintenance service: Status and Alarm (read) answer from the node's state; the calls
//! Keelson does not have yet answer UNIMPLEMENTED with the call's name.
//!
//! This module must never report success for work it did not do (a Defragment, a Hash, an alarm
//! it cannot raise).

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
use crate::node::NodeHandle;

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
        // No alarm is ever raised yet (no quota enforcement, no corruption check), so the list is
        // truthfully empty and deactivating one changes nothing, as in etcd for an absent alarm.
        // Raising one would be a promise Keelson cannot keep.
        let mut response = AlarmResponse::default();
        match AlarmAction::try_from(request.into_inner().action) {
            Ok(AlarmAction::Get) | Ok(AlarmAction::Deactivate) => {}
            Ok(AlarmAction::Activate) | Err(_) => return Err(not_implemented("Alarm(ACTIVATE)")),
        }
        fill_header(&self.node, &mut response.header, self.current_rev());
        Ok(Response::new(response))
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
            errors: Vec::new(),
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

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(not_implemented("HashKV"))
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
