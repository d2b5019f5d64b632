//! The bounds a guarded connection enforces, with the reasons for their defaults.

use std::time::Duration;

/// `SETTINGS_MAX_FRAME_SIZE`'s initial value (RFC 9113 §6.5.2), which the Workload API server
/// keeps: a client may not send a larger frame.
pub const MAX_FRAME_SIZE: usize = 16_384;

/// The bounds of one connection. [`Limits::default`] is what the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload accepted; default [`MAX_FRAME_SIZE`], the value advertised.
    pub max_frame: usize,
    /// Largest compressed header block (HEADERS plus its CONTINUATIONs); default 16 KiB.
    /// Workload API requests carry a handful of short headers.
    pub max_block: usize,
    /// Most CONTINUATION frames in one block; default 8. A client splits a block at the
    /// frame size, so 16 KiB needs at most one.
    pub max_continuations: usize,
    /// Largest decoded header list, counted as RFC 9113 §6.5.2 does (name + value + 32 per
    /// field); default 16 KiB, the `SETTINGS_MAX_HEADER_LIST_SIZE` the server advertises.
    pub max_header_list: usize,
    /// Largest HPACK dynamic table a size update may ask for; default 4096 bytes, the
    /// `SETTINGS_HEADER_TABLE_SIZE` the server advertises (RFC 7541 §4.2).
    pub max_table: usize,
    /// Most streams tracked at once; default 64, four times the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, so refused streams in flight still fit.
    pub max_streams: usize,
    /// A connection must complete its first HEADERS within this; default 10 s.
    pub first_headers_within: Duration,
    /// A connection with no open stream for this long is closed; default 5 min. Open streams
    /// are never timed out: a FetchX509SVID stream is idle for an hour by design.
    pub idle_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: MAX_FRAME_SIZE,
            max_block: 16 * 1024,
            max_continuations: 8,
            max_header_list: 16 * 1024,
            max_table: 4096,
            max_streams: 64,
            first_headers_within: Duration::from_secs(10),
            idle_after: Duration::from_secs(300),
        }
    }
}
