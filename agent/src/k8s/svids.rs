//! The Kubernetes half of the SVID cache (docs/architecture.md, "The agent's SVID cache"):
//! a scope is a container of a pod in this node's watch, and the pod watch drives the cache.
//!
//! - Deletion: a pod that leaves the watch, or starts terminating, loses its SVIDs at once;
//!   its callers' waits end and open streams end with `PermissionDenied`. The watch handler
//!   never awaits a mint, so a stalled mint delays no deletion.
//! - Pre-minting: when the watch shows a pod Running with our token volume, its running
//!   containers' SVIDs are minted, in a task of their own, through the same single-flight
//!   path as a Workload API call, so the first fetch is a cache hit (or joins the mint).
//! - Rotation re-reads the pod's token, so a rotated projected token is what the next mint
//!   presents; a container that no longer attests loses its SVIDs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info};

use super::pods::{PodChange, PodIndex, running_containers};
use super::workload::{K8sFacts, K8sWorkloadConfig, facts_for};
use crate::cache::{EntryIndex, Evidence, Renewal, Scope, SvidCache, Workloads};
use crate::sync::SyncState;
use sworn_identity::pod::PodFacts;
use sworn_identity::{ContainerId, Grant, PodUid};

/// The pod's default identity, and the entries the facts satisfy. The server re-verifies
/// each against its own read of the pod.
pub fn entitled(facts: &K8sFacts, state: &SyncState) -> Vec<Grant> {
    entitled_indexed(facts, state, &index(state))
}

/// [`entitled`] through `index`, built from `state` (see `cache::EntryIndex`).
pub fn entitled_indexed(facts: &K8sFacts, state: &SyncState, index: &EntryIndex) -> Vec<Grant> {
    let mut ids = vec![Grant::PodDefault];
    let found = index.matching(&facts.selectors, |p| &state.entries[p].selectors);
    ids.extend(
        found
            .positions
            .into_iter()
            .map(|p| Grant::Entry(state.entries[p].id)),
    );
    ids
}

/// The index of `state`'s entries.
pub fn index(state: &SyncState) -> EntryIndex {
    EntryIndex::new(state.entries.iter().map(|e| e.selectors.as_slice()))
}

/// The evidence a Kubernetes caller mints with.
pub fn evidence(facts: &K8sFacts) -> Evidence {
    Evidence::K8s(facts.evidence.clone())
}

/// The pods of this node, as the cache sees them.
#[derive(Debug)]
pub struct PodWorkloads {
    index: PodIndex,
    config: K8sWorkloadConfig,
}

impl PodWorkloads {
    /// Pods from `index`, attested with `config`.
    pub fn new(index: PodIndex, config: K8sWorkloadConfig) -> Self {
        PodWorkloads { index, config }
    }

    /// The pod watch.
    pub fn index(&self) -> &PodIndex {
        &self.index
    }

    /// Attestation settings.
    pub fn config(&self) -> &K8sWorkloadConfig {
        &self.config
    }
}

/// The pod is in the watch, not terminating, and the container runs.
fn container_live(pod: &Pod, container_id: &str) -> bool {
    let Ok(id) = container_id.parse::<ContainerId>() else {
        return false;
    };
    PodFacts::from_pod(pod)
        .is_ok_and(|f| !f.deleting && f.container(&id).is_some_and(|c| c.running))
}

impl Workloads for PodWorkloads {
    fn live(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Container {
                pod_uid,
                container_id,
            } => self
                .index
                .by_uid(pod_uid)
                .is_some_and(|pod| container_live(&pod, container_id)),
            Scope::Unix(_) => false,
        }
    }

    fn renewal(&self, scope: &Scope, _served: bool) -> Renewal {
        let Scope::Container {
            pod_uid,
            container_id,
        } = scope
        else {
            return Renewal::Drop("a unix caller's svid on a kubernetes agent".into());
        };
        let Some(pod) = self.index.by_uid(pod_uid) else {
            return Renewal::Drop("the pod left the watch".into());
        };
        let (Ok(uid), Ok(cid)) = (
            pod_uid.parse::<PodUid>(),
            container_id.parse::<ContainerId>(),
        ) else {
            return Renewal::Drop("the scope's pod UID or container ID is malformed".into());
        };
        match facts_for(&self.config, &pod, &uid, &cid) {
            Ok(facts) => Renewal::Mint(evidence(&facts)),
            Err(error) => Renewal::Drop(format!("the container no longer attests: {error}")),
        }
    }
}

