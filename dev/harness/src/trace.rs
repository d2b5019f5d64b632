//! In-process tracing for failure reports.
//!
//! Servers and agents that a test runs inside its own process log through `tracing`.
//! [`capture`] installs a global subscriber that keeps the most recent [`KEPT_LINES`] lines
//! in memory; a [`crate::RunDir`] dropped during a panic prints the last
//! [`crate::TAIL_LINES`] of them and saves all of them as `in-process-tracing.log` in the
//! kept directory.
//!
//! The subscriber is process-wide: when several tests share a process (plain `cargo test`
//! runs them on threads) their lines interleave, and the report says so. Under nextest each
//! test is its own process, so the lines are exactly that test's.
//!
//! The filter is `$SWORN_TEST_LOG` if set, else [`DEFAULT_FILTER`].

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// Lines kept in memory; older ones are dropped.
pub const KEPT_LINES: usize = 50_000;

/// What is recorded unless `SWORN_TEST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str = "info,sworn_server=debug,sworn_agent=debug,sworn_helper=debug,sworn_dev=debug,kube_client::client::builder=off";

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<String>,
    dropped: u64,
}

static RING: OnceLock<Mutex<Ring>> = OnceLock::new();
static INSTALLED: OnceLock<bool> = OnceLock::new();

fn ring() -> &'static Mutex<Ring> {
    RING.get_or_init(|| Mutex::new(Ring::default()))
}

/// Starts keeping this process's tracing for failure reports. Idempotent. Returns whether
/// the capture is active: false if the process had already installed another global
/// subscriber (whose output then goes wherever that one writes).
pub fn capture() -> bool {
    *INSTALLED.get_or_init(|| {
        let filter = std::env::var("SWORN_TEST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_thread_names(true)
            .with_writer(RingWriter)
            .try_init()
            .is_ok()
    })
}

/// Whether [`capture`] is active.
pub fn is_capturing() -> bool {
    INSTALLED.get().copied().unwrap_or(false)
}

/// The kept lines, oldest first, and how many older ones were dropped.
pub fn lines() -> (Vec<String>, u64) {
    let ring = ring().lock().unwrap_or_else(PoisonError::into_inner);
    (ring.lines.iter().cloned().collect(), ring.dropped)
}

/// A position in the kept lines: everything logged so far is before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint(u64);

/// Marks the present, so that [`lines_since`] returns only what is logged afterwards (an
/// assertion on a denial must not pass on an older one).
pub fn checkpoint() -> Checkpoint {
    let ring = ring().lock().unwrap_or_else(PoisonError::into_inner);
    Checkpoint(ring.dropped + ring.lines.len() as u64)
}

/// The kept lines logged after `since`, oldest first. Lines already dropped from the ring
/// are missing, which only matters past [`KEPT_LINES`] lines.
pub fn lines_since(since: Checkpoint) -> Vec<String> {
    let ring = ring().lock().unwrap_or_else(PoisonError::into_inner);
    let skip = since.0.saturating_sub(ring.dropped);
    ring.lines
        .iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

/// Hands each event a buffer that joins the ring whole when the event is written.
#[derive(Debug, Clone, Copy)]
struct RingWriter;

impl<'a> MakeWriter<'a> for RingWriter {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::new())
    }
}

/// One event's text; moved into the ring on drop, so concurrent events never mix.
#[derive(Debug)]
struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let mut ring = ring().lock().unwrap_or_else(PoisonError::into_inner);
        for line in text.lines() {
            if ring.lines.len() == KEPT_LINES {
                ring.lines.pop_front();
                ring.dropped += 1;
            }
            ring.lines.push_back(line.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_since_a_checkpoint_leave_out_what_came_before() {
        assert!(capture());
        tracing::info!("logged before the checkpoint");
        let before = checkpoint();
        tracing::info!("logged after the checkpoint");
        let after = lines_since(before);
        assert!(
            after
                .iter()
                .any(|l| l.contains("logged after the checkpoint")),
            "{after:?}"
        );
        assert!(
            !after
                .iter()
                .any(|l| l.contains("logged before the checkpoint")),
            "{after:?}"
        );
        assert!(lines_since(checkpoint()).is_empty());
    }
}
