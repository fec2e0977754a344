//! The rewriter on client byte streams built here: header blocks with indexing, Huffman strings,
//! a table size update and CONTINUATION frames, read whole and in every split, checked by
//! decoding what the server would receive with a fresh decoder (the server's state).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::AuthorityFix;
use super::frames::PREFACE;
use super::hpack::Decoder;
use super::huffman;

fn huffman_encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    huffman::encode(text, &mut out);
    out
}

fn string(out: &mut Vec<u8>, text: &str, huffman: bool) {
    let bytes = if huffman {
        huffman_encode(text.as_bytes())
    } else {
        text.as_bytes().to_vec()
    };
    assert!(bytes.len() < 127);
    out.push(if huffman { 0x80 } else { 0 } | bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

/// A literal with incremental indexing whose name is static entry `index`.
fn indexed_name_literal(out: &mut Vec<u8>, index: u8, value: &str) {
    out.push(0x40 | index);
    string(out, value, true);
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// grpc-go's first request: method and scheme from the static table, path and authority
/// Huffman-coded and indexed, a header with a new name.
fn first_block(authority: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86];
    indexed_name_literal(&mut block, 4, "/etcdserverpb.Maintenance/Status");
    indexed_name_literal(&mut block, 1, authority);
    block.push(0x40);
    string(&mut block, "te", false);
    string(&mut block, "trailers", true);
    block
}

/// The second request: a table size update, then everything from the dynamic table (authority is
/// entry 63, path 64, te 62) and a new literal without indexing.
fn second_block() -> Vec<u8> {
    let mut block = vec![
        0x3f,
        0xe1,
        0x1f,
        0x83,
        0x86,
        0x80 | 64,
        0x80 | 63,
        0x80 | 62,
    ];
    block.push(0x00);
    string(&mut block, "grpc-timeout", true);
    string(&mut block, "4999978u", true);
    block
}

/// A client stream: preface, settings, the first request's HEADERS and DATA, the second's
/// HEADERS split over a CONTINUATION with padding and priority, and its DATA.
fn client_stream(authority: &str) -> Vec<u8> {
    let mut stream = PREFACE.to_vec();
    stream.extend(frame(0x4, 0, 0, &[]));
    stream.extend(frame(0x1, 0x4, 1, &first_block(authority)));
    stream.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 2, 8, 1]));
    let second = second_block();
    let (a, b) = second.split_at(4);
    let mut padded = vec![3];
    padded.extend_from_slice(&[0x80, 0, 0, 1, 15]);
    padded.extend_from_slice(a);
    padded.extend_from_slice(&[0, 0, 0]);
    stream.extend(frame(0x1, 0x8 | 0x20, 3, &padded));
    stream.extend(frame(0x9, 0x4, 3, b));
    stream.extend(frame(0x0, 0x1, 3, &[0; 5]));
    stream
}

/// Everything `input` becomes, read through the wrapper in chunks of `chunk` bytes.
fn through(input: &[u8], chunk: usize) -> Vec<u8> {
    let reader = Chunks {
        data: input.to_vec(),
        at: 0,
        chunk,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut fixed = AuthorityFix::new(reader);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        out
    })
}

struct Chunks {
    data: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self
            .chunk
            .min(self.data.len() - self.at)
            .min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

/// A decoded frame: type, flags, stream, and the decoded fields for header frames (the
/// CONTINUATIONs merged into their HEADERS) or the payload otherwise.
#[derive(Debug, PartialEq)]
enum Seen {
    Headers {
        stream: u32,
        flags: u8,
        priority: Option<Vec<u8>>,
        fields: Vec<(String, String)>,
    },
    Other {
        kind: u8,
        flags: u8,
        payload: Vec<u8>,
    },
}

/// What the server would see: the frames after the preface, header blocks decoded with one
/// decoder for the connection.
fn server_view(mut bytes: &[u8]) -> (Vec<Seen>, Decoder) {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE);
    bytes = &bytes[PREFACE.len()..];
    let mut decoder = Decoder::new(4096);
    let mut seen = Vec::new();
    // Stream, flags, priority and the fragment so far of the open header block.
    type Open = (u32, u8, Option<Vec<u8>>, Vec<u8>);
    let mut block: Option<Open> = None;
    while !bytes.is_empty() {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let (kind, flags) = (bytes[3], bytes[4]);
        let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap());
        let mut payload = &bytes[9..9 + len];
        bytes = &bytes[9 + len..];
        match kind {
            0x1 => {
                if flags & 0x8 != 0 {
                    let pad = usize::from(payload[0]);
                    payload = &payload[1..payload.len() - pad];
                }
                let mut priority = None;
                if flags & 0x20 != 0 {
                    priority = Some(payload[..5].to_vec());
                    payload = &payload[5..];
                }
                block = Some((stream, flags & !0x8 & !0x4, priority, payload.to_vec()));
            }
            0x9 => block.as_mut().unwrap().3.extend_from_slice(payload),
            _ => seen.push(Seen::Other {
                kind,
                flags,
                payload: payload.to_vec(),
            }),
        }
        if (kind == 0x1 || kind == 0x9) && flags & 0x4 != 0 {
            let (stream, flags, priority, fragment) = block.take().unwrap();
            let mut fields = Vec::new();
            decoder
                .decode(&fragment, |n, v| {
                    fields.push((
                        String::from_utf8(n.to_vec()).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    ))
                })
                .unwrap();
            seen.push(Seen::Headers {
                stream,
                flags,
                priority,
                fields,
            });
        }
    }
    (seen, decoder)
}

