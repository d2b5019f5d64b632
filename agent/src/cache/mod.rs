//! The workload SVID cache (DESIGN.md §6; issue 5 §4).
//!
//! Keyed by entry ID. On a miss the agent makes a key, sends a CSR with the caller's evidence
//! to `MintX509SVIDs` and caches the result with that evidence, so rotation (at half-life with
//! jitter, see [`rotation`]) can re-mint without the caller. Invariants:
//! - a private key never leaves the agent: only CSRs go to the server;
//! - every change (new SVID, rotation, removal, expiry) bumps the generation `watch`, which
//!   every open Workload API stream follows and answers with the complete state;
//! - an entry gone from the Sync state loses its SVID at once ([`SvidCache::retain`]);
//! - while the server is unreachable, valid SVIDs keep being served; a caller that needs a
//!   mint gets `Unavailable`.

mod mint;
mod rotation;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use sworn_proto::agent::UnixEvidence;
use tokio::sync::{Notify, watch};
use tracing::{debug, info};
use zeroize::Zeroizing;

use crate::telemetry::Metrics;
use crate::upstream::Upstream;

pub use mint::MintError;

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
    /// Entries the server refuses are left out. `Err` only when nothing can be served and a
    /// mint was needed but the server could not be reached.
    pub async fn ensure(
        &self,
        entry_ids: &[String],
        evidence: &UnixEvidence,
    ) -> Result<Vec<Arc<WorkloadSvid>>, MintError> {
        let (_, missing) = self.lookup(entry_ids);
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
                match self.mint(items).await {
                    Ok(results) => self.store(results, false),
                    Err(e) => {
                        let (hits, _) = self.lookup(entry_ids);
                        if hits.is_empty() {
                            return Err(e);
                        }
                        debug!(error = %e, "mint failed; serving the cached svids");
                    }
                }
            }
        }
        Ok(self.lookup(entry_ids).0)
    }

    /// Applies mint results: issued SVIDs replace their slots, refusals drop them.
    fn store(&self, results: Vec<mint::Minted>, rotation: bool) {
        let mut slots = self.lock();
        let mut changed = false;
        for minted in results {
            match minted.result {
                Ok(svid) => {
                    info!(entry_id = %minted.entry_id, spiffe_id = %svid.spiffe_id, rotation, "workload svid issued");
                    if rotation {
                        self.metrics.rotations.inc();
                    }
                    // Count the lifetime from receipt: the server backdates `notBefore`, which
                    // would put half-life of a short-lived SVID in the past.
                    let issued = svid.not_before.max(std::time::SystemTime::now());
                    let rotate_at = crate::cert::renew_at(issued, svid.not_after);
                    slots.by_entry.insert(
                        minted.entry_id,
                        Slot {
                            svid: Arc::new(svid),
                            evidence: minted.evidence,
                            rotate_at,
                        },
                    );
                    changed = true;
                }
                Err(reason) => {
                    info!(entry_id = %minted.entry_id, %reason, "the server refused a workload svid");
                    self.metrics.mint_denials.inc();
                    changed |= slots.by_entry.remove(&minted.entry_id).is_some();
                    slots
                        .denied
                        .insert((minted.entry_id, minted.evidence), Instant::now());
                }
            }
        }
        if changed {
            self.bump(&slots);
            self.inserted.notify_one();
        }
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
