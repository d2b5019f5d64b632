//! Keyed token buckets on the agent API (docs/architecture.md, "Agent API limits"): by peer
//! IP address before authentication (`Attest`), by agent ID after it (mint, renew, Sync),
//! so agents behind one SNAT address do not share a bucket once they hold an SVID.
//!
//! The buckets are `governor`'s GCRA cells in a sharded map: a check is a lock-free update
//! of one cell. Keys whose bucket is full again carry no state worth keeping; [`Limiter::prune`],
//! run on a timer, forgets them, so memory follows the callers of the last few seconds.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::limits::Rate;

/// Token buckets keyed by `K`.
pub struct Limiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    inner: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
}

impl<K: Hash + Eq + Clone, C: Clock> std::fmt::Debug for Limiter<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("keys", &self.inner.len())
            .finish()
    }
}

/// The quota of `rate`: one token every `1 / per_second`, at most `burst` held.
fn quota(rate: Rate) -> Quota {
    // Validated at startup: per_second > 0 and finite, burst >= 1. A rate too small to
    // express still gives a (very slow) quota rather than none.
    let period = Duration::try_from_secs_f64(1.0 / rate.per_second).unwrap_or(Duration::MAX);
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Buckets of `rate`, on the monotonic clock.
    pub fn new(rate: Rate) -> Self {
        Self::with_clock(rate, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> Limiter<K, C> {
    /// Buckets of `rate` on `clock` (tests pass a fake one).
    pub fn with_clock(rate: Rate, clock: C) -> Self {
        Limiter {
            inner: RateLimiter::dashmap_with_clock(quota(rate), clock),
        }
    }

    /// Takes `n` tokens from `key`'s bucket; false when it holds fewer (or `n` exceeds the
    /// burst, so it never could). `n == 0` is always allowed.
    pub fn allow(&self, key: &K, n: usize) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        let Some(n) = NonZeroU32::new(n) else {
            return true;
        };
        matches!(self.inner.check_key_n(key, n), Ok(Ok(())))
    }

    /// Forgets every key whose bucket has refilled (it would behave the same if new).
    pub fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_bucket_empties_refills_and_keys_are_independent() {
        let clock = FakeRelativeClock::default();
        let r = Limiter::with_clock(
            Rate {
                per_second: 1.0,
                burst: 3,
            },
            clock.clone(),
        );
        assert!(!r.allow(&"a", 4), "more than the burst is never allowed");
        assert!(r.allow(&"a", 1));
        assert!(r.allow(&"a", 2));
        assert!(!r.allow(&"a", 1));
        assert!(r.allow(&"b", 3), "keys are independent");
        clock.advance(Duration::from_secs(1));
        assert!(r.allow(&"a", 1), "one token back after a second");
        assert!(!r.allow(&"a", 1));
    }

    #[test]
    fn keys_whose_bucket_refilled_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let r = Limiter::with_clock(
            Rate {
                per_second: 10.0,
                burst: 20,
            },
            clock.clone(),
        );
        for ip in 0..10_000u32 {
            assert!(r.allow(&ip, 1));
        }
        assert_eq!(r.len(), 10_000);
        // A bucket with one token taken is full again after 0.1 s (governor keeps a key
        // until one more emission interval has passed).
        clock.advance(Duration::from_secs(1));
        assert!(r.allow(&7, 20), "7 is full again");
        r.prune();
        assert_eq!(r.len(), 1, "only the key drained just now is kept");
    }
}
