//! WAL tests on the in-memory directory: torn writes, crashes at every sync point, bit flips,
//! rotation and release, Raft overwrites, group commit, and fsync failure.

use futures::executor::{LocalPool, block_on};
use futures::future::join_all;
use futures::task::LocalSpawnExt;
use keelson_storage::io::MemoryDirectory;
use keelson_storage::wal::{
    Entry, HardState, Record, RecoveryReport, SEGMENT_HEADER_BYTES, SnapshotMarker, Wal, WalConfig,
    WalError,
};
use std::cell::Cell;
use std::collections::BTreeMap;

fn config(segment_bytes: u64) -> WalConfig {
    WalConfig {
        segment_bytes,
        segments_kept: 2,
    }
}

fn data(index: u64, term: u64) -> Vec<u8> {
    let len = 20 + (index * 7 + term) % 60;
    (0..len)
        .map(|i| (index * 31 + term * 7 + i) as u8)
        .collect()
}

fn entry(index: u64, term: u64) -> Record {
    Record::Entry(Entry {
        index,
        term,
        data: data(index, term),
    })
}

fn expect_entry(e: &Entry, term: u64) {
    assert_eq!(e.term, term, "entry {}", e.index);
    assert_eq!(e.data, data(e.index, term), "entry {} data", e.index);
}

fn open(dir: &MemoryDirectory, cfg: WalConfig) -> (Wal<MemoryDirectory>, RecoveryReport) {
    block_on(Wal::open(dir.clone(), cfg)).expect("open")
}

/// A log with entries 1..=n, each appended (and synced) on its own.
fn log_with(n: u64, cfg: WalConfig) -> MemoryDirectory {
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg);
    for i in 1..=n {
        block_on(wal.append(&[entry(i, 1)])).unwrap();
    }
    dir
}

fn indexes(wal: &Wal<MemoryDirectory>, from: u64) -> Vec<u64> {
    let replay = block_on(wal.replay(from)).unwrap();
    replay.entries.iter().map(|e| e.index).collect()
}

#[test]
fn torn_write_at_every_byte_of_the_last_record_recovers_to_the_last_whole_record() {
    let cfg = config(16 << 10);
    let dir = log_with(5, cfg.clone());
    let (name, bytes) = dir.files().pop().unwrap();
    let frames: usize = (1..=5).map(|i| entry(i, 1).frame_len()).sum();
    let end = SEGMENT_HEADER_BYTES + frames;
    let start = end - entry(5, 1).frame_len();
    for k in 0..end - start {
        let mut torn = bytes.clone();
        let untouched = torn[start + k..end].iter().all(|&b| b == 0);
        torn[start + k..end].fill(0);
        let dir = MemoryDirectory::from_files([(name.clone(), torn)]);
        let (wal, report) = open(&dir, cfg.clone());
        if untouched {
            // The tear only "lost" zeros the record had anyway: it is whole.
            assert_eq!(indexes(&wal, 0), vec![1, 2, 3, 4, 5]);
            continue;
        }
        if k == 0 {
            // Nothing of the record landed: a clean end, not a tear.
            assert_eq!(report.torn_tail, None);
        } else {
            let tail = report.torn_tail.clone().expect("tear reported");
            assert_eq!(tail.offset, start as u64, "tear at byte {k}");
        }
        assert_eq!(indexes(&wal, 0), vec![1, 2, 3, 4], "tear at byte {k}");
        // The log goes on from the last whole record, and reopens clean.
        block_on(wal.append(&[entry(5, 2), entry(6, 2)])).unwrap();
        let (wal, report) = open(&dir, cfg.clone());
        assert_eq!(report.torn_tail, None);
        let replay = block_on(wal.replay(0)).unwrap();
        assert_eq!(replay.entries.len(), 6);
        expect_entry(&replay.entries[4], 2);
    }
}

