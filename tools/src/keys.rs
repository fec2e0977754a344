//! Keys, values and the cheap random numbers that pick them.
//!
//! Keys are the decimal key index, zero-padded to the key size (`00000042`),
//! so a run's keys can be read back with etcdctl and addressed as a range
//! (`range 00000000 00001000`). etcd's benchmark uses binary varints of the
//! same length; the byte counts, and so the work per request, are the same.

/// Number of decimal digits of `n` (`digits(0) == 1`).
pub fn digits(n: u64) -> usize {
    let mut d = 1;
    let mut n = n / 10;
    while n > 0 {
        d += 1;
        n /= 10;
    }
    d
}

/// The key for index `index`, zero-padded to `size` bytes. Callers validate
/// that the key space fits; an index with more digits than `size` still
/// yields a distinct (longer) key rather than a collision.
pub fn key(index: u64, size: usize) -> Vec<u8> {
    format!("{index:0size$}").into_bytes()
}

/// A value of `size` bytes whose leading digits are `seq`, zero-padded, so a
/// watcher can tell which put produced an event.
pub fn seq_value(seq: u64, size: usize) -> Vec<u8> {
    format!("{seq:0size$}").into_bytes()
}

/// Reads back the sequence number written by [`seq_value`].
pub fn parse_seq(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Decodes `\0` (a NUL byte) and `\\` in command-line keys, so etcd's
/// "every key from here on" range end can be typed. Other text is literal.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(other) => out.extend([b'\\', other]),
            None => out.push(b'\\'),
        }
    }
    out
}

/// splitmix64: a tiny, fast, well-mixed generator. Benchmark keys need
/// spread, not cryptographic strength, and a seed makes runs repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for key spaces.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(u64::MAX), 20);
        assert_eq!(key(42, 8), b"00000042");
        assert_eq!(key(123, 2), b"123");
        let v = seq_value(7, 32);
        assert_eq!(v.len(), 32);
        assert_eq!(parse_seq(&v), Some(7));
        assert_eq!(parse_seq(b"x"), None);
    }

    #[test]
    fn unescape_nul() {
        assert_eq!(unescape("\\0"), vec![0]);
        assert_eq!(unescape("a\\\\b"), b"a\\b");
        assert_eq!(unescape("a\\nb\\"), b"a\\nb\\");
        assert_eq!(unescape(""), b"");
    }

    #[test]
    fn rng_is_seeded_and_bounded() {
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[a.below(10) as usize] = true;
            assert!((0.0..1.0).contains(&b.unit()));
        }
        assert!(seen.iter().all(|&s| s), "every value below 10 drawn");
    }
}
