//! etcd's Lock and Election gRPC services (v3lockpb, v3electionpb) through gRPC clients generated
//! from etcd's own `.proto` files (the same messages the Rust etcd-client and clientv3 send),
//! against Keelson and a real etcd 3.4.23 side by side: the same calls in
//! the same order, each answer written as a line (keys, values, revisions, errors' codes and
//! messages) and the two transcripts compared. Contenders wait for their turn, a waiting lock is
//! granted when the holder unlocks, an observer sees every leader's values in order, leadership
//! passes on resignation, and a caller that gives up while waiting leaves no key behind.
//!
//! Lease ids are chosen by each server, so they are replaced by their order of appearance; header
//! revisions are compared as they are (both servers start empty and see the same writes).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::lease_client::LeaseClient;
use keelson_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseTimeToLiveRequest, RangeRequest, ResponseHeader,
};
use keelson_proto::v3electionpb::election_client::ElectionClient;
use keelson_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use keelson_proto::v3lockpb::lock_client::LockClient;
use keelson_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::transport::Channel;

type Error = tonic::Status;

/// The calls the scenarios make, with the shapes a client library gives them.
#[derive(Clone)]
struct Client {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    lock: LockClient<Channel>,
    election: ElectionClient<Channel>,
}

impl Client {
    async fn lease_grant(&mut self, ttl: i64) -> Result<i64, Error> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        Ok(self.lease.lease_grant(request).await?.into_inner().id)
    }

    async fn lease_granted_ttl(&mut self, id: i64) -> Result<i64, Error> {
        let request = LeaseTimeToLiveRequest { id, keys: false };
        let response = self.lease.lease_time_to_live(request).await?;
        Ok(response.into_inner().granted_ttl)
    }

    async fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<Vec<u8>>, Error> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("a prefix") += 1;
        let request = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: end,
            ..RangeRequest::default()
        };
        let response = self.kv.range(request).await?.into_inner();
        Ok(response.kvs.into_iter().map(|kv| kv.key).collect())
    }

    async fn lock(&mut self, name: &str, lease: i64) -> Result<LockResponse, Error> {
        let request = LockRequest {
            name: name.as_bytes().to_vec(),
            lease,
        };
        Ok(self.lock.lock(request).await?.into_inner())
    }

    async fn unlock(&mut self, key: impl Into<Vec<u8>>) -> Result<UnlockResponse, Error> {
        let request = UnlockRequest { key: key.into() };
        Ok(self.lock.unlock(request).await?.into_inner())
    }

    async fn leader(&mut self, name: &str) -> Result<LeaderResponse, Error> {
        let request = LeaderRequest {
            name: name.as_bytes().to_vec(),
        };
        Ok(self.election.leader(request).await?.into_inner())
    }

    async fn campaign(
        &mut self,
        name: &str,
        value: &str,
        lease: i64,
    ) -> Result<CampaignResponse, Error> {
        let request = CampaignRequest {
            name: name.as_bytes().to_vec(),
            lease,
            value: value.as_bytes().to_vec(),
        };
        Ok(self.election.campaign(request).await?.into_inner())
    }

    async fn proclaim(
        &mut self,
        value: &str,
        leader: Option<LeaderKey>,
    ) -> Result<ProclaimResponse, Error> {
        let request = ProclaimRequest {
            leader,
            value: value.as_bytes().to_vec(),
        };
        Ok(self.election.proclaim(request).await?.into_inner())
    }

    async fn resign(&mut self, leader: LeaderKey) -> Result<ResignResponse, Error> {
        let request = ResignRequest {
            leader: Some(leader),
        };
        Ok(self.election.resign(request).await?.into_inner())
    }

    async fn observe(&mut self, name: &str) -> Result<tonic::Streaming<LeaderResponse>, Error> {
        let request = LeaderRequest {
            name: name.as_bytes().to_vec(),
        };
        Ok(self.election.observe(request).await?.into_inner())
    }
}

/// The header revision of a response.
fn rev(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().expect("a header").revision
}

/// How long any single call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call that must keep waiting is watched for not finishing.
const STILL_WAITING: Duration = Duration::from_millis(300);
/// Values the observer must see: both leaders' first and proclaimed values.
const OBSERVED_VALUES: usize = 4;

/// Lines of what each call answered, with lease ids named by order of appearance.
#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
    leases: HashMap<i64, String>,
}

