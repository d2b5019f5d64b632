//! The workload SVID cache (DESIGN.md §6; issue 5 §4).
//!
//! Keyed by entry ID. On a miss the agent makes a key, sends a CSR with the caller's evidence
//! to `MintX509SVIDs` and caches the result with that evidence, so rotation (at half-life with
//! jitter, see [`rotation`]) can re-mint without the caller. Invariants:
//! - a private key never leaves the agent: only CSRs go to the server;
//! - every change (new SVID, rotation, removal, expiry) bumps the generation `watch`, which
//!   every open Workload API stream follows and answers with the complete state;
//! - an entry gone from the Sync state loses its SVID at once ([`SvidCache::retain`]);
//! - only the server's `Denied` for an item drops its SVID. `Unavailable` (the server, its
//!   datastore or the call failed) keeps a valid SVID until its `notAfter`, never past it,
//!   and retries that item on its own backoff ([`mint::retry_backoff`]); a caller that needs
//!   a mint and has nothing valid gets `Unavailable`, never `PermissionDenied`.

pub(crate) mod mint;
mod rotation;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use sworn_identity::outcome::Outcome;
use sworn_proto::agent::{UnixEvidence, mint_item};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::telemetry::Metrics;
use crate::upstream::Upstream;

pub use mint::MintError;

use crate::backoff::Backoff;
use mint::{MintOutcome, Mode};

/// How long a server refusal for (entry, evidence) is remembered before asking again, so open
/// streams re-evaluating on every change do not hammer the server with doomed mints.
const DENIAL_MEMORY: Duration = Duration::from_secs(10);

/// One workload X509-SVID held by the agent.
pub struct WorkloadSvid {
    /// The SPIFFE ID (the leaf's URI SAN).
    pub spiffe_id: String,
    /// The entry it was minted for.
    pub entry_id: String,
    /// DER chain, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub key: Zeroizing<Vec<u8>>,
    /// The entry's hint.
    pub hint: String,
    /// Leaf `notBefore`.
    pub not_before: SystemTime,
    /// Leaf `notAfter`.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for WorkloadSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("entry_id", &self.entry_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Slot {
    svid: Arc<WorkloadSvid>,
    evidence: UnixEvidence,
    rotate_at: SystemTime,
    /// Retry schedule while the server answers `Unavailable`; reset by a new SVID.
    retry: Backoff,
}

#[derive(Debug, Default)]
struct Slots {
    by_entry: HashMap<String, Slot>,
    denied: HashMap<(String, UnixEvidence), Instant>,
}

/// The cache. Share it in an `Arc`.
#[derive(Debug)]
pub struct SvidCache {
    slots: Mutex<Slots>,
    generation: watch::Sender<u64>,
    /// Serialises mints, so concurrent callers missing the same entry mint it once.
    mint_lock: tokio::sync::Mutex<()>,
    /// Wakes the rotation task when a new SVID changes the schedule.
    inserted: Notify,
    upstream: Arc<Upstream>,
    metrics: Arc<Metrics>,
}

