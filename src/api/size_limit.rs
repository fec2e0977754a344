//! The transport's receive limit with grpc-go's wording: a request message longer than
//! `--max-request-bytes` + `GRPC_OVERHEAD_BYTES` is refused from its 5-byte gRPC frame prefix,
//! before it is buffered or decoded, with `grpc: received message larger than max (N vs. L)`.
//!
//! tonic's own limit would refuse it too, but with its own message and code; clients written for
//! etcd see grpc-go's. This module must never alter the bytes it passes through: it only reads
//! the length prefixes of the gRPC messages in the request body.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body as HttpBody, Frame};
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;

use crate::api::status::too_large_status;
use crate::errors::MessageTooLarge;

/// Length of the gRPC message prefix: a compression flag byte and a big-endian u32 length.
const PREFIX_LEN: usize = 5;

/// A service whose request bodies are checked against `limit`.
#[derive(Clone)]
pub struct SizeLimit<S> {
    inner: S,
    limit: u64,
}

impl<S> SizeLimit<S> {
    pub fn new(inner: S, limit: u64) -> SizeLimit<S> {
        SizeLimit { inner, limit }
    }
}

impl<S: NamedService> NamedService for SizeLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for SizeLimit<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let limit = self.limit;
        self.inner
            .call(request.map(|body| Body::new(LimitedBody::new(body, limit))))
    }
}

/// A request body that fails as soon as a message prefix announces more than `limit` bytes.
struct LimitedBody {
    inner: Body,
    limit: u64,
    /// Bytes of the current prefix seen so far.
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    /// Bytes of the current message still to pass before the next prefix.
    remaining: u64,
}

impl LimitedBody {
    fn new(inner: Body, limit: u64) -> LimitedBody {
        LimitedBody {
            inner,
            limit,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            remaining: 0,
        }
    }

    /// Follows the message boundaries through `data`; the first oversized message is an error.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), MessageTooLarge> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data = &data[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            let take = data.len().min(PREFIX_LEN - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == PREFIX_LEN {
                self.prefix_len = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                let size = u64::from(len);
                if size > self.limit {
                    return Err(MessageTooLarge {
                        size,
                        limit: self.limit,
                    });
                }
                self.remaining = size;
            }
        }
        Ok(())
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let data = data.clone();
            if let Err(too_large) = self.scan(&data) {
                return Poll::Ready(Some(Err(too_large_status(too_large))));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(len: u32) -> Vec<u8> {
        let mut p = vec![0];
        p.extend_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn follows_messages_split_across_chunks() {
        let mut body = LimitedBody::new(Body::empty(), 10);
        let mut wire = prefix(10);
        wire.extend_from_slice(&[7; 10]);
        wire.extend(prefix(3));
        wire.extend_from_slice(&[7; 3]);
        // One byte at a time: prefixes split anywhere still parse.
        for b in &wire {
            body.scan(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!((body.prefix_len, body.remaining), (0, 0));
        // The message after that announces 11 bytes: refused with both sizes.
        let err = body.scan(&prefix(11)).unwrap_err();
        assert_eq!(
            err,
            MessageTooLarge {
                size: 11,
                limit: 10
            }
        );
    }
}
