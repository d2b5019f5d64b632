//! The facts of a pod that workload attestation uses (docs/architecture.md, "Factors": W2,
//! W4, W5, and "The calling container").
//!
//! Both sides read them from a Pod object with the one function `PodFacts::from_pod`
//! (feature `k8s`): the agent from its watch of its node's pods, the server from its own
//! quorum read. Then [`PodFacts::calling_container`] is the one rule for which container is
//! calling, and [`PodFacts::selectors`] the one function from the facts to the selectors
//! entries are matched against, so the entries an agent pre-matches are the entries the
//! server accepts.
//!
//! Invariant of [`PodFacts::selectors`]: a fact that is not a valid selector value (an
//! empty node name, an `imageID` without a digest) yields no selector. Stored entries only
//! ever hold valid selectors, so such a fact could not have matched one anyway.

use std::collections::{BTreeMap, BTreeSet};

use crate::pod_id::{ContainerId, PodUid};
use crate::selector::Selector;

/// The pod facts, as one read of the Pod object shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.serviceAccountName` (`default` when unset, as the API server defaults it).
    pub service_account: String,
    /// `metadata.name`.
    pub pod_name: String,
    /// `metadata.uid`.
    pub pod_uid: PodUid,
    /// `spec.nodeName`; `None` while the pod is not scheduled.
    pub node_name: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.deletionTimestamp` is set: the pod is being deleted.
    pub deleting: bool,
    /// Every container with a status, regular, init and ephemeral.
    pub containers: Vec<ContainerFacts>,
}

/// Which list of the pod's statuses a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// `containerStatuses`.
    Regular,
    /// `initContainerStatuses` (they run while the pod is Pending; sidecars keep running).
    Init,
    /// `ephemeralContainerStatuses` (`kubectl debug`).
    Ephemeral,
}

/// One container status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFacts {
    /// Container name.
    pub name: String,
    /// Which list it is in.
    pub kind: ContainerKind,
    /// The current instance's ID from `containerID` (`<runtime>://<id>`); `None` before the
    /// container started or when the status holds no valid ID. A restarted container's
    /// previous ID (in `lastState`) is never this.
    pub id: Option<ContainerId>,
    /// Its state is `running`.
    pub running: bool,
    /// `sha256:<64 hex>` from `imageID`, when it carries a digest ([`image_digest`]).
    pub image_digest: Option<String>,
}

/// Why no calling container was accepted (factor W2 on both sides).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallingError {
    /// No status of the pod has this container ID as its current one.
    #[error("container {0} is not in the pod's statuses")]
    Unknown(ContainerId),
    /// An ephemeral container, and those are refused here.
    #[error("ephemeral container {0} is refused")]
    Ephemeral(String),
    /// The container's state is not `running`.
    #[error("container {0} is not running")]
    NotRunning(String),
}

impl PodFacts {
    /// The container whose current instance has `id`, in any of the three lists.
    pub fn container(&self, id: &ContainerId) -> Option<&ContainerFacts> {
        self.containers.iter().find(|c| c.id.as_ref() == Some(id))
    }

    /// The calling container, found by the container ID the kernel proves (the caller's
    /// cgroup), never by a name the caller could choose: it must be running, and it may be
    /// ephemeral only when `allow_ephemeral`.
    pub fn calling_container(
        &self,
        id: &ContainerId,
        allow_ephemeral: bool,
    ) -> Result<&ContainerFacts, CallingError> {
        let c = self
            .container(id)
            .ok_or_else(|| CallingError::Unknown(id.clone()))?;
        if c.kind == ContainerKind::Ephemeral && !allow_ephemeral {
            return Err(CallingError::Ephemeral(c.name.clone()));
        }
        if !c.running {
            return Err(CallingError::NotRunning(c.name.clone()));
        }
        Ok(c)
    }

    /// Every selector the pod and its calling container `c` satisfy.
    pub fn selectors(&self, c: &ContainerFacts) -> BTreeSet<Selector> {
        let mut s = BTreeSet::from([Selector::k8s_pod_uid(&self.pod_uid)]);
        s.extend(Selector::k8s_namespace(&self.namespace).ok());
        s.extend(Selector::k8s_service_account(&self.service_account).ok());
        s.extend(Selector::k8s_pod_name(&self.pod_name).ok());
        if let Some(node) = &self.node_name {
            s.extend(Selector::k8s_node_name(node).ok());
        }
        s.extend(Selector::k8s_container_name(&c.name).ok());
        if let Some(digest) = &c.image_digest {
            s.extend(Selector::k8s_container_image(digest).ok());
        }
        for (k, v) in &self.labels {
            s.extend(Selector::k8s_pod_label(k, v).ok());
        }
        s
    }
}

