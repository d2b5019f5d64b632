//! Fuzzes the Workload API's HTTP/2 front (sworn_h2guard::Inbound) with arbitrary client
//! bytes, split into arbitrary reads.
//!
//! Invariants, for every input: what the guard holds back never exceeds one frame plus one
//! header block; what it passes on is whole frames of at most the advertised frame size, after
//! the preface; their header blocks decode with a decoder that mirrors the guard's encoder, to
//! a list within the header-list bound, with an `:authority` the `http` crate accepts.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sworn_h2guard::{Inbound, Limits, PREFACE, Streams};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so splits vary; the preface is prepended half the
    // time so the fuzzer reaches the framing quickly.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::new();
    if split & 0x80 != 0 {
        input.extend_from_slice(PREFACE);
    }
    input.extend_from_slice(rest);
    let step = usize::from(split & 0x7f).max(1);

    let limits = Limits::default();
    let mut inbound = Inbound::new(limits.clone());
    let mut streams = Streams::new(limits.max_streams);
    let mut out = BytesMut::new();
    for chunk in input.chunks(step) {
        if inbound.feed(chunk, &mut out, &mut streams).is_err() {
            break;
        }
        assert!(
            inbound.buffered() < 9 + limits.max_frame + limits.max_block,
            "held back {} bytes",
            inbound.buffered()
        );
        assert!(streams.open() <= limits.max_streams);
    }

    // What passed is the preface (or a prefix of it) followed by whole, bounded frames.
    let n = out.len().min(PREFACE.len());
    assert_eq!(&out[..n], &PREFACE[..n]);
    let mut rest = &out[n..];
    let mut mirror = loona_hpack::Decoder::new();
    let mut block = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 9, "a partial frame header was passed on");
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        assert!(len <= limits.max_frame, "a {len}-byte frame was passed on");
        assert!(rest.len() >= 9 + len, "a partial frame was passed on");
        let (kind, flags) = (rest[3], rest[4]);
        let payload = &rest[9..9 + len];
        if kind == 0x1 || kind == 0x9 {
            // Emitted HEADERS carry no padding; PRIORITY's 5 bytes lead the first frame.
            let fragment = if kind == 0x1 && flags & 0x20 != 0 {
                &payload[5..]
            } else {
                payload
            };
            block.extend_from_slice(fragment);
            if flags & 0x4 != 0 {
                let headers = mirror.decode(&block).expect("a re-encoded block decodes");
                let size: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
                assert!(
                    size <= limits.max_header_list,
                    "{size}-byte header list passed on"
                );
                for (name, value) in &headers {
                    if name.as_slice() == b":authority" {
                        assert!(http::uri::Authority::try_from(&value[..]).is_ok());
                    }
                }
                block.clear();
            }
        }
        rest = &rest[9 + len..];
    }
});
