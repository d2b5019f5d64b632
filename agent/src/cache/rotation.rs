//! Rotation, one loop for unix callers and pods (docs/architecture.md, "The agent's SVID
//! cache"): re-mint each SVID at half-life with jitter, drop SVIDs that expire, and drop the
//! SVIDs of workloads that are gone.
//!
//! Due SVIDs are claimed as flights (a caller who needs one meanwhile shares the rotation's
//! mint) and queued (`queue`): they go out in the background, in requests of at most 256
//! items shared with first mints, so a stalled request never holds up the loop: expiry and
//! the next due SVIDs are handled on time. Each item keeps its own retry schedule: an
//! `Unavailable` item is retried on its own jittered backoff, so a backlog larger than one
//! request drains request by request and retries never go out in lockstep.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use super::queue::Pending;
use super::scope::{Key, Renewal, Scope};
use super::svid_cache::SvidCache;
use crate::cert;

/// Longest sleep without looking at the cache (a safety net; changes wake the task anyway).
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl SvidCache {
    /// The cache's background work until `shutdown`: rotation, and the sender of the mint
    /// requests (first mints and rotations alike).
    pub async fn run_rotation(self: Arc<Self>, shutdown: CancellationToken) {
        let mints = self
            .clone()
            .run_mints(shutdown.clone())
            .instrument(info_span!("mints"));
        tokio::join!(self.rotate(shutdown), mints);
    }

    async fn rotate(&self, shutdown: CancellationToken) {
        loop {
            let horizon = SystemTime::now() + MAX_SLEEP;
            let wake = self.lock().next_wake().map_or(horizon, |w| w.min(horizon));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(cert::until(wake)) => {}
                () = self.rescheduled.notified() => continue,
            }
            self.drop_expired();
            let due = self.claim_due();
            if !due.is_empty() {
                debug!(items = due.len(), "queued due svids for rotation");
                self.enqueue(due);
            }
        }
    }

    /// Drops SVIDs past `notAfter`: an SVID is never served expired, even while the server
    /// is unavailable. Open streams re-evaluate, and answer `Unavailable` if nothing is left
    /// and the server still cannot mint.
    fn drop_expired(&self) {
        let mut state = self.lock();
        let expired = state.drop_expired(SystemTime::now());
        if !expired.is_empty() {
            info!(expired = expired.len(), "dropped expired svids");
            self.bump(&state, &expired);
        }
    }

    /// Claims the due SVIDs of live workloads, with fresh evidence, and drops those of
    /// workloads that are gone.
    fn claim_due(&self) -> Vec<Pending> {
        let due = self.lock().due(SystemTime::now());
        let mut by_scope: HashMap<Scope, (Vec<Key>, bool)> = HashMap::new();
        for (key, served) in due {
            let slot = by_scope.entry(key.scope.clone()).or_default();
            slot.0.push(key);
            slot.1 |= served;
        }
        let mut renew = Vec::new();
        let mut gone = Vec::new();
        // Outside the lock: a pod's renewal reads its token from disk.
        for (scope, (keys, served)) in by_scope {
            match self.workloads.renewal(&scope, served) {
                Renewal::Mint(evidence) => {
                    renew.extend(keys.into_iter().map(|k| (k, evidence.clone())));
                }
                Renewal::Drop(reason) => {
                    info!(%scope, %reason, "dropping the svids of a workload that is gone");
                    gone.push(scope);
                }
            }
        }
        let mut state = self.lock();
        let dropped = state.drop_where(|k| gone.contains(&k.scope));
        if !dropped.is_empty() {
            self.bump(&state, &dropped);
        }
        renew
            .into_iter()
            .filter_map(|(key, evidence)| {
                state.claim_idle(&key).map(|id| Pending {
                    key,
                    id,
                    evidence,
                    rotation: true,
                })
            })
            .collect()
    }
}
