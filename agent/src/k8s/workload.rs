//! Kubernetes workload attestation on the agent: W1 (kernel), W2 (the pod
//! watch), W3 (the pod's own token) must all agree before anything is asked
//! of the server, which then re-verifies W4/W5 itself (docs/architecture.md,
//! "Factors" and "The calling container").
//!
//! The pod's facts, the calling container and the selectors come from the same
//! functions the server uses on its own read of the pod
//! (`sworn_identity::pod::PodFacts`), so what is pre-matched here is what the
//! server accepts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use sworn_caller::{Caller, CgroupRoots};
use sworn_identity::pod::{CallingError, PodFacts};
use sworn_identity::selector::Selector;
use sworn_identity::{ContainerId, PodUid};
use sworn_proto::agent::K8sEvidence;

use super::pods::PodIndex;
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
    PodNotVisible(PodUid),
    /// W2: the watch's pod object is malformed, or is another pod than the kernel's.
    #[error("W2: pod {pod}: {reason}")]
    PodObject {
        /// Pod UID, from the kernel.
        pod: PodUid,
        /// What is wrong.
        reason: String,
    },
    /// W2: the pod is being deleted.
    #[error("W2: pod {0} is being deleted")]
    Deleting(String),
    /// W2: the container ID is not in the pod's statuses.
    #[error("W2: container {container_id} is not in pod {pod}'s statuses")]
    UnknownContainer {
        /// Pod.
        pod: String,
        /// Container ID.
        container_id: ContainerId,
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
            | K8sRefusal::PodObject { .. }
            | K8sRefusal::Deleting(_)
            | K8sRefusal::UnknownContainer { .. }
            | K8sRefusal::NotRunning(_)
            | K8sRefusal::Ephemeral(_) => Factor::W2,
            K8sRefusal::Token(_) => Factor::W3,
        }
    }
}

/// What the agent established about a Kubernetes caller.
#[derive(Clone)]
pub struct K8sFacts {
    /// The evidence the server re-verifies.
    pub evidence: K8sEvidence,
    /// The selectors the agent's own view satisfies (pre-matching only).
    pub selectors: BTreeSet<Selector>,
}

impl std::fmt::Debug for K8sFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("K8sFacts")
            .field("pod_uid", &self.evidence.pod_uid)
            .field("container_id", &self.evidence.container_id)
            .field("container_name", &self.evidence.container_name)
            .field("selectors", &self.selectors)
            .finish_non_exhaustive()
    }
}

/// Builds facts for `container_id` of `pod`, reading its token (W2, W3). `pod_uid` is the
/// kernel's; the token is read from the kubelet's directory for it.
pub fn facts_for(
    cfg: &K8sWorkloadConfig,
    pod: &Pod,
    pod_uid: &PodUid,
    container_id: &ContainerId,
) -> Result<K8sFacts, K8sRefusal> {
    let object = |reason: String| K8sRefusal::PodObject {
        pod: *pod_uid,
        reason,
    };
    let facts = PodFacts::from_pod(pod).map_err(|e| object(e.to_string()))?;
    if facts.pod_uid != *pod_uid {
        return Err(object(format!("the watch returned pod {}", facts.pod_uid)));
    }
    let key = format!("{}/{}", facts.namespace, facts.pod_name);
    // The server refuses a pod being deleted (W4); its SVIDs are dropped here too.
    if facts.deleting {
        return Err(K8sRefusal::Deleting(key));
    }
    let container = facts
        .calling_container(container_id, cfg.allow_ephemeral)
        .map_err(|e| match e {
            CallingError::Unknown(container_id) => K8sRefusal::UnknownContainer {
                pod: key,
                container_id,
            },
            CallingError::Ephemeral(name) => K8sRefusal::Ephemeral(name),
            CallingError::NotRunning(name) => K8sRefusal::NotRunning(name),
        })?;
    let source = token_source(pod, &cfg.workload_audience)?;
    let token = read_token(&cfg.kubelet_root, &pod_uid.to_string(), &source)?;
    let selectors = facts.selectors(container);
    let evidence = sworn_identity::evidence::K8sEvidence {
        pod_uid: *pod_uid,
        container_id: container_id.clone(),
        pod_name: facts.pod_name.clone(),
        namespace: facts.namespace.clone(),
        container_name: container.name.clone(),
        token,
    };
    Ok(K8sFacts {
        evidence: evidence.into(),
        selectors,
    })
}

/// W2 and W3 for a caller the kernel placed in `container_id` of pod `pod_uid` (W1): waits
/// for the pod in the node's watch (`pod_wait`), then [`facts_for`].
pub async fn attest_pod(
    cfg: &K8sWorkloadConfig,
    index: &PodIndex,
    pod_uid: PodUid,
    container_id: ContainerId,
) -> Result<K8sFacts, K8sRefusal> {
    let pod = index
        .wait_for(&pod_uid.to_string(), cfg.pod_wait)
        .await
        .ok_or(K8sRefusal::PodNotVisible(pod_uid))?;
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || facts_for(&cfg, &pod, &pod_uid, &container_id))
        .await
        .map_err(|_| K8sRefusal::Task)?
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
    let facts = attest_pod(cfg, index, pc.pod_uid, pc.container_id).await?;
    caller
        .verify_unchanged()
        .map_err(|e| K8sRefusal::Kernel(e.to_string()))?;
    Ok(facts)
}
