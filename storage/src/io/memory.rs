//! [`MemoryDevice`]: an in-memory [`BlockDevice`] for tests, with a crash model and fault injection.
//!
//! The crash model is the one a real disk with a volatile write cache gives:
//! - bytes become durable only at a successful `sync_data`;
//! - a crash keeps every synced byte, and any subset of the writes made since the last sync, each
//!   of which may itself be torn (only a prefix of it reached the medium).
//!
//! With [`MemoryDevice::record_crash_points`] on, the device keeps a [`CrashImage`] at every sync
//! point: the durable bytes plus the writes that were still in flight. A test can then rebuild the
//! file as it would be after a crash at that point, with the in-flight writes dropped, all applied,
//! or a seeded random mix of dropped, applied and torn.
//!
//! Faults: a countdown that fails the N-th mutating operation (write, resize or sync), a countdown
//! for syncs alone, and bit flips at any offset.

use super::{BlockDevice, Mapping, injected_fault};
use parking_lot::Mutex;
use std::io;
use std::sync::Arc;

/// A mutation that has not been synced yet.
#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// Which operations fail. Each countdown counts the operations it applies to; the operation that
/// finds it at zero fails (so `Some(0)` fails the very next one), and every later one succeeds.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Fails the N-th mutating operation from now: a write, a resize or a sync.
    pub fail_mutation_after: Option<u64>,
    /// Fails the N-th sync from now.
    pub fail_sync_after: Option<u64>,
    /// Fails the N-th read from now.
    pub fail_read_after: Option<u64>,
}

/// The state of a device at one sync point, before that sync ran: what a crash there could leave.
#[derive(Clone, Debug)]
pub struct CrashImage {
    /// Contents durable at the previous successful sync.
    durable: Vec<u8>,
    /// Mutations made since then, in order.
    in_flight: Vec<Pending>,
}

impl CrashImage {
    /// The crash lost every in-flight write.
    pub fn lose_unsynced(&self, name: &str) -> MemoryDevice {
        MemoryDevice::from_bytes(name, self.durable.clone())
    }

    /// Every in-flight write reached the medium, whole.
    pub fn keep_unsynced(&self, name: &str) -> MemoryDevice {
        let mut bytes = self.durable.clone();
        for op in &self.in_flight {
            apply(&mut bytes, op, None);
        }
        MemoryDevice::from_bytes(name, bytes)
    }

    /// Each in-flight write independently dropped, kept, or torn at a random byte, chosen by a
    /// small deterministic generator seeded with `seed`.
    pub fn torn(&self, name: &str, seed: u64) -> MemoryDevice {
        let mut rng = SplitMix64(seed);
        let mut bytes = self.durable.clone();
        for op in &self.in_flight {
            match op {
                Pending::SetLen(_) => apply(&mut bytes, op, None),
                Pending::Write { data, .. } => match rng.next() % 3 {
                    0 => {}
                    1 => apply(&mut bytes, op, None),
                    _ => {
                        let keep = (rng.next() % (data.len() as u64 + 1)) as usize;
                        apply(&mut bytes, op, Some(keep));
                    }
                },
            }
        }
        MemoryDevice::from_bytes(name, bytes)
    }

    /// How many mutations were in flight at this point.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }
}

