//! The gateway's streaming routes: Watch and LeaseKeepAlive (the request body is a sequence of
//! JSON requests, read as it arrives), Observe and Snapshot (one JSON request). Answers are
//! grpc-gateway's chunks: `{"result":...}` and a newline per message, flushed one by one; a
//! failure ends the stream with `{"error":{...}}`, and one before the first message also sets
//! the HTTP status.
//!
//! Owns the framing between HTTP bodies and the services' streams. Never holds more than one
//! request ahead of the service.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use keelson_proto::etcdserverpb::lease_server::Lease;
use keelson_proto::etcdserverpb::maintenance_server::Maintenance;
use keelson_proto::etcdserverpb::{LeaseKeepAliveRequest, SnapshotRequest, WatchRequest};
use keelson_proto::v3electionpb::LeaderRequest;
use keelson_proto::v3electionpb::election_server::Election;
use prost::Message;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::codegen::{Bytes, http};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Status, Streaming};

use super::routes::Rpc;
use super::{Gateway, json, read_body, with_token};

/// Requests decoded ahead of the service, per stream.
const REQUEST_QUEUE: usize = 4;
/// gRPC's message prefix: a compression flag and a big-endian length.
const GRPC_PREFIX_BYTES: usize = 5;

/// Encoded JSON answers of one stream, in order.
type Answers = Pin<Box<dyn Stream<Item = Result<Vec<u8>, Status>> + Send>>;

pub fn is_stream(rpc: Rpc) -> bool {
    matches!(
        rpc,
        Rpc::Watch | Rpc::LeaseKeepAlive | Rpc::Snapshot | Rpc::Observe
    )
}

pub async fn handle(
    gateway: &Gateway,
    rpc: Rpc,
    token: Option<MetadataValue<Ascii>>,
    body: Body,
) -> http::Response<Body> {
    let services = &gateway.services;
    let limit = gateway.body_bytes_max;
    let answers: Result<Answers, Status> = async {
        match rpc {
            Rpc::Watch => {
                let requests =
                    requests::<WatchRequest>("etcdserverpb.WatchRequest", body, limit).await?;
                let responses = services.watch.watch(with_token(requests, token));
                Ok(responses
                    .map(|out| {
                        let bytes = out?.to_bytes();
                        json::response_bytes("etcdserverpb.WatchResponse", &bytes)
                    })
                    .boxed())
            }
            Rpc::LeaseKeepAlive => {
                let requests = requests::<LeaseKeepAliveRequest>(
                    "etcdserverpb.LeaseKeepAliveRequest",
                    body,
                    limit,
                )
                .await?;
                let responses = services
                    .lease
                    .lease_keep_alive(with_token(requests, token))
                    .await?
                    .into_inner();
                Ok(responses
                    .map(|r| json::response("etcdserverpb.LeaseKeepAliveResponse", &r?))
                    .boxed())
            }
            Rpc::Observe => {
                let bytes = read_body(body, limit).await?;
                let request: LeaderRequest = json::request("v3electionpb.LeaderRequest", &bytes)?;
                let responses = services
                    .election
                    .observe(with_token(request, token))
                    .await?
                    .into_inner();
                Ok(responses
                    .map(|r| json::response("v3electionpb.LeaderResponse", &r?))
                    .boxed())
            }
            Rpc::Snapshot => {
                let bytes = read_body(body, limit).await?;
                let request: SnapshotRequest =
                    json::request("etcdserverpb.SnapshotRequest", &bytes)?;
                let responses = services
                    .maintenance
                    .snapshot(with_token(request, token))
                    .await?
                    .into_inner();
                Ok(responses
                    .map(|r| json::response("etcdserverpb.SnapshotResponse", &r?))
                    .boxed())
            }
            _ => Err(Status::internal("keelson: not a streaming route")),
        }
    }
    .await;
    match answers {
        Ok(answers) => respond(answers).await,
        // A request that could not be read is answered as a unary call's error.
        Err(status) if status.code() == tonic::Code::InvalidArgument => super::error(&status),
        Err(status) => failed_before_first(&status),
    }
}

