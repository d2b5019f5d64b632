//! Per-key token buckets (per agent for minting, per peer address for
//! attestation), so one agent cannot starve the others or the CA.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A set of token buckets keyed by string.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate_per_sec` sustained, up to `burst` at once.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        RateLimiter {
            rate_per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `key`; false when the bucket is empty.
    pub fn allow(&self, key: &str, n: f64) -> bool {
        let now = Instant::now();
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() > 100_000 {
            // Bound memory: forget idle buckets (they refill to full anyway).
            map.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let (tokens, last) = map.entry(key.to_owned()).or_insert((self.burst, now));
        let elapsed = now.duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate_per_sec).min(self.burst);
        *last = now;
        if *tokens >= n {
            *tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_then_refuses() {
        let r = RateLimiter::new(0.0001, 3.0);
        assert!(r.allow("a", 1.0));
        assert!(r.allow("a", 2.0));
        assert!(!r.allow("a", 1.0));
        assert!(r.allow("b", 1.0), "keys are independent");
    }
}
