//! Rotation: re-mint each SVID at half-life with jitter, using the evidence it was first
//! minted with, and drop SVIDs that expire (docs/architecture.md, "Agent").
//!
//! Due SVIDs go to the server in chunks of at most 256 items. Each item keeps its own retry
//! schedule: an `Unavailable` item is retried on its own backoff with jitter, so a backlog
//! larger than one request drains chunk by chunk instead of being rescheduled in lockstep.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::SvidCache;
use crate::cert;

/// Longest sleep without looking at the cache (a safety net; changes wake the task anyway).
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl SvidCache {
    /// Runs until `shutdown`.
    pub async fn run_rotation(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let wake = self.next_wake().min(SystemTime::now() + MAX_SLEEP);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(cert::until(wake)) => {}
                () = self.inserted.notified() => continue,
            }
            self.drop_expired();
            let due = self.due();
            if due.is_empty() {
                continue;
            }
            let _guard = self.mint_lock.lock().await;
            let results = self.mint(due).await;
            self.store(results, true);
        }
    }

    fn next_wake(&self) -> SystemTime {
        let slots = self.lock();
        slots
            .by_entry
            .values()
            .map(|s| s.rotate_at.min(s.svid.not_after))
            .min()
            .unwrap_or_else(|| SystemTime::now() + MAX_SLEEP)
    }

    fn due(&self) -> Vec<(String, sworn_proto::agent::UnixEvidence)> {
        let now = SystemTime::now();
        let slots = self.lock();
        slots
            .by_entry
            .iter()
            .filter(|(_, s)| s.rotate_at <= now)
            .map(|(id, s)| (id.clone(), s.evidence.clone()))
            .collect()
    }

    /// Drops SVIDs past `notAfter`: an SVID is never served expired, even while the server
    /// is unavailable. Open streams re-evaluate, and answer `Unavailable` if nothing is left
    /// and the server still cannot mint.
    fn drop_expired(&self) {
        let now = SystemTime::now();
        let mut slots = self.lock();
        let before = slots.by_entry.len();
        slots.by_entry.retain(|_, s| s.svid.not_after > now);
        if slots.by_entry.len() != before {
            info!(
                expired = before - slots.by_entry.len(),
                "dropped expired svids"
            );
            self.bump(&slots);
        }
    }
}
