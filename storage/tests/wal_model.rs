//! Randomized WAL test against a model of Raft log semantics: appends with overwrites, hard
//! states, snapshot markers, releases and reopens, with replay compared to the model each time.

use futures::executor::block_on;
use keelson_storage::io::MemoryDirectory;
use keelson_storage::wal::{Entry, HardState, Record, SnapshotMarker, Wal, WalConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the log must replay: every entry by index, the newest hard state and snapshot.
#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    snapshot: Option<SnapshotMarker>,
}

impl Model {
    fn last_index(&self) -> u64 {
        let e = self.entries.last().map_or(0, |e| e.index);
        e.max(self.snapshot.map_or(0, |s| s.index))
    }

    fn apply(&mut self, r: &Record) {
        match r {
            Record::Entry(e) => {
                self.entries.retain(|x| x.index < e.index);
                self.entries.push(e.clone());
            }
            Record::HardState(h) => self.hard_state = Some(*h),
            Record::Snapshot(s) => self.snapshot = Some(*s),
        }
    }
}

fn check(wal: &Wal<MemoryDirectory>, model: &Model, seed: u64, step: usize) {
    let from = model.snapshot.map_or(0, |s| s.index + 1);
    let replay = block_on(wal.replay(from)).unwrap();
    let want: Vec<&Entry> = model.entries.iter().filter(|e| e.index >= from).collect();
    let got: Vec<&Entry> = replay.entries.iter().collect();
    assert_eq!(got, want, "seed {seed} step {step}: entries from {from}");
    assert_eq!(
        replay.hard_state, model.hard_state,
        "seed {seed} step {step}"
    );
    assert_eq!(replay.snapshot, model.snapshot, "seed {seed} step {step}");
}

#[test]
fn random_workloads_replay_like_the_model() {
    let (mut overwrites, mut released, mut reopens) = (0, 0, 0);
    for seed in 0..24u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = WalConfig {
            segment_bytes: 8 << 10,
            segments_kept: 1 + rng.random_range(0..3),
        };
        let dir = MemoryDirectory::new();
        let (mut wal, _) = block_on(Wal::open(dir.clone(), cfg.clone())).unwrap();
        let mut model = Model::default();
        let mut term = 1;
        for step in 0..120 {
            match rng.random_range(0..20) {
                0..=13 => {
                    // A batch of entries, sometimes overwriting the tail as a new leader does.
                    let last = model.last_index();
                    let floor = model.snapshot.map_or(1, |s| s.index + 1);
                    let start = if rng.random_bool(0.2) && last >= floor {
                        term += 1;
                        overwrites += 1;
                        rng.random_range(floor..=last)
                    } else {
                        last + 1
                    };
                    let mut batch: Vec<Record> = (start..start + rng.random_range(1..12))
                        .map(|index| {
                            let len = rng.random_range(0..300);
                            Record::Entry(Entry {
                                index,
                                term,
                                data: (0..len).map(|_| rng.random()).collect(),
                            })
                        })
                        .collect();
                    if rng.random_bool(0.5) {
                        batch.push(Record::HardState(HardState {
                            term,
                            vote: rng.random_range(1..4),
                            commit: start - 1,
                        }));
                    }
                    block_on(wal.append(&batch)).unwrap();
                    batch.iter().for_each(|r| model.apply(r));
                }
                14..=16 => {
                    // Snapshot at the commit index (entries up to it are never overwritten).
                    let commit = model.hard_state.map_or(0, |h| h.commit);
                    if commit > model.snapshot.map_or(0, |s| s.index) {
                        let s = SnapshotMarker {
                            index: commit,
                            term,
                        };
                        block_on(wal.append(&[Record::Snapshot(s)])).unwrap();
                        model.apply(&Record::Snapshot(s));
                        let before = wal.segment_count();
                        released += block_on(wal.release(commit)).unwrap().len();
                        assert!(wal.segment_count() >= before.min(cfg.segments_kept));
                    }
                }
                _ => {
                    let (reopened, report) = block_on(Wal::open(dir.clone(), cfg.clone())).unwrap();
                    assert_eq!(report.torn_tail, None);
                    assert_eq!(report.last_index, model.last_index());
                    wal = reopened;
                    reopens += 1;
                }
            }
            check(&wal, &model, seed, step);
        }
    }
    assert!(
        overwrites > 50 && released > 20 && reopens > 50,
        "the workload exercised too little: {overwrites} overwrites, {released} segments \
         released, {reopens} reopens"
    );
}
