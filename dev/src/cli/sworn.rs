//! The sworn part of `sworn-dev up --kubernetes`: a server in this process,
//! configured for the dev cluster, and one agent per dev node, each attested
//! through the real flow (its own pod, a projected `sworn-agent` token,
//! TokenReview) and serving its own Workload API socket under the dev dir.
//! `sworn-dev exec` points `SPIFFE_ENDPOINT_SOCKET` at the socket of the
//! agent on the pod's node.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use sworn_agent::{Agent, Bootstrap, NodeAttestation, RunningAgent, ServerAddress, SocketPath};
use sworn_server::server::RunningServer;
use tokio_util::sync::CancellationToken;

use super::state::{K8sState, PodRecord, StateDir};
use crate::k8s::{Kubelet, PodParams, TokenVolume};

/// Trust domain of the Kubernetes dev environment.
pub const TRUST_DOMAIN: &str = "example.org";
/// Cluster name the server knows the dev cluster by.
pub const CLUSTER: &str = "dev";
/// Nodes that get an agent.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// A running server and its agents.
#[derive(Debug)]
pub struct Sworn {
    /// The server.
    pub server: RunningServer,
    /// Agents by node.
    pub agents: Vec<(String, RunningAgent)>,
    shutdown: CancellationToken,
}

impl Sworn {
    /// Stops the agents, then the server.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for (node, agent) in self.agents {
            if let Err(error) = agent.shutdown().await {
                tracing::warn!(%error, node, "agent stopped with an error");
            }
        }
        self.server.shutdown(Duration::from_secs(5)).await;
    }
}

/// The cgroup roots the agents accept: this run's root plus the kubelet's names.
pub fn cgroup_roots(state: &K8sState) -> Result<sworn_caller::CgroupRoots> {
    let base = state.cgroup_root.to_string_lossy().into_owned();
    sworn_caller::CgroupRoots::parse([format!("{base}/kubepods"), format!("{base}/kubepods.slice")])
        .map_err(|e| anyhow::anyhow!("cgroup roots: {e}"))
}

/// Starts the server and one agent per node; returns once every agent is
/// attested and synced (it serves workloads), with its socket recorded.
pub async fn start(sd: &StateDir, state: &K8sState, kubelet: &Kubelet) -> Result<Sworn> {
    let k8s = sd.k8s();
    kubelet.ensure_namespace("sworn-system").await?;
    let cms: Api<ConfigMap> = Api::namespaced(kubelet.client().clone(), "sworn-system");
    if cms.get_opt("sworn-bundle").await?.is_none() {
        let empty: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "sworn-bundle"}}))?;
        cms.create(&PostParams::default(), &empty).await?;
    }
    let server_config = sworn_server::config::Config::parse(&format!(
        "trust_domain = \"{TRUST_DOMAIN}\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\n\n[[clusters]]\nname = \"{CLUSTER}\"\nkubeconfig = \"{}\"\n",
        k8s.join("server").display(),
        state.kubeconfig.display()
    ))?;
    let server =
        sworn_server::server::start(server_config, Arc::new(sworn_server::clock::SystemClock))
            .await
            .context("starting the sworn server")?;
    let shutdown = CancellationToken::new();
    let mut agents = Vec::new();
    for node in NODES {
        let mut params = PodParams::new(
            "sworn-system",
            &format!("sworn-agent-{node}"),
            "sworn-agent",
            node,
        );
        let mut volume = TokenVolume::for_audience("sworn-agent");
        volume.name = "sworn-agent-token".into();
        volume.expiration_seconds = 600;
        params.token_volume = Some(volume);
        let pod = kubelet
            .create_pod(&params)
            .await
            .with_context(|| format!("creating the agent pod on {node}"))?;
        let token_path = kubelet
            .token_path(&pod)
            .context("agent pod has no token volume")?;
        sd.save_pod(&PodRecord {
            pod: pod.clone(),
            token_path: Some(token_path.clone()),
        })?;
        let socket: PathBuf = k8s.join("agents").join(format!("{node}.sock"));
        std::fs::create_dir_all(k8s.join("agents"))?;
        let mut config = sworn_agent::Config::new(
            sworn_identity::parse_trust_domain(TRUST_DOMAIN)?,
            k8s.join("agents").join(node),
            ServerAddress::parse(&format!(
                "https://127.0.0.1:{}",
                server.agent_api_addr.port()
            ))
            .map_err(anyhow::Error::msg)?,
            Bootstrap::Roots(server.shared.ca.bundle().roots_der),
        )?;
        config.attestation = NodeAttestation::K8s {
            cluster: CLUSTER.into(),
            token_path,
        };
        config.node_name = Some(node.to_owned());
        config.socket_path = SocketPath::new(&socket)?;
        config.health_address = "127.0.0.1:0".parse()?;
        config.kubeconfig = Some(state.kubeconfig.clone());
        config.k8s_workload.kubelet_root = state.kubelet_root.clone();
        config.k8s_workload.cgroup_roots = cgroup_roots(state)?;
        let agent = Agent::start(config, shutdown.child_token())
            .await
            .with_context(|| format!("starting the agent on {node}"))?;
        let id = tokio::time::timeout(Duration::from_secs(30), agent.ready())
            .await
            .with_context(|| {
                format!("the agent on {node} was not attested and synced within 30 s")
            })??;
        sd.record_agent_socket(node, &socket)?;
        println!("agent on {node}: {id} (socket {})", socket.display());
        agents.push((node.to_owned(), agent));
    }
    println!("sworn admin socket: {}", server.admin_socket.display());
    Ok(Sworn {
        server,
        agents,
        shutdown,
    })
}
