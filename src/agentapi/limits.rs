//! The `[agent_api]` configuration section: what bounds the agent API's transport and
//! its callers (docs/architecture.md, "Agent API limits").
//!
//! Every key has a default documented beside its field; zero, negative or non-finite values
//! are refused at startup with a [`LimitError`] naming the dotted key.

use std::time::Duration;

use serde::Deserialize;

/// A value in `[agent_api]` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: {reason}")]
pub struct LimitError {
    /// The dotted key.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The `[agent_api]` table as written. Private fields: callers see [`AgentApiLimits`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentApi {
    #[serde(default, with = "humantime_serde")]
    handshake_timeout: Option<Duration>,
    max_handshakes: Option<i64>,
    max_connections: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    max_attests_in_flight: Option<i64>,
    max_request_bytes: Option<i64>,
    rate_limits: Option<RawRateLimits>,
}

/// `[agent_api.rate_limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimits {
    attest_per_second: Option<Number>,
    attest_burst: Option<i64>,
    mint_per_second: Option<Number>,
    mint_burst: Option<i64>,
}

/// A TOML number: `5` and `0.5` are both rates.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

/// Token buckets: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second (> 0).
    pub per_second: f64,
    /// Bucket size (>= 1).
    pub burst: u32,
}

/// The validated `[agent_api]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentApiLimits {
    /// A TLS handshake (including the wait for a handshake slot) not finished by then is
    /// closed. Default 10 s: a handshake is two round trips, so a slow link needs well under a
    /// second; a peer that sends nothing gives back its slot soon.
    pub handshake_timeout: Duration,
    /// TLS handshakes in progress at once; more wait for a slot. Default 256: each costs
    /// one signature and a few KiB, and a cluster's agents reconnecting after a server
    /// restart finish in seconds at that rate.
    pub max_handshakes: usize,
    /// Open connections (handshaking or established); one more is closed at once. Default
    /// 8192: one per node for the largest clusters sworn targets, with room for renewals.
    pub max_connections: usize,
    /// A connection with no call in progress that has sent nothing for this long is closed.
    /// Default 5 min: agents keep a Sync stream open, so only abandoned connections idle.
    pub idle_timeout: Duration,
    /// `Attest` calls (join token and Kubernetes) in progress at once; more are refused
    /// with `Unavailable`. Default 32: each can cost three Kubernetes API calls.
    pub max_attests_in_flight: usize,
    /// Largest request message accepted, checked on the length prefix before the body is
    /// read. Default 1 MiB: a full 256-item mint batch at 4 KiB per item (CSR about 300 B,
    /// a projected token about 1.2 KiB, IDs and names; twice that for headroom).
    pub max_request_bytes: usize,
    /// Attestations per peer IP address (before authentication). Default 5/s, burst 20.
    pub attest: Rate,
    /// Mint items (and renewals, Sync opens) per agent ID (after authentication). Default
    /// 500/s, burst 2000: a node's pod churn and a rotation storm.
    pub mint: Rate,
}

impl Default for AgentApiLimits {
    fn default() -> Self {
        AgentApiLimits {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            max_connections: 8192,
            idle_timeout: Duration::from_secs(300),
            max_attests_in_flight: 32,
            max_request_bytes: 1 << 20,
            attest: Rate {
                per_second: 5.0,
                burst: 20,
            },
            mint: Rate {
                per_second: 500.0,
                burst: 2000,
            },
        }
    }
}

fn error(key: &'static str, reason: impl Into<String>) -> LimitError {
    LimitError {
        key,
        reason: reason.into(),
    }
}

fn count(key: &'static str, v: Option<i64>, default: usize) -> Result<usize, LimitError> {
    match v {
        None => Ok(default),
        Some(n) if n > 0 => usize::try_from(n).map_err(|_| error(key, "is too large")),
        Some(n) => Err(error(key, format!("must be a positive integer, not {n}"))),
    }
}

fn duration(
    key: &'static str,
    v: Option<Duration>,
    default: Duration,
) -> Result<Duration, LimitError> {
    match v {
        Some(d) if d.is_zero() => Err(error(key, "must be greater than zero")),
        Some(d) => Ok(d),
        None => Ok(default),
    }
}

fn rate(key: &'static str, v: Option<Number>, default: f64) -> Result<f64, LimitError> {
    let r = match v {
        None => return Ok(default),
        Some(Number::Int(n)) => n as f64,
        Some(Number::Float(f)) => f,
    };
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(error(key, format!("must be a positive number, not {r}")))
    }
}

fn burst(key: &'static str, v: Option<i64>, default: u32) -> Result<u32, LimitError> {
    let n = count(key, v, default as usize)?;
    u32::try_from(n).map_err(|_| error(key, "is too large"))
}

impl RawAgentApi {
    /// Validates the section; an absent section is every default.
    pub fn validate(self) -> Result<AgentApiLimits, LimitError> {
        let d = AgentApiLimits::default();
        let rl = self.rate_limits.unwrap_or_default();
        Ok(AgentApiLimits {
            handshake_timeout: duration(
                "agent_api.handshake_timeout",
                self.handshake_timeout,
                d.handshake_timeout,
            )?,
            max_handshakes: count(
                "agent_api.max_handshakes",
                self.max_handshakes,
                d.max_handshakes,
            )?,
            max_connections: count(
                "agent_api.max_connections",
                self.max_connections,
                d.max_connections,
            )?,
            idle_timeout: duration("agent_api.idle_timeout", self.idle_timeout, d.idle_timeout)?,
            max_attests_in_flight: count(
                "agent_api.max_attests_in_flight",
                self.max_attests_in_flight,
                d.max_attests_in_flight,
            )?,
            max_request_bytes: count(
                "agent_api.max_request_bytes",
                self.max_request_bytes,
                d.max_request_bytes,
            )?,
            attest: Rate {
                per_second: rate(
                    "agent_api.rate_limits.attest_per_second",
                    rl.attest_per_second,
                    d.attest.per_second,
                )?,
                burst: burst(
                    "agent_api.rate_limits.attest_burst",
                    rl.attest_burst,
                    d.attest.burst,
                )?,
            },
            mint: Rate {
                per_second: rate(
                    "agent_api.rate_limits.mint_per_second",
                    rl.mint_per_second,
                    d.mint.per_second,
                )?,
                burst: burst(
                    "agent_api.rate_limits.mint_burst",
                    rl.mint_burst,
                    d.mint.burst,
                )?,
            },
        })
    }
}
