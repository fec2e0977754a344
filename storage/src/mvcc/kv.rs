//! The value stored under each revision in the key tree: etcd's `mvccpb.KeyValue`, in its
//! protobuf wire form, encoded and decoded here by hand.
//!
//! Storing etcd's own message keeps records byte-compatible with what etcd writes, and a hand
//! decoder can borrow `key` and `value` straight from the memory map instead of copying them.
//! Field numbers (mvccpb/kv.proto): 1 key, 2 create_revision, 3 mod_revision, 4 version,
//! 5 value, 6 lease. Zero and empty fields are omitted, as proto3 encoders do.

/// A `KeyValue` whose byte fields borrow from the buffer it was decoded from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyValueRef<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: &'a [u8],
    pub lease: i64,
}

/// An owned `KeyValue`, for results that outlive the snapshot they were read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: Vec<u8>,
    pub lease: i64,
}

impl KeyValue {
    pub fn as_ref(&self) -> KeyValueRef<'_> {
        KeyValueRef {
            key: &self.key,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: &self.value,
            lease: self.lease,
        }
    }
}

impl KeyValueRef<'_> {
    pub fn to_owned(&self) -> KeyValue {
        KeyValue {
            key: self.key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value.to_vec(),
            lease: self.lease,
        }
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LENGTH_DELIMITED: u8 = 2;
const WIRE_FIXED32: u8 = 5;

const FIELD_KEY: u64 = 1;
const FIELD_CREATE_REVISION: u64 = 2;
const FIELD_MOD_REVISION: u64 = 3;
const FIELD_VERSION: u64 = 4;
const FIELD_VALUE: u64 = 5;
const FIELD_LEASE: u64 = 6;

/// Why a stored record could not be decoded: the file is corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed KeyValue record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_int64_field(out: &mut Vec<u8>, field: u64, value: i64) {
    if value != 0 {
        put_varint(out, (field << 3) | u64::from(WIRE_VARINT));
        // Protobuf int64 is the two's complement bit pattern as an unsigned varint.
        put_varint(out, value as u64);
    }
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_varint(out, (field << 3) | u64::from(WIRE_LENGTH_DELIMITED));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

impl KeyValueRef<'_> {
    /// Appends the wire form to `out`, fields in number order as Go's encoder writes them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes_field(out, FIELD_KEY, self.key);
        put_int64_field(out, FIELD_CREATE_REVISION, self.create_revision);
        put_int64_field(out, FIELD_MOD_REVISION, self.mod_revision);
        put_int64_field(out, FIELD_VERSION, self.version);
        put_bytes_field(out, FIELD_VALUE, self.value);
        put_int64_field(out, FIELD_LEASE, self.lease);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key.len() + self.value.len() + 40);
        self.encode(&mut out);
        out
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (index, byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[index + 1..];
                return Ok(value);
            }
        }
        Err(DecodeError("truncated or overlong varint"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.bytes.len() {
            return Err(DecodeError("field runs past the end"));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }
}

/// Decodes a stored record, borrowing its byte fields from `bytes`. Unknown fields are skipped,
/// as protobuf requires, so records written by a newer version still read.
pub fn decode(bytes: &[u8]) -> Result<KeyValueRef<'_>, DecodeError> {
    let mut reader = Reader { bytes };
    let mut kv = KeyValueRef::default();
    while !reader.bytes.is_empty() {
        let tag = reader.varint()?;
        let field = tag >> 3;
        match (tag & 7) as u8 {
            WIRE_VARINT => {
                let value = reader.varint()? as i64;
                match field {
                    FIELD_CREATE_REVISION => kv.create_revision = value,
                    FIELD_MOD_REVISION => kv.mod_revision = value,
                    FIELD_VERSION => kv.version = value,
                    FIELD_LEASE => kv.lease = value,
                    _ => {}
                }
            }
            WIRE_LENGTH_DELIMITED => {
                let len = usize::try_from(reader.varint()?)
                    .map_err(|_| DecodeError("length overflow"))?;
                let bytes = reader.take(len)?;
                match field {
                    FIELD_KEY => kv.key = bytes,
                    FIELD_VALUE => kv.value = bytes,
                    _ => {}
                }
            }
            WIRE_FIXED64 => {
                reader.take(8)?;
            }
            WIRE_FIXED32 => {
                reader.take(4)?;
            }
            _ => return Err(DecodeError("unsupported wire type")),
        }
    }
    Ok(kv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_protobuf() {
        let kv = KeyValueRef {
            key: b"foo",
            create_revision: 2,
            mod_revision: 300,
            version: 1,
            value: b"bar",
            lease: 0,
        };
        // 0a 03 "foo" | 10 02 | 18 ac 02 | 20 01 | 2a 03 "bar"; lease 0 is omitted.
        let want = [
            0x0a, 3, b'f', b'o', b'o', 0x10, 2, 0x18, 0xac, 0x02, 0x20, 1, 0x2a, 3, b'b', b'a',
            b'r',
        ];
        assert_eq!(kv.to_vec(), want);
    }

    #[test]
    fn round_trips_and_skips_unknown_fields() {
        let kv = KeyValueRef {
            key: b"k",
            create_revision: 1,
            mod_revision: -5,
            version: 7,
            value: &[0; 300],
            lease: 42,
        };
        let mut bytes = kv.to_vec();
        // An unknown varint field 9 and an unknown bytes field 10.
        bytes.extend_from_slice(&[0x48, 0x05, 0x52, 0x02, 0xff, 0xff]);
        assert_eq!(decode(&bytes), Ok(kv));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[0x0a, 0x05, b'a']).is_err());
        assert!(decode(&[0x10]).is_err());
        assert!(decode(&[0x0b]).is_err());
        assert!(decode(&[0xff; 11]).is_err());
    }
}
