//! The client-to-server byte stream of one connection, frame by frame: everything passes as it
//! came except header blocks, which are decoded with the client's HPACK table and, from the first
//! one whose `:authority` HTTP/2 libraries refuse, written again as literals without indexing
//! with that authority repaired.
//!
//! Owns the framing state (preface, frame boundaries, an open HEADERS + CONTINUATION sequence)
//! and the client's HPACK decoder. Never changes a DATA frame or any frame but HEADERS and
//! CONTINUATION, never reorders bytes, and never forwards a block that references a dynamic table
//! the server does not have: once rewriting, every later block is rewritten.

use std::io;

use tonic::codegen::http::uri::Authority;

use super::hpack::{self, Decoder};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_BYTES: usize = 5;
/// The largest frame payload every HTTP/2 server accepts (SETTINGS_MAX_FRAME_SIZE's initial
/// value); hyper's server keeps it. Written frames stay within it, and a longer header frame is
/// left for the server to refuse.
const FRAME_PAYLOAD_BYTES_MAX: usize = 16_384;
/// The dynamic table size the server allows the client (SETTINGS_HEADER_TABLE_SIZE's initial
/// value; hyper's server does not change it).
const HEADER_TABLE_BYTES: usize = 4_096;
/// A header block longer than this is not decoded (hyper refuses far smaller header lists).
const HEADER_BLOCK_BYTES_MAX: usize = 1 << 20;

/// What the next bytes of the stream are.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// This many bytes pass to the server as they are.
    Pass(usize),
    /// A whole HEADERS or CONTINUATION frame of this many bytes, to be consumed.
    HeaderFrame(usize),
    /// More bytes are needed to decide.
    NeedMore,
    /// The client broke HTTP/2 framing or HPACK: stop interpreting the stream.
    GiveUp,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The preface, of which this many bytes matched so far.
    Preface(usize),
    Frames,
    /// Not HTTP/2 with prior knowledge (HTTP/1.1), or no longer interpreted: bytes pass as is.
    Transparent,
}

/// A header block being gathered: its HEADERS frame and any CONTINUATIONs so far.
#[derive(Debug)]
struct Block {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragment: Vec<u8>,
    /// The frames as received, forwarded unchanged when no rewrite is needed.
    raw: Vec<u8>,
}

/// A complete header block, borrowed from the frame it came in or from an open [`Block`].
struct BlockView<'a> {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragment: &'a [u8],
    raw: &'a [u8],
}

impl BlockView<'_> {
    fn to_owned(&self) -> Block {
        Block {
            stream_id: self.stream_id,
            end_stream: self.end_stream,
            priority: self.priority,
            fragment: self.fragment.to_vec(),
            raw: self.raw.to_vec(),
        }
    }
}

impl Block {
    fn view(&self) -> BlockView<'_> {
        BlockView {
            stream_id: self.stream_id,
            end_stream: self.end_stream,
            priority: self.priority,
            fragment: &self.fragment,
            raw: &self.raw,
        }
    }
}

/// What became of a header frame.
#[derive(Debug, PartialEq, Eq)]
enum Taken {
    Yes,
    /// It breaks the framing; not taken.
    Malformed,
    /// It completed a block that does not decode; it is in the open block's raw frames.
    MalformedBlock,
}

/// The decoded fields of one block: names and values back to back in `bytes`.
#[derive(Debug, Default)]
struct Fields {
    bytes: Vec<u8>,
    /// (name start, name end = value start, value end) in `bytes`.
    spans: Vec<(usize, usize, usize)>,
}

impl Fields {
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        let middle = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.spans.push((start, middle, self.bytes.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|&(s, m, e)| (&self.bytes[s..m], &self.bytes[m..e]))
    }
}

/// The rewriting state of one connection's client-to-server direction.
#[derive(Debug)]
pub struct Rewriter {
    phase: Phase,
    /// Bytes of the current non-header frame still to pass.
    passthrough: usize,
    block: Option<Block>,
    decoder: Decoder,
    /// Set at the first block rewritten; from then on the server's table is stale.
    rewriting: bool,
    fields: Fields,
}

