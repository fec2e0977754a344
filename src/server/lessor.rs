//! The lessor: etcd 3.4's `lease.lessor` state in memory — every lease with its granted TTL,
//! checkpointed remaining TTL, expiry and attached keys — and the leader's decisions about it
//! (renew, which leases expired, which need a checkpoint).
//!
//! It changes only by what the apply loop tells it ([`Lessor::applied`], after the store
//! applied a request) and by renewals (keep-alive, which etcd also keeps out of the log). It
//! never reads a clock (every call takes `now`, so tests use a fake clock), never writes the
//! store, and never revokes anything itself: expired leases are handed to the node, which
//! proposes their revocation through the log.
//!
//! Restart: [`Lessor::restore`] reads the `lease` tree and attaches every live key carrying a
//! lease (etcd does this in its mvcc restore). A lease resumes with its checkpointed remaining
//! TTL, or its full TTL if it never was checkpointed (etcd's behaviour), counted from `now`.

use super::WriteRequest;
use super::apply::LeaseLookup;
use keelson_proto::etcdserverpb::LeaseCheckpoint;
use keelson_storage::mvcc::{Change, KeyRange, RangeOptions, Store};
use keelson_storage::schema;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// etcd's `MaxLeaseTTL`: a longer grant fails with `LeaseTtlTooLarge`.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's default `--experimental-lease-checkpoint-interval`. A lease whose remaining TTL is
/// longer than this gets its remaining TTL written through the log this often.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd's `maxLeaseCheckpointBatchSize`: checkpoints per log entry.
pub const MAX_CHECKPOINT_BATCH: usize = 1000;
/// etcd's `expiredLeaseRetryInterval`: an expired lease whose revocation was proposed but has
/// not been applied by then is proposed again.
pub const EXPIRED_RETRY: Duration = Duration::from_secs(3);
/// Revocations handed out per call of [`Lessor::expired`]; the node calls it every tick
/// (100 ms by default), which makes etcd's `leaseRevokeRate` of 1000 per second.
pub const MAX_REVOKES_PER_CHECK: usize = 100;

/// etcd's `leasepb.Lease`, the value of the `lease` tree (key: the id, 8 bytes big-endian).
#[derive(Clone, PartialEq, Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// The `lease` tree key of lease `id`.
pub fn lease_key(id: i64) -> [u8; 8] {
    id.to_be_bytes()
}

/// etcd's minimum lease TTL: one and a half election timeouts, rounded up to whole seconds
/// (`minTTL = (3*electionTicks)/2 * heartbeat`), so a lease cannot expire during a leader change.
pub fn min_ttl_seconds(election_ticks: usize, heartbeat: Duration) -> i64 {
    let ticks = (3 * election_ticks as u128) / 2;
    let millis = ticks * heartbeat.as_millis();
    i64::try_from(millis.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// One lease as the lessor holds it.
#[derive(Clone, Debug)]
struct Lease {
    /// Granted TTL in seconds, after the minimum was applied.
    ttl: i64,
    /// The last checkpointed remaining TTL in seconds; 0 when none (or cleared by a renewal).
    remaining_ttl: i64,
    expiry: Instant,
    keys: BTreeSet<Vec<u8>>,
    /// When this expired lease's revocation was last handed to the node.
    revoke_proposed: Option<Instant>,
    /// When its remaining TTL should next be checkpointed; `None`: not needed.
    next_checkpoint: Option<Instant>,
}

/// What a lease looks like to `LeaseTimeToLive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    /// Remaining seconds, truncated as etcd's `int64(Remaining().Seconds())` does.
    pub remaining: i64,
    pub granted_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

/// The result of a renewal on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewed {
    pub ttl: i64,
    /// The lease had a checkpointed remaining TTL: the caller must propose a checkpoint of 0 so a
    /// restart does not cut the renewed lease short (etcd's Renew does the same).
    pub clear_checkpoint: bool,
}

/// Why a renewal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewError {
    /// The lease does not exist, or has expired and its revocation is on its way.
    NotFound,
    /// This member is not the leader: only the leader's lessor keeps expiries (etcd's
    /// `ErrNotPrimary`); the caller forwards the renewal to the leader.
    NotPrimary,
}

/// Every lease of the node. See the module comment.
#[derive(Debug)]
pub struct Lessor {
    leases: HashMap<i64, Lease>,
    /// The lease each attached key belongs to (etcd's `itemMap`).
    key_lease: HashMap<Vec<u8>, i64>,
    min_ttl: i64,
    /// Whether this lessor keeps expiries (etcd's primary lessor: the leader's). A demoted
    /// lessor tracks leases and their keys but never expires, renews or checkpoints one.
    primary: bool,
}

