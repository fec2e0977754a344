//! Member and cluster ids, computed the way etcd 3.4 computes them, so a Keelson member started
//! with the same flags as an etcd member gets the same ids.
//!
//! Owns: the id arithmetic (SHA-1 of the sorted peer URLs and the cluster token for a member;
//! SHA-1 of the sorted member ids for the cluster). Never: decides when ids are computed (only
//! on first start; afterwards they are read back from the data dir).

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

#[cfg(test)]
mod tests {
    use super::*;

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