impl Default for Rewriter {
    fn default() -> Rewriter {
        Rewriter {
            phase: Phase::Preface(0),
            passthrough: 0,
            block: None,
            decoder: Decoder::new(HEADER_TABLE_BYTES),
            rewriting: false,
            fields: Fields::default(),
        }
    }
}

/// An authority as the server's HTTP/2 library accepts it: valid per RFC 3986 `authority`.
fn acceptable(authority: &[u8]) -> bool {
    Authority::try_from(authority).is_ok()
}

/// What to send instead of a refused authority: the last `/`-separated part that is a valid
/// authority, so `http://host:port` and `endpoint://client-id/host:port` become `host:port`;
/// `None`: leave the field out (HTTP/2 allows a request without `:authority`).
fn repaired(authority: &[u8]) -> Option<&[u8]> {
    authority
        .rsplit(|&b| b == b'/')
        .find(|part| !part.is_empty())
        .filter(|part| acceptable(part))
}

impl Rewriter {
    /// How many leading bytes of `bytes`, which continue the stream after everything earlier was
    /// handed over, pass to the server as they are. The rest must go through [`Rewriter::process`].
    pub fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            match self.step(&bytes[at..]) {
                Step::Pass(n) => at += n,
                Step::HeaderFrame(_) | Step::NeedMore | Step::GiveUp => break,
            }
        }
        at
    }

    /// Consumes what it can of `held`, appending the bytes for the server to `out`; leaves an
    /// incomplete frame in `held`. An error: the stream cannot be carried on.
    pub fn process(&mut self, held: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<()> {
        let mut at = 0;
        while at < held.len() {
            match self.step(&held[at..]) {
                Step::Pass(n) => {
                    out.extend_from_slice(&held[at..at + n]);
                    at += n;
                }
                Step::HeaderFrame(n) => match self.header_frame(&held[at..at + n], out) {
                    Taken::Yes => at += n,
                    // Left in `held`, it passes as is after the open block's frames.
                    Taken::Malformed => self.give_up(out)?,
                    Taken::MalformedBlock => {
                        at += n;
                        self.give_up(out)?;
                    }
                },
                Step::GiveUp => self.give_up(out)?,
                Step::NeedMore => break,
            }
        }
        held.drain(..at);
        Ok(())
    }

    /// Stops interpreting: the open block's frames go out as received and everything after them
    /// passes, so the server sees exactly what the client sent and refuses it itself. Once
    /// blocks were rewritten that is impossible (the server's table no longer matches), so the
    /// connection fails instead.
    fn give_up(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if self.rewriting {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "keelson: malformed HTTP/2 header block from the client",
            ));
        }
        if let Some(block) = self.block.take() {
            out.extend_from_slice(&block.raw);
        }
        self.phase = Phase::Transparent;
        Ok(())
    }

    fn step(&mut self, bytes: &[u8]) -> Step {
        if bytes.is_empty() {
            return Step::NeedMore;
        }
        match self.phase {
            Phase::Transparent => Step::Pass(bytes.len()),
            Phase::Preface(matched) => {
                let n = bytes.len().min(PREFACE.len() - matched);
                if bytes[..n] != PREFACE[matched..matched + n] {
                    self.phase = Phase::Transparent;
                    return Step::Pass(bytes.len());
                }
                self.phase = if matched + n == PREFACE.len() {
                    Phase::Frames
                } else {
                    Phase::Preface(matched + n)
                };
                Step::Pass(n)
            }
            Phase::Frames if self.passthrough > 0 => {
                let n = bytes.len().min(self.passthrough);
                self.passthrough -= n;
                Step::Pass(n)
            }
            Phase::Frames => {
                let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>() else {
                    return Step::NeedMore;
                };
                let length = usize::from(header[0]) << 16
                    | usize::from(header[1]) << 8
                    | usize::from(header[2]);
                let kind = header[3];
                let is_header_frame = kind == TYPE_HEADERS || kind == TYPE_CONTINUATION;
                if self.block.is_some() && kind != TYPE_CONTINUATION {
                    // RFC 9113 §6.10: nothing may interleave a header block.
                    return Step::GiveUp;
                }
                if !is_header_frame {
                    self.passthrough = FRAME_HEADER_BYTES + length;
                    return self.step(bytes);
                }
                if length > FRAME_PAYLOAD_BYTES_MAX {
                    return Step::GiveUp;
                }
                if bytes.len() < FRAME_HEADER_BYTES + length {
                    return Step::NeedMore;
                }
                Step::HeaderFrame(FRAME_HEADER_BYTES + length)
            }
        }
    }

    /// Takes one whole HEADERS or CONTINUATION frame.
    fn header_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Taken {
        let kind = frame[3];
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let mut payload = &frame[FRAME_HEADER_BYTES..];
        if kind == TYPE_HEADERS {
            if self.block.is_some() {
                return Taken::Malformed;
            }
            if flags & FLAG_PADDED != 0 {
                let Some((&pad, rest)) = payload.split_first() else {
                    return Taken::Malformed;
                };
                let Some(unpadded) = rest.len().checked_sub(usize::from(pad)) else {
                    return Taken::Malformed;
                };
                payload = &rest[..unpadded];
            }
            let mut priority = None;
            if flags & FLAG_PRIORITY != 0 {
                let Some((fields, rest)) = payload.split_first_chunk::<PRIORITY_BYTES>() else {
                    return Taken::Malformed;
                };
                priority = Some(*fields);
                payload = rest;
            }
            let view = BlockView {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority,
                fragment: payload,
                raw: frame,
            };
            // The usual case, a block in one frame, is decoded where it lies.
            if flags & FLAG_END_HEADERS != 0 {
                return self.finish_view(view, out);
            }
            self.block = Some(view.to_owned());
            return Taken::Yes;
        } else {
            let Some(block) = self.block.as_mut().filter(|b| b.stream_id == stream_id) else {
                return Taken::Malformed;
            };
            if block.fragment.len() + payload.len() > HEADER_BLOCK_BYTES_MAX {
                return Taken::Malformed;
            }
            block.fragment.extend_from_slice(payload);
            block.raw.extend_from_slice(frame);
        }
        if flags & FLAG_END_HEADERS == 0 {
            return Taken::Yes;
        }
        let block = self.block.take().expect("a block is open");
        self.finish_view(block.view(), out)
    }

    /// Finishes a complete block; one that does not decode is left open for `give_up`.
    fn finish_view(&mut self, block: BlockView<'_>, out: &mut Vec<u8>) -> Taken {
        if self.finish(&block, out) {
            Taken::Yes
        } else {
            self.block = Some(block.to_owned());
            Taken::MalformedBlock
        }
    }

    /// Decodes a complete block and writes it out, as received or rewritten.
    fn finish(&mut self, block: &BlockView<'_>, out: &mut Vec<u8>) -> bool {
        let fields = &mut self.fields;
        fields.clear();
        let mut refused = false;
        let decoded = self.decoder.decode(block.fragment, |name, value| {
            refused |= name == b":authority" && !acceptable(value);
            fields.push(name, value);
        });
        if decoded.is_err() {
            return false;
        }
        if !refused && !self.rewriting {
            out.extend_from_slice(block.raw);
            return true;
        }
        self.rewriting = true;
        let mut encoded = Vec::with_capacity(block.fragment.len() * 2);
        for (name, value) in self.fields.iter() {
            if name == b":authority" && !acceptable(value) {
                if let Some(authority) = repaired(value) {
                    hpack::put_literal(&mut encoded, name, authority);
                }
            } else {
                hpack::put_literal(&mut encoded, name, value);
            }
        }
        write_block(block, &encoded, out);
        true
    }
}

/// Writes `encoded` as a HEADERS frame and as many CONTINUATION frames as its length needs.
fn write_block(block: &BlockView<'_>, encoded: &[u8], out: &mut Vec<u8>) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| p.as_slice());
    let first_room = FRAME_PAYLOAD_BYTES_MAX - priority.len();
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = 0;
    if block.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    put_frame_header(
        out,
        priority.len() + first.len(),
        TYPE_HEADERS,
        flags,
        block.stream_id,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(FRAME_PAYLOAD_BYTES_MAX));
        rest = after;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        put_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
    }
}

fn put_frame_header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream_id: u32) {
    out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
}
