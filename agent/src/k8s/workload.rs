//! Kubernetes workload attestation on the agent: W1 (kernel), W2 (the pod
//! watch), W3 (the pod's own token) must all agree before anything is asked
//! of the server, which then re-verifies W4/W5 itself (DESIGN.md §3.2).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use sworn_caller::{Caller, CgroupRoots};
use sworn_identity::selector::Selector;
use sworn_proto::agent::K8sEvidence;

use super::pods::{ContainerKind, PodIndex, container_status};
use super::token::{TokenError, read_token, token_source};

/// Kubernetes workload attestation settings.
#[derive(Debug, Clone)]
pub struct K8sWorkloadConfig {
    /// The kubelet's root directory. Default `/var/lib/kubelet`.
    pub kubelet_root: PathBuf,
    /// Cgroup roots pods sit directly under. Default `/kubepods`, `/kubepods.slice`.
    pub cgroup_roots: CgroupRoots,
    /// Audience of workload tokens. Default `sworn`.
    pub workload_audience: String,
    /// Whether ephemeral (`kubectl debug`) containers may get SVIDs. Default false.
    pub allow_ephemeral: bool,
    /// How long a pod that is not yet in the watch is waited for. Default 10 s,
    /// longer than the kubelet's status lag.
    pub pod_wait: Duration,
}

impl Default for K8sWorkloadConfig {
    fn default() -> Self {
        K8sWorkloadConfig {
            kubelet_root: PathBuf::from("/var/lib/kubelet"),
            cgroup_roots: CgroupRoots::default(),
            workload_audience: "sworn".to_owned(),
            allow_ephemeral: false,
            pod_wait: Duration::from_secs(10),
        }
    }
}

/// Why a caller was refused; the client sees only "no identity issued".
#[derive(Debug, thiserror::Error)]
pub enum K8sRefusal {
    /// W1: not in a pod container cgroup under a configured root.
    #[error("W1: {0}")]
    Kernel(String),
    /// W2: the pod is not in this node's watch.
    #[error("W2: pod {0} is not on this node (waited for the watch)")]
    PodNotVisible(String),
    /// W2: the container ID is not in the pod's statuses.
    #[error("W2: container {container_id} is not in pod {pod}'s statuses")]
    UnknownContainer {
        /// Pod.
        pod: String,
        /// Container ID.
        container_id: String,
    },
    /// W2: the container is not running.
    #[error("W2: container {0} is not running")]
    NotRunning(String),
    /// W2: ephemeral containers are refused by default.
    #[error("W2: ephemeral container {0} refused (allow_ephemeral is off)")]
    Ephemeral(String),
    /// W3: the token.
    #[error("W3: {0}")]
    Token(#[from] TokenError),
    /// The inspection task failed.
    #[error("caller inspection failed")]
    Task,
}

impl K8sRefusal {
    /// The factor that failed, as the audit names it.
    pub fn factor(&self) -> sworn_identity::Factor {
        use sworn_identity::Factor;
        match self {
            K8sRefusal::Kernel(_) | K8sRefusal::Task => Factor::W1,
            K8sRefusal::PodNotVisible(_)
            | K8sRefusal::UnknownContainer { .. }
            | K8sRefusal::NotRunning(_)
            | K8sRefusal::Ephemeral(_) => Factor::W2,
            K8sRefusal::Token(_) => Factor::W3,
        }
    }
}

/// What the agent established about a Kubernetes caller.
#[derive(Debug, Clone)]
pub struct K8sFacts {
    /// The evidence the server re-verifies.
    pub evidence: K8sEvidence,
    /// The selectors the agent's own view satisfies (pre-matching only).
    pub selectors: BTreeSet<Selector>,
}

/// Builds facts for `container_id` of `pod`, reading its token (W2, W3).
pub fn facts_for(
    cfg: &K8sWorkloadConfig,
    pod: &Pod,
    pod_uid: &str,
    container_id: &str,
) -> Result<K8sFacts, K8sRefusal> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let status =
        container_status(pod, container_id).ok_or_else(|| K8sRefusal::UnknownContainer {
            pod: format!("{namespace}/{name}"),
            container_id: container_id.to_owned(),
        })?;
    if status.kind == ContainerKind::Ephemeral && !cfg.allow_ephemeral {
        return Err(K8sRefusal::Ephemeral(status.name));
    }
    if !status.running {
        return Err(K8sRefusal::NotRunning(status.name));
    }
    let source = token_source(pod, &cfg.workload_audience)?;
    let token = read_token(&cfg.kubelet_root, pod_uid, &source)?;
    let spec = pod.spec.as_ref();
    let mut selectors = BTreeSet::new();
    selectors.insert(Selector::K8sNamespace(namespace.clone()));
    selectors.insert(Selector::K8sPodName(name.clone()));
    selectors.insert(Selector::K8sPodUid(pod_uid.to_owned()));
    selectors.insert(Selector::K8sContainerName(status.name.clone()));
    selectors.insert(Selector::K8sServiceAccount(
        spec.and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
    ));
    if let Some(n) = spec.and_then(|s| s.node_name.clone()) {
        selectors.insert(Selector::K8sNodeName(n));
    }
    for (k, v) in pod.metadata.labels.iter().flatten() {
        selectors.insert(Selector::K8sPodLabel(k.clone(), v.clone()));
    }
    for s in pod.status.iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
    }) {
        if s.name == status.name
            && let Some(d) = s
                .image_id
                .split('@')
                .next_back()
                .filter(|d| d.starts_with("sha256:"))
        {
            selectors.insert(Selector::K8sContainerImage(d.to_owned()));
        }
    }
    Ok(K8sFacts {
        evidence: K8sEvidence {
            pod_uid: pod_uid.to_owned(),
            container_id: container_id.to_owned(),
            pod_name: name,
            namespace,
            container_name: status.name,
            token,
        },
        selectors,
    })
}

/// Attests a Workload API caller: W1 from the kernel, then W2 and W3.
pub async fn attest(
    cfg: &K8sWorkloadConfig,
    index: &PodIndex,
    caller: Arc<Caller>,
) -> Result<K8sFacts, K8sRefusal> {
    let roots = cfg.cgroup_roots.clone();
    let inspected = caller.clone();
    let pc = tokio::task::spawn_blocking(move || inspected.pod_container(&roots))
        .await
        .map_err(|_| K8sRefusal::Task)?
        .map_err(|e| K8sRefusal::Kernel(e.to_string()))?;
    let uid = pc.pod_uid.to_string();
    let cid = pc.container_id.to_string();
    let pod = index
        .wait_for(&uid, cfg.pod_wait)
        .await
        .ok_or_else(|| K8sRefusal::PodNotVisible(uid.clone()))?;
    let cfg2 = cfg.clone();
    let facts = tokio::task::spawn_blocking(move || facts_for(&cfg2, &pod, &uid, &cid))
        .await
        .map_err(|_| K8sRefusal::Task)??;
    caller
        .verify_unchanged()
        .map_err(|e| K8sRefusal::Kernel(e.to_string()))?;
    Ok(facts)
}
