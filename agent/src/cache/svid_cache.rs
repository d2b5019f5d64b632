//! The one workload SVID cache, for unix callers and pods alike (docs/architecture.md, "The
//! agent's SVID cache").
//!
//! Callers ask [`SvidCache::ensure`] for the SVIDs of their entries. Each missing key is
//! minted single-flight: callers of the same key share its mint, and callers of other keys
//! never wait on it. The first caller of a key claims its flight and queues the item
//! (`queue`), where it shares a request with whatever else is waiting, rotations included.
//! The state mutex is never held across an await. A workload that goes away (a pod deleted)
//! ends its callers' waits at once, and a mint that finishes for it afterwards is discarded.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use sworn_identity::outcome::Outcome;
use sworn_identity::{EntryId, Grant};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use super::mint::{MintError, MintOutcome};
use super::queue::{MintQueue, Pending};
use super::scope::{Evidence, Key, Scope, Workloads};
use super::state::{Ended, State, Step};
use super::svid::WorkloadSvid;
use super::watch::{ScopeWatch, ScopeWatches};
use crate::telemetry::Metrics;
use crate::upstream::Upstream;

/// The cache. Share it in an `Arc`.
#[derive(Debug)]
pub struct SvidCache {
    state: Mutex<State>,
    /// Items waiting for a mint request.
    pub(super) queue: MintQueue,
    generation: watch::Sender<u64>,
    /// Per-scope notices, for open streams.
    watches: Arc<ScopeWatches>,
    /// Wakes the rotation task when a finished mint changes the schedule: a new SVID, or a
    /// retry after `Unavailable` (a key in flight is not on the schedule until it ends).
    pub(super) rescheduled: Notify,
    pub(super) upstream: Arc<Upstream>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) workloads: Arc<dyn Workloads>,
}

/// What one key gave a caller.
enum Got {
    Svid(Arc<WorkloadSvid>),
    /// Denied, or gone: left out of the answer.
    Refused,
    Fault(String),
}

impl From<Ended> for Got {
    fn from(ended: Ended) -> Self {
        match ended {
            Ended::Issued(svid) => Got::Svid(svid),
            Ended::Denied | Ended::Void => Got::Refused,
            Ended::Unavailable(reason) => Got::Fault(reason),
        }
    }
}

/// The flight a caller owns; abandoned if the caller goes away while its item is still
/// queued, so the callers waiting on it take over. Once sent, the item is finished by the
/// sender whether its caller waits or not.
struct Owned<'a> {
    cache: &'a SvidCache,
    key: &'a Key,
    id: u64,
    finished: bool,
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        if !self.finished && self.cache.queue.withdraw(self.key, self.id) {
            self.cache.lock().abandon(self.key, self.id);
        }
    }
}

