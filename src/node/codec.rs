//! The bytes of a Raft entry that carries a write request (the `data` of a normal entry, as the
//! WAL stores it).
//!
//! Layout: one kind byte, the proposer's request id (u64 big-endian), then the prost encoding of
//! the etcd request message (`PutRequest`, `DeleteRangeRequest`, `TxnRequest`,
//! `CompactionRequest` or `AlarmRequest`, or a lease request: `LeaseGrantRequest`,
//! `LeaseRevokeRequest`, `LeaseCheckpointRequest`). An empty `data` is raft-rs's leader no-op.
//! Owns only this format; never applies or validates requests.

use crate::server::WriteRequest;
use prost::Message;

pub const KIND_PUT: u8 = 1;
pub const KIND_DELETE_RANGE: u8 = 2;
pub const KIND_TXN: u8 = 3;
pub const KIND_COMPACTION: u8 = 4;
pub const KIND_ALARM: u8 = 10;
pub const KIND_LEASE_GRANT: u8 = 20;
pub const KIND_LEASE_REVOKE: u8 = 21;
pub const KIND_LEASE_CHECKPOINT: u8 = 22;
/// A member's attributes (name, client URLs) as it publishes them after start: an
/// `etcdserverpb.Member` with the id, name and client URLs set.
pub const KIND_MEMBER_ATTRIBUTES: u8 = 50;
/// Kind byte plus request id.
pub const HEADER_BYTES: usize = 1 + 8;

/// Encodes `request` proposed under `id`.
pub fn encode(id: u64, request: &WriteRequest) -> Vec<u8> {
    let (kind, body) = match request {
        WriteRequest::Put(r) => (KIND_PUT, r.encode_to_vec()),
        WriteRequest::DeleteRange(r) => (KIND_DELETE_RANGE, r.encode_to_vec()),
        WriteRequest::Txn(r) => (KIND_TXN, r.encode_to_vec()),
        WriteRequest::Compaction(r) => (KIND_COMPACTION, r.encode_to_vec()),
        WriteRequest::LeaseGrant(r) => (KIND_LEASE_GRANT, r.encode_to_vec()),
        WriteRequest::LeaseRevoke(r) => (KIND_LEASE_REVOKE, r.encode_to_vec()),
        WriteRequest::LeaseCheckpoint(r) => (KIND_LEASE_CHECKPOINT, r.encode_to_vec()),
        WriteRequest::Alarm(r) => (KIND_ALARM, r.encode_to_vec()),
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Encodes a member's attributes proposed under `id`.
pub fn encode_attributes(id: u64, member: &keelson_proto::etcdserverpb::Member) -> Vec<u8> {
    let body = member.encode_to_vec();
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.push(KIND_MEMBER_ATTRIBUTES);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// What an entry carries: a client's write, or the node's own business.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Write(WriteRequest),
    Attributes(keelson_proto::etcdserverpb::Member),
}

/// Decodes any entry data: the request id and what it carries.
pub fn decode_entry(data: &[u8]) -> Result<(u64, Payload), String> {
    if data.first() == Some(&KIND_MEMBER_ATTRIBUTES) && data.len() >= HEADER_BYTES {
        let id = u64::from_be_bytes(data[1..HEADER_BYTES].try_into().expect("8 bytes"));
        let member = Message::decode(&data[HEADER_BYTES..])
            .map_err(|e| format!("entry data does not decode: {e}"))?;
        return Ok((id, Payload::Attributes(member)));
    }
    decode(data).map(|(id, request)| (id, Payload::Write(request)))
}

/// Decodes entry data written by [`encode`]: the request id and the request.
pub fn decode(data: &[u8]) -> Result<(u64, WriteRequest), String> {
    if data.len() < HEADER_BYTES {
        return Err(format!("entry data of {} bytes is too short", data.len()));
    }
    let id = u64::from_be_bytes(data[1..HEADER_BYTES].try_into().expect("8 bytes"));
    let body = &data[HEADER_BYTES..];
    let error = |e: prost::DecodeError| format!("entry data does not decode: {e}");
    let request = match data[0] {
        KIND_PUT => WriteRequest::Put(Message::decode(body).map_err(error)?),
        KIND_DELETE_RANGE => WriteRequest::DeleteRange(Message::decode(body).map_err(error)?),
        KIND_TXN => WriteRequest::Txn(Message::decode(body).map_err(error)?),
        KIND_COMPACTION => WriteRequest::Compaction(Message::decode(body).map_err(error)?),
        KIND_LEASE_GRANT => WriteRequest::LeaseGrant(Message::decode(body).map_err(error)?),
        KIND_LEASE_REVOKE => WriteRequest::LeaseRevoke(Message::decode(body).map_err(error)?),
        KIND_LEASE_CHECKPOINT => {
            WriteRequest::LeaseCheckpoint(Message::decode(body).map_err(error)?)
        }
        KIND_ALARM => WriteRequest::Alarm(Message::decode(body).map_err(error)?),
        kind => return Err(format!("unknown entry kind {kind}")),
    };
    Ok((id, request))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::etcdserverpb::{CompactionRequest, PutRequest};

    #[test]
    fn round_trips_and_rejects_garbage() {
        let put = WriteRequest::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..PutRequest::default()
        });
        let bytes = encode(7, &put);
        assert_eq!(bytes[0], KIND_PUT);
        assert_eq!(decode(&bytes).unwrap(), (7, put));
        let compact = WriteRequest::Compaction(CompactionRequest {
            revision: 5,
            physical: true,
        });
        assert_eq!(
            decode(&encode(u64::MAX, &compact)).unwrap(),
            (u64::MAX, compact)
        );
        let alarm = WriteRequest::Alarm(keelson_proto::etcdserverpb::AlarmRequest {
            action: 1,
            member_id: 2,
            alarm: 1,
        });
        let bytes = encode(3, &alarm);
        assert_eq!(bytes[0], KIND_ALARM);
        assert_eq!(decode(&bytes).unwrap(), (3, alarm));
        assert!(decode(&[KIND_PUT, 0, 0]).is_err());
        assert!(decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
