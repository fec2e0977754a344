//! gRPC channels to the server and the request side of streaming calls.
//!
//! Each [`Endpoint::connect`] opens its own HTTP/2 connection, so `--conns N`
//! means N real connections; clients are dealt onto them round-robin, as in
//! etcd's benchmark.

use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

/// Bound on establishing one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Buffered requests on one outbound stream; callers wait for replies, so a
/// handful is plenty.
const STREAM_BUFFER: usize = 16;

/// `host:port` or a full URL, as etcd's `--endpoints` accepts.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Opens one connection to `endpoint`.
pub async fn connect_one(endpoint: &str) -> Result<Channel, String> {
    let url = endpoint_url(endpoint);
    Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad endpoint {url}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))
}

/// Opens `conns` connections, spread over `endpoints` round-robin.
#[derive(Debug, Clone)]
pub struct Pool {
    channels: Vec<Channel>,
}

impl Pool {
    pub async fn connect(endpoints: &[String], conns: usize) -> Result<Self, String> {
        let mut channels = Vec::with_capacity(conns);
        for i in 0..conns {
            channels.push(connect_one(&endpoints[i % endpoints.len()]).await?);
        }
        Ok(Pool { channels })
    }

    /// The channel client number `client` uses.
    pub fn for_client(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }
}

/// A sender and the stream a tonic streaming call consumes. Ending the
/// stream (dropping the sender) half-closes the call.
pub fn request_stream<T: Send + 'static>()
-> (mpsc::Sender<T>, impl Stream<Item = T> + Send + 'static) {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, stream)
}

/// A gRPC status as one line: code and message.
pub fn status_line(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://127.0.0.1:1"), "http://127.0.0.1:1");
    }
}