impl SvidCache {
    /// An empty cache minting through `upstream` for `workloads`.
    pub fn new(
        upstream: Arc<Upstream>,
        metrics: Arc<Metrics>,
        workloads: Arc<dyn Workloads>,
    ) -> Self {
        Self {
            state: Mutex::new(State::default()),
            queue: MintQueue::new(metrics.mint_items_queued.clone()),
            generation: watch::Sender::new(0),
            watches: Arc::default(),
            rescheduled: Notify::new(),
            upstream,
            metrics,
            workloads,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the changes of `scope`'s SVIDs (an open stream of that caller).
    pub fn watch(&self, scope: &Scope) -> ScopeWatch {
        self.watches.follow(scope)
    }

    /// Publishes a change of the keys `changed`: the open streams of their scopes
    /// re-evaluate, and so do the callers waiting in `ensure`.
    pub(super) fn bump<'a>(&self, state: &State, changed: impl IntoIterator<Item = &'a Key>) {
        self.metrics
            .cache_size
            .set(i64::try_from(state.len()).unwrap_or(i64::MAX));
        self.watches.changed(changed.into_iter().map(|k| &k.scope));
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The SVIDs of `entries` (in that order) for the caller who presented `evidence`,
    /// minting the missing ones. Entries the server denies are left out, and so is
    /// everything once the caller's workload is gone. `Err` only when nothing valid can be
    /// served and a needed mint was unavailable (the caller answers `Unavailable`).
    pub async fn ensure(
        &self,
        evidence: &Evidence,
        entries: &[Grant],
    ) -> Result<Vec<Arc<WorkloadSvid>>, MintError> {
        let scope = Scope::of(evidence);
        let mut changes = self.generation.subscribe();
        if !self.workloads.live(&scope) {
            return Ok(Vec::new());
        }
        let work = futures::future::join_all(
            entries
                .iter()
                .map(|entry| self.obtain(Key::new(scope.clone(), *entry), evidence)),
        );
        let got = tokio::select! {
            got = work => got,
            () = self.gone(&scope, &mut changes) => {
                debug!(%scope, "the workload went away while its mint was in flight");
                return Ok(Vec::new());
            }
        };
        if !self.workloads.live(&scope) {
            return Ok(Vec::new());
        }
        let mut svids = Vec::with_capacity(got.len());
        let mut fault = None;
        for g in got {
            match g {
                Got::Svid(svid) => svids.push(svid),
                Got::Refused => {}
                Got::Fault(reason) => fault = Some(reason),
            }
        }
        match fault {
            Some(reason) if svids.is_empty() => Err(MintError::Unavailable(reason)),
            Some(reason) => {
                debug!(%reason, "a mint was unavailable; serving the valid cached svids");
                Ok(svids)
            }
            None => Ok(svids),
        }
    }

    /// Resolves once `scope` is no longer live (checked on every change of the cache).
    async fn gone(&self, scope: &Scope, changes: &mut watch::Receiver<u64>) {
        loop {
            if changes.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen while `self` is borrowed.
                return std::future::pending().await;
            }
            if !self.workloads.live(scope) {
                return;
            }
        }
    }

    /// One key for one caller: a hit, the end of another caller's flight, or its own mint.
    async fn obtain(&self, key: Key, evidence: &Evidence) -> Got {
        let got = self.mint_or_join(&key, evidence).await;
        if matches!(got, Got::Svid(_)) {
            self.lock().mark_served(&key);
        }
        got
    }

    async fn mint_or_join(&self, key: &Key, evidence: &Evidence) -> Got {
        loop {
            let step = self.lock().step(key, SystemTime::now(), Instant::now());
            match step {
                Step::Hit(svid) => return Got::Svid(svid),
                Step::Refused => return Got::Refused,
                Step::Wait(mut flight) => {
                    let ended = match flight.wait_for(Option::is_some).await {
                        Ok(end) => end.clone(),
                        // Its owner went away: try again.
                        Err(_) => None,
                    };
                    if let Some(ended) = ended {
                        return ended.into();
                    }
                }
                Step::Claim(id, mut flight) => {
                    let mut owned = Owned {
                        cache: self,
                        key,
                        id,
                        finished: false,
                    };
                    self.enqueue(vec![Pending {
                        key: key.clone(),
                        id,
                        evidence: evidence.clone(),
                        rotation: false,
                    }]);
                    let ended = match flight.wait_for(Option::is_some).await {
                        Ok(end) => end.clone(),
                        Err(_) => None,
                    };
                    owned.finished = true;
                    // Every end of an owned flight is sent (finish, or a drop that voids it);
                    // should none come, ask again.
                    if let Some(ended) = ended {
                        return ended.into();
                    }
                }
            }
        }
    }

    /// Applies the outcome of flight `id` and tells its waiters.
    pub(super) fn finish(&self, key: &Key, id: u64, outcome: MintOutcome, rotation: bool) -> Ended {
        let (scope, entry_id) = (&key.scope, &key.entry);
        match &outcome {
            Outcome::Issued(svid) => {
                info!(%scope, %entry_id, spiffe_id = %svid.spiffe_id, rotation, "workload svid issued");
            }
            Outcome::Denied(denial) => {
                info!(target: "sworn::audit", %scope, %entry_id, factor = %denial.factor, reason = %denial.reason, "the server denied a workload svid");
            }
            Outcome::Unavailable(_) => {}
        }
        let mut state = self.lock();
        let live = self.workloads.live(scope);
        let finished = state.finish(key, id, outcome, live, SystemTime::now(), Instant::now());
        match &finished.ended {
            Ended::Issued(_) if rotation => {
                self.metrics.rotations.inc();
            }
            Ended::Unavailable(reason) => match finished.retry_in {
                Some(delay) => {
                    warn!(%scope, %entry_id, %reason, retry_in = ?delay, "svid mint unavailable; keeping the current svid");
                }
                None => warn!(%scope, %entry_id, %reason, "svid mint unavailable"),
            },
            Ended::Void => {
                debug!(%scope, %entry_id, "discarded a mint for a workload or entry that went away")
            }
            Ended::Issued(_) | Ended::Denied => {}
        }
        if finished.changed {
            self.bump(&state, [key]);
        }
        if finished.changed || finished.retry_in.is_some() {
            self.rescheduled.notify_one();
        }
        finished.ended
    }

    /// Drops every SVID (and mint in flight) of an entry not in `live`: deleted, or
    /// re-scoped away from this agent. A pod's default identity is not an entry.
    pub fn retain(&self, live: &HashSet<EntryId>) {
        let mut state = self.lock();
        let removed = state.drop_where(|k| k.entry.entry().is_some_and(|id| !live.contains(id)));
        if !removed.is_empty() {
            info!(removed = removed.len(), "dropped svids of deleted entries");
            self.bump(&state, &removed);
        }
    }

    /// Drops every SVID, denial and mint in flight of the scopes `gone` selects, and wakes
    /// their callers at once (they answer `PermissionDenied`).
    pub fn drop_scopes(&self, gone: impl Fn(&Scope) -> bool) -> usize {
        let mut state = self.lock();
        let removed = state.drop_where(|k| gone(&k.scope));
        if !removed.is_empty() {
            self.bump(&state, &removed);
        }
        removed.len()
    }
}
