//! Every on-disk name in one place: files and folders of the data dir, B+tree trees, meta keys.
//!
//! Tree names and meta keys follow etcd's bucket names, so anyone who knows etcd's `schema`
//! finds the same things here. Nothing else in Keelson spells these strings.

/// The data dir holds one member's state under this folder, as etcd's does.
pub const MEMBER_DIR: &str = "member";
/// The B+tree file, relative to the data dir.
pub const DB_FILE: &str = "member/snap/db";
/// The folder of WAL segments, relative to the data dir (unless `--wal-dir` moves it).
pub const WAL_DIR: &str = "member/wal";

/// Revision-keyed records of every key change (`mvccpb.KeyValue` values).
pub const TREE_KEY: &[u8] = b"key";
/// Small facts about the store: applied index, compaction progress.
pub const TREE_META: &[u8] = b"meta";
pub const TREE_LEASE: &[u8] = b"lease";
pub const TREE_ALARM: &[u8] = b"alarm";
pub const TREE_CLUSTER: &[u8] = b"cluster";
/// Key of the cluster id (u64 big-endian) in [`TREE_CLUSTER`]. etcd keeps the cluster id in its
/// WAL metadata; Keelson's WAL has no metadata record, so the B+tree holds it.
pub const KEY_CLUSTER_ID: &[u8] = b"clusterID";
pub const TREE_MEMBERS: &[u8] = b"members";
pub const TREE_MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const TREE_AUTH: &[u8] = b"auth";
pub const TREE_AUTH_USERS: &[u8] = b"authUsers";
pub const TREE_AUTH_ROLES: &[u8] = b"authRoles";

/// Every tree a fresh store creates.
pub const TREES: [&[u8]; 10] = [
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
    }
}
