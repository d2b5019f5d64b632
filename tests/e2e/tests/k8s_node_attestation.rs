//! Kubernetes node attestation (docs/architecture.md, "Node attestation", N1–N5) against a real
//! kube-apiserver and etcd. Tokens come from the real TokenRequest API;
//! where the API refuses to produce a case (an expired token, a token whose
//! node differs from its pod's) the token is signed by the harness with the
//! API server's own service-account key, and the step says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::Api;
use kube::api::PostParams;
use sworn_dev::k8s::{ControlPlane, Kubelet, PodHandle, PodParams, TokenVolume};
use sworn_e2e::{AgentCreds, TestServer, attest, audit_after, audit_checkpoint, connect, uri_san};
use sworn_identity::Factor;
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;
use tonic::Code;

const NS: &str = "sworn-system";
const SA: &str = "sworn-agent";

async fn agent_pod(kubelet: &Kubelet, name: &str, node: &str, sa: &str) -> PodHandle {
    let mut p = PodParams::new(NS, name, sa, node);
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    kubelet.create_pod(&p).await.unwrap()
}

async fn token(kubelet: &Kubelet, pod: &PodHandle, audience: &str) -> String {
    kubelet.request_token(pod, audience, 600).await.unwrap()
}

fn k8s(token: String) -> pb::attest_request::Method {
    pb::attest_request::Method::K8s(pb::K8sAttestation {
        cluster: "dev".into(),
        token,
    })
}

