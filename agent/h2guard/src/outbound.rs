//! The server's frames, read as they are written, for the stream state only.
//!
//! The server is trusted: its bytes pass unchanged and unbuffered. Only frame headers are
//! looked at, to learn when the server ends or resets a stream.

use crate::frame::{FrameHeader, HEADER_LEN, RST_STREAM};
use crate::streams::Streams;

/// Frame boundaries of the server-to-client direction.
#[derive(Debug, Default)]
pub struct Outbound {
    head: [u8; HEADER_LEN],
    head_len: usize,
    skip: usize,
}

impl Outbound {
    /// Scans bytes the server has written, in order.
    pub fn scan(&mut self, mut written: &[u8], streams: &mut Streams) {
        while !written.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(written.len());
                self.skip -= n;
                written = &written[n..];
                continue;
            }
            let n = (HEADER_LEN - self.head_len).min(written.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&written[..n]);
            self.head_len += n;
            written = &written[n..];
            if let Some(h) = (self.head_len == HEADER_LEN)
                .then(|| FrameHeader::parse(&self.head))
                .flatten()
            {
                self.head_len = 0;
                self.skip = h.len;
                if h.kind == RST_STREAM {
                    streams.reset(h.stream_id);
                } else if h.ends_stream() {
                    streams.server_end(h.stream_id);
                }
            }
        }
    }
}
