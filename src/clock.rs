//! Time as a dependency.
//!
//! Everything that decides by time (CA rotation, SVID expiry, token TTLs, audit timestamps)
//! reads it from a [`Clock`], so tests drive hours of rotation with a [`FakeClock`] instead of
//! sleeping. [`FakeClock`] is public (not `cfg(test)`) because integration tests and `sworn-dev`
//! use it too; production code uses [`SystemClock`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone)]
pub struct FakeClock {
    now: Arc<Mutex<SystemTime>>,
}

impl FakeClock {
    /// A fake clock reading `start`.
    pub fn new(start: SystemTime) -> Self {
        FakeClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A fake clock reading the current wall time truncated to whole seconds (certificates
    /// carry whole seconds, so tests can compare times exactly).
    pub fn at_wall_time() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Sets the time.
    pub fn set(&self, to: SystemTime) {
        *self.lock() = to;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        // A panic while holding this lock cannot leave a SystemTime half-written.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.lock()
    }
}

impl fmt::Debug for FakeClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeClock")
            .field("now", &self.now())
            .finish()
    }
}

/// Seconds since the Unix epoch (negative before it), as stored in the datastore.
pub fn unix_now(clock: &dyn Clock) -> i64 {
    unix_secs(clock.now())
}

/// Seconds since the Unix epoch of `t` (negative before it; saturating).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told_and_clones_share_time() {
        let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(1000));
        let other = clock.clone();
        clock.advance(Duration::from_secs(5));
        assert_eq!(other.now(), UNIX_EPOCH + Duration::from_secs(1005));
        other.set(UNIX_EPOCH);
        assert_eq!(unix_now(&clock), 0);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(3)), -3);
    }
}
