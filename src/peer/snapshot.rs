//! Raft snapshots between members: the leader streams its store as of the snapshot's index, the
//! follower builds a new B+tree file from the stream and hands it to its node to install.
//!
//! The stream (the `data` of `Peer.Snapshot` chunks) is every record of the replicated trees
//! (`schema::REPLICATED_TREES`), tree by tree in key order, each as
//! `tree length (u16 LE) | key length (u32 LE) | value length (u32 LE) | tree | key | value`,
//! cut into chunks of about [`SNAPSHOT_CHUNK_BYTES`] regardless of record boundaries; the last
//! chunk carries the CRC-32C of all the data. The leader reads from a store view, so writes go
//! on while it streams; the follower writes `<index>.snap.db.part`, makes it durable, checks the
//! CRC and renames it to `<index>.snap.db` before telling its node. A failure anywhere leaves no
//! `.snap.db` behind and the leader tries again later.
//!
//! Owns: the stream format, both ends of it, and the snapshot files until the node takes them.
//! Never: installs a snapshot (the node does, in its own order) or sends a store that is not
//! the one the snapshot's index names.

use super::links::{self, PEER_MESSAGE_BYTES_MAX};
use super::wire::{self, Route};
use crate::node::{NodeHandle, PeerEvent};
use keelson_proto::keelsonpeerpb::SnapshotChunk;
use keelson_proto::keelsonpeerpb::peer_client::PeerClient;
use keelson_storage::btree::Database;
use keelson_storage::mvcc::View;
use keelson_storage::schema;
use raft::eraftpb::{Message, MessageType};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

/// Bytes of stream data per chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Chunks produced ahead of the network.
const CHUNKS_AHEAD_MAX: usize = 4;
/// Bytes of records the follower writes per B+tree transaction while building.
const BUILD_TXN_BYTES_MAX: usize = 64 << 20;
/// Bytes of the fixed part of a record.
const RECORD_HEADER_BYTES: usize = 2 + 4 + 4;

/// Streams `view` (the store at `message`'s snapshot index) to `route.to` at `urls`.
pub async fn send(
    route: Route,
    urls: Vec<String>,
    message: Message,
    view: Arc<View>,
) -> Result<(), String> {
    let channel = links::connect(&urls).await?;
    let (chunks, stream) = mpsc::channel::<SnapshotChunk>(CHUNKS_AHEAD_MAX);
    let producer = tokio::task::spawn_blocking(move || produce(&view, &message, &chunks));
    let mut request = tonic::Request::new(ReceiverStream::new(stream));
    route.write(request.metadata_mut());
    let mut client = PeerClient::new(channel)
        .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
        .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX);
    let sent = client
        .snapshot(request)
        .await
        .map_err(|s| format!("the member refused the snapshot: {}", s.message()));
    let produced = producer
        .await
        .map_err(|e| format!("reading the store for the snapshot: {e}"))?;
    sent?;
    produced
}

/// Writes the chunks of `view` into `chunks`: the message first, the CRC last.
fn produce(
    view: &View,
    message: &Message,
    chunks: &mpsc::Sender<SnapshotChunk>,
) -> Result<(), String> {
    let send = |chunk: SnapshotChunk| {
        chunks
            .blocking_send(chunk)
            .map_err(|_| "the snapshot stream closed".to_string())
    };
    send(SnapshotChunk {
        message: wire::encode(message),
        ..SnapshotChunk::default()
    })?;
    let mut crc = 0u32;
    let mut data = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES + 1024);
    for tree in schema::REPLICATED_TREES {
        let records = view
            .txn()
            .range(tree, ..)
            .map_err(|e| format!("read {}: {e}", String::from_utf8_lossy(tree)))?;
        for record in records {
            let (key, value) =
                record.map_err(|e| format!("read {}: {e}", String::from_utf8_lossy(tree)))?;
            encode_record(&mut data, tree, key, value);
            if data.len() >= SNAPSHOT_CHUNK_BYTES {
                crc = crc32c::crc32c_append(crc, &data);
                send(SnapshotChunk {
                    data: std::mem::take(&mut data),
                    ..SnapshotChunk::default()
                })?;
            }
        }
    }
    crc = crc32c::crc32c_append(crc, &data);
    send(SnapshotChunk {
        data,
        last: true,
        data_crc32c: crc,
        ..SnapshotChunk::default()
    })
}

