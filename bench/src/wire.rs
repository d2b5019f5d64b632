//! The line protocol between the runner and its worker processes: one JSON object per line,
//! commands on the worker's stdin, replies (and asynchronous stream events) on its stdout.
//! Every command gets exactly one reply, in order; `Update` and `StreamEnded` may arrive at
//! any time after a `Stream` command succeeded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Runner → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Connect a Workload API client to `socket` (`unix:///abs/path`).
    Connect {
        /// Endpoint URI.
        socket: String,
    },
    /// `count` sequential FetchX509SVID calls; replies `Latencies`.
    Fetch {
        /// Endpoint URI (already connected).
        socket: String,
        /// Calls to make.
        count: u32,
    },
    /// FetchX509SVID in a closed loop for `millis`; replies `Latencies` with start times.
    FetchFor {
        /// Endpoint URI.
        socket: String,
        /// How long to keep fetching.
        millis: u64,
    },
    /// Fetch every `interval_ms` until an SVID comes back; replies `Fetched`.
    FetchUntilOk {
        /// Endpoint URI.
        socket: String,
        /// Pause between failed attempts.
        interval_ms: u64,
        /// Give up after this long.
        timeout_ms: u64,
    },
    /// Open a FetchX509SVID stream and keep it open; replies `Streaming` with the first SVID.
    Stream {
        /// Endpoint URI.
        socket: String,
    },
    /// Close every open stream; replies `Ok`.
    CloseStreams,
    /// Exit without a reply.
    Exit,
}

/// Worker → runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The command succeeded.
    Ok,
    /// The command failed.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Latencies of successful calls, in microseconds (and their start times for `FetchFor`).
    Latencies {
        /// One per successful call.
        lat_us: Vec<u64>,
        /// Start time (unix ns) of each successful call; empty for `Fetch`.
        at_ns: Vec<u64>,
        /// Failed calls.
        errors: u32,
        /// The first failure's message.
        first_error: Option<String>,
    },
    /// An SVID arrived.
    Fetched {
        /// When (unix ns).
        at_ns: u64,
        /// Calls it took.
        attempts: u32,
        /// Tag of the leaf certificate.
        tag: u64,
    },
    /// A stream is open and delivered its first SVID.
    Streaming {
        /// Tag of the first leaf certificate.
        tag: u64,
    },
    /// An open stream delivered another SVID.
    Update {
        /// The stream's endpoint.
        socket: String,
        /// When (unix ns).
        at_ns: u64,
        /// Tag of the new leaf certificate.
        tag: u64,
    },
    /// An open stream ended.
    StreamEnded {
        /// The stream's endpoint.
        socket: String,
        /// Why.
        message: String,
    },
}

impl Reply {
    /// Whether this is an asynchronous stream event rather than a command's reply.
    pub fn is_event(&self) -> bool {
        matches!(self, Reply::Update { .. } | Reply::StreamEnded { .. })
    }
}

/// Wall-clock time in unix nanoseconds (comparable across processes on this machine).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A short, non-cryptographic tag telling two leaf certificates apart.
pub fn leaf_tag(der: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    der.hash(&mut h);
    h.finish()
}
