//! `sworn-dev pod create`: a pod as a kubelet would run it.
//!
//! Creates the namespace, service account and node when missing, the Pod
//! (bound to the node, with a projected token volume for the audience), its
//! Running status and its token file, creates each container's cgroup, and
//! records the pod (UID, container IDs) for `exec`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::state::{self, PodRecord, StateDir};
use crate::k8s::{CgroupRoot, Kubelet, PodParams, TokenVolume};

/// Arguments of `pod create`.
#[derive(Debug, Clone)]
pub struct PodCreate {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Node.
    pub node: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Token audience.
    pub audience: String,
}

/// Creates the pod and prints its UID and token path.
pub async fn create(dir: &Path, args: PodCreate) -> Result<PodRecord> {
    let sd = StateDir::new(dir)?;
    let st = sd.load()?;
    let client = state::client(&st).await?;
    let cgroups = CgroupRoot::open(&st.cgroup_root)?;
    let kubelet = Kubelet::from_parts(client, &st.issuer, st.kubelet_root.clone(), cgroups);
    let mut params = PodParams::new(
        &args.namespace,
        &args.name,
        &args.service_account,
        &args.node,
    );
    params.labels = args.labels;
    params.token_volume = Some(TokenVolume::for_audience(&args.audience));
    let pod = kubelet
        .create_pod(&params)
        .await
        .with_context(|| format!("creating pod {}/{}", args.namespace, args.name))?;
    for c in &pod.containers {
        kubelet
            .cgroup_root()
            .container(st.cgroup_style, &pod.uid, &c.container_id)
            .create()?;
    }
    let record = PodRecord {
        token_path: kubelet.token_path(&pod),
        pod,
    };
    sd.save_pod(&record)?;
    println!("pod {} uid {}", record.pod.key(), record.pod.uid);
    for c in &record.pod.containers {
        println!("container {} {}", c.name, c.runtime_id());
    }
    if let Some(token) = &record.token_path {
        println!("token {}", token.display());
    }
    Ok(record)
}

/// Parses `K=V`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("label {s:?} is not K=V"))
}
