//! A Kubernetes environment with real agents, for the deny matrix and the
//! pod-start-to-SVID measurement. Every part keeps its directory and prints
//! the end of its logs when a test fails: the control plane (etcd,
//! kube-apiserver), the kubelet stand-in (each container process's stdout and
//! stderr), the server and the agents (in-process tracing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sworn_agent::{Agent, Bootstrap, NodeAttestation, RunningAgent, ServerAddress, SocketPath};
use sworn_dev::k8s::{CgroupStyle, ControlPlane, Kubelet, PodHandle, PodParams, TokenVolume};
use sworn_harness::RunDir;
use sworn_proto::agent as pb;
use tokio_util::sync::CancellationToken;

use crate::{AgentCreds, TestServer};

/// A real control plane, a server, and one real agent per node (`node-a`,
/// `node-b`) attested through the real flow, with the go-spiffe probe as the
/// workload program.
pub struct Env {
    /// The control plane (taken to stop it mid-test).
    pub cp: Option<ControlPlane>,
    /// The kubelet stand-in.
    pub kubelet: Kubelet,
    /// The server.
    pub server: TestServer,
    /// (node, agent, socket).
    pub agents: Vec<(String, RunningAgent, PathBuf)>,
    /// Agent state (and the output of processes a test runs itself, via
    /// [`RunDir::output`] and friends).
    pub dir: RunDir,
    /// The go-spiffe probe binary.
    pub go: String,
    /// The agents' own pods, in `agents` order.
    pub agent_pods: Vec<PodHandle>,
    _stop: CancellationToken,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl Env {
    /// The agent socket of `node` as a URI.
    pub fn socket(&self, node: &str) -> String {
        let p = &self.agents.iter().find(|(n, _, _)| n == node).unwrap().2;
        format!("unix://{}", p.display())
    }

    /// The data dir of `node`'s agent.
    pub fn agent_data_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node)
    }

    /// The agent ID of `node`'s agent.
    pub fn agent_id(&self, node: &str) -> String {
        let agent = &self.agents.iter().find(|(n, _, _)| n == node).unwrap().1;
        agent.agent_id().unwrap().to_string()
    }

    /// `node`'s agent credentials exactly as the real agent keeps them in its
    /// data dir after attesting through the real flow: `agent_svid.pem` (chain)
    /// and `agent_key.pem` (PKCS#8), see `agent/src/node/mod.rs`. A test
    /// presenting them is that agent, as far as the server can tell.
    pub fn agent_creds(&self, node: &str) -> AgentCreds {
        let dir = self.agent_data_dir(node);
        let chain: Vec<Vec<u8>> = CertificateDer::pem_file_iter(dir.join("agent_svid.pem"))
            .unwrap()
            .map(|c| c.unwrap().to_vec())
            .collect();
        let key = PrivatePkcs8KeyDer::from_pem_file(dir.join("agent_key.pem")).unwrap();
        let id = crate::uri_san(&chain[0]);
        assert_eq!(id, self.agent_id(node), "the stored SVID is the agent's");
        AgentCreds {
            id,
            chain,
            key: key.secret_pkcs8_der().to_vec(),
        }
    }

    /// The probe, pointed at `node`'s agent.
    pub fn fetch_cmd(&self, node: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(&self.go);
        c.args(["-addr", &self.socket(node), "-timeout", "20s"])
            .args(extra);
        c
    }

    /// Runs the go-spiffe probe in `pod`'s container, returns its JSON line.
    pub async fn fetch_in(
        &self,
        pod: &PodHandle,
        container: &str,
        node: &str,
        style: CgroupStyle,
    ) -> serde_json::Value {
        let p = self
            .kubelet
            .start_container_process(pod, container, &self.fetch_cmd(node, &[]), style)
            .unwrap();
        output(p).await
    }
}

/// The last JSON line a probe printed.
pub async fn output(p: sworn_dev::k8s::ContainerProcess) -> serde_json::Value {
    let out = p.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}"))
        .unwrap_or(serde_json::json!({"raw": text}))
}

/// Whether the probe was refused with PermissionDenied.
pub fn denied(v: &serde_json::Value) -> bool {
    v["error"]
        .as_str()
        .is_some_and(|e| e.contains("PermissionDenied"))
}

