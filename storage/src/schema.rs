//! Every on-disk name in one place: files and folders of the data dir, B+tree trees, meta keys.
//!
//! Tree names and meta keys follow etcd's bucket names, so anyone who knows etcd's `schema`
//! finds the same things here. Nothing else in Keelson spells these strings.

/// The data dir holds one member's state under this folder, as etcd's does.
pub const MEMBER_DIR: &str = "member";
/// The B+tree file, relative to the data dir.
pub const DB_FILE: &str = "member/snap/db";
/// The folder of the B+tree file and of Raft snapshots received from the leader.
pub const SNAP_DIR: &str = "member/snap";
/// A Raft snapshot received, before it is installed: `<index as 16 hex digits>.snap.db` in
/// [`SNAP_DIR`] (etcd's name for the same file). While it is written it ends in `.part`.
pub const SNAPSHOT_DB_SUFFIX: &str = ".snap.db";
pub const SNAPSHOT_PART_SUFFIX: &str = ".snap.db.part";

/// The file name of the Raft snapshot at `index`.
pub fn snapshot_db_name(index: u64) -> String {
    format!("{index:016x}{SNAPSHOT_DB_SUFFIX}")
}

/// The folder of WAL segments, relative to the data dir (unless `--wal-dir` moves it).
pub const WAL_DIR: &str = "member/wal";

/// Revision-keyed records of every key change (`mvccpb.KeyValue` values).
pub const TREE_KEY: &[u8] = b"key";
/// Small facts about the store: applied index, compaction progress.
pub const TREE_META: &[u8] = b"meta";
pub const TREE_LEASE: &[u8] = b"lease";
pub const TREE_ALARM: &[u8] = b"alarm";
pub const TREE_CLUSTER: &[u8] = b"cluster";
pub const TREE_MEMBERS: &[u8] = b"members";
pub const TREE_MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const TREE_AUTH: &[u8] = b"auth";
pub const TREE_AUTH_USERS: &[u8] = b"authUsers";
pub const TREE_AUTH_ROLES: &[u8] = b"authRoles";
/// Facts about this member alone (its own member id), which etcd keeps in its WAL metadata.
/// Never replicated to other members (a Raft snapshot carries every other tree, not this one)
/// and never exported to an etcd snapshot.
pub const TREE_LOCAL: &[u8] = b"keelsonLocal";

/// Every tree a fresh store creates.
pub const TREES: [&[u8]; 11] = [
    TREE_KEY,
    TREE_META,
    TREE_LEASE,
    TREE_ALARM,
    TREE_CLUSTER,
    TREE_MEMBERS,
    TREE_MEMBERS_REMOVED,
    TREE_AUTH,
    TREE_AUTH_USERS,
    TREE_AUTH_ROLES,
    TREE_LOCAL,
];

/// The trees that make up the replicated state: what a Raft snapshot carries and what every
/// member holds alike at the same applied index.
pub const REPLICATED_TREES: [&[u8]; 10] = [
    TREE_KEY,
    TREE_META,
    TREE_LEASE,
    TREE_ALARM,
    TREE_CLUSTER,
    TREE_MEMBERS,
    TREE_MEMBERS_REMOVED,
    TREE_AUTH,
    TREE_AUTH_USERS,
    TREE_AUTH_ROLES,
];

/// Cluster key: the cluster id (u64 big-endian). etcd keeps it in its WAL metadata; Keelson's
/// WAL has no metadata record, and every member holds the same id, so the `cluster` tree does.
pub const CLUSTER_ID_KEY: &[u8] = b"clusterID";
/// Local key: this member's id (u64 big-endian).
pub const LOCAL_MEMBER_ID_KEY: &[u8] = b"memberID";
/// Local key of a store installed from a Raft snapshot: the snapshot's index and term (two u64
/// big-endian). A restart that finds the store's applied index in neither the WAL's entries nor
/// its markers (a crash after the install, before the WAL recorded it) takes the term from here.
pub const LOCAL_SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Meta key: the Raft index of the last entry applied (u64 big-endian). Committed in the same
/// B+tree transaction as the entry's effects, so restart replays exactly what is missing.
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// Meta key: the revision of the last compaction requested (a 17-byte revision key).
pub const META_SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
/// Meta key: the revision of the last compaction finished (a 17-byte revision key).
pub const META_FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_names_are_unique() {
        let mut names = TREES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TREES.len());
        assert!(REPLICATED_TREES.iter().all(|t| TREES.contains(t)));
        assert!(!REPLICATED_TREES.contains(&TREE_LOCAL));
    }
}
