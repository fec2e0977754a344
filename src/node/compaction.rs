//! Physical compactions running between apply batches, one batch of keys per idle turn.
//!
//! Owns: the queue of compaction jobs applied but not finished, its bound, and the answers of
//! `physical: true` compactions (etcd answers those once the history is gone). Never: decides
//! what a compaction deletes (the store's job does) or runs one inside an apply batch.
//!
//! The queue holds at most [`COMPACTION_JOBS_QUEUED_MAX`] jobs: the one running and one waiting.
//! A newer compaction applied while one waits replaces it, since compacting at a higher revision
//! deletes everything the lower one would; the replaced job's proposer is answered when the
//! newer job finishes. Each job holds the revisions it keeps, one per live key, so a burst of
//! compactions would otherwise hold that many copies in memory.

use super::waiters::ProposeReply;
use crate::errors::EtcdError;
use crate::server::WriteResponse;
use keelson_storage::mvcc::{CompactionJob, Store};
use std::collections::VecDeque;

/// Jobs queued, the running one included.
pub const COMPACTION_JOBS_QUEUED_MAX: usize = 2;

struct Compaction {
    job: CompactionJob,
    /// Proposers of `physical: true` compactions this job answers when it finishes.
    replies: Vec<(ProposeReply, WriteResponse)>,
}

#[derive(Default)]
pub(crate) struct Compactions {
    queue: VecDeque<Compaction>,
}

impl Compactions {
    /// Queues `job`, with the answer of its proposer if it waits for the physical compaction.
    pub fn push(&mut self, job: CompactionJob, reply: Option<(ProposeReply, WriteResponse)>) {
        let replies: Vec<_> = reply.into_iter().collect();
        if self.queue.len() >= COMPACTION_JOBS_QUEUED_MAX
            && let Some(waiting) = self.queue.back_mut()
        {
            assert!(
                job.rev() >= waiting.job.rev(),
                "compactions are applied in revision order"
            );
            waiting.job = job;
            waiting.replies.extend(replies);
            return;
        }
        self.queue.push_back(Compaction { job, replies });
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Runs one batch of the oldest job in its own unsynced transaction; answers its waiters
    /// when it finishes. An error leaves the job queued (the caller fails the node).
    pub fn step(&mut self, store: &Store) -> keelson_storage::mvcc::store::Result<()> {
        let Some(compaction) = self.queue.front_mut() else {
            return Ok(());
        };
        let mut write = store.begin_write()?;
        let done = write.compaction_step(&mut compaction.job)?;
        write.commit_deferred()?;
        if done && let Some(finished) = self.queue.pop_front() {
            for (reply, response) in finished.replies {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(())
    }

    /// Answers every waiting proposer with `error` and forgets the jobs.
    pub fn fail_all(&mut self, error: EtcdError) {
        for compaction in self.queue.drain(..) {
            for (reply, _) in compaction.replies {
                let _ = reply.send(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::answer;
    use super::*;
    use keelson_proto::etcdserverpb::CompactionResponse;
    use keelson_storage::btree::Database;
    use keelson_storage::io::MemoryDevice;
    use keelson_storage::mvcc::{KeyRange, RangeOptions};
    use std::sync::Arc;

    /// Revisions written: one key put this many times.
    const PUTS: i64 = 6;

    fn store_with_history() -> Store {
        let db = Database::open(Arc::new(MemoryDevice::new("compaction"))).unwrap();
        let store = Store::open(db).unwrap();
        for i in 0..PUTS {
            let mut write = store.begin_write().unwrap();
            write.begin_request();
            write.put(b"k", format!("v{i}").as_bytes(), 0).unwrap();
            write.end_request();
            write.commit_deferred().unwrap();
        }
        store
    }

    fn schedule(store: &Store, rev: i64) -> CompactionJob {
        let mut write = store.begin_write().unwrap();
        write.schedule_compaction(rev).unwrap();
        write.commit_deferred().unwrap();
        store.compaction_job(rev)
    }

    #[test]
    fn a_burst_of_compactions_queues_two_jobs_and_answers_every_proposer() {
        let store = store_with_history();
        let mut compactions = Compactions::default();
        let mut answers = Vec::new();
        for rev in 2..=PUTS {
            let (reply, receiver) = answer::channel();
            let response = WriteResponse::Compaction(CompactionResponse::default());
            compactions.push(schedule(&store, rev), Some((reply, response)));
            answers.push(receiver);
            assert!(compactions.len() <= COMPACTION_JOBS_QUEUED_MAX);
        }
        assert_eq!(compactions.len(), COMPACTION_JOBS_QUEUED_MAX);
        let mut steps = 0;
        while !compactions.is_empty() {
            compactions.step(&store).unwrap();
            steps += 1;
            assert!(steps < 100, "compaction steps must finish");
        }
        for mut answer in answers {
            assert!(matches!(answer.try_recv(), Ok(Some(Ok(_)))));
        }
        // Only the newest revision at or below the last compaction is left in the key tree.
        let view = store.view();
        let old = store.range(
            &view,
            KeyRange::Single(b"k"),
            RangeOptions {
                rev: PUTS - 1,
                ..RangeOptions::default()
            },
        );
        assert!(old.is_err(), "a read below the compaction fails");
        let live = store
            .range(&view, KeyRange::Single(b"k"), RangeOptions::default())
            .unwrap();
        assert_eq!(live.kvs.len(), 1);
    }
}
