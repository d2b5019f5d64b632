//! The server re-verifies every workload factor itself (DESIGN.md §3.2 W4,
//! W5), so a compromised agent holding a valid agent SVID cannot mint for
//! pods that are not on its node. The "agent" here is a test client of the
//! agent API with a real agent SVID from real node attestation — the lying
//! agent of the deny matrix. Tokens come from TokenRequest, except where the
//! API refuses to produce the case (expired, SA mismatch): those are signed
//! by the harness with the API server's own key, as each step says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use sworn_dev::k8s::{ControlPlane, Kubelet, PodHandle, PodParams, TokenVolume};
use sworn_e2e::{AgentCreds, TestServer, attest, connect, key_and_csr, uri_san};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;

struct Env {
    cp: ControlPlane,
    kubelet: Kubelet,
    server: TestServer,
    agent_a: AgentCreds,
}

async fn setup() -> Env {
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
    let server = TestServer::start(&TestServer::cluster_toml("dev", cp.kubeconfig_path())).await;
    let mut p = PodParams::new("sworn-system", "agent-a", "sworn-agent", "node-a");
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    let agent_pod = kubelet.create_pod(&p).await.unwrap();
    let t = kubelet
        .request_token(&agent_pod, "sworn-agent", 600)
        .await
        .unwrap();
    let mut c = server.agent_client().await;
    let agent_a = attest(
        &mut c,
        pb::attest_request::Method::K8s(pb::K8sAttestation {
            cluster: "dev".into(),
            token: t,
        }),
    )
    .await
    .unwrap();
    Env {
        cp,
        kubelet,
        server,
        agent_a,
    }
}

fn evidence(pod: &PodHandle, container: &str, token: String) -> pb::K8sEvidence {
    pb::K8sEvidence {
        pod_uid: pod.uid.clone(),
        container_id: pod.container(container).unwrap().container_id.clone(),
        pod_name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        container_name: container.into(),
        token,
    }
}

async fn mint(env: &Env, entry_id: &str, ev: pb::K8sEvidence) -> Result<String, String> {
    let (_, csr) = key_and_csr();
    let mut c = connect(env.server.server.agent_api_addr, Some(&env.agent_a)).await;
    let resp = c
        .mint_x509_svids(pb::MintX509SvidsRequest {
            items: vec![pb::MintItem {
                entry_id: entry_id.into(),
                csr,
                evidence: Some(pb::mint_item::Evidence::K8s(ev)),
            }],
        })
        .await
        .map_err(|s| format!("status: {s:?}"))?
        .into_inner();
    match resp.results.into_iter().next().unwrap().result.unwrap() {
        pb::mint_result::Result::Svid(s) => {
            assert_eq!(uri_san(&s.chain[0]), s.spiffe_id);
            Ok(s.spiffe_id)
        }
        pb::mint_result::Result::Denied(d) => Err(d),
        pb::mint_result::Result::Unavailable(u) => Err(format!("unavailable: {u}")),
    }
}

