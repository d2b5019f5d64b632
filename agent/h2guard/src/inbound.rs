//! The client's bytes, framed and checked before anything is buffered (RFC 9113 §4–§6).
//!
//! Invariant: after every [`Inbound::feed`], at most one incomplete frame is held (under
//! `9 + max_frame` bytes) plus at most one open header block (under `max_block` bytes);
//! everything else has been checked and moved to the caller's output, or the connection has
//! failed. Frame headers are checked as soon as their 9 bytes arrive, so a declared 16 MiB
//! frame fails the connection without a byte of its payload being kept.
//!
//! HEADERS/CONTINUATION blocks are decoded within bounds and re-encoded ([`crate::hpack`]);
//! every other frame passes unchanged once complete.

use bytes::BytesMut;

use crate::error::GuardError;
use crate::frame::{
    CONTINUATION, DATA, END_HEADERS, END_STREAM, FrameHeader, HEADER_LEN, HEADERS, PADDED,
    PRIORITY, RST_STREAM,
};
use crate::hpack::Hpack;
use crate::limits::{Limits, MAX_FRAME_SIZE};
use crate::streams::Streams;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Pending {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    continuations: usize,
}

/// The client-to-server direction of one connection.
pub struct Inbound {
    limits: Limits,
    raw: BytesMut,
    preface_seen: usize,
    pending: Option<Pending>,
    hpack: Hpack,
    requests: u64,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("buffered", &self.buffered())
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// A new connection's client side.
    pub fn new(limits: Limits) -> Self {
        let hpack = Hpack::new(&limits);
        Self {
            limits,
            raw: BytesMut::new(),
            preface_seen: 0,
            pending: None,
            hpack,
            requests: 0,
        }
    }

    /// Complete header blocks received so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes held back: an incomplete frame plus an open header block.
    pub fn buffered(&self) -> usize {
        self.raw.len() + self.pending.as_ref().map_or(0, |p| p.block.len())
    }