impl Transcript {
    fn lease(&mut self, id: i64) -> String {
        let next = format!("L{}", self.leases.len() + 1);
        self.leases.entry(id).or_insert(next).clone()
    }

    /// `key` with a lease id in hex after its last `/` replaced by the lease's name.
    fn key(&mut self, key: &[u8]) -> String {
        let text = String::from_utf8_lossy(key).into_owned();
        match text.rsplit_once('/') {
            Some((name, hex)) => match i64::from_str_radix(hex, 16) {
                Ok(id) => format!("{name}/{}", self.lease(id)),
                Err(_) => text,
            },
            None => text,
        }
    }

    fn push(&mut self, line: String) {
        // Shown when the test fails: how far each server got.
        eprintln!("{line}");
        self.lines.push(line);
    }

    fn error(&mut self, call: &str, status: Error) {
        self.push(format!("{call}: {:?} {}", status.code(), status.message()))
    }

    fn leader(&mut self, call: &str, leader: &LeaderKey, revision: i64) {
        let key = self.key(&leader.key);
        let lease = self.lease(leader.lease);
        self.push(format!(
            "{call}: name={} key={key} rev={} lease={lease} header_rev={revision}",
            String::from_utf8_lossy(&leader.name),
            leader.rev
        ));
    }
}

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .expect("a call took longer than its bound")
}

async fn connect(endpoint: &str) -> Client {
    let channel = bounded(common::connect(endpoint)).await.unwrap();
    Client {
        kv: KvClient::new(channel.clone()),
        lease: LeaseClient::new(channel.clone()),
        lock: LockClient::new(channel.clone()),
        election: ElectionClient::new(channel),
    }
}

