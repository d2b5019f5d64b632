//! The server's own reads of a Pod and a Node. The facts attestation uses come from these
//! reads (through `sworn_identity::pod::PodFacts::from_pod`), never from the agent.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;

use super::{K8sError, classify};

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
