//! The SVID cache of Kubernetes workloads, keyed by (pod UID, container,
//! entry) — an empty entry ID is the default identity `/ns/<ns>/sa/<sa>`
//! (DESIGN.md §6).
//!
//! - Pre-minting: when the watch shows a pod Running with our token volume,
//!   its running containers' SVIDs are minted before the workload asks, so
//!   the first fetch is a cache hit.
//! - Deletion: a pod that leaves the watch loses its SVIDs at once, and open
//!   streams are redacted (or end with `PermissionDenied`).
//! - Rotation at half-life with jitter re-reads the pod's token, so a rotated
//!   projected token is what the next mint presents.
//! - Only the server's `Denied` drops an SVID. `Unavailable` (the API server,
//!   the datastore or the call failed) keeps it until `notAfter`, never past it,
//!   and retries on the slot's own backoff; a stream left with nothing valid
//!   while the server is unavailable ends with `Unavailable`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use sworn_identity::outcome::Outcome;
use sworn_proto::agent::mint_item;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::pods::{PodChange, PodIndex, running_containers};
use super::workload::{K8sFacts, K8sWorkloadConfig, facts_for};
use crate::backoff::Backoff;
use crate::cache::WorkloadSvid;
use crate::cache::mint::{self, Mode};
use crate::sync::SyncState;
use crate::telemetry::Metrics;
use crate::upstream::Upstream;

type Key = (String, String, String); // (pod uid, container name, entry id)

#[derive(Debug)]
struct Slot {
    svid: Arc<WorkloadSvid>,
    container_id: String,
    rotate_at: SystemTime,
    /// Retry schedule while the server answers `Unavailable`; reset by a new SVID.
    retry: Backoff,
}

