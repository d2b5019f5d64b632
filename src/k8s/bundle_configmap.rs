//! Publishes the trust bundle into a ConfigMap that agents mount as their
//! bootstrap trust. The server's RBAC allows `get`/`update` on that one
//! ConfigMap by `resourceNames`, so the deploy creates it (empty) and the
//! server only ever replaces its data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;

use super::{Cluster, K8sError, classify};

/// The key agents read.
pub const BUNDLE_KEY: &str = "bundle.pem";

/// Writes `pem` into the cluster's bundle ConfigMap (no-op when unchanged).
pub async fn publish(cluster: &Cluster, pem: &str) -> Result<(), K8sError> {
    let Some((ns, name)) = cluster.config.bundle_configmap.split_once('/') else {
        return Err(K8sError::Refused(
            "bundle_configmap is not namespace/name".into(),
        ));
    };
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), ns);
    let mut cm = api.get_opt(name).await.map_err(classify)?.ok_or_else(|| {
        K8sError::Refused(format!(
            "ConfigMap {ns}/{name} does not exist; create it (the deploy manifests do) so the server can update it"
        ))
    })?;
    if cm
        .data
        .as_ref()
        .and_then(|d| d.get(BUNDLE_KEY))
        .map(String::as_str)
        == Some(pem)
    {
        return Ok(());
    }
    cm.data
        .get_or_insert_with(BTreeMap::new)
        .insert(BUNDLE_KEY.to_owned(), pem.to_owned());
    api.replace(name, &PostParams::default(), &cm)
        .await
        .map_err(classify)?;
    Ok(())
}
