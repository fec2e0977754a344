//! What travels between members besides the gRPC framing: the identity metadata every call
//! carries, and Raft messages in raft-rs's own encoding.
//!
//! Owns: the metadata names and their check, the message codec. Never: decides what a message
//! means.

use protobuf::Message as _;
use raft::eraftpb::Message;
use tonic::metadata::MetadataMap;

/// The sender's cluster id.
pub const CLUSTER_ID_HEADER: &str = "keelson-cluster-id";
/// The sender's member id.
pub const FROM_HEADER: &str = "keelson-from";
/// The member the sender means to reach.
pub const TO_HEADER: &str = "keelson-to";

/// Who is calling whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub cluster_id: u64,
    pub from: u64,
    pub to: u64,
}

impl Route {
    /// Writes the route into a call's metadata.
    pub fn write(&self, metadata: &mut MetadataMap) {
        for (name, value) in [
            (CLUSTER_ID_HEADER, self.cluster_id),
            (FROM_HEADER, self.from),
            (TO_HEADER, self.to),
        ] {
            let value = format!("{value:016x}")
                .parse()
                .expect("hex digits are valid metadata");
            metadata.insert(name, value);
        }
    }

    /// Reads the route of an incoming call.
    pub fn read(metadata: &MetadataMap) -> Result<Route, String> {
        let field = |name: &str| -> Result<u64, String> {
            let value = metadata
                .get(name)
                .ok_or_else(|| format!("missing {name}"))?
                .to_str()
                .map_err(|_| format!("{name} is not text"))?;
            u64::from_str_radix(value, 16).map_err(|_| format!("{name} {value:?} is not hex"))
        };
        Ok(Route {
            cluster_id: field(CLUSTER_ID_HEADER)?,
            from: field(FROM_HEADER)?,
            to: field(TO_HEADER)?,
        })
    }

    /// etcd's checks of an incoming peer request: same cluster, meant for this member. The
    /// error is the text the refusal carries (etcd's rafthttp wording).
    pub fn check(&self, cluster_id: u64, own_id: u64) -> Result<(), String> {
        if self.cluster_id != cluster_id {
            return Err(format!(
                "request cluster ID mismatch (got {:x} want {cluster_id:x})",
                self.cluster_id
            ));
        }
        if self.to != own_id {
            return Err(format!(
                "the member has a different ID (got {:x} want {own_id:x})",
                self.to
            ));
        }
        Ok(())
    }
}

/// raft-rs's encoding of `message`.
pub fn encode(message: &Message) -> Vec<u8> {
    message
        .write_to_bytes()
        .expect("a Raft message always encodes")
}

/// Decodes a message written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Message, String> {
    Message::parse_from_bytes(bytes).map_err(|e| format!("a Raft message does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    #[test]
    fn messages_and_routes_round_trip() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.to = 2;
        message.from = 1;
        message.term = 7;
        message.entries = vec![Entry {
            index: 5,
            term: 7,
            data: b"put".to_vec().into(),
            ..Entry::default()
        }]
        .into();
        assert_eq!(decode(&encode(&message)).unwrap(), message);
        assert!(decode(&[0xff, 0xff]).is_err());

        let route = Route {
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            from: 1,
            to: 2,
        };
        let mut metadata = MetadataMap::new();
        route.write(&mut metadata);
        let read = Route::read(&metadata).unwrap();
        assert_eq!(read, route);
        assert!(read.check(0xcdf8_1819_4e3a_8c32, 2).is_ok());
        let other_cluster = read.check(1, 2).unwrap_err();
        assert!(
            other_cluster.contains("cluster ID mismatch"),
            "{other_cluster}"
        );
        assert!(read.check(0xcdf8_1819_4e3a_8c32, 3).is_err());
        assert!(Route::read(&MetadataMap::new()).is_err());
    }
}