/// The HTTP answer of a stream: its status is decided by the first message, as grpc-gateway
/// writes its header with the first chunk.
async fn respond(mut answers: Answers) -> http::Response<Body> {
    let first = match answers.next().await {
        Some(Ok(first)) => first,
        Some(Err(status)) => return failed_before_first(&status),
        None => Vec::new(),
    };
    let head = (!first.is_empty()).then(|| Ok(json::stream_result_chunk(&first)));
    let rest = answers.scan(false, |ended, answer| {
        if *ended {
            return futures_util::future::ready(None);
        }
        let chunk = match answer {
            Ok(json) => json::stream_result_chunk(&json),
            Err(status) => {
                *ended = true;
                json::stream_error_chunk(&status)
            }
        };
        futures_util::future::ready(Some(Ok::<_, Status>(chunk)))
    });
    let chunks = futures_util::stream::iter(head)
        .chain(rest)
        .map(|chunk| chunk.map(|c| Frame::data(Bytes::from(c))));
    stream_response(http::StatusCode::OK, Body::new(StreamBody::new(chunks)))
}

fn failed_before_first(status: &Status) -> http::Response<Body> {
    let code = http::StatusCode::from_u16(json::http_status(status.code()))
        .expect("grpc-gateway's statuses are valid");
    let body = http_body_util::Full::new(Bytes::from(json::stream_error_chunk(status)));
    stream_response(code, Body::new(body))
}

fn stream_response(status: http::StatusCode, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(super::APPLICATION_JSON),
    );
    headers.insert(
        "grpc-metadata-content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The request stream a service reads: the JSON values of `body`, each decoded as the message
/// named `name` and framed as gRPC. The first is read before the call starts, so a malformed one
/// fails the call (grpc-gateway's order); later bad input just ends the requests.
async fn requests<T>(name: &'static str, body: Body, limit: usize) -> Result<Streaming<T>, Status>
where
    T: Message + Default + Send + 'static,
{
    let mut values = JsonValues::new(body, limit);
    let (frames, received) = mpsc::channel::<Result<Frame<Bytes>, Status>>(REQUEST_QUEUE);
    if let Some(first) = values.next().await {
        let frame = grpc_frame::<T>(name, first?)?;
        let _ = frames.send(Ok(frame)).await;
        tokio::spawn(async move {
            while let Some(Ok(value)) = values.next().await {
                let Ok(frame) = grpc_frame::<T>(name, value) else {
                    break;
                };
                if frames.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
        });
    }
    let body = StreamBody::new(tokio_stream_of(received));
    Ok(Streaming::new_request(
        tonic_prost::ProstDecoder::<T>::default(),
        body,
        None,
        Some(limit),
    ))
}

fn tokio_stream_of<T: Send + 'static>(
    mut received: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| received.poll_recv(cx))
}

/// One request as a gRPC message frame.
fn grpc_frame<T: Message + Default>(
    name: &str,
    value: serde_json::Value,
) -> Result<Frame<Bytes>, Status> {
    let message = json::decode_value(name, value)?;
    let encoded = message.encode_to_vec();
    // Checked here so a request the service could not decode fails like a malformed one.
    T::decode(encoded.as_slice()).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut framed = Vec::with_capacity(GRPC_PREFIX_BYTES + encoded.len());
    framed.push(0);
    framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    framed.extend_from_slice(&encoded);
    Ok(Frame::data(Bytes::from(framed)))
}

/// Successive JSON values of a request body, read as the body arrives.
struct JsonValues {
    body: Body,
    buffer: Vec<u8>,
    ended: bool,
    limit: usize,
}

impl JsonValues {
    fn new(body: Body, limit: usize) -> JsonValues {
        JsonValues {
            body,
            buffer: Vec::new(),
            ended: false,
            limit,
        }
    }

    /// The next value; `None` at the end of the body.
    async fn next(&mut self) -> Option<Result<serde_json::Value, Status>> {
        loop {
            let mut values =
                serde_json::Deserializer::from_slice(&self.buffer).into_iter::<serde_json::Value>();
            match values.next() {
                Some(Ok(value)) => {
                    let used = values.byte_offset();
                    self.buffer.drain(..used);
                    return Some(Ok(value));
                }
                Some(Err(e)) if !e.is_eof() => {
                    return Some(Err(Status::invalid_argument(e.to_string())));
                }
                // Incomplete (or only whitespace): more of the body is needed.
                _ => {}
            }
            if self.ended {
                return if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    Some(Err(Status::invalid_argument("unexpected EOF")))
                };
            }
            if self.buffer.len() > self.limit {
                return Some(Err(Status::resource_exhausted(
                    "keelson: a streamed request exceeds the request size limit",
                )));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Some(Err(Status::invalid_argument(e.to_string()))),
                None => self.ended = true,
            }
        }
    }
}
