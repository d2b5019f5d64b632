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
        /// Its validity (`notBefore`, `notAfter`) in unix seconds, when it parses.
        #[serde(default)]
        validity: Option<(u64, u64)>,
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

/// The validity (`notBefore`, `notAfter`, unix seconds) of a DER certificate: a minimal walk
/// of `Certificate → TBSCertificate → [version] serial signature issuer validity`, enough
/// for the SVIDs both systems issue; `None` on anything unexpected.
pub fn leaf_validity(der: &[u8]) -> Option<(u64, u64)> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30] {
        rest = tlv(rest, tag)?.1;
    }
    let (validity, _) = tlv(rest, 0x30)?;
    let (nb, after) = time(validity)?;
    let (na, _) = time(after)?;
    Some((nb, na))
}

/// One DER element of tag `tag` at the start of `b`: (contents, what follows).
fn tlv(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, 2 + n)
    };
    let body = b.get(head..head + len)?;
    Some((body, &b[head + len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as unix seconds.
fn time(b: &[u8]) -> Option<(u64, &[u8])> {
    let (body, rest, year_digits) = match b.first()? {
        0x17 => {
            let (body, rest) = tlv(b, 0x17)?;
            (body, rest, 2)
        }
        0x18 => {
            let (body, rest) = tlv(b, 0x18)?;
            (body, rest, 4)
        }
        _ => return None,
    };
    let s = std::str::from_utf8(body).ok()?;
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let mut year = num(0..year_digits)?;
    if year_digits == 2 {
        year += if year < 50 { 2000 } else { 1900 };
    }
    let o = year_digits;
    let (mon, day) = (num(o..o + 2)?, num(o + 2..o + 4)?);
    let (h, m, sec) = (num(o + 4..o + 6)?, num(o + 6..o + 8)?, num(o + 8..o + 10)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mon <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mon + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    Some((u64::try_from(secs).ok()?, rest))
}

/// The latest instant at which any of `replies` fetched, or `t0` when none did.
pub fn last_fetched(replies: &[Reply], t0: u64) -> u64 {
    replies
        .iter()
        .filter_map(|r| match r {
            Reply::Fetched { at_ns, .. } => Some(*at_ns),
            _ => None,
        })
        .max()
        .unwrap_or(t0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_utc_and_generalized_times() {
        // 2026-12-02 12:00:00 UTC = 1796212800.
        let utc = [&[0x17u8, 13][..], b"261202120000Z"].concat();
        assert_eq!(time(&utc).unwrap().0, 1_796_212_800);
        let gen_time = [&[0x18u8, 15][..], b"20261202120000Z"].concat();
        assert_eq!(time(&gen_time).unwrap().0, 1_796_212_800);
    }

    #[test]
    fn walks_a_certificate_to_its_validity() {
        let t = |s: &[u8]| [&[0x17u8, 13][..], s].concat();
        let seq = |tag: u8, body: &[u8]| {
            let mut v = vec![tag, body.len() as u8];
            v.extend_from_slice(body);
            v
        };
        let validity = seq(0x30, &[t(b"261202120000Z"), t(b"261202130000Z")].concat());
        let tbs = seq(
            0x30,
            &[
                seq(0xa0, &seq(0x02, &[2])),
                seq(0x02, &[1]),
                seq(0x30, &[]),
                seq(0x30, &[]),
                validity,
            ]
            .concat(),
        );
        let cert = seq(0x30, &[tbs, seq(0x30, &[])].concat());
        assert_eq!(leaf_validity(&cert), Some((1_796_212_800, 1_796_216_400)));
    }
}
