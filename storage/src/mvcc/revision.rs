//! Revisions: etcd's `(main, sub)` pair and its 17-byte on-disk form.
//!
//! Every write request or txn gets one main revision; each change inside it gets a sub revision.
//! In the B+tree's key tree a record is keyed by its revision, big-endian so byte order equals
//! revision order: `main (8 B BE) | '_' | sub (8 B BE)`, plus a trailing `'t'` for a tombstone.

use std::fmt;

/// Bytes of an encoded revision without the tombstone mark.
pub const REVISION_BYTES: usize = 17;
/// Bytes of an encoded tombstone revision.
pub const TOMBSTONE_REVISION_BYTES: usize = REVISION_BYTES + 1;
const SEPARATOR: u8 = b'_';
const TOMBSTONE_MARK: u8 = b't';

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    pub fn to_bytes(self) -> [u8; REVISION_BYTES] {
        let mut bytes = [0u8; REVISION_BYTES];
        bytes[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        bytes[8] = SEPARATOR;
        bytes[9..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        bytes
    }

    pub fn to_tombstone_bytes(self) -> [u8; TOMBSTONE_REVISION_BYTES] {
        let mut bytes = [0u8; TOMBSTONE_REVISION_BYTES];
        bytes[..REVISION_BYTES].copy_from_slice(&self.to_bytes());
        bytes[REVISION_BYTES] = TOMBSTONE_MARK;
        bytes
    }

    /// Decodes a key-tree key: the revision and whether it marks a tombstone. `None` if the bytes
    /// are not a revision key at all (a corrupt file).
    pub fn from_key(bytes: &[u8]) -> Option<(Revision, bool)> {
        let tombstone = match bytes.len() {
            REVISION_BYTES => false,
            TOMBSTONE_REVISION_BYTES if bytes[REVISION_BYTES] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if bytes[8] != SEPARATOR {
            return None;
        }
        let main = u64::from_be_bytes(bytes[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(bytes[9..REVISION_BYTES].try_into().ok()?) as i64;
        Some((Revision { main, sub }, tombstone))
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_revision_order() {
        let revisions = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
        ];
        for pair in revisions.windows(2) {
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
            // A tombstone sorts right after the live key of the same revision and before the next.
            assert!(pair[0].to_tombstone_bytes()[..] < pair[1].to_bytes()[..]);
        }
    }

    #[test]
    fn keys_round_trip_and_garbage_is_refused() {
        let rev = Revision::new(0x0102_0304, 7);
        assert_eq!(Revision::from_key(&rev.to_bytes()), Some((rev, false)));
        assert_eq!(
            Revision::from_key(&rev.to_tombstone_bytes()),
            Some((rev, true))
        );
        assert_eq!(Revision::from_key(b"short"), None);
        let mut bad = rev.to_tombstone_bytes();
        bad[REVISION_BYTES] = b'x';
        assert_eq!(Revision::from_key(&bad), None);
    }
}
