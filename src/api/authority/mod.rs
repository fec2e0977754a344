//! A connection wrapper that lets clients send any HTTP/2 `:authority`, as etcd's grpc-go server
//! does. clientv3 (etcdctl's `endpoint status`, `endpoint hashkv`, `move-leader`, and any
//! per-endpoint call) sends the endpoint as written, `http://host:port` or
//! `endpoint://client-id/host:port`, as the authority; the HTTP/2 library under tonic refuses
//! such a request as malformed. [`AuthorityFix`] sits between the accepted socket and the HTTP
//! server and repairs that one field on the way in (see [`frames`] for how).
//!
//! Owns only the client-to-server bytes of HTTP/2 header frames. Never touches the
//! server-to-client direction, DATA frames, or HTTP/1.1 connections (anything that does not start
//! with the HTTP/2 preface passes untouched). Wraps any `AsyncRead + AsyncWrite`, so it sits
//! inside TLS the same way.

mod frames;
mod hpack;
mod huffman;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use self::frames::Rewriter;

/// How much is read at once while a header frame is incomplete.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// A connection whose client-sent `:authority` fields the HTTP server accepts.
#[derive(Debug)]
pub struct AuthorityFix<IO> {
    io: IO,
    rewriter: Rewriter,
    /// Bytes read from `io` that are not yet interpreted (an incomplete frame).
    held: Vec<u8>,
    /// Bytes for the server, handed over before anything else is read.
    out: Vec<u8>,
    out_at: usize,
    /// `io` ended while bytes were held: they were handed over as they were.
    ended: bool,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> AuthorityFix<IO> {
        AuthorityFix {
            io,
            rewriter: Rewriter::default(),
            held: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            ended: false,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_at);
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                if this.out_at == this.out.len() {
                    this.out.clear();
                    this.out_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            if this.held.is_empty() {
                // The usual case: read straight into the server's buffer, and keep back only
                // what starts at a header frame.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                let filled = buf.filled().len();
                if filled == before {
                    return Poll::Ready(Ok(()));
                }
                let pass = this.rewriter.scan(&buf.filled()[before..]);
                if before + pass < filled {
                    this.held.extend_from_slice(&buf.filled()[before + pass..]);
                    buf.set_filled(before + pass);
                    this.rewriter.process(&mut this.held, &mut this.out)?;
                }
                if pass > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                let start = this.held.len();
                this.held.resize(start + READ_CHUNK_BYTES, 0);
                let mut more = ReadBuf::new(&mut this.held[start..]);
                let polled = Pin::new(&mut this.io).poll_read(cx, &mut more);
                let read = more.filled().len();
                this.held.truncate(start + read);
                ready!(polled)?;
                if read == 0 {
                    // The client stopped mid-frame: the server gets what there is and sees
                    // the stream end.
                    this.out.append(&mut this.held);
                    this.ended = true;
                    continue;
                }
                this.rewriter.process(&mut this.held, &mut this.out)?;
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for AuthorityFix<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> IO::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests;
