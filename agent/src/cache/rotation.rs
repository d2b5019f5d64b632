//! Rotation, one loop for unix callers and pods (docs/architecture.md, "The agent's SVID
//! cache"): re-mint each SVID at half-life with jitter, drop SVIDs that expire, and drop the
//! SVIDs of workloads that are gone.
//!
//! Due SVIDs are claimed as flights (a caller who needs one meanwhile shares the rotation's
//! mint) and sent in the background, in requests of at most 256 items, so a stalled request
//! never holds up the loop: expiry and the next due SVIDs are handled on time. Each item
//! keeps its own retry schedule: an `Unavailable` item is retried on its own backoff with
//! jitter, so a backlog larger than one request drains request by request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

use super::mint;
use super::scope::{Evidence, Key, Renewal, Scope};
use super::svid_cache::SvidCache;
use crate::cert;

/// Longest sleep without looking at the cache (a safety net; changes wake the task anyway).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A claimed rotation item: its key, flight and evidence.
type Due = (Key, u64, Evidence);

impl SvidCache {
    /// Runs until `shutdown`.
    pub async fn run_rotation(self: Arc<Self>, shutdown: CancellationToken) {
        let mut batches = JoinSet::new();
        loop {
            let horizon = SystemTime::now() + MAX_SLEEP;
            let wake = self.lock().next_wake().map_or(horizon, |w| w.min(horizon));
            tokio::select! {
                () = shutdown.cancelled() => {
                    batches.shutdown().await;
                    return;
                }
                () = tokio::time::sleep(cert::until(wake)) => {}
                () = self.inserted.notified() => continue,
                Some(_) = batches.join_next(), if !batches.is_empty() => continue,
            }
            self.drop_expired();
            let due = self.claim_due();
            if !due.is_empty() {
                let span = info_span!("rotation_batch", items = due.len());
                batches.spawn(self.clone().rotate(due).instrument(span));
            }
        }
    }

    /// Drops SVIDs past `notAfter`: an SVID is never served expired, even while the server
    /// is unavailable. Open streams re-evaluate, and answer `Unavailable` if nothing is left
    /// and the server still cannot mint.
    fn drop_expired(&self) {
        let mut state = self.lock();
        let expired = state.drop_expired(SystemTime::now());
        if expired > 0 {
            info!(expired, "dropped expired svids");
            self.bump(&state);
        }
    }

    /// Claims the due SVIDs of live workloads, with fresh evidence, and drops those of
    /// workloads that are gone.
    fn claim_due(&self) -> Vec<Due> {
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
        if state.drop_where(|k| gone.contains(&k.scope)) > 0 {
            self.bump(&state);
        }
        renew
            .into_iter()
            .filter_map(|(key, evidence)| state.claim_idle(&key).map(|id| (key, id, evidence)))
            .collect()
    }

    /// Mints the claimed items and applies each outcome.
    async fn rotate(self: Arc<Self>, due: Vec<Due>) {
        let items = due
            .iter()
            .map(|(key, _, evidence)| (key.entry, evidence.clone()))
            .collect();
        let outcomes = mint::mint_items(&self.upstream, &self.metrics, items).await;
        for ((key, id, _), (_, outcome)) in due.iter().zip(outcomes) {
            self.finish(key, *id, outcome, true);
        }
    }
}
