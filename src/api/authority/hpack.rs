//! HPACK (RFC 7541) as the authority rewriter needs it: a decoder that keeps the client's dynamic
//! table, and an encoder that writes only literals without indexing, so a block it writes leaves
//! the receiving decoder's dynamic table untouched.
//!
//! Owns the header tables and the wire representations. Never Huffman-encodes (raw literals are
//! always valid) and never inserts into the receiver's table.

use std::collections::VecDeque;

use super::huffman::{self, HuffmanError};

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What an entry costs in the dynamic table beyond its name and value (RFC 7541 §4.1).
const ENTRY_OVERHEAD_BYTES: usize = 32;

/// Why a header block could not be decoded: the peer broke HPACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer too large for any real header.
    IntegerOverflow,
    /// An index that is in neither table.
    BadIndex(usize),
    /// A dynamic table size update above the allowed maximum, or after the first header.
    BadSizeUpdate,
    Huffman(HuffmanError),
}

/// One decoded header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// The receiving side's state of one direction of a connection: the dynamic table, newest entry
/// first, and its size limits.
#[derive(Debug)]
pub struct Decoder {
    entries: VecDeque<Field>,
    size: usize,
    max_size: usize,
    /// The largest size the peer may set (the receiver's SETTINGS_HEADER_TABLE_SIZE).
    allowed_max_size: usize,
}

impl Decoder {
    pub fn new(allowed_max_size: usize) -> Decoder {
        Decoder {
            entries: VecDeque::new(),
            size: 0,
            max_size: allowed_max_size,
            allowed_max_size,
        }
    }

    /// Decodes one whole header block, calling `field` for every header in order, and updates
    /// the dynamic table as the encoder meant. The fields handed to `field` are reused buffers.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut name = Vec::new();
        let mut value = Vec::new();
        let mut headers_seen = false;
        while at < block.len() {
            let first = block[at];
            if first & 0x80 != 0 {
                let (index, used) = integer(&block[at..], 7)?;
                at += used;
                let entry = self.entry(index)?;
                field(entry.0, entry.1);
                headers_seen = true;
            } else if first & 0xe0 == 0x20 {
                let (size, used) = integer(&block[at..], 5)?;
                at += used;
                if headers_seen || size > self.allowed_max_size {
                    return Err(HpackError::BadSizeUpdate);
                }
                self.max_size = size;
                self.evict(0);
            } else {
                // Literals: with incremental indexing (01, 6-bit index), never indexed (0001)
                // or without indexing (0000), both with a 4-bit index.
                let indexing = first & 0xc0 == 0x40;
                let prefix = if indexing { 6 } else { 4 };
                let (index, used) = integer(&block[at..], prefix)?;
                at += used;
                name.clear();
                if index == 0 {
                    at += string(&block[at..], &mut name)?;
                } else {
                    name.extend_from_slice(self.entry(index)?.0);
                }
                value.clear();
                at += string(&block[at..], &mut value)?;
                field(&name, &value);
                if indexing {
                    self.insert(Field {
                        name: name.clone(),
                        value: value.clone(),
                    });
                }
                headers_seen = true;
            }
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex(0)),
            1..=61 => Ok(STATIC_TABLE[index - 1]),
            _ => self
                .entries
                .get(index - 62)
                .map(|f| (f.name.as_slice(), f.value.as_slice()))
                .ok_or(HpackError::BadIndex(index)),
        }
    }

    /// How many entries the dynamic table holds.
    #[cfg(test)]
    pub fn entries_len(&self) -> usize {
        self.entries.len()
    }

    fn insert(&mut self, field: Field) {
        let cost = field.name.len() + field.value.len() + ENTRY_OVERHEAD_BYTES;
        self.evict(cost);
        // An entry larger than the whole table empties it and is not added (§4.4).
        if cost <= self.max_size {
            self.size += cost;
            self.entries.push_front(field);
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit under the maximum size.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some(old) = self.entries.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= old.name.len() + old.value.len() + ENTRY_OVERHEAD_BYTES;
        }
    }
}

/// Decodes an HPACK integer with an `prefix_bits`-bit prefix; returns it and the bytes used.
fn integer(buf: &[u8], prefix_bits: u32) -> Result<(usize, usize), HpackError> {
    let max_prefix = (1usize << prefix_bits) - 1;
    let first = usize::from(*buf.first().ok_or(HpackError::Truncated)?) & max_prefix;
    if first < max_prefix {
        return Ok((first, 1));
    }
    let mut value = max_prefix;
    let mut shift = 0u32;
    for (i, &byte) in buf[1..].iter().enumerate() {
        // Four continuation bytes reach 2^28: far beyond any header or table size.
        if shift > 21 {
            return Err(HpackError::IntegerOverflow);
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((value, i + 2));
        }
    }
    Err(HpackError::Truncated)
}

