//! When WAL segments may go: the snapshot markers that tell a restart where the B+tree's durable
//! state begins.
//!
//! Once the background sync has made the B+tree durable up to an applied index, the entries up
//! to it are needed neither by a restart (the B+tree has them) nor, beyond the catch-up window,
//! by followers. A marker at that index is written with the next WAL append (it costs no
//! fdatasync of its own); once that append is durable, the segments wholly before the marker
//! can be released.
//!
//! Owns: the marker decided, the one riding on an append, and which append that is. Never:
//! decides a marker past the B+tree's durable index, or releases before the marker is durable.

use keelson_storage::wal::{Record, SnapshotMarker};

pub(crate) struct WalRelease {
    /// Index of the newest marker decided.
    marker_index: u64,
    /// A marker waiting to ride on the next WAL append.
    unwritten: Option<SnapshotMarker>,
    /// The `Ready` number whose append carries a marker, and the marker's index.
    in_flight: Option<(u64, u64)>,
}

impl WalRelease {
    /// Starts from the marker the WAL replay found (index 0 when none).
    pub fn new(marker_index: u64) -> WalRelease {
        WalRelease {
            marker_index,
            unwritten: None,
            in_flight: None,
        }
    }

    /// Decides a marker at `durable` (with its `term`) if that is newer than the last and none
    /// is on its way. Returns whether it did.
    pub fn decide(&mut self, durable: u64, term: u64) -> bool {
        if durable <= self.marker_index || self.unwritten.is_some() || self.in_flight.is_some() {
            return false;
        }
        self.unwritten = Some(SnapshotMarker {
            index: durable,
            term,
        });
        self.marker_index = durable;
        true
    }

    /// Whether a marker newer than the last could be decided at `durable`.
    pub fn wants(&self, durable: u64) -> bool {
        durable > self.marker_index && self.unwritten.is_none() && self.in_flight.is_none()
    }

    /// A snapshot at `index` was installed; its own marker rides on the install's append, and
    /// no older marker may follow it.
    pub fn installed(&mut self, index: u64) {
        self.marker_index = self.marker_index.max(index);
        if self.unwritten.is_some_and(|m| m.index <= index) {
            self.unwritten = None;
        }
    }

    /// The marker record to add to the append of `Ready` number `number`, if one waits.
    pub fn ride_on(&mut self, number: u64) -> Option<Record> {
        let marker = self.unwritten.take()?;
        self.in_flight = Some((number, marker.index));
        Some(Record::Snapshot(marker))
    }

    /// Appends up to `number` are durable. Returns the index to release the WAL to, once the
    /// append carrying the marker is among them and no release is still running (`busy`).
    pub fn on_persisted(&mut self, number: u64, busy: bool) -> Option<u64> {
        let (carrier, index) = self.in_flight?;
        if carrier > number || busy {
            return None;
        }
        self.in_flight = None;
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_rides_one_append_and_releases_once_it_is_durable() {
        let mut release = WalRelease::new(5);
        assert!(!release.decide(5, 1), "not newer than the replayed marker");
        assert!(release.decide(9, 2));
        assert!(!release.decide(12, 2), "one marker at a time");
        let Some(Record::Snapshot(marker)) = release.ride_on(3) else {
            panic!("the decided marker rides the next append")
        };
        assert_eq!((marker.index, marker.term), (9, 2));
        assert!(release.ride_on(4).is_none());
        assert_eq!(
            release.on_persisted(2, false),
            None,
            "its append is not durable"
        );
        assert_eq!(release.on_persisted(3, true), None, "a release still runs");
        assert_eq!(release.on_persisted(3, false), Some(9));
        assert_eq!(release.on_persisted(4, false), None, "released once");
        assert!(release.decide(12, 2));
    }
}