async fn setup() -> (ControlPlane, Kubelet, TestServer) {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    kubelet.ensure_namespace(NS).await.unwrap();
    Api::<ConfigMap>::namespaced(cp.client(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "sworn-bundle"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let server = TestServer::start(&TestServer::cluster_toml("dev", cp.kubeconfig_path())).await;
    (cp, kubelet, server)
}

/// The factors of the `agent.attest` deny rows written after `checkpoint`.
async fn denied_factors(server: &TestServer, checkpoint: i64) -> Vec<(Factor, String)> {
    audit_after(server, checkpoint)
        .await
        .into_iter()
        .filter(|ev| ev.kind == "agent.attest" && ev.decision == "deny")
        .map(|ev| {
            let detail: serde_json::Value = serde_json::from_str(&ev.detail).unwrap();
            let factor = detail["factor"].as_str().unwrap().parse().unwrap();
            (factor, ev.detail)
        })
        .collect()
}

async fn expect_denied(
    server: &TestServer,
    method: pb::attest_request::Method,
    factor: Factor,
    what: &str,
) {
    expect_denied_by(server, method, &[factor], what).await;
}

/// Like `expect_denied`, for cases two factors legitimately catch (a deleted
/// pod fails TokenReview (N1) once its cache expires, and our own pod read
/// (N3) before that). The audit row read is the one written after a
/// checkpoint taken just before the attempt.
async fn expect_denied_by(
    server: &TestServer,
    method: pb::attest_request::Method,
    factors: &[Factor],
    what: &str,
) {
    let checkpoint = audit_checkpoint(server).await;
    let mut c = server.agent_client().await;
    let err = attest(&mut c, method)
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: attestation must be refused"));
    assert_eq!(err.code(), Code::PermissionDenied, "{what}: {err:?}");
    assert_eq!(
        err.message(),
        "attestation refused",
        "{what}: the reason must not reach the agent"
    );
    let denied = denied_factors(server, checkpoint).await;
    assert!(
        denied.len() == 1 && factors.contains(&denied[0].0),
        "{what}: one denial on one of {factors:?} audited, got {denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_attests_with_real_node_uid_surge_agents_coexist_and_a_ban_covers_the_node() {
    let (cp, kubelet, server) = setup().await;
    let pod1 = agent_pod(&kubelet, "sworn-agent-1", "node-a", SA).await;
    let pod2 = agent_pod(&kubelet, "sworn-agent-2", "node-a", SA).await;
    let node_uid = Api::<Node>::all(cp.client())
        .get("node-a")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();

    let mut c = server.agent_client().await;
    let a1 = attest(&mut c, k8s(token(&kubelet, &pod1, "sworn-agent").await))
        .await
        .unwrap();
    let a2 = attest(&mut c, k8s(token(&kubelet, &pod2, "sworn-agent").await))
        .await
        .unwrap();
    assert_eq!(
        a1.id,
        format!(
            "spiffe://example.org/sworn/agent/k8s/dev/{node_uid}/{}",
            pod1.uid
        )
    );
    assert_eq!(uri_san(&a1.chain[0]), a1.id);
    assert_ne!(a1.id, a2.id, "surge: one record per agent pod");

    let agents = server
        .admin()
        .await
        .list_agents(apb::ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert_eq!(agents.len(), 2);
    assert!(
        agents
            .iter()
            .all(|a| a.node_name == "node-a" && a.node_uid == node_uid)
    );

    // Both surge agents stay usable.
    for a in [&a1, &a2] {
        let mut mc = connect(server.server.agent_api_addr, Some(a)).await;
        let mut sync = mc
            .sync(pb::SyncRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(!sync.message().await.unwrap().unwrap().bundle.is_empty());
    }

    // The server published the bundle for agents to mount.
    let cm = Api::<ConfigMap>::namespaced(cp.client(), NS)
        .get("sworn-bundle")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["bundle.pem"].contains("BEGIN CERTIFICATE"));

    // Re-attestation with a fresh token: the old cert works until the new one is used.
    let a1b = attest(&mut c, k8s(token(&kubelet, &pod1, "sworn-agent").await))
        .await
        .unwrap();
    assert_eq!(a1b.id, a1.id);
    let mut old = connect(server.server.agent_api_addr, Some(&a1)).await;
    old.sync(pb::SyncRequest::default())
        .await
        .expect("previous cert valid until the new one is used");
    let mut new = connect(server.server.agent_api_addr, Some(&a1b)).await;
    new.sync(pb::SyncRequest::default()).await.unwrap();
    let mut old = connect(server.server.agent_api_addr, Some(&a1)).await;
    let err = old
        .sync(pb::SyncRequest::default())
        .await
        .expect_err("old cert refused after the new one is used");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Ban: refused at once, open streams end, re-attestation refused.
    let mut s = new
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    s.message().await.unwrap().unwrap();
    server
        .admin()
        .await
        .ban_agent(apb::AgentId { id: a1.id.clone() })
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .unwrap();
    assert_eq!(ended.unwrap_err().code(), Code::PermissionDenied);
    let mut new = connect(server.server.agent_api_addr, Some(&a1b)).await;
    assert_eq!(
        new.sync(pb::SyncRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    expect_denied(
        &server,
        k8s(token(&kubelet, &pod1, "sworn-agent").await),
        Factor::N5,
        "banned agent",
    )
    .await;
    // A ban is the node's (docs/architecture.md, "Bans"): the other surge agent on the same
    // node is refused too, at once.
    let mut other = connect(server.server.agent_api_addr, Some(&a2)).await;
    assert_eq!(
        other
            .sync(pb::SyncRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    server
        .admin()
        .await
        .unban_agent(apb::AgentId { id: a1.id.clone() })
        .await
        .unwrap();
    attest(&mut c, k8s(token(&kubelet, &pod1, "sworn-agent").await))
        .await
        .expect("unbanned agent re-attests");
    let mut other = connect(server.server.agent_api_addr, Some(&a2)).await;
    other
        .sync(pb::SyncRequest::default())
        .await
        .expect("unbanning the node lifts its surge agent's ban too");
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agent_tokens_are_refused_with_the_failing_factor_audited() {
    let (cp, kubelet, server) = setup().await;
    let pod = agent_pod(&kubelet, "sworn-agent-1", "node-a", SA).await;

    // Wrong audience: ours for workloads, and the API server's own default audience.
    expect_denied(
        &server,
        k8s(token(&kubelet, &pod, "sworn").await),
        Factor::N1,
        "workload audience",
    )
    .await;
    expect_denied(
        &server,
        k8s(token(&kubelet, &pod, cp.issuer()).await),
        Factor::N1,
        "API server audience",
    )
    .await;
    expect_denied(
        &server,
        k8s("not-a-jwt".into()),
        Factor::N1,
        "garbage token",
    )
    .await;

    // A service account that is not on the allow list.
    let rogue = agent_pod(&kubelet, "rogue", "node-a", "rogue-sa").await;
    expect_denied(
        &server,
        k8s(token(&kubelet, &rogue, "sworn-agent").await),
        Factor::N2,
        "service account not allowed",
    )
    .await;

    // Expired: signed by the harness with the API server's key (TokenRequest's minimum is 600 s).
    let claims = kubelet
        .forge_claims_for_pod(&pod, "sworn-agent")
        .await
        .unwrap()
        .expired(60, 600);
    let expired = cp.forge_token_with_apiserver_key(&claims).unwrap();
    expect_denied(&server, k8s(expired), Factor::N1, "expired token").await;

    // A token whose node extra differs from the pod's node (harness-signed).
    kubelet.create_node("node-b").await.unwrap();
    let mut claims = kubelet
        .forge_claims_for_pod(&pod, "sworn-agent")
        .await
        .unwrap();
    let node_b = Api::<Node>::all(cp.client()).get("node-b").await.unwrap();
    if let Some(n) = claims.node.as_mut() {
        n.name = "node-b".into();
        n.uid = node_b.metadata.uid.unwrap();
    }
    let lying = cp.forge_token_with_apiserver_key(&claims).unwrap();
    expect_denied(
        &server,
        k8s(lying),
        Factor::N4,
        "token node differs from pod node",
    )
    .await;

    // Replay: the same token twice.
    let t = token(&kubelet, &pod, "sworn-agent").await;
    let mut c = server.agent_client().await;
    attest(&mut c, k8s(t.clone())).await.unwrap();
    expect_denied(&server, k8s(t), Factor::N1, "replayed token").await;

    // A missing Node object: the pod names a node that does not exist.
    let mut p = PodParams::new(NS, "ghost-node-agent", SA, "node-ghost");
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    let ghost = kubelet.create_pod(&p).await.unwrap();
    Api::<Node>::all(cp.client())
        .delete("node-ghost", &Default::default())
        .await
        .unwrap();
    expect_denied(
        &server,
        k8s(token(&kubelet, &ghost, "sworn-agent").await),
        Factor::N4,
        "missing node",
    )
    .await;

    // Unknown cluster: a good token, for a cluster the server does not have.
    expect_denied(
        &server,
        pb::attest_request::Method::K8s(pb::K8sAttestation {
            cluster: "elsewhere".into(),
            token: token(&kubelet, &pod, "sworn-agent").await,
        }),
        Factor::Cluster,
        "unknown cluster",
    )
    .await;

    // The pod deleted, then recreated with the same name (new UID): the old
    // token fails, even while TokenReview's cache may still say yes.
    let old = token(&kubelet, &pod, "sworn-agent").await;
    kubelet.delete_pod(&pod).await.unwrap();
    expect_denied_by(
        &server,
        k8s(old.clone()),
        &[Factor::N1, Factor::N3],
        "deleted pod",
    )
    .await;
    let again = agent_pod(&kubelet, "sworn-agent-1", "node-a", SA).await;
    expect_denied_by(&server, k8s(old), &[Factor::N1, Factor::N3], "replaced pod").await;
    // Positive control on the same setup: the new pod's own token attests.
    let mut c = server.agent_client().await;
    attest(&mut c, k8s(token(&kubelet, &again, "sworn-agent").await))
        .await
        .expect("the replacement pod's own token attests");
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ca_cert_is_refused_and_api_server_down_means_unavailable() {
    let (cp, kubelet, server) = setup().await;
    let pod = agent_pod(&kubelet, "sworn-agent-1", "node-a", SA).await;
    let t = token(&kubelet, &pod, "sworn-agent").await;

    // A client certificate from an unknown CA never completes the handshake.
    let ca = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from("spiffe://example.org/sworn/agent/join/x").unwrap(),
    )];
    let cert = params.self_signed(&ca).unwrap();
    let forged = AgentCreds {
        id: "x".into(),
        chain: vec![cert.der().to_vec()],
        key: ca.serialize_der(),
    };
    let connected = tokio::spawn({
        let addr = server.server.agent_api_addr;
        async move {
            let mut c = connect(addr, Some(&forged)).await;
            c.sync(pb::SyncRequest::default()).await.map(|_| ())
        }
    })
    .await;
    assert!(
        matches!(connected, Err(_) | Ok(Err(_))),
        "unknown-CA certificate must be refused"
    );

    // API server down during attestation: Unavailable, nothing issued.
    cp.stop().await;
    let mut c = server.agent_client().await;
    let err = attest(&mut c, k8s(t))
        .await
        .expect_err("no SVID without the API server");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let agents = server
        .admin()
        .await
        .list_agents(apb::ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert!(agents.is_empty());
    drop(kubelet);
}
