//! The Watch service on the wire: `/etcdserverpb.Watch/Watch` served with a codec whose response
//! item may be already-encoded events, so one put's events are encoded once however many watchers
//! receive them.
//!
//! tonic's generated server fixes the prost codec, which would encode every watcher's copy of the
//! events again; this hand-written service is the generated one with [`WatchCodec`] in its place.
//! Requests are decoded by prost as before. A [`WatchOut::Events`] is written as exactly the bytes
//! prost writes for the same `WatchResponse`: header (field 1), watch_id (field 2), then the
//! shared events (field 11), in field order.
//!
//! This module must never write bytes that are not a valid `etcdserverpb.WatchResponse`, and
//! holds no watch logic (that is `api::watch`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use keelson_proto::etcdserverpb::{WatchRequest, WatchResponse};
use prost::Message;
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Status, Streaming};

use crate::api::watch::WatchService;

/// The method path etcd clients call.
const WATCH_PATH: &str = "/etcdserverpb.Watch/Watch";
/// The field number of `WatchResponse.watch_id`.
const WATCH_ID_FIELD: u32 = 2;
/// tonic's encoder keeps concatenating ready responses into one buffer up to this size before
/// handing it to HTTP/2, so a burst of events for many watchers leaves in few writes.
const YIELD_THRESHOLD: usize = 64 * 1024;
const BUFFER_SIZE: usize = 16 * 1024;

/// One response of a watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchOut {
    /// A response encoded by prost (created, canceled, progress, fragments).
    Message(WatchResponse),
    /// Events for one watcher: `head` is the encoded header field, `events` the encoded events
    /// field, both shared with other watchers.
    Events {
        head: Bytes,
        watch_id: i64,
        events: Bytes,
    },
}

impl WatchOut {
    /// The encoded message, as the client receives it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.write(&mut buf);
        buf
    }

    fn write(&self, buf: &mut impl BufMut) {
        match self {
            WatchOut::Message(response) => response
                .encode(buf)
                .expect("the encode buffer grows as needed"),
            WatchOut::Events {
                head,
                watch_id,
                events,
            } => {
                buf.put_slice(head);
                // proto3: a zero watch_id is not written, as prost does not.
                if *watch_id != 0 {
                    encode_key(WATCH_ID_FIELD, WireType::Varint, buf);
                    encode_varint(*watch_id as u64, buf);
                }
                buf.put_slice(events);
            }
        }
    }
}

/// Encodes [`WatchOut`]s, decodes `WatchRequest`s with prost.
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchCodec;

impl Codec for WatchCodec {
    type Encode = WatchOut;
    type Decode = WatchRequest;
    type Encoder = WatchCodec;
    type Decoder = WatchCodec;

    fn encoder(&mut self) -> WatchCodec {
        WatchCodec
    }

    fn decoder(&mut self) -> WatchCodec {
        WatchCodec
    }
}

impl Encoder for WatchCodec {
    type Item = WatchOut;
    type Error = Status;

    fn encode(&mut self, item: WatchOut, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write(dst);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
    }
}

impl Decoder for WatchCodec {
    type Item = WatchRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<WatchRequest>, Status> {
        WatchRequest::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// The stream of responses one Watch call sends.
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<WatchOut, Status>> + Send>>;

/// The Watch service for tonic's router.
#[derive(Clone)]
pub struct WatchServer {
    inner: Arc<WatchService>,
    max_decoding_message_size: usize,
}

impl WatchServer {
    /// Requests larger than `max_decoding_message_size` are refused.
    pub fn new(inner: WatchService, max_decoding_message_size: usize) -> WatchServer {
        WatchServer::from_arc(Arc::new(inner), max_decoding_message_size)
    }

    /// As [`WatchServer::new`], for a service shared with others (the JSON gateway).
    pub fn from_arc(inner: Arc<WatchService>, max_decoding_message_size: usize) -> WatchServer {
        WatchServer {
            inner,
            max_decoding_message_size,
        }
    }
}

impl NamedService for WatchServer {
    const NAME: &'static str = "etcdserverpb.Watch";
}

/// One call of the method, as tonic's streaming server wants it.
struct WatchCall(Arc<WatchService>);

impl Service<tonic::Request<Streaming<WatchRequest>>> for WatchCall {
    type Response = tonic::Response<ResponseStream>;
    type Error = Status;
    type Future = BoxFuture<Self::Response, Status>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<Streaming<WatchRequest>>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(tonic::Response::new(service.watch(request))) })
    }
}

impl<B> Service<http::Request<B>> for WatchServer
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != WATCH_PATH {
            return Box::pin(async move {
                Ok(Status::unimplemented("").into_http::<tonic::body::Body>())
            });
        }
        let call = WatchCall(self.inner.clone());
        let limit = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(WatchCodec)
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.streaming(call, request).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::watch::batch::encode_events;
    use keelson_proto::etcdserverpb::ResponseHeader;
    use keelson_proto::mvccpb::{Event, KeyValue};

    #[test]
    fn shared_events_are_written_exactly_as_prost_writes_the_response() {
        let header = ResponseHeader {
            cluster_id: 0x1234_5678_9abc,
            member_id: 42,
            revision: 99,
            raft_term: 3,
        };
        let events = vec![
            Event {
                kv: Some(KeyValue {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    mod_revision: 99,
                    create_revision: 2,
                    version: 5,
                    lease: 0,
                }),
                prev_kv: Some(KeyValue {
                    key: b"k".to_vec(),
                    value: b"old".to_vec(),
                    ..KeyValue::default()
                }),
                ..Event::default()
            },
            Event {
                r#type: 1,
                ..Event::default()
            },
        ];
        let mut head = Vec::new();
        prost::encoding::message::encode(1, &header, &mut head);
        for watch_id in [0, 1, 300, -1, i64::MAX] {
            let out = WatchOut::Events {
                head: Bytes::from(head.clone()),
                watch_id,
                events: encode_events(&events),
            };
            let response = WatchResponse {
                header: Some(header),
                watch_id,
                events: events.clone(),
                ..WatchResponse::default()
            };
            assert_eq!(
                out.to_bytes(),
                response.encode_to_vec(),
                "watch id {watch_id}"
            );
            assert_eq!(
                WatchResponse::decode(out.to_bytes().as_slice()),
                Ok(response)
            );
        }
    }
}