/// Applies `op` to `bytes`, keeping only the first `keep` bytes of a write when given.
fn apply(bytes: &mut Vec<u8>, op: &Pending, keep: Option<usize>) {
    match op {
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
        Pending::Write { offset, data } => {
            let data = &data[..keep.unwrap_or(data.len())];
            let start = *offset as usize;
            let end = start + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
    }
}

/// A tiny deterministic generator so crash images do not depend on any external crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Default)]
struct State {
    /// What reads see: the page cache.
    current: Vec<u8>,
    /// What a crash keeps for certain.
    durable: Vec<u8>,
    in_flight: Vec<Pending>,
    plan: FaultPlan,
    crash_points: Option<Vec<CrashImage>>,
    syncs: u64,
    /// The map handed out since the last mutation, reused until the next one.
    map: Option<Arc<MemoryMapping>>,
}

impl State {
    fn countdown(slot: &mut Option<u64>) -> bool {
        match slot {
            Some(0) => {
                *slot = None;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }

    fn mutation_fails(&mut self) -> bool {
        State::countdown(&mut self.plan.fail_mutation_after)
    }

    fn mutate(&mut self, op: Pending) {
        apply(&mut self.current, &op, None);
        self.in_flight.push(op);
        self.map = None;
    }
}

struct MemoryMapping {
    bytes: Vec<u8>,
}

impl Mapping for MemoryMapping {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// An in-memory file. Clones share the same contents, so a test can keep a handle to inspect or
/// crash the device while an engine owns another.
#[derive(Clone)]
pub struct MemoryDevice {
    state: Arc<Mutex<State>>,
    name: String,
}

impl MemoryDevice {
    pub fn new(name: &str) -> MemoryDevice {
        MemoryDevice::from_bytes(name, Vec::new())
    }

    /// A device whose contents are `bytes`, all of them durable.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> MemoryDevice {
        let state = State {
            current: bytes.clone(),
            durable: bytes,
            ..State::default()
        };
        MemoryDevice {
            state: Arc::new(Mutex::new(state)),
            name: name.to_string(),
        }
    }

    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.state.lock().plan = plan;
    }

    /// Start (or stop) keeping a [`CrashImage`] at every sync point.
    pub fn record_crash_points(&self, on: bool) {
        self.state.lock().crash_points = on.then(Vec::new);
    }

    /// The crash images recorded so far, oldest first, plus one for "now" (a crash after the last
    /// operation, before any further sync).
    pub fn crash_points(&self) -> Vec<CrashImage> {
        let state = self.state.lock();
        let mut points = state.crash_points.clone().unwrap_or_default();
        points.push(CrashImage {
            durable: state.durable.clone(),
            in_flight: state.in_flight.clone(),
        });
        points
    }

    /// Flip one bit of the stored bytes, durable and cached alike: media corruption.
    pub fn flip_bit(&self, offset: u64, bit: u8) {
        let mut state = self.state.lock();
        let mask = 1u8 << (bit % 8);
        let at = offset as usize;
        if let Some(byte) = state.current.get_mut(at) {
            *byte ^= mask;
        }
        if let Some(byte) = state.durable.get_mut(at) {
            *byte ^= mask;
        }
        state.map = None;
    }

    /// Everything reads would see now.
    pub fn contents(&self) -> Vec<u8> {
        self.state.lock().current.clone()
    }

    /// Number of successful syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }
}

impl BlockDevice for MemoryDevice {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        if state.mutation_fails() {
            return Err(injected_fault("set_len"));
        }
        state.mutate(Pending::SetLen(len));
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        if State::countdown(&mut state.plan.fail_read_after) {
            return Err(injected_fault("read"));
        }
        let start = offset as usize;
        let end = start
            .checked_add(buf.len())
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        if end > state.current.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end of device",
            ));
        }
        buf.copy_from_slice(&state.current[start..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        if state.mutation_fails() {
            return Err(injected_fault("write"));
        }
        state.mutate(Pending::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(points) = state.crash_points.as_mut() {
            points.push(CrashImage {
                durable: state.durable.clone(),
                in_flight: state.in_flight.clone(),
            });
        }
        if state.mutation_fails() || State::countdown(&mut state.plan.fail_sync_after) {
            // Like Linux after an fsync error: the dirty data may be gone for good, and a later
            // sync would not report it again. Only what was durable before is certain.
            state.in_flight.clear();
            return Err(injected_fault("sync"));
        }
        state.durable = state.current.clone();
        state.in_flight.clear();
        state.syncs += 1;
        Ok(())
    }

    fn map(&self) -> io::Result<Arc<dyn Mapping>> {
        let mut state = self.state.lock();
        if let Some(map) = &state.map {
            return Ok(map.clone());
        }
        let map = Arc::new(MemoryMapping {
            bytes: state.current.clone(),
        });
        state.map = Some(map.clone());
        Ok(map)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_are_lost_and_synced_kept() {
        let dev = MemoryDevice::new("t");
        dev.record_crash_points(true);
        dev.write_all_at(b"abcd", 0).unwrap();
        dev.sync_data().unwrap();
        dev.write_all_at(b"XY", 1).unwrap();
        let points = dev.crash_points();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].lose_unsynced("a").contents(), b"");
        assert_eq!(points[0].keep_unsynced("a").contents(), b"abcd");
        assert_eq!(points[1].lose_unsynced("a").contents(), b"abcd");
        assert_eq!(points[1].keep_unsynced("a").contents(), b"aXYd");
        // A torn write keeps a prefix: every seed gives one of the three legal outcomes.
        for seed in 0..64 {
            let got = points[1].torn("a", seed).contents();
            assert!(
                [&b"abcd"[..], b"aXcd", b"aXYd"].contains(&got.as_slice()),
                "{got:?}"
            );
        }
    }

    #[test]
    fn countdowns_fail_exactly_once() {
        let dev = MemoryDevice::new("t");
        dev.set_fault_plan(FaultPlan {
            fail_mutation_after: Some(1),
            ..FaultPlan::default()
        });
        dev.write_all_at(b"a", 0).unwrap();
        assert!(dev.write_all_at(b"b", 1).is_err());
        dev.write_all_at(b"c", 1).unwrap();
        assert_eq!(dev.contents(), b"ac");
    }

    #[test]
    fn failed_sync_loses_in_flight_data() {
        let dev = MemoryDevice::new("t");
        dev.record_crash_points(true);
        dev.set_fault_plan(FaultPlan {
            fail_sync_after: Some(0),
            ..FaultPlan::default()
        });
        dev.write_all_at(b"a", 0).unwrap();
        assert!(dev.sync_data().is_err());
        let now = dev.crash_points().pop().unwrap();
        assert_eq!(now.keep_unsynced("a").contents(), b"");
    }

    #[test]
    fn maps_are_snapshots_and_flips_show() {
        let dev = MemoryDevice::from_bytes("t", vec![0; 4]);
        let before = dev.map().unwrap();
        dev.flip_bit(2, 0);
        assert_eq!(before.bytes(), &[0, 0, 0, 0]);
        assert_eq!(dev.map().unwrap().bytes(), &[0, 0, 1, 0]);
    }
}