/// A control plane and its kubelet stand-in, with the `sworn-system` namespace and the
/// (empty) ConfigMap the server keeps the trust bundle in.
pub async fn control_plane() -> (ControlPlane, Kubelet) {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    kubelet.ensure_namespace("sworn-system").await.unwrap();
    Api::<ConfigMap>::namespaced(cp.client(), "sworn-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "sworn-bundle"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    (cp, kubelet)
}

/// An agent attested to `server` through the real Kubernetes flow, as the pod
/// `sworn-system/<name>` of service account `sworn-agent` on `node`.
pub async fn attested_agent(
    server: &TestServer,
    kubelet: &Kubelet,
    name: &str,
    node: &str,
) -> AgentCreds {
    let mut p = PodParams::new("sworn-system", name, "sworn-agent", node);
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    let pod = kubelet.create_pod(&p).await.unwrap();
    let token = kubelet
        .request_token(&pod, "sworn-agent", 600)
        .await
        .unwrap();
    let mut c = server.agent_client().await;
    crate::attest(
        &mut c,
        pb::attest_request::Method::K8s(pb::K8sAttestation {
            cluster: "dev".into(),
            token,
        }),
    )
    .await
    .unwrap()
}

/// Starts everything.
pub async fn setup() -> Env {
    setup_with("").await
}

/// Starts everything; `server_extra` is appended to the server's config.
pub async fn setup_with(server_extra: &str) -> Env {
    let go = std::env::var("SWORN_GO_SPIFFE_FETCH")
        .expect("SWORN_GO_SPIFFE_FETCH is not set: run `eval \"$(tests/interop/setup.sh)\"` first (test.sh does this)");
    let (cp, kubelet) = control_plane().await;
    let server = TestServer::start(&format!(
        "{server_extra}\n{}",
        TestServer::cluster_toml("dev", cp.kubeconfig_path())
    ))
    .await;
    let dir = RunDir::new("sworn-e2e-agents-").unwrap();
    let stop = CancellationToken::new();
    let base = kubelet
        .cgroup_root()
        .cgroup_path()
        .to_string_lossy()
        .into_owned();
    let roots = sworn_caller::CgroupRoots::parse([
        format!("{base}/kubepods"),
        format!("{base}/kubepods.slice"),
    ])
    .unwrap();
    let mut agents = Vec::new();
    let mut agent_pods = Vec::new();
    for node in ["node-a", "node-b"] {
        let mut p = PodParams::new(
            "sworn-system",
            &format!("agent-{node}"),
            "sworn-agent",
            node,
        );
        let mut v = TokenVolume::for_audience("sworn-agent");
        v.expiration_seconds = 600;
        p.token_volume = Some(v);
        let pod = kubelet.create_pod(&p).await.unwrap();
        let socket = dir.path().join(format!("{node}.sock"));
        let mut config = sworn_agent::Config::new(
            sworn_identity::parse_trust_domain("example.org").unwrap(),
            dir.path().join(node),
            ServerAddress::parse(&format!(
                "https://127.0.0.1:{}",
                server.server.agent_api_addr.port()
            ))
            .unwrap(),
            Bootstrap::Roots(server.server.shared.ca.bundle().roots_der),
        )
        .unwrap();
        config.attestation = NodeAttestation::K8s {
            cluster: "dev".into(),
            token_path: kubelet.token_path(&pod).unwrap(),
        };
        config.node_name = Some(node.into());
        config.socket_path = SocketPath::new(&socket).unwrap();
        config.health_address = "127.0.0.1:0".parse().unwrap();
        config.kubeconfig = Some(cp.kubeconfig_path().to_owned());
        config.k8s_workload.kubelet_root = kubelet.kubelet_root().to_owned();
        config.k8s_workload.cgroup_roots = roots.clone();
        config.k8s_workload.pod_wait = Duration::from_secs(2);
        let agent = Agent::start(config, stop.child_token()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), agent.ready())
            .await
            .unwrap()
            .unwrap();
        agents.push((node.to_owned(), agent, socket));
        agent_pods.push(pod);
    }
    Env {
        cp: Some(cp),
        kubelet,
        server,
        agents,
        dir,
        go,
        agent_pods,
        _stop: stop,
    }
}

/// Correct Kubernetes evidence for `pod`'s `app` container: what the agent of
/// the pod's node would send.
pub fn k8s_evidence(env: &Env, pod: &PodHandle) -> pb::mint_item::Evidence {
    let token = std::fs::read_to_string(env.kubelet.token_path(pod).unwrap()).unwrap();
    pb::mint_item::Evidence::K8s(pb::K8sEvidence {
        pod_uid: pod.uid.clone(),
        container_id: pod.container("app").unwrap().container_id.clone(),
        pod_name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        container_name: "app".into(),
        token,
    })
}
