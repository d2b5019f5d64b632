//! A ban of a Kubernetes agent is its node's (docs/architecture.md, "Bans"), against a real
//! kube-apiserver and etcd. The node's own kubelet credential may delete the agent pod, and
//! a DaemonSet re-creates it with a new UID (a new agent ID); the dev control plane has no
//! DaemonSet controller, so the test re-creates the pod itself. Neither that, nor an agent
//! pod under another name, nor the Node object re-created under the same name (a new node
//! UID) gives an unbanned agent. `agent unban` of the banned ID lifts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use sworn_dev::k8s::{Kubelet, PodHandle, PodParams, TokenVolume};
use sworn_e2e::k8s_env::control_plane;
use sworn_e2e::{TestServer, attest, audit_after, audit_checkpoint, connect};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;
use tonic::Code;

async fn agent_pod(kubelet: &Kubelet, name: &str, node: &str) -> PodHandle {
    let mut p = PodParams::new("sworn-system", name, "sworn-agent", node);
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    kubelet.create_pod(&p).await.unwrap()
}

async fn attest_as(
    server: &TestServer,
    kubelet: &Kubelet,
    pod: &PodHandle,
) -> Result<sworn_e2e::AgentCreds, tonic::Status> {
    let token = kubelet
        .request_token(pod, "sworn-agent", 600)
        .await
        .unwrap();
    let mut c = server.agent_client().await;
    attest(
        &mut c,
        pb::attest_request::Method::K8s(pb::K8sAttestation {
            cluster: "dev".into(),
            token,
        }),
    )
    .await
}

/// Attests as `pod` and expects the refusal of a banned node: `PermissionDenied`, and one
/// `agent.attest` deny row naming factor N5 and the banned agent.
async fn refused_as_banned(server: &TestServer, kubelet: &Kubelet, pod: &PodHandle, banned: &str) {
    let checkpoint = audit_checkpoint(server).await;
    let err = attest_as(server, kubelet, pod)
        .await
        .err()
        .unwrap_or_else(|| {
            panic!("{}: an agent on a banned node attested", pod.name);
        });
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let rows: Vec<serde_json::Value> = audit_after(server, checkpoint)
        .await
        .into_iter()
        .filter(|e| e.kind == "agent.attest")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["factor"], "N5", "{}", rows[0]);
    assert_eq!(rows[0]["banned_agent_id"], banned, "{}", rows[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_survives_agent_pod_and_node_recreation_until_unbanned() {
    let (cp, kubelet) = control_plane().await;
    let server = TestServer::start(&TestServer::cluster_toml("dev", cp.kubeconfig_path())).await;
    let pod = agent_pod(&kubelet, "sworn-agent-a", "node-a").await;
    let banned = attest_as(&server, &kubelet, &pod).await.unwrap();
    let other_node = agent_pod(&kubelet, "sworn-agent-b", "node-b").await;
    let control = attest_as(&server, &kubelet, &other_node).await.unwrap();
    let mut admin = server.admin().await;
    admin
        .ban_agent(apb::AgentId {
            id: banned.id.clone(),
        })
        .await
        .unwrap();

    // The agent pod deleted and re-created under its name: a new UID, a new agent ID.
    kubelet.delete_pod(&pod).await.unwrap();
    let recreated = agent_pod(&kubelet, "sworn-agent-a", "node-a").await;
    assert_ne!(recreated.uid, pod.uid);
    refused_as_banned(&server, &kubelet, &recreated, &banned.id).await;
    // Another agent pod on the same node.
    let sibling = agent_pod(&kubelet, "sworn-agent-a2", "node-a").await;
    refused_as_banned(&server, &kubelet, &sibling, &banned.id).await;

    // The Node re-created under the same name: a new node UID, matched by name.
    let nodes = Api::<Node>::all(cp.client());
    let old_uid = nodes.get("node-a").await.unwrap().metadata.uid.unwrap();
    nodes.delete("node-a", &Default::default()).await.unwrap();
    sworn_harness::wait_until_async(
        "node-a deleted",
        std::time::Duration::from_secs(30),
        async || nodes.get_opt("node-a").await.unwrap().is_none(),
    )
    .await;
    kubelet.delete_pod(&recreated).await.unwrap();
    let on_new_node = agent_pod(&kubelet, "sworn-agent-a", "node-a").await;
    let new_uid = nodes.get("node-a").await.unwrap().metadata.uid.unwrap();
    assert_ne!(new_uid, old_uid);
    refused_as_banned(&server, &kubelet, &on_new_node, &banned.id).await;

    // The agent of another node is not affected.
    let mut c = connect(server.server.agent_api_addr, Some(&control)).await;
    c.sync(pb::SyncRequest::default()).await.unwrap();
    attest_as(&server, &kubelet, &other_node).await.unwrap();

    // Lifting the ban is an explicit admin action on the banned ID.
    admin
        .unban_agent(apb::AgentId {
            id: banned.id.clone(),
        })
        .await
        .unwrap();
    let back = attest_as(&server, &kubelet, &on_new_node).await.unwrap();
    assert_ne!(back.id, banned.id, "a new agent ID: new pod and node UIDs");
    cp.stop().await;
}