#[test]
fn crash_at_every_sync_point_keeps_everything_acknowledged() {
    let cfg = config(8 << 10);
    let dir = MemoryDirectory::new();
    dir.record_crash_points(true);
    let (wal, _) = open(&dir, cfg.clone());
    // Acknowledged entry index -> number of crash points recorded when it was acknowledged.
    let acked: std::rc::Rc<std::cell::RefCell<BTreeMap<u64, usize>>> = Default::default();
    let next = Cell::new(1u64);
    for round in 0..60u64 {
        let appends = (0..1 + round % 4).map(|_| {
            let index = next.get();
            next.set(index + 1);
            let (wal, dir, acked) = (wal.clone(), dir.clone(), acked.clone());
            let hs = HardState {
                term: 1,
                vote: 1,
                commit: index,
            };
            async move {
                wal.append(&[entry(index, 1), Record::HardState(hs)])
                    .await
                    .unwrap();
                acked.borrow_mut().insert(index, dir.crash_point_count());
            }
        });
        block_on(join_all(appends));
    }
    assert!(wal.segment_count() > 1, "the workload rotates segments");
    let last = next.get() - 1;
    let points = dir.crash_points();
    assert!(points.len() > 10);
    for (k, point) in points.iter().enumerate() {
        let images = [point.lose_unsynced(), point.keep_unsynced()]
            .into_iter()
            .chain((0..4).map(|seed| point.torn(seed)));
        for image in images {
            let (wal, _) = match block_on(Wal::open(image, cfg.clone())) {
                Ok(opened) => opened,
                Err(e) => panic!("crash point {k}: {e}"),
            };
            let replay = block_on(wal.replay(0)).unwrap();
            let got: Vec<u64> = replay.entries.iter().map(|e| e.index).collect();
            // Whatever survived is a prefix of what was written, intact.
            assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
            for e in &replay.entries {
                expect_entry(e, 1);
            }
            for (&index, &count) in acked.borrow().iter() {
                if count <= k {
                    assert!(
                        index <= got.len() as u64,
                        "crash point {k}: acknowledged entry {index} lost"
                    );
                }
            }
            if let Some(hs) = replay.hard_state {
                assert!(hs.commit <= last);
            }
        }
    }
}

#[test]
fn a_bit_flip_anywhere_is_refused_or_cut_with_the_torn_tail_never_replayed() {
    let cfg = config(8 << 10);
    let dir = log_with(150, cfg.clone());
    let files = dir.files();
    assert!(files.len() >= 2, "two segments at least");
    let (full, _) = open(&dir, cfg.clone());
    let all = indexes(&full, 0);
    let (mut refused, mut cut) = (0, 0);
    for (f, (name, bytes)) in files.iter().enumerate() {
        let written = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
        let is_last = f + 1 == files.len();
        for at in 0..(written + 64).min(bytes.len()) {
            let mut damaged = files.clone();
            damaged[f].1[at] ^= 1 << (at % 8);
            let dir = MemoryDirectory::from_files(damaged);
            match block_on(Wal::open(dir, cfg.clone())) {
                Err(WalError::Corrupt { file, offset, .. }) => {
                    assert_eq!(&file, name, "flip in {name} at {at}");
                    assert!(offset <= at as u64, "reported {offset}, flipped {at}");
                    refused += 1;
                }
                Err(e) => panic!("flip in {name} at {at}: {e}"),
                Ok((wal, report)) => {
                    // Only a flip in the last record of the newest segment (or in the zeros
                    // right after it) can pass for a tear; everything replayed is intact.
                    assert!(is_last, "flip in {name} at {at} not detected");
                    let got = block_on(wal.replay(0)).unwrap().entries;
                    for e in &got {
                        expect_entry(e, 1);
                    }
                    let tail = report.torn_tail.expect("flip noticed");
                    assert!(tail.offset <= at as u64);
                    assert!(
                        got.len() + 1 >= all.len(),
                        "flip at {at} cut {}",
                        all.len() - got.len()
                    );
                    cut += 1;
                }
            }
        }
    }
    assert!(refused > 1000 && cut > 0, "refused {refused}, cut {cut}");
}