async fn lock_scenario(endpoint: &str, t: &mut Transcript) {
    let mut client = connect(endpoint).await;
    let first = bounded(client.lease_grant(30)).await.unwrap();
    let second = bounded(client.lease_grant(30)).await.unwrap();
    t.lease(first);
    t.lease(second);

    let held = bounded(client.lock("queue", first)).await.unwrap();
    let held_key = held.key.clone();
    let line = format!("lock: key={} rev={}", t.key(&held_key), rev(&held.header));
    t.push(line);
    // Locking again with the same lease is the same acquisition.
    let again = bounded(client.lock("queue", first)).await.unwrap();
    let line = format!(
        "lock again: key={} rev={}",
        t.key(&again.key),
        rev(&again.header)
    );
    t.push(line);

    // A second contender waits until the holder unlocks.
    let mut contender = connect(endpoint).await;
    let waiting = tokio::spawn(async move { contender.lock("queue", second).await });
    tokio::time::sleep(STILL_WAITING).await;
    t.push(format!("contender waiting: {}", !waiting.is_finished()));
    let unlocked = bounded(client.unlock(held_key)).await.unwrap();
    t.push(format!("unlock: rev={}", rev(&unlocked.header)));
    let granted = bounded(waiting).await.unwrap().unwrap();
    let line = format!(
        "contender granted: key={} rev={}",
        t.key(&granted.key),
        rev(&granted.header)
    );
    t.push(line);

    // A third contender gives up while waiting: its key must not stay behind.
    let third = bounded(client.lease_grant(30)).await.unwrap();
    t.lease(third);
    let mut quitter = connect(endpoint).await;
    let gave_up = tokio::time::timeout(STILL_WAITING, quitter.lock("queue", third)).await;
    t.push(format!("quitter timed out: {}", gave_up.is_err()));
    drop(quitter);
    let mut left = Vec::new();
    for _ in 0..50 {
        left = bounded(client.keys_with_prefix("queue/")).await.unwrap();
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<String> = left.iter().map(|k| t.key(k)).collect();
    t.push(format!("keys after the quitter left: {left:?}"));
    bounded(client.unlock(granted.key.clone())).await.unwrap();

    // Without a lease the server grants one (60 s) and the key names it.
    let own = bounded(client.lock("solo", 0)).await.unwrap();
    let own_key = String::from_utf8_lossy(&own.key).into_owned();
    let lease = i64::from_str_radix(own_key.rsplit_once('/').unwrap().1, 16).unwrap();
    let ttl = bounded(client.lease_granted_ttl(lease)).await.unwrap();
    t.push(format!(
        "lock without lease: granted ttl {ttl} rev={}",
        rev(&own.header)
    ));

    match bounded(client.lock("bad", 0x7777)).await {
        Ok(r) => t.push(format!("lock with unknown lease: {:?}", r.key)),
        Err(e) => t.error("lock with unknown lease", e),
    }
    let missing = bounded(client.unlock("never/held")).await.unwrap();
    t.push(format!(
        "unlock of a missing key: rev={}",
        rev(&missing.header)
    ));
}

async fn election_scenario(endpoint: &str, t: &mut Transcript) {
    let mut client = connect(endpoint).await;
    match bounded(client.leader("vote")).await {
        Ok(r) => t.push(format!("leader before any: {:?}", r.kv.map(|kv| kv.value))),
        Err(e) => t.error("leader before any", e),
    }
    // etcd sends an Observe stream's headers with its first value, so the client's call returns
    // only then: it runs on its own while the rest goes on.
    let mut observer = connect(endpoint).await;
    let observing = tokio::spawn(async move {
        let mut observed = observer.observe("vote").await?;
        let mut seen = Vec::new();
        for _ in 0..OBSERVED_VALUES {
            seen.extend(observed.message().await?);
        }
        Ok::<_, Error>(seen)
    });
    tokio::time::sleep(STILL_WAITING).await;

    let first = bounded(client.lease_grant(30)).await.unwrap();
    let second = bounded(client.lease_grant(30)).await.unwrap();
    let won = bounded(client.campaign("vote", "one", first))
        .await
        .unwrap();
    let leader = won.leader.clone().unwrap();
    t.leader("campaign", &leader, rev(&won.header));

    let mut rival = connect(endpoint).await;
    let waiting = tokio::spawn(async move { rival.campaign("vote", "two", second).await });
    tokio::time::sleep(STILL_WAITING).await;
    t.push(format!("rival waiting: {}", !waiting.is_finished()));

    let proclaimed = bounded(client.proclaim("one-b", Some(leader.clone())))
        .await
        .unwrap();
    t.push(format!("proclaim: rev={}", rev(&proclaimed.header)));
    let now = bounded(client.leader("vote")).await.unwrap();
    let kv = now.kv.clone().unwrap();
    let line = format!(
        "leader: key={} value={} create={} mod={} version={} header_rev={}",
        t.key(&kv.key),
        String::from_utf8_lossy(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        rev(&now.header)
    );
    t.push(line);

    let stale = LeaderKey {
        rev: leader.rev + 100,
        ..leader.clone()
    };
    match bounded(client.proclaim("x", Some(stale))).await {
        Ok(_) => t.push("proclaim with a stale rev: ok".into()),
        Err(e) => t.error("proclaim with a stale rev", e),
    }
    match bounded(client.proclaim("x", None)).await {
        Ok(_) => t.push("proclaim without a leader: ok".into()),
        Err(e) => t.error("proclaim without a leader", e),
    }

    let resigned = bounded(client.resign(leader)).await.unwrap();
    t.push(format!("resign: rev={}", rev(&resigned.header)));
    let rival_won = bounded(waiting).await.unwrap().unwrap();
    let rival_leader = rival_won.leader.clone().unwrap();
    t.leader("rival campaign", &rival_leader, rev(&rival_won.header));
    bounded(client.proclaim("two-b", Some(rival_leader)))
        .await
        .unwrap();

    // The observer saw every value of both leaders, in order.
    for seen in bounded(observing).await.unwrap().unwrap() {
        let kv = seen.kv.clone().unwrap();
        let line = format!(
            "observed: key={} value={} mod={} header_rev={}",
            t.key(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.mod_revision,
            rev(&seen.header)
        );
        t.push(line);
    }
}

fn run(endpoint: &str) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut transcript = Transcript::default();
    runtime.block_on(async {
        lock_scenario(endpoint, &mut transcript).await;
        election_scenario(endpoint, &mut transcript).await;
    });
    transcript.lines
}

#[test]
fn lock_and_election_services_match_etcd() {
    let Some(servers) = common::side_by_side("lock_and_election_services_match_etcd") else {
        return;
    };
    let etcd = run(&servers.etcd.endpoint());
    let keelson = run(&servers.keelson.endpoint());
    let differing = common::differing_steps(&etcd, &keelson);
    assert!(
        differing.is_empty() && etcd.len() == keelson.len(),
        "transcripts differ:\n{}\netcd:\n{}\nkeelson:\n{}",
        differing.join("\n"),
        etcd.join("\n"),
        keelson.join("\n")
    );
}