impl SvidCache {
    /// An empty cache minting through `upstream`.
    pub fn new(upstream: Arc<Upstream>, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            generation: watch::Sender::new(0),
            mint_lock: tokio::sync::Mutex::new(()),
            inserted: Notify::new(),
            upstream,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows every change of the cache.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn bump(&self, slots: &Slots) {
        self.metrics
            .cache_size
            .set(i64::try_from(slots.by_entry.len()).unwrap_or(i64::MAX));
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The valid cached SVIDs for `entry_ids`, and the IDs that have none.
    fn lookup(&self, entry_ids: &[String]) -> (Vec<Arc<WorkloadSvid>>, Vec<String>) {
        let now = SystemTime::now();
        let slots = self.lock();
        let mut hits = Vec::new();
        let mut missing = Vec::new();
        for id in entry_ids {
            match slots.by_entry.get(id) {
                Some(slot) if slot.svid.not_after > now => hits.push(slot.svid.clone()),
                _ => missing.push(id.clone()),
            }
        }
        (hits, missing)
    }

    /// The SVIDs for `entry_ids` (in that order), minting the missing ones with `evidence`.
    /// Entries the server denies are left out. `Err` only when nothing valid can be served and
    /// a needed mint was unavailable (the caller answers `Unavailable`).
    pub async fn ensure(
        &self,
        entry_ids: &[String],
        evidence: &UnixEvidence,
    ) -> Result<Vec<Arc<WorkloadSvid>>, MintError> {
        let (_, missing) = self.lookup(entry_ids);
        let mut fault = None;
        if !missing.is_empty() {
            let _guard = self.mint_lock.lock().await;
            let (_, missing) = self.lookup(entry_ids);
            let wanted: Vec<String> = {
                let mut slots = self.lock();
                let now = Instant::now();
                slots
                    .denied
                    .retain(|_, at| now.duration_since(*at) < DENIAL_MEMORY);
                missing
                    .into_iter()
                    .filter(|id| !slots.denied.contains_key(&(id.clone(), evidence.clone())))
                    .collect()
            };
            if !wanted.is_empty() {
                let items = wanted
                    .iter()
                    .map(|id| (id.clone(), evidence.clone()))
                    .collect();
                fault = self.store(self.mint(items).await, false);
            }
        }
        let (hits, _) = self.lookup(entry_ids);
        match fault {
            Some(reason) if hits.is_empty() => Err(MintError::Unavailable(reason)),
            Some(reason) => {
                debug!(%reason, "a mint was unavailable; serving the valid cached svids");
                Ok(hits)
            }
            None => Ok(hits),
        }
    }

    /// Mints `(entry, evidence)` items through the server, in chunks of at most 256.
    async fn mint(
        &self,
        items: Vec<(String, UnixEvidence)>,
    ) -> Vec<(String, UnixEvidence, MintOutcome)> {
        let evidence: Vec<UnixEvidence> = items.iter().map(|(_, e)| e.clone()).collect();
        let request = items
            .into_iter()
            .map(|(id, e)| (id, mint_item::Evidence::Unix(e)))
            .collect();
        mint::mint_items(&self.upstream, &self.metrics, Mode::Unix, request)
            .await
            .into_iter()
            .zip(evidence)
            .map(|((id, outcome), e)| (id, e, outcome))
            .collect()
    }

    /// Applies mint outcomes. `Issued` replaces the slot; `Denied` drops it and is remembered;
    /// `Unavailable` keeps it and schedules that item's retry. Returns the reason of the last
    /// `Unavailable`, if any.
    fn store(
        &self,
        results: Vec<(String, UnixEvidence, MintOutcome)>,
        rotation: bool,
    ) -> Option<String> {
        let mut slots = self.lock();
        let mut changed = false;
        let mut fault = None;
        let now = SystemTime::now();
        for (entry_id, evidence, outcome) in results {
            match outcome {
                Outcome::Issued(svid) => {
                    info!(%entry_id, spiffe_id = %svid.spiffe_id, rotation, "workload svid issued");
                    if rotation {
                        self.metrics.rotations.inc();
                    }
                    // Count the lifetime from receipt: the server backdates `notBefore`, which
                    // would put half-life of a short-lived SVID in the past.
                    let issued = svid.not_before.max(now);
                    let rotate_at = crate::cert::renew_at(issued, svid.not_after);
                    let retry = mint::retry_backoff(
                        svid.not_after.duration_since(issued).unwrap_or_default(),
                    );
                    slots.by_entry.insert(
                        entry_id,
                        Slot {
                            svid: Arc::new(svid),
                            evidence,
                            rotate_at,
                            retry,
                        },
                    );
                    changed = true;
                }
                Outcome::Denied(denial) => {
                    info!(target: "sworn::audit", %entry_id, factor = %denial.factor, "the server denied a workload svid");
                    changed |= slots.by_entry.remove(&entry_id).is_some();
                    slots.denied.insert((entry_id, evidence), Instant::now());
                }
                Outcome::Unavailable(fault_) => {
                    if let Some(slot) = slots.by_entry.get_mut(&entry_id) {
                        let delay = slot.retry.next_delay();
                        slot.rotate_at = now + delay;
                        warn!(%entry_id, reason = %fault_.reason, retry_in = ?delay, "svid mint unavailable; keeping the current svid");
                    }
                    fault = Some(fault_.reason);
                }
            }
        }
        if changed {
            self.bump(&slots);
            self.inserted.notify_one();
        }
        fault
    }

    /// Drops every SVID whose entry is not in `live` (entry deleted or re-scoped).
    pub fn retain(&self, live: &HashSet<&str>) {
        let mut slots = self.lock();
        let before = slots.by_entry.len();
        slots.by_entry.retain(|id, _| live.contains(id.as_str()));
        slots.denied.retain(|(id, _), _| live.contains(id.as_str()));
        if slots.by_entry.len() != before {
            info!(
                removed = before - slots.by_entry.len(),
                "dropped svids of deleted entries"
            );
            self.bump(&slots);
        }
    }
}