#[test]
fn rotation_replay_from_the_middle_and_release() {
    let cfg = config(8 << 10);
    let dir = MemoryDirectory::new();
    let (wal, report) = open(&dir, cfg.clone());
    assert!(report.created);
    let hs = HardState {
        term: 1,
        vote: 3,
        commit: 7,
    };
    block_on(wal.append(&[Record::HardState(hs)])).unwrap();
    for i in 1..=600 {
        block_on(wal.append(&[entry(i, 1)])).unwrap();
    }
    let names = wal.segment_names();
    assert!(names.len() >= 5, "{names:?}");
    assert_eq!(names[0], "0000000000000000-0000000000000000.wal");
    let (wal, report) = open(&dir, cfg.clone());
    assert_eq!(report.segments, names.len());
    assert_eq!(report.last_index, 600);
    for from in [0, 1, 57, 150, 299, 300, 301, 599, 600, 601] {
        let want: Vec<u64> = (from.max(1)..=600).collect();
        assert_eq!(indexes(&wal, from), want, "from {from}");
    }
    // Release: the snapshot covers up to 200; segments wholly below go, keeping two.
    block_on(wal.append(&[Record::Snapshot(SnapshotMarker {
        index: 200,
        term: 1,
    })]))
    .unwrap();
    let removed = block_on(wal.release(200)).unwrap();
    assert!(!removed.is_empty());
    let (wal, _) = open(&dir, cfg.clone());
    let replay = block_on(wal.replay(201)).unwrap();
    assert_eq!(replay.entries.first().unwrap().index, 201);
    assert_eq!(replay.entries.last().unwrap().index, 600);
    // Every segment starts with the state current when it began, so release loses none of it.
    assert_eq!(replay.hard_state, Some(hs));
    assert_eq!(replay.snapshot.unwrap().index, 200);
    let remaining = wal.segment_names();
    assert!(remaining.len() >= 2 && remaining.len() < names.len());
    assert_eq!(remaining.len() + removed.len(), names.len());
    // Entries below the snapshot that survive in kept segments replay fine; those released don't.
    let (first, _) = remaining[0].split_once('-').unwrap();
    assert!(first > "0000000000000000");
}

#[test]
fn a_new_leader_overwrites_the_log_tail() {
    let cfg = config(8 << 10);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    let batch =
        |from: u64, to: u64, term: u64| (from..=to).map(|i| entry(i, term)).collect::<Vec<_>>();
    block_on(wal.append(&batch(1, 80, 1))).unwrap();
    // Truncation back to 61 by a term-2 leader, then more, then a term-3 leader rewrites 70.
    block_on(wal.append(&batch(61, 120, 2))).unwrap();
    block_on(wal.append(&batch(70, 75, 3))).unwrap();
    assert!(wal.segment_count() > 1);
    let check = |wal: &Wal<MemoryDirectory>| {
        let got = block_on(wal.replay(0)).unwrap().entries;
        assert_eq!(
            got.iter().map(|e| e.index).collect::<Vec<_>>(),
            (1..=75).collect::<Vec<_>>()
        );
        for e in &got {
            expect_entry(
                e,
                if e.index <= 60 {
                    1
                } else if e.index < 70 {
                    2
                } else {
                    3
                },
            );
        }
        let mid = block_on(wal.replay(65)).unwrap().entries;
        assert_eq!(mid.first().unwrap().index, 65);
        assert_eq!(mid.len(), 11);
    };
    check(&wal);
    assert_eq!(wal.last_index(), 75);
    let (wal, _) = open(&dir, cfg.clone());
    check(&wal);
    // A gap is refused and writes nothing.
    let err = block_on(wal.append(&[entry(77, 3)])).unwrap_err();
    assert!(matches!(err, WalError::Invalid(_)), "{err}");
    assert_eq!(wal.last_index(), 75);
}

