//! WAL tests on real O_DIRECT files through glommio's io_uring reactor, in a temporary directory.

use futures::future::join_all;
use glommio::LocalExecutorBuilder;
use keelson_storage::io::GlommioDirectory;
use keelson_storage::wal::{Entry, Record, Wal, WalConfig};
use std::path::Path;

fn entry(index: u64) -> Record {
    Record::Entry(Entry {
        index,
        term: 1,
        data: vec![index as u8; 256],
    })
}

fn run<T: 'static>(f: impl AsyncFnOnce() -> T + 'static) -> T {
    LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(async move { f().await })
}

fn replayed(path: &Path, cfg: WalConfig) -> (Vec<u64>, bool) {
    let path = path.to_path_buf();
    run(async move || {
        let dir = GlommioDirectory::open(&path).await.unwrap();
        let (wal, report) = Wal::open(dir, cfg).await.unwrap();
        let replay = wal.replay(0).await.unwrap();
        for e in &replay.entries {
            assert_eq!(e.data, vec![e.index as u8; 256]);
        }
        (
            replay.entries.iter().map(|e| e.index).collect(),
            report.torn_tail.is_some(),
        )
    })
}

#[test]
fn concurrent_appends_rotate_and_replay_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        segment_bytes: 128 << 10,
        segments_kept: 2,
    };
    let path = tmp.path().to_path_buf();
    let c = cfg.clone();
    let segments = run(async move || {
        let dir = GlommioDirectory::open(&path).await.unwrap();
        let (wal, report) = Wal::open(dir, c).await.unwrap();
        assert!(report.created);
        let preparer = glommio::spawn_local(wal.clone().prepare_segments());
        let appends = (1..=1000).map(|i| {
            let wal = wal.clone();
            async move { wal.append(&[entry(i)]).await }
        });
        for r in join_all(appends).await {
            r.unwrap();
        }
        let stats = wal.stats();
        assert_eq!(stats.appends, 1000);
        assert!(
            stats.syncs < 100,
            "{} fdatasyncs for 1000 appends",
            stats.syncs
        );
        let segments = wal.segment_count();
        wal.close();
        preparer.await.unwrap();
        segments
    });
    assert!(segments >= 3, "{segments} segments");
    let (got, torn) = replayed(tmp.path(), cfg);
    assert!(!torn);
    assert_eq!(got, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn a_torn_tail_on_a_real_file_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        segment_bytes: 64 << 10,
        segments_kept: 2,
    };
    let path = tmp.path().to_path_buf();
    let c = cfg.clone();
    run(async move || {
        let dir = GlommioDirectory::open(&path).await.unwrap();
        let (wal, _) = Wal::open(dir, c).await.unwrap();
        for i in 1..=10 {
            wal.append(&[entry(i)]).await.unwrap();
        }
    });
    // Tear the last record: keep its first 100 bytes, as if the rest never reached the disk.
    let name = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&name).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let frame = entry(10).frame_len();
    let start = end.next_multiple_of(8) - frame;
    bytes[start + 100..].fill(0);
    std::fs::write(&name, &bytes).unwrap();
    let (got, torn) = replayed(tmp.path(), cfg);
    assert!(torn);
    assert_eq!(got, (1..=9).collect::<Vec<_>>());
}
