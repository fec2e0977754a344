//! KV workers: put, range, txn-put and txn-mixed, one request per call.

use keelson_proto::etcdserverpb::kv_client::KvClient;
use keelson_proto::etcdserverpb::request_op::Request;
use keelson_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;

use crate::args::{Consistency, KeyGen, PutOpts, RangeOpts, TxnMixedOpts, TxnPutOpts};
use crate::conn::status_line;
use crate::driver::Worker;
use crate::keys::{self, Rng};

/// Breakdown classes of txn-mixed, indexed by the value `call` returns.
pub const TXN_MIXED_CLASSES: [&str; 2] = ["read", "write"];
const READ: usize = 0;
const WRITE: usize = 1;
/// Filler byte of written values; content does not matter to the server.
const VALUE_BYTE: u8 = b'v';
/// Mixed into client seeds so client 0 does not start at the RNG's origin.
const SEED_SALT: u64 = 0x6b65_656c_736f_6e00;

fn seed(client: usize) -> u64 {
    SEED_SALT ^ client as u64
}

/// The key index for request `seq`: the next in turn, or a random one.
fn pick(keys: &KeyGen, seq: u64, rng: &mut Rng) -> u64 {
    if keys.sequential {
        seq % keys.key_space_size
    } else {
        rng.below(keys.key_space_size)
    }
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

pub struct PutWorker {
    kv: KvClient<Channel>,
    keys: KeyGen,
    value: Vec<u8>,
    rng: Rng,
}

impl PutWorker {
    pub fn new(channel: Channel, o: &PutOpts, client: usize) -> Self {
        PutWorker {
            kv: KvClient::new(channel),
            keys: o.keys.clone(),
            value: vec![VALUE_BYTE; o.val_size],
            rng: Rng::new(seed(client)),
        }
    }
}

impl Worker for PutWorker {
    async fn call(&mut self, seq: u64) -> Result<usize, String> {
        let index = pick(&self.keys, seq, &mut self.rng);
        let request = PutRequest {
            key: keys::key(index, self.keys.key_size),
            value: self.value.clone(),
            ..Default::default()
        };
        self.kv.put(request).await.map_err(|s| status_line(&s))?;
        Ok(0)
    }
}

pub struct RangeWorker {
    kv: KvClient<Channel>,
    request: RangeRequest,
}

impl RangeWorker {
    pub fn new(channel: Channel, o: &RangeOpts) -> Self {
        RangeWorker {
            kv: KvClient::new(channel),
            request: RangeRequest {
                key: o.key.clone(),
                range_end: o.end.clone(),
                limit: o.limit,
                serializable: o.consistency == Consistency::Serializable,
                keys_only: o.keys_only,
                count_only: o.count_only,
                ..Default::default()
            },
        }
    }
}

impl Worker for RangeWorker {
    async fn call(&mut self, _seq: u64) -> Result<usize, String> {
        self.kv
            .range(self.request.clone())
            .await
            .map_err(|s| status_line(&s))?;
        Ok(0)
    }
}

pub struct TxnPutWorker {
    kv: KvClient<Channel>,
    keys: KeyGen,
    ops: u64,
    value: Vec<u8>,
}

impl TxnPutWorker {
    pub fn new(channel: Channel, o: &TxnPutOpts) -> Self {
        TxnPutWorker {
            kv: KvClient::new(channel),
            keys: o.keys.clone(),
            ops: o.txn_ops,
            value: vec![VALUE_BYTE; o.val_size],
        }
    }
}

impl Worker for TxnPutWorker {
    async fn call(&mut self, seq: u64) -> Result<usize, String> {
        // Consecutive indices, so the ops of one txn never share a key
        // (argument parsing ensures txn-ops <= key-space-size).
        let success = (0..self.ops)
            .map(|j| {
                let index = (seq * self.ops + j) % self.keys.key_space_size;
                put_op(keys::key(index, self.keys.key_size), self.value.clone())
            })
            .collect();
        let txn = TxnRequest {
            success,
            ..Default::default()
        };
        self.kv.txn(txn).await.map_err(|s| status_line(&s))?;
        Ok(0)
    }
}

pub struct TxnMixedWorker {
    kv: KvClient<Channel>,
    keys: KeyGen,
    value: Vec<u8>,
    read_share: f64,
    read: RangeRequest,
    rng: Rng,
}

impl TxnMixedWorker {
    pub fn new(channel: Channel, o: &TxnMixedOpts, client: usize) -> Self {
        // Like etcd's benchmark, reads scan from the first key ("\0" to the
        // end key, or to the end of the keyspace), capped by --limit.
        let end = if o.end_key.is_empty() {
            vec![0]
        } else {
            o.end_key.clone()
        };
        TxnMixedWorker {
            kv: KvClient::new(channel),
            keys: o.keys.clone(),
            value: vec![VALUE_BYTE; o.val_size],
            read_share: o.rw_ratio / (1.0 + o.rw_ratio),
            read: RangeRequest {
                key: vec![0],
                range_end: end,
                limit: o.limit,
                serializable: o.consistency == Consistency::Serializable,
                ..Default::default()
            },
            rng: Rng::new(seed(client)),
        }
    }
}

impl Worker for TxnMixedWorker {
    async fn call(&mut self, seq: u64) -> Result<usize, String> {
        let (op, class) = if self.rng.unit() < self.read_share {
            let op = RequestOp {
                request: Some(Request::RequestRange(self.read.clone())),
            };
            (op, READ)
        } else {
            let index = seq % self.keys.key_space_size;
            (
                put_op(keys::key(index, self.keys.key_size), self.value.clone()),
                WRITE,
            )
        };
        let txn = TxnRequest {
            success: vec![op],
            ..Default::default()
        };
        self.kv.txn(txn).await.map_err(|s| status_line(&s))?;
        Ok(class)
    }
}