#[test]
fn group_commit_shares_syncs_between_concurrent_appenders() {
    let cfg = config(1 << 20);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    // One appender at a time: exactly one sync each.
    let before = dir.file_sync_count();
    for i in 1..=10 {
        block_on(wal.append(&[entry(i, 1)])).unwrap();
    }
    assert_eq!(dir.file_sync_count() - before, 10);
    // A thousand at once: a handful of syncs.
    let before = dir.file_sync_count();
    let appends = (11..=1010).map(|i| {
        let wal = wal.clone();
        async move { wal.append(&[entry(i, 1)]).await }
    });
    for r in block_on(join_all(appends)) {
        r.unwrap();
    }
    let syncs = dir.file_sync_count() - before;
    assert!(syncs <= 4, "{syncs} syncs for 1000 appends");
    let (wal, _) = open(&dir, cfg);
    assert_eq!(indexes(&wal, 0), (1..=1010).collect::<Vec<_>>());
}

#[test]
fn the_preparer_keeps_the_next_segment_ready() {
    let cfg = config(8 << 10);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    spawner
        .spawn_local({
            let wal = wal.clone();
            async move { wal.prepare_segments().await.unwrap() }
        })
        .unwrap();
    pool.run_until_stalled();
    assert!(dir.files().iter().any(|(n, _)| n.ends_with(".tmp")));
    let writer = wal.clone();
    pool.run_until(async move {
        for i in 1..=200 {
            writer.append(&[entry(i, 1)]).await.unwrap();
        }
    });
    pool.run_until_stalled();
    let tmps = dir
        .files()
        .iter()
        .filter(|(n, _)| n.ends_with(".tmp"))
        .count();
    assert_eq!(tmps, 1, "exactly the next segment is prepared");
    wal.close();
    pool.run();
    let (wal, report) = open(&dir, cfg);
    assert_eq!(report.removed_prepared.len(), 1);
    assert_eq!(indexes(&wal, 0), (1..=200).collect::<Vec<_>>());
}

#[test]
fn a_failed_fsync_poisons_the_log() {
    let cfg = config(1 << 20);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    for i in 1..=5 {
        block_on(wal.append(&[entry(i, 1)])).unwrap();
    }
    dir.fail_file_sync_after(0);
    let appends = (6..=25).map(|i| {
        let wal = wal.clone();
        async move { wal.append(&[entry(i, 1)]).await }
    });
    for r in block_on(join_all(appends)) {
        assert!(matches!(r, Err(WalError::Poisoned(_))), "{r:?}");
    }
    assert!(wal.poisoned().is_some());
    // The device would now sync fine, but nothing more is acknowledged.
    let later = block_on(wal.append(&[entry(26, 1)]));
    assert!(matches!(later, Err(WalError::Poisoned(_))));
    let (wal, _) = open(&dir, cfg);
    let got = indexes(&wal, 0);
    assert_eq!(&got[..5], &[1, 2, 3, 4, 5]);
}

#[test]
fn a_failed_directory_sync_during_rotation_poisons_the_log() {
    let cfg = config(8 << 10);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    dir.fail_dir_sync_after(0);
    let mut first_error = None;
    for i in 1..=200 {
        if let Err(e) = block_on(wal.append(&[entry(i, 1)])) {
            first_error = Some(i);
            assert!(matches!(e, WalError::Poisoned(_)));
            break;
        }
    }
    let failed_at = first_error.expect("rotation hit the failing directory sync");
    assert!(block_on(wal.append(&[entry(failed_at, 1)])).is_err());
    let (wal, _) = open(&dir, cfg);
    assert!(indexes(&wal, 0).len() as u64 >= failed_at - 1);
}

