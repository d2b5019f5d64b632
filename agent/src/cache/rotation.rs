//! Rotation: re-mint each SVID at half-life with jitter, using the evidence it was first
//! minted with, and drop SVIDs that expire (DESIGN.md §6).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SvidCache;
use crate::backoff::Backoff;
use crate::cert;

/// Longest sleep without looking at the cache (a safety net; changes wake the task anyway).
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl SvidCache {
    /// Runs until `shutdown`.
    pub async fn run_rotation(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
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
            let ids: Vec<String> = due.iter().map(|(id, _)| id.clone()).collect();
            match self.mint(due).await {
                Ok(results) => {
                    backoff.reset();
                    self.store(results, true);
                }
                Err(error) => {
                    let retry = SystemTime::now() + backoff.next_delay();
                    warn!(%error, ?retry, entries = ids.len(), "svid rotation failed; serving the current svids");
                    let mut slots = self.lock();
                    for id in &ids {
                        if let Some(slot) = slots.by_entry.get_mut(id) {
                            slot.rotate_at = retry;
                        }
                    }
                }
            }
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