/// The digest in a container status's `imageID`: the part after its last `@`, or all of it
/// without an `@` (containerd reports a bare `sha256:<hex>` for an image without a repo
/// digest), when that is `sha256:<64 lowercase hex>`. A tag-only reference, an empty
/// `imageID` (not started yet), another algorithm or a scheme such as `docker://` give
/// `None`: no `k8s:container-image` selector, so an entry requiring an image never matches.
pub fn image_digest(image_id: &str) -> Option<String> {
    let digest = image_id.rsplit('@').next().unwrap_or(image_id);
    Selector::k8s_container_image(digest)
        .is_ok()
        .then(|| digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn facts(node: Option<&str>) -> PodFacts {
        PodFacts {
            namespace: "default".into(),
            service_account: "web".into(),
            pod_name: "web-1".into(),
            pod_uid: "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap(),
            node_name: node.map(Into::into),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            deleting: false,
            containers: vec![
                container("app", ContainerKind::Regular, 'a', true),
                container("setup", ContainerKind::Init, 'b', false),
                container("debug", ContainerKind::Ephemeral, 'c', true),
            ],
        }
    }

    fn container(name: &str, kind: ContainerKind, id: char, running: bool) -> ContainerFacts {
        ContainerFacts {
            name: name.into(),
            kind,
            id: Some(id.to_string().repeat(64).parse().unwrap()),
            running,
            image_digest: Some(DIGEST.into()),
        }
    }

    fn strings(s: &BTreeSet<Selector>) -> Vec<String> {
        s.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn selectors_of_a_scheduled_pod() {
        let f = facts(Some("node-a"));
        let c = f
            .calling_container(&"a".repeat(64).parse().unwrap(), false)
            .unwrap();
        let want: BTreeSet<String> = [
            "k8s:ns:default".to_owned(),
            "k8s:sa:web".to_owned(),
            "k8s:pod-label:app:web".to_owned(),
            "k8s:pod-uid:0f8fad5b-d9cb-469f-a165-70867728950e".to_owned(),
            "k8s:pod-name:web-1".to_owned(),
            "k8s:container-name:app".to_owned(),
            format!("k8s:container-image:{DIGEST}"),
            "k8s:node-name:node-a".to_owned(),
        ]
        .into();
        assert_eq!(
            strings(&f.selectors(c))
                .into_iter()
                .collect::<BTreeSet<_>>(),
            want
        );
    }

    #[test]
    fn no_node_name_selector_without_a_node() {
        for node in [None, Some(""), Some("Not_A_Name")] {
            let f = facts(node);
            let sels = strings(&f.selectors(&f.containers[0]));
            assert!(
                !sels.iter().any(|s| s.starts_with("k8s:node-name:")),
                "{node:?}: {sels:?}"
            );
            assert_eq!(sels.len(), 7, "{node:?}: {sels:?}");
        }
    }

    #[test]
    fn the_calling_container_is_found_by_id() {
        let f = facts(None);
        let id = |c: char| c.to_string().repeat(64).parse::<ContainerId>().unwrap();
        assert_eq!(f.calling_container(&id('a'), false).unwrap().name, "app");
        assert_eq!(
            f.calling_container(&id('b'), false),
            Err(CallingError::NotRunning("setup".into()))
        );
        assert_eq!(
            f.calling_container(&id('c'), false),
            Err(CallingError::Ephemeral("debug".into()))
        );
        assert_eq!(f.calling_container(&id('c'), true).unwrap().name, "debug");
        assert_eq!(
            f.calling_container(&id('d'), true),
            Err(CallingError::Unknown(id('d')))
        );
    }

    #[test]
    fn image_digest_rule() {
        let hex = &DIGEST["sha256:".len()..];
        for (image_id, want) in [
            (format!("docker.io/library/nginx@{DIGEST}"), Some(DIGEST)),
            (format!("docker-pullable://nginx@{DIGEST}"), Some(DIGEST)),
            (DIGEST.to_owned(), Some(DIGEST)),
            ("docker.io/library/nginx:1.27".to_owned(), None),
            (String::new(), None),
            (format!("docker://{DIGEST}"), None),
            (format!("nginx@sha512:{hex}"), None),
            (format!("nginx@sha256:{}", hex.to_uppercase()), None),
            (format!("nginx@sha256:{}", &hex[1..]), None),
        ] {
            assert_eq!(image_digest(&image_id).as_deref(), want, "{image_id:?}");
        }
    }
}
