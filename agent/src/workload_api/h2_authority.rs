//! Accepting the `:authority` gRPC C-core sends on unix sockets.
//!
//! gRPC C-core (grpcio, so py-spiffe) names a `unix:` target's authority after
//! the socket path, percent-encoded: `tmp%2Frun%2Fagent.sock`. RFC 3986 allows
//! percent-encoding in a reg-name, but the `http` crate that hyper and h2 use
//! refuses it, so h2 resets every such stream with PROTOCOL_ERROR and
//! unmodified py-spiffe clients could not use the Workload API at all.
//!
//! On a unix socket the authority means nothing: routing is by `:path`. This
//! wrapper sits on the read side of a connection and rewrites only an
//! `:authority` that the `http` crate would refuse, to `localhost`. It parses
//! HTTP/2 frames (RFC 9113 §4, §6.2, §6.10): HEADERS/CONTINUATION header
//! blocks are HPACK-decoded and re-encoded (RFC 7541) with an encoder whose
//! table the server's decoder mirrors; every other frame passes unchanged. A
//! block that does not decode fails the connection, as h2 itself would.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// SETTINGS_MAX_FRAME_SIZE's floor: every peer accepts frames this large.
const MAX_FRAME: usize = 16_384;
/// Larger header blocks are refused (the Workload API's are tiny).
const MAX_BLOCK: usize = 64 * 1024;

struct Pending {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

/// Rewrites client→server header blocks; see the module docs.
pub struct AuthorityFix<S> {
    inner: S,
    raw: BytesMut,
    ready: BytesMut,
    preface_done: bool,
    pending: Option<Pending>,
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
    eof: bool,
}

impl<S> std::fmt::Debug for AuthorityFix<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix").finish_non_exhaustive()
    }
}