/// Kubernetes workload SVIDs.
#[derive(Debug)]
pub struct K8sSvids {
    slots: Mutex<HashMap<Key, Slot>>,
    generation: watch::Sender<u64>,
    upstream: Arc<Upstream>,
    sync: watch::Receiver<Option<Arc<SyncState>>>,
    index: PodIndex,
    config: K8sWorkloadConfig,
    mint_lock: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

/// Entries the facts satisfy, plus the default identity (`""`). The server
/// re-verifies each against its own read of the pod.
pub fn entitled(facts: &K8sFacts, state: &SyncState) -> Vec<String> {
    let mut ids = vec![String::new()];
    ids.extend(
        state
            .entries
            .iter()
            .filter(|e| {
                !e.selectors.is_empty() && e.selectors.iter().all(|s| facts.selectors.contains(s))
            })
            .map(|e| e.id.clone()),
    );
    ids
}

fn rotate_at(svid: &WorkloadSvid) -> SystemTime {
    let life = svid
        .not_after
        .duration_since(svid.not_before)
        .unwrap_or_default();
    // Half-life, minus up to 10% jitter so a node's pods do not rotate in lockstep.
    let jitter = life.mul_f64(rand::random::<f64>() * 0.1);
    svid.not_before + life / 2 - jitter
}

impl K8sSvids {
    /// A cache minting through `upstream`.
    pub fn new(
        upstream: Arc<Upstream>,
        sync: watch::Receiver<Option<Arc<SyncState>>>,
        index: PodIndex,
        config: K8sWorkloadConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        K8sSvids {
            slots: Mutex::new(HashMap::new()),
            generation: watch::Sender::new(0),
            upstream,
            sync,
            index,
            config,
            mint_lock: tokio::sync::Mutex::new(()),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes to the cache (streams recompute on each).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The pod watch.
    pub fn index(&self) -> &PodIndex {
        &self.index
    }

    /// Attestation settings.
    pub fn config(&self) -> &K8sWorkloadConfig {
        &self.config
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn cached(&self, facts: &K8sFacts, ids: &[String]) -> (Vec<Arc<WorkloadSvid>>, Vec<String>) {
        let now = SystemTime::now();
        let slots = self.lock();
        let (mut hits, mut missing) = (Vec::new(), Vec::new());
        for id in ids {
            let key = (
                facts.evidence.pod_uid.clone(),
                facts.evidence.container_name.clone(),
                id.clone(),
            );
            match slots.get(&key) {
                Some(s)
                    if s.svid.not_after > now && s.container_id == facts.evidence.container_id =>
                {
                    hits.push(s.svid.clone());
                }
                _ => missing.push(id.clone()),
            }
        }
        (hits, missing)
    }

    /// The SVIDs `facts` are entitled to, minting what is missing. An error
    /// means nothing valid can be served and a needed mint was unavailable
    /// (callers answer `Unavailable`, never `PermissionDenied`).
    pub async fn ensure(&self, facts: &K8sFacts) -> Result<Vec<Arc<WorkloadSvid>>, String> {
        let Some(state) = self.sync.borrow().clone() else {
            return Err("not synced".into());
        };
        let ids = entitled(facts, &state);
        let (_, missing) = self.cached(facts, &ids);
        let mut fault = None;
        if !missing.is_empty() {
            let _guard = self.mint_lock.lock().await;
            let (_, missing) = self.cached(facts, &ids);
            if !missing.is_empty() {
                fault = self.mint(facts, &missing).await;
            }
        }
        // Only pods still in the watch keep their SVIDs.
        if self.index.by_uid(&facts.evidence.pod_uid).is_none() {
            return Ok(Vec::new());
        }
        let (hits, _) = self.cached(facts, &ids);
        match fault {
            Some(reason) if hits.is_empty() => Err(reason),
            Some(reason) => {
                debug!(%reason, "a mint was unavailable; serving the valid cached svids");
                Ok(hits)
            }
            None => Ok(hits),
        }
    }

    /// Mints `entry_ids` for `facts` and applies each outcome: `Issued` replaces
    /// the slot, `Denied` drops it, `Unavailable` keeps it and schedules its
    /// retry. Returns the reason of the last `Unavailable`, if any.
    async fn mint(&self, facts: &K8sFacts, entry_ids: &[String]) -> Option<String> {
        let items = entry_ids
            .iter()
            .map(|id| (id.clone(), mint_item::Evidence::K8s(facts.evidence.clone())))
            .collect();
        let outcomes = mint::mint_items(&self.upstream, &self.metrics, Mode::K8s, items).await;
        let now = SystemTime::now();
        let mut slots = self.lock();
        let mut changed = false;
        let mut fault = None;
        for (id, outcome) in outcomes {
            let key = (
                facts.evidence.pod_uid.clone(),
                facts.evidence.container_name.clone(),
                id.clone(),
            );
            match outcome {
                Outcome::Issued(svid) => {
                    let retry = mint::retry_backoff(
                        svid.not_after
                            .duration_since(svid.not_before)
                            .unwrap_or_default(),
                    );
                    slots.insert(
                        key,
                        Slot {
                            rotate_at: rotate_at(&svid),
                            svid: Arc::new(svid),
                            container_id: facts.evidence.container_id.clone(),
                            retry,
                        },
                    );
                    changed = true;
                }
                Outcome::Denied(denial) => {
                    info!(target: "sworn::audit", entry_id = %id, pod_uid = %facts.evidence.pod_uid, factor = %denial.factor, "the server denied a workload svid");
                    changed |= slots.remove(&key).is_some();
                }
                Outcome::Unavailable(u) => {
                    if let Some(slot) = slots.get_mut(&key) {
                        let delay = slot.retry.next_delay();
                        slot.rotate_at = now + delay;
                        warn!(entry_id = %id, pod_uid = %facts.evidence.pod_uid, reason = %u.reason, retry_in = ?delay, "svid mint unavailable; keeping the current svid");
                    }
                    fault = Some(u.reason);
                }
            }
        }
        drop(slots);
        if changed {
            self.bump();
        }
        fault
    }

    /// Drops SVIDs past `notAfter` (never served expired), so open streams
    /// re-evaluate.
    fn drop_expired(&self) {
        let now = SystemTime::now();
        let mut slots = self.lock();
        let before = slots.len();
        slots.retain(|_, s| s.svid.not_after > now);
        let expired = before - slots.len();
        drop(slots);
        if expired > 0 {
            info!(expired, "dropped expired svids");
            self.bump();
        }
    }

    /// Drops every SVID of a pod.
    pub fn drop_pod(&self, pod_uid: &str) {
        let mut slots = self.lock();
        let before = slots.len();
        slots.retain(|(uid, _, _), _| uid != pod_uid);
        let removed = before != slots.len();
        drop(slots);
        if removed {
            info!(pod_uid, "pod gone; its SVIDs are dropped");
            self.bump();
        }
    }

    /// Pre-mints for a pod the watch shows (running containers with our token).
    pub async fn premint(&self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref().and_then(|u| u.parse().ok()) else {
            return;
        };
        for (_, cid) in running_containers(pod) {
            let Ok(facts) = facts_for(&self.config, pod, &uid, &cid) else {
                continue;
            };
            if let Err(error) = self.ensure(&facts).await {
                debug!(%error, pod_uid = %uid, "pre-mint deferred");
            }
        }
    }

    /// Re-mints SVIDs past their rotation time, with a freshly read token.
    async fn rotate_due(&self) {
        let now = SystemTime::now();
        let due: HashSet<(String, String)> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.rotate_at <= now)
            .map(|((uid, _, _), s)| (uid.clone(), s.container_id.clone()))
            .collect();
        for (uid, cid) in due {
            let Some(pod) = self.index.by_uid(&uid) else {
                self.drop_pod(&uid);
                continue;
            };
            let (Ok(pod_uid), Ok(container_id)) = (uid.parse(), cid.parse()) else {
                self.drop_pod(&uid);
                continue;
            };
            match facts_for(&self.config, &pod, &pod_uid, &container_id) {
                Ok(facts) => {
                    let ids: Vec<String> = self
                        .lock()
                        .keys()
                        .filter(|(u, c, _)| u == &uid && c == &facts.evidence.container_name)
                        .map(|(_, _, e)| e.clone())
                        .collect();
                    let _guard = self.mint_lock.lock().await;
                    if let Some(reason) = self.mint(&facts, &ids).await {
                        debug!(%reason, pod_uid = %uid, "rotation unavailable; retrying on backoff");
                    }
                }
                Err(error) => {
                    info!(%error, pod_uid = %uid, "container no longer attests; dropping its SVIDs");
                    self.drop_pod(&uid);
                }
            }
        }
    }

    /// Follows the watch and rotates until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        mut changes: mpsc::Receiver<PodChange>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                change = changes.recv() => match change {
                    None => return,
                    Some(PodChange::Deleted(uid)) => self.drop_pod(&uid),
                    Some(PodChange::Applied(pod)) => {
                        let terminating = pod.metadata.deletion_timestamp.is_some();
                        match (terminating, pod.metadata.uid.as_deref()) {
                            (true, Some(uid)) => self.drop_pod(uid),
                            _ => self.premint(&pod).await,
                        }
                    }
                },
                _ = tick.tick() => {
                    self.drop_expired();
                    self.rotate_due().await;
                }
            }
        }
    }
}