#[test]
fn reopening_with_another_segment_size_keeps_old_segments_as_they_are() {
    let small = config(8 << 10);
    let dir = log_with(150, small);
    let big = config(32 << 10);
    let (wal, _) = open(&dir, big.clone());
    for i in 151..=400 {
        block_on(wal.append(&[entry(i, 1)])).unwrap();
    }
    let sizes: Vec<usize> = dir.files().iter().map(|(_, b)| b.len()).collect();
    assert_eq!(sizes.first(), Some(&(8 << 10)));
    assert_eq!(sizes.last(), Some(&(32 << 10)));
    let (wal, _) = open(&dir, big);
    assert_eq!(indexes(&wal, 0), (1..=400).collect::<Vec<_>>());
}

#[test]
fn dropping_waiting_appends_stalls_no_one_and_dropping_the_leader_poisons() {
    let cfg = config(1 << 20);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    block_on(async {
        let first = [entry(1, 1)];
        let mut leader = Box::pin(wal.append(&first));
        // The leader is now inside its fdatasync.
        assert!(futures::poll!(&mut leader).is_pending());
        let records: Vec<[Record; 1]> = (2..=11).map(|i| [entry(i, 1)]).collect();
        let mut waiting: Vec<_> = records.iter().map(|r| Box::pin(wal.append(r))).collect();
        for w in &mut waiting {
            assert!(futures::poll!(w).is_pending());
        }
        // Cancel every other waiter, including the oldest, which would lead next.
        let kept: Vec<_> = waiting
            .into_iter()
            .enumerate()
            .filter_map(|(i, w)| (i % 2 == 1).then_some(w))
            .collect();
        leader.await.unwrap();
        for r in join_all(kept).await {
            r.unwrap();
        }
    });
    // Cancelled appends were already queued in order; they are written all the same.
    assert_eq!(indexes(&wal, 0), (1..=11).collect::<Vec<_>>());

    // A lone append leads at once (no yield), so its first poll is already in the fdatasync.
    block_on(wal.append(&[entry(12, 1)])).unwrap();
    block_on(async {
        let thirteenth = [entry(13, 1)];
        let mut leader = Box::pin(wal.append(&thirteenth));
        assert!(futures::poll!(&mut leader).is_pending());
        drop(leader);
    });
    assert!(wal.poisoned().is_some());
    assert!(matches!(
        block_on(wal.append(&[entry(14, 1)])),
        Err(WalError::Poisoned(_))
    ));
}

#[test]
fn replay_when_the_durable_end_falls_on_a_block_boundary() {
    let cfg = config(64 << 10);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    // Header (40) + frame (8 + 17 + 4031 = 4056) = 4096: the log ends exactly at a block.
    let big = Record::Entry(Entry {
        index: 1,
        term: 1,
        data: vec![7; 4031],
    });
    assert_eq!(SEGMENT_HEADER_BYTES + big.frame_len(), 4096);
    block_on(wal.append(&[big])).unwrap();
    assert_eq!(indexes(&wal, 0), vec![1]);
    block_on(wal.append(&[entry(2, 1)])).unwrap();
    assert_eq!(indexes(&wal, 0), vec![1, 2]);
    let (wal, report) = open(&dir, cfg);
    assert_eq!(report.records, 2);
    assert_eq!(indexes(&wal, 2), vec![2]);
}

