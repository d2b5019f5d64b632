//! Why a connection was failed.

/// A limit or framing rule the client broke. Each fails the whole connection: h2 itself would
/// answer most of these with a connection error (RFC 9113 §5.4.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A frame declared a payload over `SETTINGS_MAX_FRAME_SIZE` (RFC 9113 §4.2).
    #[error("frame of {len} bytes exceeds the maximum frame size {max}")]
    FrameTooLarge {
        /// The declared payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A header block's compressed bytes exceeded the limit.
    #[error("header block exceeds {max} bytes")]
    BlockTooLarge {
        /// The limit.
        max: usize,
    },
    /// More CONTINUATION frames in one header block than allowed.
    #[error("more than {max} CONTINUATION frames in one header block")]
    TooManyContinuations {
        /// The limit.
        max: usize,
    },
    /// The decoded header list exceeded the limit (sizes as RFC 9113 §6.5.2 counts them).
    #[error("decoded header list exceeds {max} bytes")]
    HeaderListTooLarge {
        /// The limit.
        max: usize,
    },
    /// A dynamic table size update above the advertised table size (RFC 7541 §6.3).
    #[error("HPACK dynamic table size update above {max} bytes")]
    TableTooLarge {
        /// The limit.
        max: usize,
    },
    /// The header block does not decode (RFC 7541); h2 would answer COMPRESSION_ERROR.
    #[error("header block does not decode")]
    Compression,
    /// More streams tracked at once than the limit: the client ignores the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` and its refusals.
    #[error("more than {max} streams open at once")]
    TooManyStreams {
        /// The limit.
        max: usize,
    },
    /// A frame sequence HTTP/2 forbids (RFC 9113 §6.2, §6.10).
    #[error("malformed HTTP/2: {0}")]
    Malformed(&'static str),
    /// No complete HEADERS within the first-request deadline.
    #[error("no complete request headers within the deadline")]
    NoRequestInTime,
    /// No open stream for the idle deadline.
    #[error("connection idle with no open stream past the deadline")]
    Idle,
}

impl GuardError {
    /// A short stable label, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            GuardError::FrameTooLarge { .. } => "frame_too_large",
            GuardError::BlockTooLarge { .. } => "block_too_large",
            GuardError::TooManyContinuations { .. } => "continuation_flood",
            GuardError::HeaderListTooLarge { .. } => "header_list_too_large",
            GuardError::TableTooLarge { .. } => "table_too_large",
            GuardError::Compression => "compression",
            GuardError::TooManyStreams { .. } => "too_many_streams",
            GuardError::Malformed(_) => "malformed",
            GuardError::NoRequestInTime => "no_request_in_time",
            GuardError::Idle => "idle",
        }
    }
}