fn encode_record(out: &mut Vec<u8>, tree: &[u8], key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(tree.len() as u16).to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(tree);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Receives a snapshot stream into `<index>.snap.db` in `node`'s snap dir, then hands the
/// message and the file to the node.
pub async fn receive(
    node: &NodeHandle,
    mut stream: tonic::Streaming<SnapshotChunk>,
) -> Result<(), Status> {
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("an empty snapshot stream"))?;
    let message = wire::decode(&first.message).map_err(Status::invalid_argument)?;
    if message.get_msg_type() != MessageType::MsgSnapshot {
        return Err(Status::invalid_argument(
            "a snapshot stream must start with MsgSnapshot",
        ));
    }
    let metadata = message.get_snapshot().get_metadata();
    let (index, term) = (metadata.index, metadata.term);
    let dir = node.snap_dir();
    let path = dir.join(schema::snapshot_db_name(index));
    let part = dir.join(format!("{index:016x}{}", schema::SNAPSHOT_PART_SUFFIX));
    let (member_id, _) = node.ids_of_member();
    let (records, inbox) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_AHEAD_MAX);
    let building = part.clone();
    let builder =
        tokio::task::spawn_blocking(move || build(&building, &inbox, member_id, (index, term)));
    let mut crc = crc32c::crc32c_append(0, &first.data);
    let mut expected_crc = None;
    let mut fed = if first.data.is_empty() {
        Ok(())
    } else {
        records.send(first.data).map_err(|_| ())
    };
    if first.last {
        expected_crc = Some(first.data_crc32c);
    }
    while expected_crc.is_none() && fed.is_ok() {
        let Some(chunk) = stream.message().await? else {
            break;
        };
        crc = crc32c::crc32c_append(crc, &chunk.data);
        if chunk.last {
            expected_crc = Some(chunk.data_crc32c);
        }
        if !chunk.data.is_empty() {
            fed = records.send(chunk.data).map_err(|_| ());
        }
    }
    drop(records);
    let built = builder
        .await
        .map_err(|e| Status::internal(format!("building the snapshot: {e}")))?;
    let outcome = match (built, expected_crc) {
        (Err(why), _) => Err(Status::internal(format!(
            "building snapshot {index:x}: {why}"
        ))),
        (Ok(()), None) => Err(Status::invalid_argument("the snapshot stream ended early")),
        (Ok(()), Some(expected)) if expected != crc => Err(Status::data_loss(format!(
            "snapshot {index:x}: CRC-32C {crc:08x}, the leader sent {expected:08x}"
        ))),
        (Ok(()), Some(_)) => publish(&part, &path, &dir).map_err(Status::internal),
    };
    if outcome.is_err() {
        let _ = std::fs::remove_file(&part);
        return outcome;
    }
    node.deliver(PeerEvent::Snapshot { message, path })
        .await
        .map_err(crate::api::status::etcd_status)
}

