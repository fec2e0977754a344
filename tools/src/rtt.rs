//! One loopback round trip: the network's share of the best a request can do here.
//!
//! The single-client put target is stated against the disk's fdatasync floor plus one loopback
//! round trip, so `compare` measures both in the same run. The round trip is a TCP ping-pong of
//! small messages between this process and an echo thread, with TCP_NODELAY as gRPC uses it: the
//! kernel's loopback path and the wake-up of a waiting thread on each side, nothing of HTTP/2 or
//! of either server.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::hist::nearest_rank;

/// Bytes in each ping, about a small unary gRPC request.
const MESSAGE_BYTES: usize = 64;
/// Bound on the whole measurement.
const MAX_TIME: Duration = Duration::from_secs(10);

/// p50 and p99 of one loopback round trip, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoopbackRtt {
    pub samples: usize,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// Measures `samples` round trips of a 64-byte message over loopback TCP.
pub fn loopback_rtt(samples: usize) -> io::Result<LoopbackRtt> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let echo = thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buf = [0u8; MESSAGE_BYTES];
        loop {
            match stream.read_exact(&mut buf) {
                Ok(()) => stream.write_all(&buf)?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let ping = [0x5Au8; MESSAGE_BYTES];
    let mut pong = [0u8; MESSAGE_BYTES];
    let mut lat = Vec::with_capacity(samples);
    let started = Instant::now();
    while lat.len() < samples && started.elapsed() < MAX_TIME {
        let t0 = Instant::now();
        stream.write_all(&ping)?;
        stream.read_exact(&mut pong)?;
        lat.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    drop(stream);
    echo.join()
        .map_err(|_| io::Error::other("the echo thread panicked"))??;
    Ok(LoopbackRtt {
        samples: lat.len(),
        p50_ns: nearest_rank(&mut lat, 0.50).unwrap_or(0),
        p99_ns: nearest_rank(&mut lat, 0.99).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_round_trips() {
        let rtt = loopback_rtt(50).unwrap();
        assert_eq!(rtt.samples, 50);
        assert!(rtt.p50_ns > 0 && rtt.p50_ns <= rtt.p99_ns, "{rtt:?}");
        // A loopback round trip is micro- to milliseconds, never seconds.
        assert!(rtt.p50_ns < 1_000_000_000, "{rtt:?}");
    }
}