/// Decodes a string literal, appending it to `out`; returns the bytes used.
fn string(buf: &[u8], out: &mut Vec<u8>) -> Result<usize, HpackError> {
    let huffman = buf.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let (len, used) = integer(buf, 7)?;
    let bytes = buf.get(used..used + len).ok_or(HpackError::Truncated)?;
    if huffman {
        huffman::decode(bytes, out).map_err(HpackError::Huffman)?;
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(used + len)
}

/// Appends `value` as an HPACK integer whose first byte carries `flags` above an
/// `prefix_bits`-bit prefix.
fn put_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, mut value: usize) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_integer(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends `name: value` as a literal without indexing (§6.2.2), the name by its static index
/// when it has one, never Huffman-coded.
pub fn put_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    match STATIC_TABLE.iter().position(|(n, _)| *n == name) {
        Some(i) => put_integer(out, 0, 4, i + 1),
        None => {
            out.push(0);
            put_string(out, name);
        }
    }
    put_string(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(hex: &str) -> Vec<u8> {
        let hex: String = hex.split_whitespace().collect();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode_all(decoder: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        decoder
            .decode(block, |n, v| {
                fields.push((
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                ))
            })
            .unwrap();
        fields
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rfc_7541_c4_requests_with_huffman_and_indexing() {
        let mut decoder = Decoder::new(4096);
        let first = decode_all(
            &mut decoder,
            &bytes("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
        );
        assert_eq!(
            first,
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        let second = decode_all(&mut decoder, &bytes("8286 84be 5886 a8eb 1064 9cbf"));
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        let third = decode_all(
            &mut decoder,
            &bytes("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        );
        assert_eq!(third[1], (":scheme".into(), "https".into()));
        assert_eq!(third[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(third[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(decoder.size, 164);
    }

    #[test]
    fn rfc_7541_c6_responses_evict_the_oldest_entries() {
        let mut decoder = Decoder::new(256);
        decode_all(
            &mut decoder,
            &bytes(
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 \
                 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            ),
        );
        assert_eq!(decoder.size, 222);
        let second = decode_all(&mut decoder, &bytes("4883 640e ff c1 c0 bf"));
        assert_eq!(
            second,
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(decoder.size, 222);
        assert_eq!(decoder.entries.len(), 4);
    }

    #[test]
    fn size_updates_are_checked() {
        let mut decoder = Decoder::new(4096);
        // Size update to 0 then a header: the table is emptied.
        decode_all(&mut decoder, &bytes("418c f1e3 c2e5 f23a 6ba0 ab90 f4ff"));
        assert_eq!(decoder.entries.len(), 1);
        decode_all(&mut decoder, &bytes("20 82"));
        assert!(decoder.entries.is_empty());
        // Above the allowed maximum, and after a header: refused.
        assert_eq!(
            decoder.decode(&bytes("3fe2 1f"), |_, _| {}),
            Err(HpackError::BadSizeUpdate)
        );
        assert_eq!(
            decoder.decode(&bytes("82 20"), |_, _| {}),
            Err(HpackError::BadSizeUpdate)
        );
        assert_eq!(
            decoder.decode(&bytes("be"), |_, _| {}),
            Err(HpackError::BadIndex(62))
        );
        assert_eq!(
            decoder.decode(&bytes("41 8c f1"), |_, _| {}),
            Err(HpackError::Truncated)
        );
    }

    #[test]
    fn literals_written_decode_to_the_same_fields_and_index_nothing() {
        let long = "v".repeat(300);
        let fields = [
            (":authority", "127.0.0.1:2379"),
            (":path", "/etcdserverpb.KV/Put"),
            ("grpc-timeout", "4999978u"),
            ("x-long", long.as_str()),
        ];
        let mut block = Vec::new();
        for (name, value) in fields {
            put_literal(&mut block, name.as_bytes(), value.as_bytes());
        }
        let mut decoder = Decoder::new(4096);
        assert_eq!(decode_all(&mut decoder, &block), pairs(&fields));
        assert_eq!(decoder.size, 0);
    }
}
