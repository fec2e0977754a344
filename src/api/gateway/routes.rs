//! The routes etcd 3.4.23's gRPC gateway serves: one POST path per RPC under `/v3/`, and the same
//! paths under `/v3beta/` (etcd rewrites those to `/v3/`). `/v3alpha/` is not served: etcd 3.4
//! answers 404 there.
//!
//! Owns only the path table. Never decides what a call answers.

/// One RPC the gateway can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    Watch,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    LeaseTimeToLive,
    LeaseLeases,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Alarm,
    Status,
    Defragment,
    Hash,
    Snapshot,
    MoveLeader,
    Auth(&'static str),
    Lock,
    Unlock,
    Campaign,
    Proclaim,
    Leader,
    Observe,
    Resign,
}

/// Every gateway path after `/v3/` and its RPC. etcd 3.4 registers `maintenance/hash` for both
/// Hash and HashKV; its gateway answers Hash there (checked against etcd 3.4.23), so HashKV has
/// no JSON route.
const ROUTES: &[(&str, Rpc)] = &[
    ("kv/range", Rpc::Range),
    ("kv/put", Rpc::Put),
    ("kv/deleterange", Rpc::DeleteRange),
    ("kv/txn", Rpc::Txn),
    ("kv/compaction", Rpc::Compact),
    ("watch", Rpc::Watch),
    ("lease/grant", Rpc::LeaseGrant),
    ("lease/revoke", Rpc::LeaseRevoke),
    ("lease/keepalive", Rpc::LeaseKeepAlive),
    ("lease/timetolive", Rpc::LeaseTimeToLive),
    ("lease/leases", Rpc::LeaseLeases),
    ("cluster/member/add", Rpc::MemberAdd),
    ("cluster/member/remove", Rpc::MemberRemove),
    ("cluster/member/update", Rpc::MemberUpdate),
    ("cluster/member/list", Rpc::MemberList),
    ("cluster/member/promote", Rpc::MemberPromote),
    ("maintenance/alarm", Rpc::Alarm),
    ("maintenance/status", Rpc::Status),
    ("maintenance/defragment", Rpc::Defragment),
    ("maintenance/hash", Rpc::Hash),
    ("maintenance/snapshot", Rpc::Snapshot),
    ("maintenance/transfer-leadership", Rpc::MoveLeader),
    ("auth/enable", Rpc::Auth("AuthEnable")),
    ("auth/disable", Rpc::Auth("AuthDisable")),
    ("auth/authenticate", Rpc::Auth("Authenticate")),
    ("auth/user/add", Rpc::Auth("UserAdd")),
    ("auth/user/get", Rpc::Auth("UserGet")),
    ("auth/user/list", Rpc::Auth("UserList")),
    ("auth/user/delete", Rpc::Auth("UserDelete")),
    ("auth/user/changepw", Rpc::Auth("UserChangePassword")),
    ("auth/user/grant", Rpc::Auth("UserGrantRole")),
    ("auth/user/revoke", Rpc::Auth("UserRevokeRole")),
    ("auth/role/add", Rpc::Auth("RoleAdd")),
    ("auth/role/get", Rpc::Auth("RoleGet")),
    ("auth/role/list", Rpc::Auth("RoleList")),
    ("auth/role/delete", Rpc::Auth("RoleDelete")),
    ("auth/role/grant", Rpc::Auth("RoleGrantPermission")),
    ("auth/role/revoke", Rpc::Auth("RoleRevokePermission")),
    ("lock/lock", Rpc::Lock),
    ("lock/unlock", Rpc::Unlock),
    ("election/campaign", Rpc::Campaign),
    ("election/proclaim", Rpc::Proclaim),
    ("election/leader", Rpc::Leader),
    ("election/observe", Rpc::Observe),
    ("election/resign", Rpc::Resign),
];

/// Path prefixes the gateway serves.
const PREFIXES: &[&str] = &["/v3/", "/v3beta/"];

/// Whether `path` belongs to the gateway (a known route or not).
pub fn is_gateway_path(path: &str) -> bool {
    PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The RPC at `path`, if it is one of the gateway's routes.
pub fn rpc(path: &str) -> Option<Rpc> {
    let rest = PREFIXES.iter().find_map(|p| path.strip_prefix(p))?;
    ROUTES.iter().find(|(r, _)| *r == rest).map(|(_, rpc)| *rpc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_like_etcds_gateway() {
        assert_eq!(rpc("/v3/kv/range"), Some(Rpc::Range));
        assert_eq!(rpc("/v3beta/kv/range"), Some(Rpc::Range));
        assert_eq!(rpc("/v3alpha/kv/range"), None);
        assert!(!is_gateway_path("/v3alpha/kv/range"));
        assert_eq!(rpc("/v3/maintenance/hash"), Some(Rpc::Hash));
        assert_eq!(rpc("/v3/lock/lock"), Some(Rpc::Lock));
        assert_eq!(rpc("/v3/kv/range/"), None);
        assert!(is_gateway_path("/v3/nothing"));
    }
}
