//! HTTP/2 frame headers (RFC 9113 §4.1).

pub const HEADER_LEN: usize = 9;
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// The 9-byte header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl FrameHeader {
    /// Parses the first 9 bytes of `b`; `None` if there are fewer.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let h = b.get(..HEADER_LEN)?;
        Some(Self {
            len: (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Appends this header (with `len` as given) to `out`.
    pub fn write(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        let len = u32::try_from(self.len).unwrap_or(u32::MAX).min(0x00ff_ffff);
        out.put_slice(&len.to_be_bytes()[1..]);
        out.put_u8(self.kind);
        out.put_u8(self.flags);
        out.put_u32(self.stream_id);
    }

    /// Whether this frame ends its stream from the sender's side.
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM != 0
    }
}
