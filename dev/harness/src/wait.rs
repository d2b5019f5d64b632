//! Bounded waits on a condition, in place of fixed sleeps.
//!
//! A sleep that stands in for a condition ("the agent has probably synced by now") is either
//! too short on a busy machine (a flake) or too long everywhere (a slow suite). These wait
//! for the condition itself, checking it every [`POLL`], and give up after a limit with a
//! message that names the condition and the time spent:
//!
//! ```text
//! timed out after 10.02s (limit 10s) waiting for the agent to hold entry 3f2a…
//! ```
//!
//! The `wait_*` functions panic with that message (for tests); [`poll_for`] and
//! [`poll_blocking`] return it as [`TimedOut`] (for library code). Async waits sleep on the
//! tokio clock, so tests with a paused clock work, and cancel a condition that is still
//! running at the limit, so a hung check cannot outlast the bound.

use std::time::Duration;

/// How often a condition is checked.
pub const POLL: Duration = Duration::from_millis(50);

/// A condition did not hold within its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// The condition, as the caller named it.
    pub what: String,
    /// Time spent waiting.
    pub elapsed: Duration,
    /// The limit.
    pub limit: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {:.2?} (limit {:?}) waiting for {}",
            self.elapsed, self.limit, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Waits until `condition` returns `Some`, checking every [`POLL`] for at most `timeout`;
/// returns the value.
pub async fn poll_for<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    loop {
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, condition()).await {
            return Ok(value);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what: what.to_owned(),
                elapsed: now - start,
                limit: timeout,
            });
        }
        tokio::time::sleep_until((now + POLL).min(deadline)).await;
    }
}

/// [`poll_for`] for code without an async runtime: blocks the thread between checks.
pub fn poll_blocking<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let start = std::time::Instant::now();
    let deadline = start + timeout;
    loop {
        if let Some(value) = condition() {
            return Ok(value);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what: what.to_owned(),
                elapsed: now - start,
                limit: timeout,
            });
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Waits until `condition` holds, for at most `timeout`; returns how long it took. Panics
/// with a [`TimedOut`] message otherwise. The condition must not block (it runs on the
/// async runtime); for one that awaits, use [`wait_until_async`].
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    or_panic(poll_for(what, timeout, async || condition().then_some(())).await);
    start.elapsed()
}

/// Waits until the async `condition` holds, for at most `timeout`; returns how long it
/// took. Panics with a [`TimedOut`] message otherwise.
pub async fn wait_until_async(
    what: &str,
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    or_panic(poll_for(what, timeout, async || condition().await.then_some(())).await);
    start.elapsed()
}

/// Waits until the async `condition` returns `Some`, for at most `timeout`; returns the
/// value. Panics with a [`TimedOut`] message otherwise.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    condition: impl AsyncFnMut() -> Option<T>,
) -> T {
    or_panic(poll_for(what, timeout, condition).await)
}

/// [`wait_until`] for threads without an async runtime.
pub fn wait_until_blocking(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = std::time::Instant::now();
    or_panic(poll_blocking(what, timeout, || condition().then_some(())));
    start.elapsed()
}

#[track_caller]
fn or_panic<T>(result: Result<T, TimedOut>) -> T {
    match result {
        Ok(value) => value,
        Err(timed_out) => panic!("{timed_out}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_never_holds_names_itself_and_the_time_spent() {
        let err = poll_for::<()>(
            "the moon to turn blue",
            Duration::from_secs(3),
            async || None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.limit, Duration::from_secs(3));
        assert!(err.elapsed >= Duration::from_secs(3), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("timed out after 3.00s (limit 3s) waiting for the moon to turn blue"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_comes_true_returns_at_once() {
        let mut n = 0;
        let v = wait_for("the third check", Duration::from_secs(5), async || {
            n += 1;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_condition_cannot_outlast_the_limit() {
        let err = poll_for::<()>(
            "a check that never answers",
            Duration::from_secs(2),
            async || {
                std::future::pending::<()>().await;
                None
            },
        )
        .await
        .unwrap_err();
        assert!(err.elapsed < Duration::from_secs(3), "{err:?}");
    }

    #[test]
    fn the_blocking_wait_panics_with_the_message() {
        let panic = std::panic::catch_unwind(|| {
            wait_until_blocking("nothing", Duration::from_millis(120), || false)
        })
        .unwrap_err();
        let text = panic.downcast_ref::<String>().unwrap();
        assert!(text.contains("waiting for nothing"), "{text}");
        assert!(text.contains("(limit 120ms)"), "{text}");
    }
}