    /// Takes the next bytes from the client; appends what may pass to `out`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        streams: &mut Streams,
    ) -> Result<(), GuardError> {
        if self.preface_seen < PREFACE.len() {
            let n = (PREFACE.len() - self.preface_seen).min(input.len());
            if input[..n] != PREFACE[self.preface_seen..self.preface_seen + n] {
                return Err(GuardError::Malformed("not an HTTP/2 connection preface"));
            }
            out.extend_from_slice(&input[..n]);
            self.preface_seen += n;
            input = &input[n..];
        }
        // Complete frames are taken straight from `input`; only a frame's unfinished tail is
        // copied into `raw`.
        while !input.is_empty() {
            if self.raw.is_empty() {
                match self.complete_frame(input)? {
                    Some(len) => {
                        let (frame, rest) = input.split_at(len);
                        self.frame(frame, out, streams)?;
                        input = rest;
                    }
                    None => {
                        self.raw.extend_from_slice(input);
                        input = &[];
                    }
                }
            } else {
                let want = match FrameHeader::parse(&self.raw) {
                    Some(h) => HEADER_LEN + h.len,
                    None => HEADER_LEN,
                };
                let n = (want - self.raw.len()).min(input.len());
                self.raw.extend_from_slice(&input[..n]);
                input = &input[n..];
                if self.raw.len() == HEADER_LEN {
                    self.check_header(&self.raw[..])?;
                }
                if let Some(len) = self.complete_frame(&self.raw)? {
                    let frame = self.raw.split_to(len);
                    self.frame(&frame, out, streams)?;
                }
            }
        }
        Ok(())
    }

    /// The length of the complete frame at the start of `b`, if it is complete.
    fn complete_frame(&self, b: &[u8]) -> Result<Option<usize>, GuardError> {
        let Some(h) = FrameHeader::parse(b) else {
            return Ok(None);
        };
        self.check_header(b)?;
        Ok((b.len() >= HEADER_LEN + h.len).then_some(HEADER_LEN + h.len))
    }

    fn check_header(&self, b: &[u8]) -> Result<(), GuardError> {
        match FrameHeader::parse(b) {
            Some(h) if h.len > self.limits.max_frame => Err(GuardError::FrameTooLarge {
                len: h.len,
                max: self.limits.max_frame,
            }),
            _ => Ok(()),
        }
    }

    fn frame(
        &mut self,
        frame: &[u8],
        out: &mut BytesMut,
        streams: &mut Streams,
    ) -> Result<(), GuardError> {
        let Some(h) = FrameHeader::parse(frame) else {
            return Err(GuardError::Malformed("short frame"));
        };
        let payload = &frame[HEADER_LEN..];
        match h.kind {
            HEADERS => self.headers(h, payload, out, streams),
            CONTINUATION => self.continuation(h, payload, out, streams),
            _ if self.pending.is_some() => {
                Err(GuardError::Malformed("frame interleaved in a header block"))
            }
            kind => {
                if kind == DATA && h.flags & END_STREAM != 0 {
                    streams.client_end(h.stream_id);
                } else if kind == RST_STREAM {
                    streams.reset(h.stream_id);
                }
                out.extend_from_slice(frame);
                Ok(())
            }
        }
    }

    fn headers(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        out: &mut BytesMut,
        streams: &mut Streams,
    ) -> Result<(), GuardError> {
        if self.pending.is_some() {
            return Err(GuardError::Malformed(
                "HEADERS while a header block is open",
            ));
        }
        let mut p = payload;
        let mut pad = 0usize;
        if h.flags & PADDED != 0 {
            let (&n, rest) = p
                .split_first()
                .ok_or(GuardError::Malformed("short padded HEADERS"))?;
            pad = usize::from(n);
            p = rest;
        }
        let priority = if h.flags & PRIORITY != 0 {
            let (prio, rest) = p
                .split_first_chunk::<5>()
                .ok_or(GuardError::Malformed("short HEADERS priority"))?;
            p = rest;
            Some(*prio)
        } else {
            None
        };
        let fragment = p
            .get(..p.len().wrapping_sub(pad))
            .filter(|_| pad <= p.len())
            .ok_or(GuardError::Malformed("HEADERS padding exceeds payload"))?;
        if fragment.len() > self.limits.max_block {
            return Err(GuardError::BlockTooLarge {
                max: self.limits.max_block,
            });
        }
        self.pending = Some(Pending {
            stream_id: h.stream_id,
            flags: h.flags,
            priority,
            block: fragment.to_vec(),
            continuations: 0,
        });
        if h.flags & END_HEADERS != 0 {
            self.finish_block(out, streams)?;
        }
        Ok(())
    }

    fn continuation(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        out: &mut BytesMut,
        streams: &mut Streams,
    ) -> Result<(), GuardError> {
        let limits = &self.limits;
        let p = self
            .pending
            .as_mut()
            .ok_or(GuardError::Malformed("CONTINUATION without HEADERS"))?;
        if p.stream_id != h.stream_id {
            return Err(GuardError::Malformed("CONTINUATION on another stream"));
        }
        p.continuations += 1;
        if p.continuations > limits.max_continuations {
            return Err(GuardError::TooManyContinuations {
                max: limits.max_continuations,
            });
        }
        if p.block.len() + payload.len() > limits.max_block {
            return Err(GuardError::BlockTooLarge {
                max: limits.max_block,
            });
        }
        p.block.extend_from_slice(payload);
        if h.flags & END_HEADERS != 0 {
            self.finish_block(out, streams)?;
        }
        Ok(())
    }

    fn finish_block(
        &mut self,
        out: &mut BytesMut,
        streams: &mut Streams,
    ) -> Result<(), GuardError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let block = self.hpack.rewrite(&p.block)?;
        streams.client_headers(p.stream_id, p.flags & END_STREAM != 0)?;
        self.requests += 1;
        let mut first = Vec::with_capacity(MAX_FRAME_SIZE);
        if let Some(prio) = p.priority {
            first.extend_from_slice(&prio);
        }
        let room = MAX_FRAME_SIZE - first.len();
        let (head, mut rest) = block.split_at(block.len().min(room));
        first.extend_from_slice(head);
        let mut flags = p.flags & (END_STREAM | PRIORITY);
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        emit(out, HEADERS, flags, p.stream_id, &first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
            rest = tail;
            let f = if rest.is_empty() { END_HEADERS } else { 0 };
            emit(out, CONTINUATION, f, p.stream_id, chunk);
        }
        Ok(())
    }
}

fn emit(out: &mut BytesMut, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
    FrameHeader {
        len: payload.len(),
        kind,
        flags,
        stream_id,
    }
    .write(out);
    out.extend_from_slice(payload);
}
