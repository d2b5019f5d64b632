//! Retry delays: exponential with full jitter, capped, reset on success.

use std::time::Duration;

/// An exponential backoff between `base` and `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `base`, doubles up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            next: base,
        }
    }

    /// The next delay: uniformly random in `[next/2, next]`, then doubles `next`.
    pub fn next_delay(&mut self) -> Duration {
        let current = self.next;
        self.next = (self.next * 2).min(self.cap);
        current / 2 + current.mul_f64(rand::random::<f64>() / 2.0)
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}
