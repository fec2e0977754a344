//! Member and cluster ids, computed the way etcd 3.4 computes them, so a Keelson member started
//! with the same flags as an etcd member gets the same ids.
//!
//! Owns: the id arithmetic (SHA-1 of the sorted peer URLs and the cluster token for a member;
//! SHA-1 of the sorted member ids for the cluster) and etcd's `idutil` generator of request and
//! lease ids. Never: decides when member ids are computed (only on first start; afterwards they
//! are read back from the data dir).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a SHA-1 digest.
const SHA1_BYTES: usize = 20;
/// Bytes of one SHA-1 block.
const SHA1_BLOCK: usize = 64;

/// etcd's `membership.NewMember` id: the first 8 bytes (big-endian) of SHA-1 over the sorted
/// peer URLs concatenated, then the cluster token (no separators; no time for a bootstrap
/// member).
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut bytes = Vec::new();
    for url in &urls {
        bytes.extend_from_slice(url.as_bytes());
    }
    bytes.extend_from_slice(cluster_token.as_bytes());
    first_u64(&sha1(&bytes))
}

/// etcd's `RaftCluster.genID`: the first 8 bytes of SHA-1 over the sorted member ids, each
/// 8 bytes big-endian.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_u64(&sha1(&bytes))
}

fn first_u64(digest: &[u8; SHA1_BYTES]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// SHA-1 (FIPS 180-4). Used for ids only, never for security.
pub fn sha1(data: &[u8]) -> [u8; SHA1_BYTES] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % SHA1_BLOCK != SHA1_BLOCK - 8 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(SHA1_BLOCK) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().expect("4 bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; SHA1_BYTES];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// etcd's `idutil`: bits of the id after the member prefix (timestamp and counter).
const ID_SUFFIX_BITS: u32 = 48;
/// etcd's `idutil`: bits of the counter below the timestamp.
const ID_COUNTER_BITS: u32 = 8;
/// etcd keeps only positive lease ids: `Next() & (1<<63 - 1)`.
const ID_POSITIVE_MASK: u64 = (1 << 63) - 1;

/// etcd's `idutil.Generator`: the low 16 bits of the member id, then the start time in
/// milliseconds (40 bits) and a counter (8 bits) that together increase by one per id.
///
/// Request ids tie a committed entry to the proposer waiting for it. Every member applies every
/// entry, so an id must never be taken by two members (the member prefix) nor by two runs of
/// one member whose entries may still be in the log (the start time: a restart begins past every
/// id the previous run handed out, unless it handed out more than 256 per millisecond of its
/// life). One generator per member serves both request ids and lease ids, as in etcd.
#[derive(Debug)]
pub struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl IdGenerator {
    pub fn new(member_id: u64, unix_millis: u64) -> IdGenerator {
        let low = |v: u64, bits: u32| v & ((1u64 << bits) - 1);
        IdGenerator {
            prefix: (member_id & 0xffff) << ID_SUFFIX_BITS,
            suffix: AtomicU64::new(
                low(unix_millis, ID_SUFFIX_BITS - ID_COUNTER_BITS) << ID_COUNTER_BITS,
            ),
        }
    }

    /// A generator for `member_id` started at the wall clock's current time.
    pub fn starting_now(member_id: u64) -> IdGenerator {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        IdGenerator::new(member_id, millis)
    }

    /// The next request id.
    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        self.prefix | (suffix & ((1u64 << ID_SUFFIX_BITS) - 1))
    }

    /// The next lease id: a request id masked positive, never 0 (the prefix or time is set).
    pub fn next_lease_id(&self) -> i64 {
        (self.next() & ID_POSITIVE_MASK) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_etcd_idutil() {
        let ids = IdGenerator::new(0x1234_5678_9abc_def0, 0x12_3456_789a);
        let first = ids.next();
        assert_eq!(first, 0xdef0 << 48 | 0x12_3456_789a << 8 | 1);
        assert_eq!(ids.next(), first + 1);
        // The member prefix 0xdef0 has the top bit set, which the lease mask clears.
        assert_eq!(ids.next_lease_id() as u64, (first + 2) & ID_POSITIVE_MASK);
        let high = IdGenerator::new(0xffff, 1);
        assert!(high.next_lease_id() > 0);
    }

    /// Two members proposing at once (the prefix) and a member restarted a moment later (the
    /// start time) never hand out the same request id.
    #[test]
    fn two_proposers_and_a_restart_never_collide() {
        const IDS_EACH: usize = 100_000;
        let start = 1_700_000_000_000;
        let a = member_id(&["http://10.0.0.1:2380".into()], "etcd-cluster");
        let b = member_id(&["http://10.0.0.2:2380".into()], "etcd-cluster");
        assert_ne!(a & 0xffff, b & 0xffff, "the test needs distinct prefixes");
        let first_run = IdGenerator::new(a, start);
        let other = IdGenerator::new(b, start);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..IDS_EACH {
            assert!(seen.insert(first_run.next()));
            assert!(seen.insert(other.next()));
        }
        // 100,000 ids take the counter about 390 ms ahead of the start; a restart 1 s later
        // begins past all of them.
        let restarted = IdGenerator::new(a, start + 1_000);
        for _ in 0..IDS_EACH {
            assert!(seen.insert(restarted.next()));
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_known_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn ids_match_etcd_defaults() {
        // `etcd` with default flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let member = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{member:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[member])), "cdf818194e3a8c32");
    }
}
