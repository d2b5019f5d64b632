//! Reading Kubernetes for attestation: per-cluster clients, TokenReview, and
//! the facts of a Pod as the server itself reads them (docs/architecture.md, "Node attestation", "Workload attestation").
//!
//! Every name that comes from a token's extras is validated (DNS-1123 /
//! UUID) before it is used in a request path. Any failure to reach the API
//! server, and any call past its deadline ([`within`]), is
//! [`K8sError::Unavailable`]: callers issue nothing and answer `Unavailable`,
//! which an agent treats as a fault (it keeps valid SVIDs), never a denial.

pub mod bundle_configmap;
pub mod pod;
pub mod review;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::ClusterConfig;

/// Kubernetes access failure.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The API server could not be reached or answered 5xx.
    #[error("kubernetes API unavailable: {0}")]
    Unavailable(String),
    /// The client could not be configured.
    #[error("kubernetes client for cluster {cluster}: {reason}")]
    Client {
        /// Cluster name.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// The API refused the request (e.g. RBAC).
    #[error("kubernetes API refused: {0}")]
    Refused(String),
}

/// One configured cluster and its client.
#[derive(Clone)]
pub struct Cluster {
    /// Its configuration.
    pub config: ClusterConfig,
    /// API client with the server's credentials.
    pub client: kube::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// All configured clusters by name.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    by_name: BTreeMap<String, Arc<Cluster>>,
}

impl Clusters {
    /// Builds clients for every configured cluster (kubeconfig or in-cluster).
    pub async fn connect(configs: &[ClusterConfig]) -> Result<Self, K8sError> {
        let mut by_name = BTreeMap::new();
        for c in configs {
            let err = |reason: String| K8sError::Client {
                cluster: c.name.clone(),
                reason,
            };
            let cfg = match &c.kubeconfig {
                Some(path) => {
                    let kc = kube::config::Kubeconfig::read_from(path)
                        .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    kube::Config::from_custom_kubeconfig(
                        kc,
                        &kube::config::KubeConfigOptions::default(),
                    )
                    .await
                    .map_err(|e| err(e.to_string()))?
                }
                None => {
                    kube::Config::incluster().map_err(|e| err(format!("in-cluster config: {e}")))?
                }
            };
            let client = kube::Client::try_from(cfg).map_err(|e| err(e.to_string()))?;
            by_name.insert(
                c.name.clone(),
                Arc::new(Cluster {
                    config: c.clone(),
                    client,
                }),
            );
        }
        Ok(Clusters { by_name })
    }

    /// The cluster with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.by_name.get(name)
    }

    /// Every cluster.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.by_name.values()
    }
}

/// Maps a kube error: API statuses 5xx/429 and transport failures are
/// `Unavailable`; other API statuses are `Refused`.
pub fn classify(e: kube::Error) -> K8sError {
    match e {
        kube::Error::Api(s) if s.code >= 500 || s.code == 429 => K8sError::Unavailable(s.message),
        kube::Error::Api(s) => K8sError::Refused(format!("{} ({})", s.message, s.code)),
        other => K8sError::Unavailable(other.to_string()),
    }
}

/// Runs one Kubernetes call under `deadline` (config `k8s_call_timeout`): a call that does
/// not answer in time is [`K8sError::Unavailable`], like any other outage.
pub async fn within<T, E>(
    deadline: std::time::Duration,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<K8sError>,
{
    match tokio::time::timeout(deadline, call).await {
        Ok(r) => r,
        Err(_) => Err(K8sError::Unavailable(format!(
            "no answer within {}",
            humantime::format_duration(deadline)
        ))
        .into()),
    }
}
