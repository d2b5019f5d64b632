//! [`PodFacts`] from a `k8s_openapi` Pod: the one place a Pod object is read for
//! attestation (feature `k8s`; docs/architecture.md, "The calling container").

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::pod::{ContainerFacts, ContainerKind, PodFacts, image_digest};
use crate::pod_id::ContainerId;

/// Why a Pod object gave no facts. The API server always sets these fields, so this is a
/// malformed object, never a pod that merely lacks a feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodFactsError {
    /// `metadata.uid` is missing or not a canonical UUID.
    #[error("pod has no valid metadata.uid")]
    Uid,
    /// `metadata.name` or `metadata.namespace` is missing or empty.
    #[error("pod has no name or namespace")]
    Name,
}

impl PodFacts {
    /// Reads the facts of `pod`.
    pub fn from_pod(pod: &Pod) -> Result<PodFacts, PodFactsError> {
        let meta = &pod.metadata;
        let pod_uid = meta
            .uid
            .as_deref()
            .and_then(|u| u.parse().ok())
            .ok_or(PodFactsError::Uid)?;
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let (Some(namespace), Some(pod_name)) = (non_empty(&meta.namespace), non_empty(&meta.name))
        else {
            return Err(PodFactsError::Name);
        };
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let lists = [
            (
                ContainerKind::Regular,
                status.and_then(|s| s.container_statuses.as_ref()),
            ),
            (
                ContainerKind::Init,
                status.and_then(|s| s.init_container_statuses.as_ref()),
            ),
            (
                ContainerKind::Ephemeral,
                status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
            ),
        ];
        let containers = lists
            .into_iter()
            .flat_map(|(kind, list)| list.into_iter().flatten().map(move |s| container(kind, s)))
            .collect();
        Ok(PodFacts {
            namespace,
            service_account: spec
                .and_then(|s| non_empty(&s.service_account_name))
                .unwrap_or_else(|| "default".to_owned()),
            pod_name,
            pod_uid,
            node_name: spec.and_then(|s| non_empty(&s.node_name)),
            labels: meta.labels.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            containers,
        })
    }
}

fn container(kind: ContainerKind, s: &ContainerStatus) -> ContainerFacts {
    ContainerFacts {
        name: s.name.clone(),
        kind,
        id: s
            .container_id
            .as_deref()
            .and_then(|id| ContainerId::from_status(id).ok()),
        running: s.state.as_ref().is_some_and(|st| st.running.is_some()),
        image_digest: image_digest(&s.image_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn pod(doc: serde_json::Value) -> Pod {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn reads_every_status_list_and_only_current_ids() {
        let (a, b, c, old) = (
            "a".repeat(64),
            "b".repeat(64),
            "c".repeat(64),
            "d".repeat(64),
        );
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"nodeName": "node-a", "serviceAccountName": "web", "containers": []},
            "status": {
                "containerStatuses": [{
                    "name": "app", "image": "x", "imageID": "x@sha256:".to_owned() + &a,
                    "containerID": format!("containerd://{a}"), "ready": true, "restartCount": 1,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "containerID": format!("containerd://{old}")}},
                }],
                "initContainerStatuses": [{
                    "name": "setup", "image": "x", "imageID": "x:1",
                    "containerID": format!("containerd://{b}"), "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0}},
                }],
                "ephemeralContainerStatuses": [{
                    "name": "debug", "image": "x", "imageID": "",
                    "containerID": format!("cri-o://{c}"), "ready": false, "restartCount": 0,
                    "state": {"running": {}},
                }],
            },
        }));
        let f = PodFacts::from_pod(&p).unwrap();
        assert_eq!(f.pod_uid.to_string(), UID);
        assert_eq!(f.node_name.as_deref(), Some("node-a"));
        let id = |s: &str| s.parse::<ContainerId>().unwrap();
        let app = f.container(&id(&a)).unwrap();
        assert_eq!((app.kind, app.running), (ContainerKind::Regular, true));
        assert_eq!(app.image_digest, Some(format!("sha256:{a}")));
        let setup = f.container(&id(&b)).unwrap();
        assert_eq!((setup.kind, setup.running), (ContainerKind::Init, false));
        assert_eq!(setup.image_digest, None);
        assert_eq!(f.container(&id(&c)).unwrap().kind, ContainerKind::Ephemeral);
        // The previous instance of the restarted container is not a container of the pod.
        assert!(f.container(&id(&old)).is_none());
    }

    #[test]
    fn an_unscheduled_pod_has_no_node_and_defaults_its_service_account() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"nodeName": "", "containers": []},
        }));
        let f = PodFacts::from_pod(&p).unwrap();
        assert_eq!(f.node_name, None);
        assert_eq!(f.service_account, "default");
        assert!(f.containers.is_empty());
    }

    #[test]
    fn malformed_objects_are_refused() {
        let no_uid = pod(serde_json::json!({"metadata": {"name": "web", "namespace": "default"}}));
        assert_eq!(PodFacts::from_pod(&no_uid), Err(PodFactsError::Uid));
        let upper = pod(
            serde_json::json!({"metadata": {"name": "web", "namespace": "default", "uid": UID.to_uppercase()}}),
        );
        assert_eq!(PodFacts::from_pod(&upper), Err(PodFactsError::Uid));
        let no_ns = pod(serde_json::json!({"metadata": {"name": "web", "uid": UID}}));
        assert_eq!(PodFacts::from_pod(&no_ns), Err(PodFactsError::Name));
    }
}
