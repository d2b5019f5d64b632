//! The server's own read of a Pod (and Node), and the facts selectors and
//! templates use. Attributes come from this read, never from the agent.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use kube::Api;
use sworn_identity::selector::Selector;

use super::{K8sError, classify};
use crate::policy::template::PodFacts;

/// Reads a pod by namespace and name. A plain GET without `resourceVersion`
/// is served from etcd with a quorum read, never from the watch cache.
pub async fn get_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Pod>, K8sError> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(classify)
}

/// Reads a node by name.
pub async fn get_node(client: &kube::Client, name: &str) -> Result<Option<Node>, K8sError> {
    Api::<Node>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(classify)
}

/// Where the calling container sits in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// A regular container.
    Regular,
    /// An init container (runs while the pod is Pending).
    Init,
    /// An ephemeral (debug) container.
    Ephemeral,
}

/// The calling container, matched by ID in the pod's statuses.
#[derive(Debug, Clone)]
pub struct CallingContainer {
    /// Container name.
    pub name: String,
    /// Which list it was found in.
    pub kind: ContainerKind,
    /// Whether its state is `running`.
    pub running: bool,
    /// `sha256:<hex>` from `imageID`, when present.
    pub image_digest: Option<String>,
}

fn id_matches(status: &ContainerStatus, container_id: &str) -> bool {
    status
        .container_id
        .as_deref()
        .and_then(|full| full.split_once("://").map(|(_, id)| id))
        .is_some_and(|id| id == container_id)
}

/// Finds the container with `container_id` in the pod's statuses.
pub fn calling_container(pod: &Pod, container_id: &str) -> Option<CallingContainer> {
    let status = pod.status.as_ref()?;
    let lists = [
        (ContainerKind::Regular, status.container_statuses.as_ref()),
        (ContainerKind::Init, status.init_container_statuses.as_ref()),
        (
            ContainerKind::Ephemeral,
            status.ephemeral_container_statuses.as_ref(),
        ),
    ];
    for (kind, list) in lists {
        if let Some(s) = list
            .into_iter()
            .flatten()
            .find(|s| id_matches(s, container_id))
        {
            let image_digest = s
                .image_id
                .split('@')
                .next_back()
                .filter(|d| d.starts_with("sha256:"))
                .map(str::to_owned);
            return Some(CallingContainer {
                name: s.name.clone(),
                kind,
                running: s.state.as_ref().is_some_and(|st| st.running.is_some()),
                image_digest,
            });
        }
    }
    None
}

/// Template facts from the pod.
pub fn facts(pod: &Pod) -> PodFacts {
    let spec = pod.spec.as_ref();
    PodFacts {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    }
}

/// Every selector the pod and calling container satisfy.
pub fn selectors(f: &PodFacts, c: &CallingContainer) -> BTreeSet<Selector> {
    let mut s = BTreeSet::new();
    s.insert(Selector::K8sNamespace(f.namespace.clone()));
    s.insert(Selector::K8sServiceAccount(f.service_account.clone()));
    s.insert(Selector::K8sPodName(f.pod_name.clone()));
    s.insert(Selector::K8sPodUid(f.pod_uid.clone()));
    s.insert(Selector::K8sNodeName(f.node_name.clone()));
    s.insert(Selector::K8sContainerName(c.name.clone()));
    if let Some(d) = &c.image_digest {
        s.insert(Selector::K8sContainerImage(d.clone()));
    }
    let labels: &BTreeMap<String, String> = &f.labels;
    for (k, v) in labels {
        s.insert(Selector::K8sPodLabel(k.clone(), v.clone()));
    }
    s
}
