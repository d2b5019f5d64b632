//! The pods the kubelet stand-in creates: what to create ([`PodParams`]) and
//! what was created ([`PodHandle`]), serialisable so `sworn-dev` can record
//! them between invocations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A projected service-account token volume in a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVolume {
    /// Volume name (default `sworn-token`).
    pub name: String,
    /// Token audience (default `sworn`).
    pub audience: String,
    /// File name inside the volume (default `token`).
    pub path: String,
    /// Requested lifetime (default 3600 s; the API's minimum is 600 s).
    pub expiration_seconds: i64,
    /// Whether the pod's containers mount it (default true). The kubelet
    /// populates only mounted volumes.
    pub mounted: bool,
    /// Where containers mount it (default `/var/run/secrets/sworn`).
    pub mount_path: String,
}

impl TokenVolume {
    /// A mounted volume `sworn-token` for `audience`.
    pub fn for_audience(audience: &str) -> Self {
        Self {
            name: "sworn-token".to_owned(),
            audience: audience.to_owned(),
            path: "token".to_owned(),
            expiration_seconds: 3600,
            mounted: true,
            mount_path: "/var/run/secrets/sworn".to_owned(),
        }
    }
}

/// What pod to create. Build with [`PodParams::new`], then adjust fields.
#[derive(Debug, Clone)]
pub struct PodParams {
    /// Namespace (created when missing).
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `spec.serviceAccountName` (created when missing).
    pub service_account: String,
    /// `spec.nodeName` (the Node is created when missing).
    pub node_name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Regular container names (default `["app"]`).
    pub containers: Vec<String>,
    /// Init container names (default none).
    pub init_containers: Vec<String>,
    /// Image of every container (default `registry.invalid/sworn/test:1`).
    pub image: String,
    /// The projected token volume (default: audience `sworn`, mounted).
    pub token_volume: Option<TokenVolume>,
}

impl PodParams {
    /// Defaults for a pod `namespace/name` running as `service_account` on `node_name`.
    pub fn new(namespace: &str, name: &str, service_account: &str, node_name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            service_account: service_account.to_owned(),
            node_name: node_name.to_owned(),
            labels: BTreeMap::new(),
            containers: vec!["app".to_owned()],
            init_containers: Vec::new(),
            image: "registry.invalid/sworn/test:1".to_owned(),
            token_volume: Some(TokenVolume::for_audience("sworn")),
        }
    }
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// `spec.initContainers`.
    Init,
    /// `spec.containers`.
    Regular,
    /// `spec.ephemeralContainers`.
    Ephemeral,
}

/// A container of a created pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHandle {
    /// Container name.
    pub name: String,
    /// Where it is declared.
    pub kind: ContainerKind,
    /// 64 lowercase hex digits, as containerd assigns.
    pub container_id: String,
}

impl ContainerHandle {
    /// `containerd://<id>`, as in pod status.
    pub fn runtime_id(&self) -> String {
        format!("containerd://{}", self.container_id)
    }
}

/// A pod created by [`Kubelet::create_pod`](super::Kubelet::create_pod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodHandle {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `spec.serviceAccountName`.
    pub service_account: String,
    /// Image of every container.
    pub image: String,
    /// All containers, init first, then regular, then ephemeral.
    pub containers: Vec<ContainerHandle>,
    /// The projected token volume, if any.
    pub token_volume: Option<TokenVolume>,
}

impl PodHandle {
    /// The container called `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerHandle> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
