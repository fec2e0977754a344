//! Committed entries into the MVCC store (etcd's server.go apply side): one B+tree write
//! transaction per batch that also records the last index applied, so a crash leaves either the
//! whole batch with its index or neither.
//!
//! After the commit (unsynced: the WAL holds the entries durably), the view is published, the
//! status updated, the watch hub given the batch's changes, and the proposers answered.
//!
//! Owns: the batch transaction and the order of what follows it. Never: decides what a request
//! does (`crate::server::apply` does), applies an index twice or out of order, answers before
//! the commit.

use super::codec::Payload;
use super::core::Core;
use crate::errors::EtcdError;
use crate::raft::{Entry, EntryType};
use crate::server::apply::{self, ApplyError};
use crate::server::{WriteRequest, WriteResponse};
use keelson_proto::etcdserverpb::ResponseHeader;

impl Core {
    /// Applies committed entries in one B+tree transaction, then answers their proposers.
    pub(super) fn apply(&mut self, committed: Vec<Entry>) {
        let (Some(first), Some(last)) = (committed.first(), committed.last()) else {
            return;
        };
        if self.shared.is_poisoned() {
            return;
        }
        assert_eq!(
            first.index,
            self.applied + 1,
            "committed entries start right after the applied index"
        );
        let last = last.index;
        let store = self.shared.store.load_full();
        let shared = self.shared.clone();
        // Held for the batch: apply decides from the lessor and updates it entry by entry.
        let mut lessor = shared.lessor.lock();
        let now = self.clock.now();
        let mut write = match store.begin_write() {
            Ok(write) => write,
            Err(e) => return self.fail(&format!("begin a B+tree write: {e}")),
        };
        let mut answers = Vec::new();
        let mut started = Vec::new();
        let mut members_changed = false;
        // Every change of the batch, in revision order, for the watch hub.
        let mut changes = Vec::new();
        for (expected, entry) in (first.index..).zip(&committed) {
            assert_eq!(entry.index, expected, "committed entries are contiguous");
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                // Leader no-ops and conf changes (a static membership proposes none) only move
                // the index.
                continue;
            }
            let (id, request) = match super::codec::decode_entry(&entry.data) {
                Ok((id, Payload::Write(request))) => (id, request),
                Ok((_, Payload::Attributes(member))) => {
                    match super::members::apply_attributes(&mut write, &member) {
                        Ok(changed) => members_changed |= changed,
                        Err(e) => {
                            drop(write);
                            return self.fail(&format!("apply entry {}: {e}", entry.index));
                        }
                    }
                    if member.id == self.member_id
                        && member.name == self.attributes.name
                        && member.client_ur_ls == self.attributes.client_urls
                    {
                        self.published = true;
                    }
                    continue;
                }
                Err(why) => {
                    drop(write);
                    return self.fail(&format!("entry {} in the log: {why}", entry.index));
                }
            };
            let apply_started = std::time::Instant::now();
            let result = apply::apply(&mut write, &request, &*lessor);
            crate::log::slow::check_apply(apply_started, id, &request, &result);
            match result {
                Ok(applied) => {
                    lessor.applied(&request, &applied.changes, now);
                    changes.extend(applied.changes);
                    let physical = matches!(&request, WriteRequest::Compaction(c) if c.physical);
                    if let Some(rev) = applied.compaction {
                        started.push((rev, physical.then_some(id), applied.response.clone()));
                    }
                    if !(physical && applied.compaction.is_some()) {
                        answers.push((id, Ok(applied.response)));
                    }
                }
                Err(ApplyError::Etcd(error)) => answers.push((id, Err(error))),
                Err(ApplyError::Fatal(e)) => {
                    drop(write);
                    return self.fail(&format!("apply entry {}: {e}", entry.index));
                }
            }
        }
        let committed_ok = write
            .set_consistent_index(last)
            .and_then(|()| write.commit_deferred());
        if let Err(e) = committed_ok {
            return self.fail(&format!("commit applied entries: {e}"));
        }
        drop(lessor);
        if members_changed {
            self.reload_members();
        }
        self.applied = last;
        self.raw.advance_apply_to(last);
        // Before any reply, so a caller that saw its write applied sees it in the status too.
        self.publish_status();
        // After the view showing the batch is published, so a watcher catching up from the store
        // and the hub agree on what exists; one call per batch keeps the hub's lock cheap.
        self.shared.watch.notify(store.current_rev(), &changes);
        let term = self.raw.raft.term;
        for (id, answer) in answers {
            if let Some(reply) = self.waiters.take(id) {
                let _ = reply.send(answer.map(|r| self.with_header(r, term)));
            }
        }
        for (rev, physical_id, response) in started {
            let reply = physical_id
                .and_then(|id| self.waiters.take(id))
                .map(|reply| (reply, self.with_header(response, term)));
            self.compactions.push(store.compaction_job(rev), reply);
        }
    }

    /// The member list as the store now records it, for `MemberList` and the transport.
    pub(super) fn reload_members(&mut self) {
        let view = self.shared.store.load().view();
        match super::members::read_members(view.txn()) {
            Ok(members) => *self.shared.members.lock() = members,
            Err(e) => self.fail(&format!("read the members: {e}")),
        }
    }

    /// A store failure while applying: the batch is dropped uncommitted, the node poisoned and
    /// every waiter failed.
    fn fail(&mut self, why: &str) {
        self.shared.poison(why);
        self.fail_all(EtcdError::Stopped);
    }

    fn with_header(&self, mut response: WriteResponse, term: u64) -> WriteResponse {
        let header = match &mut response {
            WriteResponse::Put(r) => &mut r.header,
            WriteResponse::DeleteRange(r) => &mut r.header,
            WriteResponse::Txn(r) => &mut r.header,
            WriteResponse::Compaction(r) => &mut r.header,
            WriteResponse::LeaseGrant(r) => &mut r.header,
            WriteResponse::LeaseRevoke(r) => &mut r.header,
            WriteResponse::LeaseCheckpoint(r) => &mut r.header,
            // etcd answers alarms without a header.
            WriteResponse::Alarm(_) => return response,
        };
        let header = header.get_or_insert_with(ResponseHeader::default);
        header.cluster_id = self.cluster_id;
        header.member_id = self.member_id;
        header.raft_term = term;
        response
    }
}