/// Follows the pod watch for the cache: drops deleted pods at once and pre-mints new ones
/// in tasks of their own.
#[derive(Debug)]
pub struct PodDriver {
    cache: Arc<SvidCache>,
    pods: Arc<PodWorkloads>,
    sync: watch::Receiver<Option<Arc<SyncState>>>,
    /// Pods with a pre-mint task running (one at a time per pod), and whether the pod
    /// changed since that task looked at it (it then looks again).
    preminting: Arc<Mutex<HashMap<String, bool>>>,
}

impl PodDriver {
    /// A driver for `cache`, whose workloads are `pods`.
    pub fn new(
        cache: Arc<SvidCache>,
        pods: Arc<PodWorkloads>,
        sync: watch::Receiver<Option<Arc<SyncState>>>,
    ) -> Self {
        PodDriver {
            cache,
            pods,
            sync,
            preminting: Arc::default(),
        }
    }

    /// Follows `changes` until `shutdown`; pre-mint tasks run on `tasks`.
    pub async fn run(
        self,
        mut changes: mpsc::Receiver<PodChange>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) {
        loop {
            let change = tokio::select! {
                () = shutdown.cancelled() => return,
                change = changes.recv() => change,
            };
            match change {
                None => return,
                Some(PodChange::Deleted(uid)) => self.drop_pod(&uid, "pod deleted"),
                Some(PodChange::Applied(pod)) => {
                    let Some(uid) = pod.metadata.uid.clone() else {
                        continue;
                    };
                    if pod.metadata.deletion_timestamp.is_some() {
                        self.drop_pod(&uid, "pod terminating");
                        continue;
                    }
                    // Containers that stopped or were replaced lose their SVIDs.
                    self.cache.drop_scopes(|s| match s {
                        Scope::Container {
                            pod_uid,
                            container_id,
                        } => *pod_uid == uid && !container_live(&pod, container_id),
                        Scope::Unix(_) => false,
                    });
                    self.spawn_premint(uid, &tasks, &shutdown);
                }
            }
        }
    }

    fn drop_pod(&self, uid: &str, why: &'static str) {
        let removed = self.cache.drop_scopes(|s| s.pod_uid() == Some(uid));
        if removed > 0 {
            info!(pod_uid = uid, why, removed, "the pod's svids are dropped");
        }
    }

    fn spawn_premint(&self, uid: String, tasks: &TaskTracker, shutdown: &CancellationToken) {
        {
            let mut running = self.preminting.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = running.get_mut(&uid) {
                *again = true;
                return;
            }
            running.insert(uid.clone(), false);
        }
        let (cache, pods, sync) = (self.cache.clone(), self.pods.clone(), self.sync.clone());
        let (preminting, shutdown) = (self.preminting.clone(), shutdown.clone());
        let span = debug_span!("premint", pod_uid = %uid);
        tasks.spawn(
            async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = premint(&cache, &pods, &sync, &uid) => {}
                    }
                    let mut running = preminting.lock().unwrap_or_else(|p| p.into_inner());
                    match running.get_mut(&uid) {
                        Some(again) if *again => *again = false,
                        _ => {
                            running.remove(&uid);
                            return;
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Pre-mints for the pod with `uid` as the watch shows it now: running containers with our
/// token, their entitled entries.
async fn premint(
    cache: &SvidCache,
    pods: &PodWorkloads,
    sync: &watch::Receiver<Option<Arc<SyncState>>>,
    uid: &str,
) {
    let Some(pod) = pods.index().by_uid(uid) else {
        return;
    };

    let Some(state) = sync.borrow().clone() else {
        debug!("pre-mint deferred: not synced yet");
        return;
    };
    let Ok(pod_uid) = uid.parse::<PodUid>() else {
        return;
    };
    let callers: Vec<K8sFacts> = running_containers(&pod)
        .into_iter()
        .filter_map(|(_, cid)| facts_for(pods.config(), &pod, &pod_uid, &cid).ok())
        .collect();
    let index = index(&state);
    let mints = callers.iter().map(|facts| {
        let ids = entitled_indexed(facts, &state, &index);
        async move { cache.ensure(&evidence(facts), &ids).await }
    });
    for result in futures::future::join_all(mints).await {
        if let Err(error) = result {
            debug!(%error, "pre-mint deferred");
        }
    }
}