#[test]
fn an_acceptable_authority_passes_byte_for_byte() {
    let input = client_stream("127.0.0.1:2379");
    for chunk in [1, 2, 9, 10, 31, input.len()] {
        assert_eq!(through(&input, chunk), input, "chunks of {chunk}");
    }
}

#[test]
fn url_authorities_are_repaired_in_every_later_block() {
    for (sent, expected) in [
        ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
        (
            "endpoint://client-7f3a/127.0.0.1:2379",
            Some("127.0.0.1:2379"),
        ),
        ("unix:///tmp/etcd.sock/", Some("etcd.sock")),
        ("http://a b/", None),
    ] {
        let input = client_stream(sent);
        let whole = through(&input, input.len());
        for chunk in [1, 2, 7, 9, 33] {
            assert_eq!(through(&input, chunk), whole, "{sent}: chunks of {chunk}");
        }
        let (seen, decoder) = server_view(&whole);
        let (original, _) = server_view(&input);
        let authority =
            |fields: &[(String, String)]| fields.iter().find(|(n, _)| n == ":authority").cloned();
        // Everything but the authority reaches the server as the client meant it.
        assert_eq!(seen.len(), original.len(), "{sent}");
        for (got, want) in seen.iter().zip(&original) {
            match (got, want) {
                (
                    Seen::Headers {
                        stream,
                        flags,
                        priority,
                        fields,
                    },
                    Seen::Headers {
                        stream: s,
                        flags: f,
                        priority: p,
                        fields: want_fields,
                    },
                ) => {
                    assert_eq!((stream, flags, priority), (s, f, p), "{sent}");
                    assert_eq!(
                        authority(fields).map(|(_, v)| v),
                        expected.map(str::to_string),
                        "{sent}"
                    );
                    assert_eq!(authority(want_fields).unwrap().1, sent);
                    let others = |f: &[(String, String)]| -> Vec<(String, String)> {
                        f.iter()
                            .filter(|(n, _)| n != ":authority")
                            .cloned()
                            .collect()
                    };
                    assert_eq!(others(fields), others(want_fields), "{sent}");
                }
                _ => assert_eq!(got, want, "{sent}"),
            }
        }
        // The server's table is never used by the rewritten blocks.
        assert_eq!(decoder.entries_len(), 0, "{sent}");
    }
}

#[test]
fn long_blocks_are_split_into_continuations() {
    let mut block = vec![0x83, 0x86];
    indexed_name_literal(&mut block, 4, "/etcdserverpb.KV/Put");
    indexed_name_literal(&mut block, 1, "http://h:1");
    // A header bigger than a frame: the client sends it over a CONTINUATION, and so must the
    // rewriter.
    let big = "b".repeat(20_000);
    block.push(0x00);
    string(&mut block, "x-big", false);
    block.push(0x7f);
    let mut len = big.len() - 127;
    while len >= 0x80 {
        block.push((len & 0x7f) as u8 | 0x80);
        len >>= 7;
    }
    block.push(len as u8);
    block.extend_from_slice(big.as_bytes());
    let mut input = PREFACE.to_vec();
    let (a, b) = block.split_at(10_000);
    input.extend(frame(0x1, 0x1, 1, a));
    input.extend(frame(0x9, 0x4, 1, b));
    let out = through(&input, 1000);
    let (seen, _) = server_view(&out);
    let Seen::Headers { fields, flags, .. } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(*flags, 0x1);
    assert_eq!(fields[3], (":authority".into(), "h:1".into()));
    assert_eq!(fields[4].1.len(), 20_000);
    // HEADERS, then at least one CONTINUATION, each within the frame limit.
    let first_len = usize::from(out[24]) << 16 | usize::from(out[25]) << 8 | usize::from(out[26]);
    assert!(first_len <= 16_384);
    assert_eq!(out[24 + 3], 0x1);
    assert_eq!(out[24 + 9 + first_len + 3], 0x9);
}

#[test]
fn http1_and_broken_streams_pass_untouched() {
    let http1 = b"GET /health HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
    assert_eq!(through(&http1, 3), http1);
    // A DATA frame inside an open header block breaks HTTP/2: the bytes go to the server as
    // sent, for it to refuse.
    let mut broken = PREFACE.to_vec();
    broken.extend(frame(0x1, 0, 1, &first_block("127.0.0.1:1")));
    broken.extend(frame(0x0, 0x1, 1, &[1, 2, 3]));
    broken.extend(frame(0x1, 0x4, 3, &[0xbf]));
    assert_eq!(through(&broken, 5), broken);
}