async fn last_mint_denial(env: &Env) -> String {
    let mut admin = env.server.admin().await;
    let mut s = admin
        .list_audit(apb::ListAuditRequest {
            follow: false,
            after_id: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = String::new();
    while let Some(ev) = s.message().await.unwrap() {
        if ev.kind == "mint" && ev.decision == "deny" {
            last = ev.detail;
        }
    }
    last
}

async fn pod(env: &Env, params: PodParams) -> (PodHandle, String) {
    let p = env.kubelet.create_pod(&params).await.unwrap();
    let token = std::fs::read_to_string(env.kubelet.token_path(&p).unwrap()).unwrap();
    (p, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_denies_whatever_a_lying_agent_claims() {
    let env = setup().await;
    let (web, web_token) = pod(&env, PodParams::new("default", "web", "web", "node-a")).await;

    // Positive control: the default identity.
    let id = mint(&env, "", evidence(&web, "app", web_token.clone()))
        .await
        .unwrap();
    assert_eq!(id, "spiffe://example.org/ns/default/sa/web");

    // A pod on another node, claimed by node-a's agent.
    let (far, far_token) = pod(&env, PodParams::new("default", "far", "web", "node-b")).await;
    assert!(
        mint(&env, "", evidence(&far, "app", far_token))
            .await
            .is_err()
    );
    assert!(last_mint_denial(&env).await.contains("\"factor\":\"W4\""));

    // A container ID that is not in the pod's status.
    let mut ev = evidence(&web, "app", web_token.clone());
    ev.container_id = "ab".repeat(32);
    assert!(mint(&env, "", ev).await.is_err());
    assert!(last_mint_denial(&env).await.contains("\"factor\":\"W2\""));

    // The token of another pod presented for this one (UID mismatch).
    let (other, other_token) = pod(&env, PodParams::new("default", "other", "web", "node-a")).await;
    let _ = other;
    assert!(
        mint(&env, "", evidence(&web, "app", other_token))
            .await
            .is_err()
    );

    // A token for the wrong audience.
    let wrong = env
        .kubelet
        .request_token(&web, "not-sworn", 600)
        .await
        .unwrap();
    assert!(mint(&env, "", evidence(&web, "app", wrong)).await.is_err());

    // Expired (harness-signed with the API server's key; TokenRequest's minimum is 600 s).
    let claims = env
        .kubelet
        .forge_claims_for_pod(&web, "sworn")
        .await
        .unwrap()
        .expired(60, 600);
    let expired = env.cp.forge_token_with_apiserver_key(&claims).unwrap();
    assert!(
        mint(&env, "", evidence(&web, "app", expired))
            .await
            .is_err()
    );

    // Service account mismatch (harness-signed: the API never binds a token to another SA's pod).
    let mut claims = env
        .kubelet
        .forge_claims_for_pod(&web, "sworn")
        .await
        .unwrap();
    env.kubelet
        .create_service_account("default", "admin")
        .await
        .unwrap();
    claims.service_account.name = "admin".into();
    let sa_lie = env.cp.forge_token_with_apiserver_key(&claims).unwrap();
    assert!(mint(&env, "", evidence(&web, "app", sa_lie)).await.is_err());

    // Ephemeral containers are refused; a running init container of a Pending pod is not.
    let mut debug = web.clone();
    env.kubelet
        .add_ephemeral_container(&mut debug, "debugger")
        .await
        .unwrap();
    assert!(
        mint(&env, "", evidence(&debug, "debugger", web_token.clone()))
            .await
            .is_err()
    );
    let mut p = PodParams::new("default", "initpod", "web", "node-a");
    p.init_containers = vec!["setup".into()];
    let init = env.kubelet.create_pod_object(&p).await.unwrap();
    env.kubelet.set_init_running(&init, "setup").await.unwrap();
    let init_token = env
        .kubelet
        .request_token(&init, "sworn", 600)
        .await
        .unwrap();
    assert_eq!(
        mint(&env, "", evidence(&init, "setup", init_token.clone()))
            .await
            .unwrap(),
        "spiffe://example.org/ns/default/sa/web"
    );
    // ...but its regular container, still waiting, is not running.
    assert!(
        mint(&env, "", evidence(&init, "app", init_token))
            .await
            .is_err()
    );

    // Deleted: denied at once by the server's own pod read, even while
    // TokenReview's cache may still accept the token.
    env.kubelet.delete_pod(&web).await.unwrap();
    assert!(
        mint(&env, "", evidence(&web, "app", web_token.clone()))
            .await
            .is_err()
    );
    // Recreated with the same name (new UID): the old evidence stays denied.
    let (_web2, _) = pod(&env, PodParams::new("default", "web", "web", "node-a")).await;
    assert!(
        mint(&env, "", evidence(&web, "app", web_token))
            .await
            .is_err()
    );
    env.cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_and_templates_match_on_the_servers_own_pod_read() {
    let env = setup().await;
    let mut p = PodParams::new("shop", "api-1", "api", "node-a");
    p.labels.insert("app".into(), "checkout".into());
    let (api, token) = pod(&env, p).await;
    let mut admin = env.server.admin().await;
    let by_label = admin
        .create_entry(apb::CreateEntryRequest {
            spiffe_id_template: "spiffe://example.org/ns/{namespace}/app/{label:app}".into(),
            selectors: vec!["k8s:ns:shop".into(), "k8s:container-name:app".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        mint(&env, &by_label.id, evidence(&api, "app", token.clone()))
            .await
            .unwrap(),
        "spiffe://example.org/ns/shop/app/checkout"
    );
    // A template needing a label the pod lacks: denied, never a different ID.
    let missing = admin
        .create_entry(apb::CreateEntryRequest {
            spiffe_id_template: "spiffe://example.org/ns/{namespace}/tier/{label:tier}".into(),
            selectors: vec!["k8s:ns:shop".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        mint(&env, &missing.id, evidence(&api, "app", token.clone()))
            .await
            .is_err()
    );
    assert!(last_mint_denial(&env).await.contains("template"));
    // Selectors that do not match the pod.
    let other_ns = admin
        .create_entry(apb::CreateEntryRequest {
            spiffe_id: "spiffe://example.org/billing".into(),
            selectors: vec!["k8s:ns:billing".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        mint(&env, &other_ns.id, evidence(&api, "app", token.clone()))
            .await
            .is_err()
    );
    // Entry templates with pod-controlled values must pin the namespace.
    let err = admin
        .create_entry(apb::CreateEntryRequest {
            spiffe_id_template: "spiffe://example.org/app/{label:app}".into(),
            selectors: vec!["k8s:ns:shop".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("namespace"), "{err:?}");

    // API server down: refused as unavailable, nothing issued.
    let Env {
        cp,
        kubelet,
        server,
        agent_a,
    } = env;
    cp.stop().await;
    let env = Env2 { server, agent_a };
    let r = mint2(&env, evidence(&api, "app", token)).await;
    assert!(r.unwrap_err().contains("unavailable"));
    drop(kubelet);
}

struct Env2 {
    server: TestServer,
    agent_a: AgentCreds,
}

async fn mint2(env: &Env2, ev: pb::K8sEvidence) -> Result<String, String> {
    let (_, csr) = key_and_csr();
    let mut c = connect(env.server.server.agent_api_addr, Some(&env.agent_a)).await;
    let resp = c
        .mint_x509_svids(pb::MintX509SvidsRequest {
            items: vec![pb::MintItem {
                entry_id: String::new(),
                csr,
                evidence: Some(pb::mint_item::Evidence::K8s(ev)),
            }],
        })
        .await
        .map_err(|s| format!("status: {s:?}"))?
        .into_inner();
    match resp.results.into_iter().next().unwrap().result.unwrap() {
        pb::mint_result::Result::Svid(s) => Ok(s.spiffe_id),
        pb::mint_result::Result::Denied(d) => Err(d),
        pb::mint_result::Result::Unavailable(u) => Err(format!("unavailable: {u}")),
    }
}