impl Lessor {
    /// An empty lessor granting at least `min_ttl` seconds.
    pub fn new(min_ttl: i64) -> Lessor {
        Lessor {
            leases: HashMap::new(),
            key_lease: HashMap::new(),
            min_ttl: min_ttl.max(1),
            primary: true,
        }
    }

    /// etcd's `Promote`: this member became the leader. Every lease expires `extend` (an
    /// election timeout) plus its remaining TTL (the checkpointed one, or its whole TTL) from
    /// `now`, so a leader change never revokes leases their holders kept alive with the old
    /// leader.
    pub fn promote(&mut self, now: Instant, extend: Duration) {
        self.primary = true;
        for lease in self.leases.values_mut() {
            let remaining = if lease.remaining_ttl > 0 {
                lease.remaining_ttl
            } else {
                lease.ttl
            };
            lease.expiry = now + extend + secs(remaining);
            lease.revoke_proposed = None;
            lease.schedule_checkpoint(now);
        }
    }

    /// etcd's `Demote`: this member is no longer the leader; its leases stop expiring.
    pub fn demote(&mut self) {
        self.primary = false;
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// The lessor of a store: its `lease` tree, with the live keys attached, expiries counted
    /// from `now`.
    pub fn restore(store: &Store, min_ttl: i64, now: Instant) -> Result<Lessor, String> {
        let mut lessor = Lessor::new(min_ttl);
        let view = store.view();
        let tree = view
            .txn()
            .range(schema::TREE_LEASE, ..)
            .map_err(|e| format!("read the lease tree: {e}"))?;
        for item in tree {
            let (_, value) = item.map_err(|e| format!("read the lease tree: {e}"))?;
            let record = LeaseRecord::decode(value)
                .map_err(|e| format!("a lease record does not decode: {e}"))?;
            let resume = if record.remaining_ttl > 0 {
                record.remaining_ttl
            } else {
                record.ttl
            };
            let mut lease = Lease::new(record.ttl, now, resume);
            lease.remaining_ttl = record.remaining_ttl;
            lessor.leases.insert(record.id, lease);
        }
        // Keys attach only to leases that exist, so with none there is nothing to look for
        // (and no reason to read every live record).
        if lessor.leases.is_empty() {
            return Ok(lessor);
        }
        let all = KeyRange::Span {
            start: b"\0",
            end: None,
        };
        let live = store
            .range(&view, all, RangeOptions::default())
            .map_err(|e| format!("read the live keys: {e}"))?;
        for kv in live.kvs.iter().filter(|kv| kv.lease != 0) {
            // etcd logs and skips a key whose lease is gone; so does this.
            lessor.attach(kv.key, kv.lease);
        }
        Ok(lessor)
    }

    /// Updates the leases after the store applied `request` with `changes`, at `now`.
    pub fn applied(&mut self, request: &WriteRequest, changes: &[Change], now: Instant) {
        for change in changes {
            match change {
                Change::Put(kv) => {
                    self.detach(&kv.key);
                    if kv.lease != 0 {
                        self.attach(&kv.key, kv.lease);
                    }
                }
                Change::Delete { key, .. } => self.detach(key),
            }
        }
        match request {
            WriteRequest::LeaseGrant(grant) => {
                let ttl = self.granted_ttl(grant.ttl);
                self.leases.insert(grant.id, Lease::new(ttl, now, ttl));
                crate::metrics::lease().granted.inc();
                crate::metrics::lease().ttl_seconds.observe(ttl as f64);
            }
            WriteRequest::LeaseRevoke(revoke) => {
                if let Some(lease) = self.leases.remove(&revoke.id) {
                    crate::metrics::lease().revoked.inc();
                    for key in lease.keys {
                        self.key_lease.remove(&key);
                    }
                }
            }
            WriteRequest::LeaseCheckpoint(checkpoint) => {
                for cp in &checkpoint.checkpoints {
                    if let Some(lease) = self.leases.get_mut(&cp.id) {
                        lease.remaining_ttl = cp.remaining_ttl;
                    }
                }
            }
            _ => {}
        }
    }

    /// The TTL a grant of `ttl` seconds gets (etcd raises it to the minimum).
    pub fn granted_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    /// etcd's Renew on the leader: restarts the lease's TTL from `now`. An unknown or already
    /// expired lease (its revocation is on its way through the log) is not found; a lessor that
    /// is not the leader's renews nothing.
    pub fn renew(&mut self, id: i64, now: Instant) -> Result<Renewed, RenewError> {
        if !self.primary {
            return Err(RenewError::NotPrimary);
        }
        let lease = self.leases.get_mut(&id).ok_or(RenewError::NotFound)?;
        if lease.expiry <= now {
            return Err(RenewError::NotFound);
        }
        lease.expiry = now + secs(lease.ttl);
        lease.schedule_checkpoint(now);
        crate::metrics::lease().renewed.inc();
        Ok(Renewed {
            ttl: lease.ttl,
            clear_checkpoint: lease.remaining_ttl > 0,
        })
    }

    /// `LeaseTimeToLive` of lease `id`.
    pub fn status(&self, id: i64, now: Instant) -> Option<LeaseStatus> {
        let lease = self.leases.get(&id)?;
        let remaining = lease.expiry.saturating_duration_since(now).as_secs();
        Some(LeaseStatus {
            remaining: i64::try_from(remaining).unwrap_or(i64::MAX),
            granted_ttl: lease.ttl,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    /// Every lease id, soonest expiry first (etcd's `Leases` order).
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<(Instant, i64)> =
            self.leases.iter().map(|(id, l)| (l.expiry, *id)).collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Expired leases whose revocation the node should propose now: not proposed yet, or
    /// proposed more than [`EXPIRED_RETRY`] ago. At most [`MAX_REVOKES_PER_CHECK`].
    pub fn expired(&mut self, now: Instant) -> Vec<i64> {
        if !self.primary {
            return Vec::new();
        }
        let mut due: Vec<(Instant, i64)> = self
            .leases
            .iter()
            .filter(|(_, l)| {
                l.expiry <= now
                    && l.revoke_proposed
                        .is_none_or(|at| now.saturating_duration_since(at) >= EXPIRED_RETRY)
            })
            .map(|(id, l)| (l.expiry, *id))
            .collect();
        due.sort();
        due.truncate(MAX_REVOKES_PER_CHECK);
        for (_, id) in &due {
            if let Some(lease) = self.leases.get_mut(id) {
                if lease.revoke_proposed.is_none() {
                    crate::metrics::lease().expired.inc();
                }
                lease.revoke_proposed = Some(now);
            }
        }
        due.into_iter().map(|(_, id)| id).collect()
    }

    /// Checkpoints due at `now` (remaining TTL in whole seconds, rounded up), at most
    /// [`MAX_CHECKPOINT_BATCH`]; each lease is rescheduled.
    pub fn checkpoints_due(&mut self, now: Instant) -> Vec<LeaseCheckpoint> {
        let mut due = Vec::new();
        if !self.primary {
            return due;
        }
        for (id, lease) in self.leases.iter_mut() {
            if due.len() == MAX_CHECKPOINT_BATCH {
                break;
            }
            if lease.expiry <= now || lease.next_checkpoint.is_none_or(|at| at > now) {
                continue;
            }
            let remaining = lease.expiry.duration_since(now).as_millis().div_ceil(1000);
            due.push(LeaseCheckpoint {
                id: *id,
                remaining_ttl: i64::try_from(remaining).unwrap_or(i64::MAX),
            });
            lease.schedule_checkpoint(now);
        }
        due.sort_by_key(|cp| cp.id);
        due
    }

    fn attach(&mut self, key: &[u8], id: i64) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.to_vec());
            self.key_lease.insert(key.to_vec(), id);
        }
    }

    fn detach(&mut self, key: &[u8]) {
        if let Some(id) = self.key_lease.remove(key)
            && let Some(lease) = self.leases.get_mut(&id)
        {
            lease.keys.remove(key);
        }
    }
}

impl Lease {
    /// A lease of `ttl` seconds expiring `resume` seconds after `now`.
    fn new(ttl: i64, now: Instant, resume: i64) -> Lease {
        let mut lease = Lease {
            ttl,
            remaining_ttl: 0,
            expiry: now + secs(resume),
            keys: BTreeSet::new(),
            revoke_proposed: None,
            next_checkpoint: None,
        };
        lease.schedule_checkpoint(now);
        lease
    }

    /// etcd's `scheduleCheckpointIfNeeded`: only a lease with more than an interval left.
    fn schedule_checkpoint(&mut self, now: Instant) {
        self.next_checkpoint = (self.expiry.saturating_duration_since(now) > CHECKPOINT_INTERVAL)
            .then(|| now + CHECKPOINT_INTERVAL);
    }
}

/// `seconds` as a duration; capped so `Instant + Duration` cannot overflow for any TTL a grant
/// accepts (up to [`MAX_LEASE_TTL`], about 285 years).
fn secs(seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(seconds.clamp(0, MAX_LEASE_TTL)).unwrap_or(0))
}

impl LeaseLookup for Lessor {
    fn exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn min_ttl(&self) -> i64 {
        self.min_ttl
    }
}