/// A restart opens the log from the B+tree's durable applied index: it must come out exactly as
/// a full open followed by a replay from that index, while reading only the segments from the
/// newest one begun at or before it.
#[test]
fn open_from_an_index_agrees_with_a_full_open_and_reads_only_what_replay_needs() {
    let cfg = config(8 << 10);
    let dir = MemoryDirectory::new();
    let (wal, _) = open(&dir, cfg.clone());
    let hs = |commit| {
        Record::HardState(HardState {
            term: 2,
            vote: 1,
            commit,
        })
    };
    let batch =
        |from: u64, to: u64, term: u64| (from..=to).map(|i| entry(i, term)).collect::<Vec<_>>();
    block_on(wal.append(&batch(1, 300, 1))).unwrap();
    block_on(wal.append(&[hs(250)])).unwrap();
    // A new leader rewrites the tail from 280 on, across the segments after it.
    let mut rewrite: Vec<Record> = batch(280, 450, 2);
    rewrite.push(Record::Snapshot(SnapshotMarker {
        index: 260,
        term: 1,
    }));
    block_on(wal.append(&rewrite)).unwrap();
    block_on(wal.append(&[hs(440)])).unwrap();
    drop(wal);
    let files = dir.files();
    assert!(files.len() >= 5, "{} segments", files.len());
    let first_index = |name: &str| u64::from_str_radix(&name[17..33], 16).unwrap();

    for from in (0..=460)
        .step_by(7)
        .chain([259, 260, 261, 279, 280, 450, 451])
    {
        let (full, full_report) = open(&MemoryDirectory::from_files(files.clone()), cfg.clone());
        let want = block_on(full.replay(from)).unwrap();
        let image = MemoryDirectory::from_files(files.clone());
        let (wal, report, replay) = block_on(Wal::open_from(image.clone(), cfg.clone(), from))
            .unwrap_or_else(|e| panic!("open from {from}: {e}"));
        assert_eq!(replay, want, "from {from}");
        assert_eq!(report.last_index, full_report.last_index, "from {from}");
        assert_eq!(report.segments, full_report.segments);
        assert_eq!(wal.last_index(), full.last_index());
        assert_eq!(wal.hard_state(), full.hard_state());
        // Exactly the newest segment begun at or before `from`, and the ones after it.
        let needed = files
            .iter()
            .rposition(|(name, _)| first_index(name) <= from)
            .unwrap_or(0);
        assert_eq!(report.segments_read, files.len() - needed, "from {from}");
        // The log opened this way goes on as usual.
        block_on(wal.append(&[entry(451, 2)])).unwrap();
        let (again, _) = open(&image, cfg.clone());
        let all = block_on(again.replay(0)).unwrap().entries;
        assert_eq!(all.last().map(|e| e.index), Some(451));
        assert_eq!(all.len(), 451);
    }

    // A flipped bit in a segment replay needs is refused, naming it; one wholly before the
    // index is not read (a full open still refuses it).
    let from = 300;
    let needed = files
        .iter()
        .rposition(|(name, _)| first_index(name) <= from)
        .unwrap();
    assert!(needed >= 2);
    for (f, must_refuse) in [(needed - 1, false), (needed, true), (files.len() - 2, true)] {
        let mut damaged = files.clone();
        damaged[f].1[SEGMENT_HEADER_BYTES + 3] ^= 0x10;
        let opened = block_on(Wal::open_from(
            MemoryDirectory::from_files(damaged.clone()),
            cfg.clone(),
            from,
        ));
        match (opened, must_refuse) {
            (Err(WalError::Corrupt { file, .. }), true) => assert_eq!(file, damaged[f].0),
            (Ok((_, _, replay)), false) => {
                assert_eq!(replay.entries.first().map(|e| e.index), Some(from));
            }
            (Err(e), _) => panic!("flip in segment {f}: {e}"),
            (Ok(_), true) => panic!("flip in segment {f} not detected"),
        }
        let full = block_on(Wal::open(MemoryDirectory::from_files(damaged), cfg.clone()));
        assert!(matches!(full, Err(WalError::Corrupt { .. })));
    }
    // A missing segment before the index still breaks the run of names and is refused.
    let mut missing = files.clone();
    missing.remove(1);
    let opened = block_on(Wal::open_from(
        MemoryDirectory::from_files(missing),
        cfg.clone(),
        from,
    ));
    assert!(matches!(opened, Err(WalError::Corrupt { .. })));
}
