//! The events one watcher is handed in one delivery, shared by every watcher that is handed the
//! very same events, with their wire encoding made once.
//!
//! Fan-out is the cost of watch: one put watched by 10,000 watchers is 10,000 responses. The
//! hub builds one [`EventBatch`] per distinct set of events in an applied batch (usually one: all
//! watchers of a key get the same events) and every delivery points at it; the stream tasks then
//! ask for the encoded `events` field of `etcdserverpb.WatchResponse` (field 11, repeated), which
//! is made by whichever task asks first and reused by the others. Only the header and the watch
//! id are written per watcher. The prev_kv variant is made the same way, once.
//!
//! This module must never change what is encoded: the bytes are exactly prost's encoding of the
//! same events, field 11 of a `WatchResponse`.

use std::sync::OnceLock;

use keelson_proto::mvccpb::Event;
use keelson_storage::mvcc::Store;
use prost::bytes::{Bytes, BytesMut};

use super::history;

/// The field number of `WatchResponse.events`.
const EVENTS_FIELD: u32 = 11;

/// Events delivered together (never splitting a revision), and their encodings.
#[derive(Debug, Default)]
pub struct EventBatch {
    events: Vec<Event>,
    /// `events` encoded as field 11 of a WatchResponse.
    encoded: OnceLock<Bytes>,
    /// The events with prev_kv filled in, and their encoding.
    with_prev: OnceLock<(Vec<Event>, Bytes)>,
}

impl PartialEq for EventBatch {
    fn eq(&self, other: &EventBatch) -> bool {
        self.events == other.events
    }
}

impl EventBatch {
    pub fn new(events: Vec<Event>) -> EventBatch {
        EventBatch {
            events,
            ..EventBatch::default()
        }
    }

    /// The events, without prev_kv.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events as the `events` field of a WatchResponse.
    pub fn encoded(&self) -> &Bytes {
        self.encoded.get_or_init(|| encode_events(&self.events))
    }

    /// The events with each prev_kv read from the store (etcd's prev_kv: the key at
    /// `mod_revision - 1`), and their encoding. Read once for all watchers that asked.
    pub fn with_prev_kv(&self, store: &Store) -> (&[Event], &Bytes) {
        let (events, bytes) = self.with_prev.get_or_init(|| {
            let view = store.view();
            let events: Vec<Event> = self
                .events
                .iter()
                .map(|event| Event {
                    prev_kv: history::prev_kv(store, &view, event),
                    ..event.clone()
                })
                .collect();
            let bytes = encode_events(&events);
            (events, bytes)
        });
        (events, bytes)
    }
}

/// `events` encoded as the repeated field 11 of a WatchResponse, as prost would.
pub fn encode_events(events: &[Event]) -> Bytes {
    let len: usize = events
        .iter()
        .map(|e| prost::encoding::message::encoded_len(EVENTS_FIELD, e))
        .sum();
    let mut buf = BytesMut::with_capacity(len);
    for event in events {
        prost::encoding::message::encode(EVENTS_FIELD, event, &mut buf);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::etcdserverpb::WatchResponse;
    use keelson_proto::mvccpb::KeyValue;
    use prost::Message;

    #[test]
    fn encoded_events_are_prosts_events_field() {
        let events: Vec<Event> = (0..3)
            .map(|i| Event {
                r#type: i % 2,
                kv: Some(KeyValue {
                    key: format!("key{i}").into_bytes(),
                    value: vec![b'v'; i as usize * 200],
                    mod_revision: 7 + i64::from(i),
                    ..KeyValue::default()
                }),
                prev_kv: (i == 2).then(KeyValue::default),
            })
            .collect();
        let batch = EventBatch::new(events.clone());
        let response = WatchResponse {
            events,
            ..WatchResponse::default()
        };
        assert_eq!(
            batch.encoded().as_ref(),
            response.encode_to_vec().as_slice()
        );
        assert!(encode_events(&[]).is_empty());
    }
}
