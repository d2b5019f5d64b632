//! The framing core against hand-built client byte streams: the authority rewrite, and each
//! bound failing the connection before the offending bytes are kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::BytesMut;
use support::frame;
use sworn_h2guard::{GuardError, Inbound, Limits, PREFACE, Streams};

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

struct Conn {
    inbound: Inbound,
    streams: Streams,
    out: BytesMut,
}

impl Conn {
    fn new() -> Self {
        let limits = Limits::default();
        Self {
            streams: Streams::new(limits.max_streams),
            inbound: Inbound::new(limits),
            out: BytesMut::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), GuardError> {
        self.inbound.feed(bytes, &mut self.out, &mut self.streams)
    }

    /// Feeds `bytes` in pieces of `step`, as a slow client would send them.
    fn feed_in(&mut self, bytes: &[u8], step: usize) -> Result<(), GuardError> {
        bytes.chunks(step).try_for_each(|c| self.feed(c))
    }
}

fn decode_headers(out: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    assert!(out.starts_with(PREFACE));
    let mut rest = &out[PREFACE.len()..];
    let mut block = Vec::new();
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        if rest[3] == HEADERS || rest[3] == CONTINUATION {
            block.extend_from_slice(&rest[9..9 + len]);
        }
        rest = &rest[9 + len..];
    }
    loona_hpack::Decoder::new().decode(&block).unwrap()
}

fn request_block() -> Vec<u8> {
    loona_hpack::Encoder::new().encode([
        (&b":method"[..], &b"POST"[..]),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
        (b":authority", b"tmp%2Frun%2Fagent.sock"),
        (b"workload.spiffe.io", b"true"),
    ])
}

#[test]
fn percent_encoded_unix_authority_becomes_localhost_and_the_rest_is_kept() {
    let block = request_block();
    let mut input = PREFACE.to_vec();
    input.extend(frame(SETTINGS, 0, 0, &[])); // passes through
    // A padded HEADERS with the first part of the block, then a CONTINUATION.
    let mut padded = vec![2u8];
    padded.extend_from_slice(&block[..10]);
    padded.extend_from_slice(&[0, 0]);
    input.extend(frame(HEADERS, PADDED, 1, &padded));
    input.extend(frame(CONTINUATION, END_HEADERS, 1, &block[10..]));
    // One byte at a time: the framing does not depend on how reads split the stream.
    let mut conn = Conn::new();
    conn.feed_in(&input, 1).unwrap();
    let headers = decode_headers(&conn.out);
    let get = |k: &[u8]| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get(b":authority").unwrap(), b"localhost");
    assert_eq!(get(b":path").unwrap(), b"/SpiffeWorkloadAPI/FetchX509SVID");
    assert_eq!(get(b"workload.spiffe.io").unwrap(), b"true");
    assert_eq!(conn.inbound.requests(), 1);
    assert_eq!(conn.streams.open(), 1);
}

#[test]
fn valid_authority_is_untouched_and_end_stream_survives() {
    let block = loona_hpack::Encoder::new().encode([(&b":authority"[..], &b"localhost:1"[..])]);
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let mut conn = Conn::new();
    conn.feed(&input).unwrap();
    assert_eq!(decode_headers(&conn.out)[0].1, b"localhost:1");
    assert_eq!(conn.out[PREFACE.len() + 4] & END_STREAM, END_STREAM);
}

#[test]
fn garbage_header_block_fails_the_connection() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff]));
    assert_eq!(Conn::new().feed(&input), Err(GuardError::Compression));
}

#[test]
fn a_declared_oversized_frame_fails_at_its_header_before_any_payload_is_kept() {
    let mut conn = Conn::new();
    conn.feed(PREFACE).unwrap();
    // Only the 9-byte header of a 16 MiB HEADERS frame.
    let header = &frame(HEADERS, 0, 1, &[])[..];
    let mut big = vec![0xff, 0xff, 0xff];
    big.extend_from_slice(&header[3..]);
    assert_eq!(
        conn.feed(&big),
        Err(GuardError::FrameTooLarge {
            len: 0xff_ffff,
            max: 16_384
        })
    );
    // The same for any kind of frame, split across reads.
    let mut conn = Conn::new();
    conn.feed(PREFACE).unwrap();
    conn.feed(&[0x00, 0x40]).unwrap();
    assert!(matches!(
        conn.feed(&[0x01, 0x00, 0x00, 0, 0, 0, 1]),
        Err(GuardError::FrameTooLarge { len: 16_385, .. })
    ));
}

#[test]
fn a_table_size_update_past_4096_fails_the_connection() {
    // Dynamic table size update to 1 MiB (RFC 7541 §6.3: 001xxxxx, 5-bit prefix integer).
    let mut update = Vec::new();
    loona_hpack::encoder::encode_integer_into(1 << 20, 5, 0x20, &mut update).unwrap();
    update.push(0x82); // then :method GET, indexed
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &update));
    assert_eq!(
        Conn::new().feed(&input),
        Err(GuardError::TableTooLarge { max: 4096 })
    );
}

#[test]
fn indexed_references_that_decode_past_16_kib_fail_the_connection() {
    // One 4000-byte header added to the table, then referenced over and over: a few bytes
    // of block that would decode to megabytes.
    let mut enc = loona_hpack::Encoder::new();
    let value = vec![b'a'; 4000];
    let mut block = enc.encode([(&b"x-big"[..], &value[..])]);
    block.extend(std::iter::repeat_n(0xbe, 8000)); // index 62: the newest dynamic entry
    let mut input = PREFACE.to_vec();
    for (i, chunk) in block.chunks(16_000).enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let last = (i + 1) * 16_000 >= block.len();
        input.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, chunk));
    }
    assert_eq!(
        Conn::new().feed(&input),
        Err(GuardError::HeaderListTooLarge { max: 16 * 1024 })
    );
}

#[test]
fn a_continuation_flood_fails_at_the_ninth_frame() {
    let mut conn = Conn::new();
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, 0, 1, &request_block()[..4]));
    conn.feed(&input).unwrap();
    for _ in 0..8 {
        conn.feed(&frame(CONTINUATION, 0, 1, &[])).unwrap();
    }
    assert_eq!(
        conn.feed(&frame(CONTINUATION, 0, 1, &[])),
        Err(GuardError::TooManyContinuations { max: 8 })
    );
}

#[test]
fn a_header_block_over_16_kib_compressed_fails_the_connection() {
    let mut conn = Conn::new();
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, 0, 1, &[0u8; 16_000]));
    conn.feed(&input).unwrap();
    assert_eq!(
        conn.feed(&frame(CONTINUATION, 0, 1, &[0u8; 1000])),
        Err(GuardError::BlockTooLarge { max: 16 * 1024 })
    );
}

#[test]
fn what_is_held_back_stays_under_one_frame_plus_one_block() {
    // A client trickling a maximal legal frame holds at most that frame.
    let mut conn = Conn::new();
    conn.feed(PREFACE).unwrap();
    let f = frame(0x0, 0, 1, &[7u8; 16_384]);
    for c in f[..f.len() - 1].chunks(1000) {
        conn.feed(c).unwrap();
        assert!(conn.inbound.buffered() < 9 + 16_384);
    }
    conn.feed(&f[f.len() - 1..]).unwrap();
    assert_eq!(conn.inbound.buffered(), 0);
}

#[test]
fn bytes_that_are_not_the_preface_fail_the_connection() {
    assert!(matches!(
        Conn::new().feed(b"GET / HTTP/1.1\r\n"),
        Err(GuardError::Malformed(_))
    ));
}