/// Renames the finished file into place, durably.
fn publish(part: &Path, path: &Path, dir: &Path) -> Result<(), String> {
    std::fs::rename(part, path).map_err(|e| format!("rename {}: {e}", part.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("sync {}: {e}", dir.display()))
}

/// Builds a B+tree file at `part` from the records arriving on `inbox`, with this member's own
/// id and the snapshot's index and term in the local tree; durable when it returns.
fn build(
    part: &Path,
    inbox: &std::sync::mpsc::Receiver<Vec<u8>>,
    member_id: u64,
    (index, term): (u64, u64),
) -> Result<(), String> {
    let _ = std::fs::remove_file(part);
    let db = Database::open_file(part).map_err(|e| format!("create {}: {e}", part.display()))?;
    let store_error = |e: keelson_storage::btree::Error| e.to_string();
    {
        let mut txn = db.begin_write().map_err(store_error)?;
        for tree in schema::TREES {
            txn.create_tree(tree).map_err(store_error)?;
        }
        let mut snapshot = Vec::with_capacity(16);
        snapshot.extend_from_slice(&index.to_be_bytes());
        snapshot.extend_from_slice(&term.to_be_bytes());
        txn.put(
            schema::TREE_LOCAL,
            schema::LOCAL_MEMBER_ID_KEY,
            &member_id.to_be_bytes(),
        )
        .map_err(store_error)?;
        txn.put(schema::TREE_LOCAL, schema::LOCAL_SNAPSHOT_KEY, &snapshot)
            .map_err(store_error)?;
        txn.commit_unsynced().map_err(store_error)?;
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut txn = db.begin_write().map_err(store_error)?;
    let mut txn_bytes = 0;
    for chunk in inbox {
        pending.extend_from_slice(&chunk);
        let mut at = 0;
        while let Some((tree, key, value, next)) = decode_record(&pending, at)? {
            if !schema::REPLICATED_TREES.contains(&tree) {
                return Err(format!(
                    "the leader sent a record of tree {:?}",
                    String::from_utf8_lossy(tree)
                ));
            }
            txn.put(tree, key, value).map_err(store_error)?;
            txn_bytes += next - at;
            at = next;
        }
        pending.drain(..at);
        if txn_bytes >= BUILD_TXN_BYTES_MAX {
            txn.commit_unsynced().map_err(store_error)?;
            txn = db.begin_write().map_err(store_error)?;
            txn_bytes = 0;
        }
    }
    if !pending.is_empty() {
        return Err(format!(
            "the stream ended inside a record ({} bytes left)",
            pending.len()
        ));
    }
    txn.commit().map_err(store_error)?;
    Ok(())
}

/// The record at `at` in `data` and where the next begins, if it is complete.
#[allow(clippy::type_complexity)]
fn decode_record(data: &[u8], at: usize) -> Result<Option<(&[u8], &[u8], &[u8], usize)>, String> {
    let Some(header) = data.get(at..at + RECORD_HEADER_BYTES) else {
        return Ok(None);
    };
    let tree_len = u16::from_le_bytes([header[0], header[1]]) as usize;
    let key_len = u32::from_le_bytes(header[2..6].try_into().expect("4 bytes")) as usize;
    let value_len = u32::from_le_bytes(header[6..10].try_into().expect("4 bytes")) as usize;
    let start = at + RECORD_HEADER_BYTES;
    let end = start + tree_len + key_len + value_len;
    if end > data.len() {
        return Ok(None);
    }
    let tree = &data[start..start + tree_len];
    let key = &data[start + tree_len..start + tree_len + key_len];
    let value = &data[start + tree_len + key_len..end];
    Ok(Some((tree, key, value, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_anywhere_decode_whole() {
        let mut data = Vec::new();
        encode_record(&mut data, b"key", b"k1", b"v1");
        encode_record(&mut data, b"meta", b"", &[7; 300]);
        for cut in 0..data.len() {
            let (head, _) = data.split_at(cut);
            let mut at = 0;
            while let Some((_, _, _, next)) = decode_record(head, at).unwrap() {
                at = next;
            }
            assert!(at <= cut);
        }
        let (tree, key, value, next) = decode_record(&data, 0).unwrap().unwrap();
        assert_eq!((tree, key, value), (&b"key"[..], &b"k1"[..], &b"v1"[..]));
        let (tree, key, value, end) = decode_record(&data, next).unwrap().unwrap();
        assert_eq!((tree, key, value.len()), (&b"meta"[..], &b""[..], 300));
        assert_eq!(end, data.len());
    }
}
