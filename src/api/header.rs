//! Response headers of the API answered outside the log (Range, Status, MemberList, Alarm).
//!
//! Writes get their header from the node, which knows the revision it applied them at; this
//! module must never overwrite such a revision.

use keelson_proto::etcdserverpb::ResponseHeader;

use crate::node::NodeHandle;

/// Sets the cluster id, member id and raft term of `header` from the node, creating the header
/// if the response has none; a revision already set is kept, otherwise `revision` is used.
pub fn fill_header(node: &NodeHandle, header: &mut Option<ResponseHeader>, revision: i64) {
    let (cluster_id, member_id, raft_term) = node.header_ids();
    let header = header.get_or_insert_with(ResponseHeader::default);
    header.cluster_id = cluster_id;
    header.member_id = member_id;
    header.raft_term = raft_term;
    if header.revision == 0 {
        header.revision = revision;
    }
}
