//! Time as a dependency.
//!
//! Everything that decides by time (CA rotation, SVID expiry, token TTLs, audit timestamps)
//! reads it from a [`Clock`], so tests drive hours of rotation with a [`FakeClock`] instead of
//! sleeping: [`Clock::sleep_until`] on a fake clock wakes when the test moves the time past
//! the deadline. [`FakeClock`] is public (not `cfg(test)`) because integration tests and
//! `sworn-dev` use it too; production code uses [`SystemClock`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::watch;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Resolves once [`Clock::now`] has reached `deadline`, or later. On the wall clock it may
    /// also resolve late or early when the wall clock is stepped, so callers re-check `now`
    /// and bound the wait with a monotonic timer of their own.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to. Clones share the same time, and sleepers wake when
/// it is moved past their deadline.
#[derive(Clone)]
pub struct FakeClock {
    now: Arc<watch::Sender<SystemTime>>,
}

impl FakeClock {
    /// A fake clock reading `start`.
    pub fn new(start: SystemTime) -> Self {
        FakeClock {
            now: Arc::new(watch::Sender::new(start)),
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
        self.now.send_replace(to);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` fails only once every clone of the clock is gone: then time never
            // moves again, and neither does this sleeper.
            let reached = now.wait_for(|now| *now >= deadline).await.is_ok();
            if !reached {
                std::future::pending::<()>().await;
            }
        })
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

/// The time `secs` seconds after the Unix epoch (before it when negative), as certificates
/// and the datastore carry it.
pub fn from_unix_secs(secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
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
        assert_eq!(from_unix_secs(-3), UNIX_EPOCH - Duration::from_secs(3));
        assert_eq!(unix_secs(from_unix_secs(1005)), 1005);
    }

    #[tokio::test]
    async fn a_fake_clock_sleeper_wakes_when_the_clock_passes_its_deadline() {
        let clock = FakeClock::new(UNIX_EPOCH);
        let deadline = UNIX_EPOCH + Duration::from_secs(3600);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(1800));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before the deadline");
        clock.set(deadline);
        tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .expect("the sleeper wakes once the clock reaches the deadline")
            .unwrap();
        // A deadline already passed resolves at once.
        tokio::time::timeout(Duration::from_secs(10), clock.sleep_until(UNIX_EPOCH))
            .await
            .unwrap();
    }
}