fn bad(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn acceptable(authority: &[u8]) -> bool {
    http::uri::Authority::try_from(authority).is_ok()
}

impl<S> AuthorityFix<S> {
    /// Wraps a server-side connection.
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            preface_done: false,
            pending: None,
            decoder: loona_hpack::Decoder::new(),
            encoder: loona_hpack::Encoder::new(),
            eof: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves every complete unit from `raw` to `ready`.
    fn process(&mut self) -> io::Result<()> {
        if !self.preface_done {
            if self.raw.len() < PREFACE.len() {
                return Ok(());
            }
            if &self.raw[..PREFACE.len()] != PREFACE {
                // Not HTTP/2 prior knowledge: let h2 refuse it as it would.
                self.ready.extend_from_slice(&self.raw.split());
                self.preface_done = true;
                return Ok(());
            }
            self.ready
                .extend_from_slice(&self.raw.split_to(PREFACE.len()));
            self.preface_done = true;
        }
        while self.raw.len() >= 9 {
            let len = (usize::from(self.raw[0]) << 16)
                | (usize::from(self.raw[1]) << 8)
                | usize::from(self.raw[2]);
            if self.raw.len() < 9 + len {
                return Ok(());
            }
            let frame = self.raw.split_to(9 + len);
            let (kind, flags) = (frame[3], frame[4]);
            let stream_id =
                u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
            let payload = &frame[9..];
            match kind {
                HEADERS => {
                    if self.pending.is_some() {
                        return Err(bad("HEADERS while a header block is open"));
                    }
                    let mut p = payload;
                    let mut pad = 0usize;
                    if flags & PADDED != 0 {
                        let (&n, rest) =
                            p.split_first().ok_or_else(|| bad("short padded HEADERS"))?;
                        pad = usize::from(n);
                        p = rest;
                    }
                    let priority = if flags & PRIORITY != 0 {
                        if p.len() < 5 {
                            return Err(bad("short HEADERS priority"));
                        }
                        let mut b = [0u8; 5];
                        b.copy_from_slice(&p[..5]);
                        p = &p[5..];
                        Some(b)
                    } else {
                        None
                    };
                    if pad > p.len() {
                        return Err(bad("HEADERS padding exceeds payload"));
                    }
                    let fragment = &p[..p.len() - pad];
                    self.pending = Some(Pending {
                        stream_id,
                        flags,
                        priority,
                        block: fragment.to_vec(),
                    });
                    if flags & END_HEADERS != 0 {
                        self.finish_block()?;
                    }
                }
                CONTINUATION => {
                    let p = self
                        .pending
                        .as_mut()
                        .ok_or_else(|| bad("CONTINUATION without HEADERS"))?;
                    if p.stream_id != stream_id {
                        return Err(bad("CONTINUATION on another stream"));
                    }
                    p.block.extend_from_slice(payload);
                    if p.block.len() > MAX_BLOCK {
                        return Err(bad("header block too large"));
                    }
                    if flags & END_HEADERS != 0 {
                        self.finish_block()?;
                    }
                }
                _ => {
                    if self.pending.is_some() {
                        return Err(bad("frame interleaved in a header block"));
                    }
                    self.ready.extend_from_slice(&frame);
                }
            }
        }
        Ok(())
    }

    fn finish_block(&mut self) -> io::Result<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let mut headers = self
            .decoder
            .decode(&p.block)
            .map_err(|_| bad("header block does not decode"))?;
        for (name, value) in &mut headers {
            if name.as_slice() == b":authority" && !acceptable(value) {
                *value = b"localhost".to_vec();
            }
        }
        let block = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let mut first = Vec::new();
        if let Some(prio) = p.priority {
            first.extend_from_slice(&prio);
        }
        let room = MAX_FRAME - first.len();
        let (head, mut rest) = block.split_at(block.len().min(room));
        first.extend_from_slice(head);
        let mut flags = p.flags & (END_STREAM | PRIORITY);
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        self.emit(HEADERS, flags, p.stream_id, &first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
            rest = tail;
            let f = if rest.is_empty() { END_HEADERS } else { 0 };
            self.emit(CONTINUATION, f, p.stream_id, chunk);
        }
        Ok(())
    }

    fn emit(&mut self, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
        let len = payload.len();
        self.ready.put_u8(((len >> 16) & 0xff) as u8);
        self.ready.put_u8(((len >> 8) & 0xff) as u8);
        self.ready.put_u8((len & 0xff) as u8);
        self.ready.put_u8(kind);
        self.ready.put_u8(flags);
        self.ready.put_u32(stream_id);
        self.ready.extend_from_slice(payload);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Bytes of an unfinished frame at EOF are dropped, as h2 would.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.raw.extend_from_slice(rb.filled());
                        if this.raw.len() > MAX_BLOCK + MAX_FRAME + 9 && this.pending.is_some() {
                            return Poll::Ready(Err(bad("header block too large")));
                        }
                        this.process()?;
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![
            (payload.len() >> 16) as u8,
            (payload.len() >> 8) as u8,
            payload.len() as u8,
            kind,
            flags,
        ];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    async fn rewrite(input: Vec<u8>) -> Vec<u8> {
        let mut fix = AuthorityFix::new(&input[..]);
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.unwrap();
        out
    }

    fn decode_headers(out: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        assert!(out.starts_with(PREFACE));
        let mut rest = &out[PREFACE.len()..];
        let mut block = Vec::new();
        while rest.len() >= 9 {
            let len =
                (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
            if rest[3] == HEADERS || rest[3] == CONTINUATION {
                block.extend_from_slice(&rest[9..9 + len]);
            }
            rest = &rest[9 + len..];
        }
        loona_hpack::Decoder::new().decode(&block).unwrap()
    }

    #[tokio::test]
    async fn percent_encoded_unix_authority_becomes_localhost_and_the_rest_is_kept() {
        let mut enc = loona_hpack::Encoder::new();
        let block = enc.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
            (b":authority", b"tmp%2Frun%2Fagent.sock"),
            (b"workload.spiffe.io", b"true"),
        ]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS passes through
        // A padded HEADERS with the first part of the block, then a CONTINUATION.
        let mut padded = vec![2u8];
        padded.extend_from_slice(&block[..10]);
        padded.extend_from_slice(&[0, 0]);
        input.extend(frame(HEADERS, PADDED, 1, &padded));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &block[10..]));
        let out = rewrite(input).await;
        let headers = decode_headers(&out);
        let get = |k: &[u8]| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get(b":authority").unwrap(), b"localhost");
        assert_eq!(get(b":path").unwrap(), b"/SpiffeWorkloadAPI/FetchX509SVID");
        assert_eq!(get(b"workload.spiffe.io").unwrap(), b"true");
    }

    #[tokio::test]
    async fn valid_authority_is_untouched() {
        let block = loona_hpack::Encoder::new().encode([(&b":authority"[..], &b"localhost:1"[..])]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        let out = rewrite(input).await;
        assert_eq!(decode_headers(&out)[0].1, b"localhost:1");
        // END_STREAM survives.
        assert_eq!(out[PREFACE.len() + 4] & END_STREAM, END_STREAM);
    }

    #[tokio::test]
    async fn garbage_header_block_fails_the_connection() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff]));
        let mut fix = AuthorityFix::new(&input[..]);
        let mut out = Vec::new();
        assert!(fix.read_to_end(&mut out).await.is_err());
    }
}
