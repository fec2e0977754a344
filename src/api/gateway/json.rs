//! grpc-gateway v1's JSON mapping as etcd 3.4.23 configures it (`JSONPb{OrigName: true}`): field
//! names as written in the .proto files, 64-bit integers as strings, bytes as padded base64, enums
//! by name, fields with default values left out; requests may use either field name form, and
//! unknown fields are ignored. Strings are escaped as Go's encoding/json escapes them.
//!
//! Owns the conversion between JSON and the prost messages, driven by the descriptors compiled
//! into keelson-proto, and the error bodies. Never decides what a call answers.

use std::sync::OnceLock;

use keelson_proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use tonic::{Code, Status};

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("keelson-proto's descriptors decode")
    })
}

/// Decodes a request body into `T`, the message named `name` (`etcdserverpb.RangeRequest`).
/// An empty body is the empty message, as grpc-gateway takes it.
pub fn request<T: Message + Default>(name: &str, body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = decode_value(name, &mut deserializer)?;
    deserializer
        .end()
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    T::decode(message.encode_to_vec().as_slice())
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Decodes one JSON value from `deserializer` as the message named `name`.
pub fn decode_value<'de, D>(name: &str, deserializer: D) -> Result<DynamicMessage, Status>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let descriptor = pool()
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("keelson: no descriptor for {name}")))?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    DynamicMessage::deserialize_with_options(descriptor, deserializer, &options)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Writes `message` (of the type named `name`) as grpc-gateway's JSON.
pub fn response(name: &str, message: &impl Message) -> Result<Vec<u8>, Status> {
    response_bytes(name, &message.encode_to_vec())
}

/// Writes the encoded message `encoded` (of the type named `name`) as grpc-gateway's JSON.
pub fn response_bytes(name: &str, encoded: &[u8]) -> Result<Vec<u8>, Status> {
    let descriptor = pool()
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("keelson: no descriptor for {name}")))?;
    let dynamic = DynamicMessage::decode(descriptor, encoded)
        .map_err(|e| Status::internal(format!("keelson: re-reading a {name}: {e}")))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true);
    let mut out = Vec::new();
    dynamic
        .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        .map_err(|e| Status::internal(format!("keelson: writing a {name} as JSON: {e}")))?;
    Ok(go_escaped(out))
}

/// Go's encoding/json escapes `<`, `>` and `&` (and U+2028, U+2029) inside strings; in JSON
/// text those characters only occur inside strings, so replacing them everywhere is exact.
fn go_escaped(json: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(json).expect("serde_json writes UTF-8");
    if !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return text.into_bytes();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// A JSON string literal as Go writes it.
fn string_literal(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serializes");
    String::from_utf8(go_escaped(quoted.into_bytes())).expect("escaping keeps UTF-8")
}

/// grpc-gateway's `HTTPStatusFromCode` as etcd 3.4.23 answers (FAILED_PRECONDITION is 412 there,
/// checked side by side).
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 408,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::FailedPrecondition => 412,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// Go's `http.StatusText` for the statuses [`http_status`] gives.
fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

/// The body of a failed unary call: `{"error","message","code"}`, empty fields left out.
pub fn error_body(status: &Status) -> Vec<u8> {
    let mut fields = Vec::new();
    if !status.message().is_empty() {
        let message = string_literal(status.message());
        fields.push(format!("\"error\":{message}"));
        fields.push(format!("\"message\":{message}"));
    }
    if status.code() != Code::Ok {
        fields.push(format!("\"code\":{}", status.code() as i32));
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// The last chunk of a stream that failed: grpc-gateway's `{"error":{StreamError}}`.
pub fn stream_error_chunk(status: &Status) -> Vec<u8> {
    let http = http_status(status.code());
    let mut fields = Vec::new();
    if status.code() != Code::Ok {
        fields.push(format!("\"grpc_code\":{}", status.code() as i32));
    }
    fields.push(format!("\"http_code\":{http}"));
    if !status.message().is_empty() {
        fields.push(format!("\"message\":{}", string_literal(status.message())));
    }
    fields.push(format!(
        "\"http_status\":{}",
        string_literal(status_text(http))
    ));
    format!("{{\"error\":{{{}}}}}", fields.join(",")).into_bytes()
}

/// One result chunk of a stream: `{"result":...}` and the newline delimiter.
pub fn stream_result_chunk(result: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(result.len() + 12);
    chunk.extend_from_slice(b"{\"result\":");
    chunk.extend_from_slice(result);
    chunk.extend_from_slice(b"}\n");
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::etcdserverpb::{
        RangeRequest, RangeResponse, ResponseHeader, StatusResponse,
    };
    use keelson_proto::mvccpb::KeyValue;

    #[test]
    fn responses_use_proto_names_strings_for_64_bits_and_skip_defaults() {
        let range = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json = response("etcdserverpb.RangeResponse", &range).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
        let status = StatusResponse {
            version: "<&>".into(),
            db_size: 5,
            ..StatusResponse::default()
        };
        let json = response("etcdserverpb.StatusResponse", &status).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"version":"\u003c\u0026\u003e","dbSize":"5"}"#
        );
    }

    #[test]
    fn requests_take_either_name_numbers_or_strings_and_ignore_unknown_fields() {
        let body = br#"{"key":"Zm9v","range_end":"Zm9w","sortOrder":"DESCEND","limit":2,"revision":"7","bogus":[1]}"#;
        let decoded: RangeRequest = request("etcdserverpb.RangeRequest", body).unwrap();
        assert_eq!(decoded.key, b"foo");
        assert_eq!(decoded.range_end, b"fop");
        assert_eq!(decoded.sort_order, 2);
        assert_eq!((decoded.limit, decoded.revision), (2, 7));
        let empty: RangeRequest = request("etcdserverpb.RangeRequest", b"").unwrap();
        assert_eq!(empty, RangeRequest::default());
        assert!(request::<RangeRequest>("etcdserverpb.RangeRequest", b"garbage").is_err());
    }

    #[test]
    fn errors_are_grpc_gateway_bodies() {
        let status = Status::invalid_argument("etcdserver: key is not provided");
        assert_eq!(
            String::from_utf8(error_body(&status)).unwrap(),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(error_body(&Status::unimplemented("")), br#"{"code":12}"#);
        assert_eq!(
            String::from_utf8(stream_error_chunk(&Status::unimplemented("no"))).unwrap(),
            r#"{"error":{"grpc_code":12,"http_code":501,"message":"no","http_status":"Not Implemented"}}"#
        );
        assert_eq!(http_status(Code::FailedPrecondition), 412);
    }
}
