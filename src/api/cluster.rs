//! The Cluster service: MemberList reports the node's members; membership changes answer
//! UNIMPLEMENTED until Keelson supports them.
//!
//! This module must never report a member the node does not know, nor accept a membership
//! change it cannot carry out.

use keelson_proto::etcdserverpb::cluster_server::Cluster;
use keelson_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::api::header::fill_header;
use crate::node::NodeHandle;

/// The header revision of cluster responses (etcd leaves it unset).
const NO_REVISION: i64 = 0;

pub struct ClusterService {
    node: NodeHandle,
}

impl ClusterService {
    pub fn new(node: NodeHandle) -> ClusterService {
        ClusterService { node }
    }
}

fn not_implemented(call: &str) -> Status {
    Status::unimplemented(format!("keelson: Cluster.{call} is not implemented yet"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self
            .node
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: m.is_learner,
            })
            .collect();
        let mut response = MemberListResponse {
            header: None,
            members,
        };
        // etcd 3.4's cluster service header carries ids and term but no revision.
        fill_header(&self.node, &mut response.header, NO_REVISION);
        Ok(Response::new(response))
    }

    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_implemented("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_implemented("MemberRemove"))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_implemented("MemberUpdate"))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_implemented("MemberPromote"))
    }
}
