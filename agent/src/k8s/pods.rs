//! W2, the orchestrator's view: one watch of the pods on this node
//! (`fieldSelector=spec.nodeName=<node>`, a kube-runtime reflector), and the
//! calling container's state in it (docs/architecture.md, "Workload attestation", "The agent").
//!
//! The watch also drives the cache: pods that appear are offered for
//! pre-minting, pods that disappear are dropped (and their streams redacted).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use sworn_identity::ContainerId;
use sworn_identity::pod::{ContainerKind, PodFacts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A change the cache cares about.
#[derive(Debug, Clone)]
pub enum PodChange {
    /// A pod was added or changed.
    Applied(Arc<Pod>),
    /// A pod is gone (its UID).
    Deleted(String),
}

/// The node's pods as the API server reports them.
#[derive(Clone)]
pub struct PodIndex {
    store: Store<Pod>,
}

impl std::fmt::Debug for PodIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodIndex")
            .field("pods", &self.store.state().len())
            .finish()
    }
}

impl PodIndex {
    /// Starts the watch; changes go to `changes` until `shutdown`.
    pub fn start(
        client: kube::Client,
        node_name: &str,
        changes: mpsc::Sender<PodChange>,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> PodIndex {
        let (store, writer) = reflector::store();
        let api: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
        let span = tracing::info_span!("pod_watch", node = node_name);
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                let mut stream = std::pin::pin!(stream);
                loop {
                    let next = tokio::select! {
                        () = shutdown.cancelled() => return,
                        n = stream.next() => n,
                    };
                    let Some(event) = next else { return };
                    let change = match event {
                        Ok(Event::Apply(p) | Event::InitApply(p)) => {
                            Some(PodChange::Applied(Arc::new(p)))
                        }
                        Ok(Event::Delete(p)) => p.metadata.uid.clone().map(PodChange::Deleted),
                        Ok(_) => None,
                        Err(error) => {
                            tracing::warn!(%error, "pod watch error; retrying with backoff");
                            None
                        }
                    };
                    if let Some(c) = change
                        && changes.send(c).await.is_err()
                    {
                        return;
                    }
                }
            },
            span,
        ));
        PodIndex { store }
    }

    /// Whether the first full list has arrived.
    pub async fn ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// The pod with `uid`, if the watch has it.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<Pod>> {
        self.store.find(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    /// The pod with `uid`, waiting up to `wait` for it to appear (the
    /// kubelet's status lags the process start).
    pub async fn wait_for(&self, uid: &str, wait: Duration) -> Option<Arc<Pod>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut delay = Duration::from_millis(50);
        loop {
            if let Some(p) = self.by_uid(uid) {
                return Some(p);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(delay.min(deadline - tokio::time::Instant::now())).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

/// Running regular and init containers (for pre-minting), by name and ID.
pub fn running_containers(pod: &Pod) -> Vec<(String, ContainerId)> {
    PodFacts::from_pod(pod)
        .map(|f| f.containers)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.running && c.kind != ContainerKind::Ephemeral)
        .filter_map(|c| Some((c.name, c.id?)))
        .collect()
}
