//! `sworn-helper files --once` as an init container, in the Kubernetes dev environment: a real
//! kube-apiserver and etcd (built by `dev/k8s/build.sh`), a real sworn server and a real agent
//! attested with its projected token, and the helper running as a real process in the init
//! container's cgroup while the pod is still Pending (an init container is attested
//! as running while its pod is Pending). The app container of the same Pending pod is not
//! running yet, so it gets nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use sworn_agent::{Agent, Bootstrap, NodeAttestation, ServerAddress, SocketPath};
use sworn_dev::k8s::{CgroupStyle, ControlPlane, Kubelet, PodParams, TokenVolume};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_once_in_an_init_container_of_a_pending_pod() {
    let cp = ControlPlane::start()
        .await
        .expect("a real kube-apiserver and etcd (build them once with dev/k8s/build.sh)");
    let kubelet =
        Kubelet::new(&cp).expect("a kubelet root and a writable cgroup v2 hierarchy (run as root)");
    kubelet.ensure_namespace("sworn-system").await.unwrap();
    Api::<ConfigMap>::namespaced(cp.client(), "sworn-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "sworn-bundle"}}))
                .unwrap(),
        )
        .await
        .unwrap();

    let dir = tempfile::Builder::new()
        .prefix("swk")
        .tempdir_in("/tmp")
        .unwrap();
    let text = format!(
        "trust_domain = \"example.org\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\n\
         [[clusters]]\nname = \"dev\"\nkubeconfig = \"{}\"\nbundle_configmap = \"sworn-system/sworn-bundle\"\n",
        dir.path().join("server").display(),
        cp.kubeconfig_path().display()
    );
    let server = sworn_server::server::start(
        sworn_server::config::Config::parse(&text).unwrap(),
        Arc::new(sworn_server::clock::SystemClock),
    )
    .await
    .unwrap();

    // The agent, attested with its own projected token.
    let mut p = PodParams::new("sworn-system", "agent-node-a", "sworn-agent", "node-a");
    let mut v = TokenVolume::for_audience("sworn-agent");
    v.expiration_seconds = 600;
    p.token_volume = Some(v);
    let agent_pod = kubelet.create_pod(&p).await.unwrap();
    let socket = dir.path().join("a.sock");
    let mut config = sworn_agent::Config::new(
        sworn_identity::parse_trust_domain("example.org").unwrap(),
        dir.path().join("agent"),
        ServerAddress::parse(&format!(
            "https://127.0.0.1:{}",
            server.agent_api_addr.port()
        ))
        .unwrap(),
        Bootstrap::Roots(server.shared.ca.bundle().roots_der),
    )
    .unwrap();
    config.attestation = NodeAttestation::K8s {
        cluster: "dev".into(),
        token_path: kubelet.token_path(&agent_pod).unwrap(),
    };
    config.node_name = Some("node-a".into());
    config.socket_path = SocketPath::new(&socket).unwrap();
    config.health_address = "127.0.0.1:0".parse().unwrap();
    config.kubeconfig = Some(cp.kubeconfig_path().to_owned());
    config.k8s_workload.kubelet_root = kubelet.kubelet_root().to_owned();
    let base = kubelet
        .cgroup_root()
        .cgroup_path()
        .to_string_lossy()
        .into_owned();
    config.k8s_workload.cgroup_roots = sworn_caller::CgroupRoots::parse([
        format!("{base}/kubepods"),
        format!("{base}/kubepods.slice"),
    ])
    .unwrap();
    config.k8s_workload.pod_wait = Duration::from_secs(2);
    let stop = CancellationToken::new();
    let agent = Agent::start(config, stop.child_token()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), agent.ready())
        .await
        .unwrap()
        .unwrap();

    // A Pending pod whose init container runs.
    let mut p = PodParams::new("default", "db", "db", "node-a");
    p.init_containers = vec!["svid-init".into()];
    let pod = kubelet.create_pod_object(&p).await.unwrap();
    kubelet.set_init_running(&pod, "svid-init").await.unwrap();
    kubelet.write_tokens(&pod).await.unwrap();

    let out_dir = dir.path().join("svid");
    let helper = |extra: &[&str]| {
        let mut c = Command::new(support::helper_bin());
        c.args(["files", "--once", "--dir", out_dir.to_str().unwrap()])
            .args(["--socket", &format!("unix://{}", socket.display())])
            .args(extra)
            .env_remove("SPIFFE_ENDPOINT_SOCKET");
        c
    };
    let run = kubelet
        .start_container_process(
            &pod,
            "svid-init",
            &helper(&["--initial-timeout", "30s"]),
            CgroupStyle::Cgroupfs,
        )
        .unwrap();
    let out = run.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "init container helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = std::fs::read_to_string(out_dir.join("svid.pem")).unwrap();
    let key = std::fs::read_to_string(out_dir.join("svid.key")).unwrap();
    assert!(support::key_matches_cert(&cert, &key));
    let blocks = pem::parse_many(&cert).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(blocks[0].contents()).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(
        format!("{:?}", san.value.general_names).contains("spiffe://example.org/ns/default/sa/db"),
        "{:?}",
        san.value.general_names
    );

    // The app container of the same Pending pod is not running: no SVID, exit 69.
    let run = kubelet
        .start_container_process(
            &pod,
            "app",
            &helper(&["--initial-timeout", "5s"]),
            CgroupStyle::Cgroupfs,
        )
        .unwrap();
    let out = run.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    stop.cancel();
    let _ = agent.wait().await;
    server.shutdown(Duration::from_secs(5)).await;
}
