//! The server re-verifies every workload factor itself (docs/architecture.md,
//! "Factors": W4, W5), so a compromised agent holding a valid agent SVID cannot
//! mint for pods that are not on its node. The "agent" here is a test client of
//! the agent API with a real agent SVID from real node attestation — the lying
//! agent of the deny matrix. Tokens come from TokenRequest, except where the
//! API refuses to produce the case (expired, SA mismatch): those are signed by
//! the harness with the API server's own key, as each step says.
//!
//! Every refusal is checked twice: the item's result names the factor, and the
//! one `mint` audit row written since a checkpoint taken just before the call
//! names the same factor. Each matrix has a positive control on the same setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use sworn_dev::k8s::{ControlPlane, Kubelet, ObjectRef, PodHandle, PodParams, TokenVolume};
use sworn_e2e::{
    AgentCreds, TestServer, attest, audit_after, audit_checkpoint, connect, issued, mint_one,
    summary,
};
use sworn_identity::Factor;
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

/// A refused item, as the audit log recorded it.
#[derive(Debug)]
struct Refused {
    /// `deny` or `unavailable`.
    decision: String,
    /// The factor the item's result and the audit row both name.
    factor: Factor,
    /// The audited reason (never sent to the agent).
    reason: String,
}

/// Mints one item as `agent` would; returns the SPIFFE ID issued, or the
/// refusal from the one `mint` audit row written since a checkpoint taken just
/// before the call (checked against the item's own result and factor).
async fn mint(
    server: &TestServer,
    agent: &AgentCreds,
    entry_id: &str,
    ev: pb::K8sEvidence,
) -> Result<String, Refused> {
    let checkpoint = audit_checkpoint(server).await;
    let mut c = connect(server.server.agent_api_addr, Some(agent)).await;
    let r = mint_one(&mut c, entry_id, pb::mint_item::Evidence::K8s(ev)).await;
    let rows: Vec<_> = audit_after(server, checkpoint)
        .await
        .into_iter()
        .filter(|e| e.kind == "mint")
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one mint decision audited for one item ({}): {rows:?}",
        summary(&r)
    );
    if let Some(id) = issued(&r) {
        assert_eq!(rows[0].decision, "allow", "{rows:?}");
        return Ok(id);
    }
    let detail: serde_json::Value = serde_json::from_str(&rows[0].detail).unwrap();
    let factor: Factor = detail["factor"]
        .as_str()
        .unwrap_or_else(|| panic!("audit row without a factor: {detail}"))
        .parse()
        .unwrap();
    assert_eq!(
        r.factor,
        factor.as_str(),
        "the item names the audited factor: {detail}"
    );
    let decision = match &r.result {
        Some(pb::mint_result::Result::Denied(_)) => "deny",
        Some(pb::mint_result::Result::Unavailable(_)) => "unavailable",
        _ => panic!("neither issued nor refused: {}", summary(&r)),
    };
    assert_eq!(rows[0].decision, decision, "{detail}");
    Err(Refused {
        decision: decision.to_owned(),
        factor,
        reason: detail["reason"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Asserts that `minted` was denied on `factor`; returns the audited reason.
fn denied_on(minted: Result<String, Refused>, factor: Factor, what: &str) -> String {
    match minted {
        Ok(id) => panic!("{what}: issued {id}, must be denied on {factor}"),
        Err(r) => {
            assert_eq!(
                (r.decision.as_str(), r.factor),
                ("deny", factor),
                "{what}: {r:?}"
            );
            r.reason
        }
    }
}

/// The API server's own TokenReview of `token` for `audience`.
async fn token_review(cp: &ControlPlane, token: &str, audience: &str) -> TokenReviewStatus {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            audiences: Some(vec![audience.to_owned()]),
        },
        ..Default::default()
    };
    Api::<TokenReview>::all(cp.client())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

async fn pod(env: &Env, params: PodParams) -> (PodHandle, String) {
    let p = env.kubelet.create_pod(&params).await.unwrap();
    let token = std::fs::read_to_string(env.kubelet.token_path(&p).unwrap()).unwrap();
    (p, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_denies_whatever_a_lying_agent_claims() {
    let env = setup().await;
    let (server, agent) = (&env.server, &env.agent_a);
    let (web, web_token) = pod(&env, PodParams::new("default", "web", "web", "node-a")).await;

    // Positive control: the default identity.
    let id = mint(server, agent, "", evidence(&web, "app", web_token.clone()))
        .await
        .unwrap();
    assert_eq!(id, "spiffe://example.org/ns/default/sa/web");

    // A pod on another node, claimed by node-a's agent.
    let (far, far_token) = pod(&env, PodParams::new("default", "far", "web", "node-b")).await;
    let reason = denied_on(
        mint(server, agent, "", evidence(&far, "app", far_token)).await,
        Factor::W4,
        "pod on another node",
    );
    assert_eq!(reason, "token node-name differs");

    // A container ID that is not in the pod's status.
    let mut ev = evidence(&web, "app", web_token.clone());
    ev.container_id = "ab".repeat(32);
    denied_on(
        mint(server, agent, "", ev).await,
        Factor::W2,
        "container ID not in the pod",
    );

    // The token of another pod presented for this one (UID mismatch).
    let (_other, other_token) =
        pod(&env, PodParams::new("default", "other", "web", "node-a")).await;
    let reason = denied_on(
        mint(server, agent, "", evidence(&web, "app", other_token)).await,
        Factor::W4,
        "another pod's token",
    );
    assert_eq!(reason, "token pod-uid differs");

    // A token for the wrong audience.
    let wrong = env
        .kubelet
        .request_token(&web, "not-sworn", 600)
        .await
        .unwrap();
    let reason = denied_on(
        mint(server, agent, "", evidence(&web, "app", wrong)).await,
        Factor::W4,
        "wrong audience",
    );
    assert!(reason.contains("token not authenticated"), "{reason}");

    // Expired (harness-signed with the API server's key; TokenRequest's minimum is 600 s).
    let claims = env
        .kubelet
        .forge_claims_for_pod(&web, "sworn")
        .await
        .unwrap()
        .expired(60, 600);
    let expired = env.cp.forge_token_with_apiserver_key(&claims).unwrap();
    let reason = denied_on(
        mint(server, agent, "", evidence(&web, "app", expired)).await,
        Factor::W4,
        "expired token",
    );
    assert!(reason.contains("token not authenticated"), "{reason}");

    // Service account mismatch: a token bound to this very pod (its real name
    // and UID) that names another service account of the namespace by its real
    // name and UID. Harness-signed: TokenRequest never binds a token to a pod of
    // another account. The API server accepts it, because it checks that the
    // bound pod and the named account exist with those UIDs, not that the pod
    // runs as that account; so only sworn's own comparison of the token's
    // account with the pod's (W4) refuses it.
    let admin_sa = env
        .kubelet
        .create_service_account("default", "admin")
        .await
        .unwrap();
    let mut claims = env
        .kubelet
        .forge_claims_for_pod(&web, "sworn")
        .await
        .unwrap();
    claims.service_account = ObjectRef {
        name: "admin".into(),
        uid: admin_sa.metadata.uid.clone().unwrap(),
    };
    let sa_lie = env.cp.forge_token_with_apiserver_key(&claims).unwrap();
    let reviewed = token_review(&env.cp, &sa_lie, "sworn").await;
    assert_eq!(
        reviewed.authenticated,
        Some(true),
        "the API server must accept the forged token, or this row tests TokenReview, not sworn: {reviewed:?}"
    );
    let user = reviewed.user.unwrap_or_default();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:default:admin")
    );
    assert_eq!(
        user.extra.unwrap_or_default()["authentication.kubernetes.io/pod-uid"],
        std::slice::from_ref(&web.uid)
    );
    let reason = denied_on(
        mint(server, agent, "", evidence(&web, "app", sa_lie)).await,
        Factor::W4,
        "service account mismatch",
    );
    assert_eq!(reason, "token service account differs from the pod's");

    // Ephemeral containers are refused; a running init container of a Pending pod is not.
    let mut debug = web.clone();
    env.kubelet
        .add_ephemeral_container(&mut debug, "debugger")
        .await
        .unwrap();
    let reason = denied_on(
        mint(
            server,
            agent,
            "",
            evidence(&debug, "debugger", web_token.clone()),
        )
        .await,
        Factor::W2,
        "ephemeral container",
    );
    assert_eq!(reason, "ephemeral containers are refused");
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
        mint(
            server,
            agent,
            "",
            evidence(&init, "setup", init_token.clone())
        )
        .await
        .unwrap(),
        "spiffe://example.org/ns/default/sa/web"
    );
    // ...but its regular container, still waiting, has not started: its status
    // carries no container ID yet.
    let reason = denied_on(
        mint(server, agent, "", evidence(&init, "app", init_token)).await,
        Factor::W2,
        "waiting container",
    );
    assert_eq!(reason, "container ID not in the pod's statuses");

    // Deleted: denied at once by the server's own pod read, even while
    // TokenReview's cache may still accept the token.
    env.kubelet.delete_pod(&web).await.unwrap();
    denied_on(
        mint(server, agent, "", evidence(&web, "app", web_token.clone())).await,
        Factor::W4,
        "deleted pod",
    );
    // Recreated with the same name (new UID): the old evidence stays denied.
    let (_web2, _) = pod(&env, PodParams::new("default", "web", "web", "node-a")).await;
    denied_on(
        mint(server, agent, "", evidence(&web, "app", web_token)).await,
        Factor::W4,
        "replaced pod",
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
    // Positive control.
    assert_eq!(
        mint(
            &env.server,
            &env.agent_a,
            &by_label.id,
            evidence(&api, "app", token.clone())
        )
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
    let reason = denied_on(
        mint(
            &env.server,
            &env.agent_a,
            &missing.id,
            evidence(&api, "app", token.clone()),
        )
        .await,
        Factor::W5,
        "template label missing",
    );
    assert!(reason.starts_with("template: "), "{reason}");
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
    let reason = denied_on(
        mint(
            &env.server,
            &env.agent_a,
            &other_ns.id,
            evidence(&api, "app", token.clone()),
        )
        .await,
        Factor::W5,
        "selectors of another namespace",
    );
    assert_eq!(reason, "entry selectors do not match the pod");
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

    // API server down: refused as unavailable (factor api), nothing issued.
    let Env {
        cp,
        kubelet,
        server,
        agent_a,
    } = env;
    cp.stop().await;
    let r = mint(&server, &agent_a, "", evidence(&api, "app", token))
        .await
        .unwrap_err();
    assert_eq!(
        (r.decision.as_str(), r.factor),
        ("unavailable", Factor::Api),
        "{r:?}"
    );
    drop(kubelet);
}

/// A template stored before the rule that pod-controlled values fill whole path segments
/// (docs/architecture.md, "ID templates"), written straight into the store since the admin
/// API refuses it: it is marked invalid, and it issues nothing, not even for the pod it would
/// render correctly for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_template_sharing_a_segment_is_marked_invalid_and_issues_nothing() {
    use sworn_server::store::{Entry, EntryTarget};
    let env = setup().await;
    let mut p = PodParams::new("prod", "db-1", "db", "node-a");
    p.labels.insert("app".into(), "admin".into());
    let (db, token) = pod(&env, p).await;
    let colliding = "spiffe://example.org/svc/{namespace}-{label:app}";
    let mut admin = env.server.admin().await;
    let err = admin
        .create_entry(apb::CreateEntryRequest {
            spiffe_id_template: colliding.into(),
            selectors: vec!["k8s:ns:prod".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("whole path segment"), "{err:?}");

    let id: sworn_identity::EntryId = "00000000-0000-4000-8000-00000000c012".parse().unwrap();
    env.server
        .server
        .shared
        .store
        .create_entry(&Entry::unscoped(
            id,
            EntryTarget::Template(colliding.into()),
            vec!["k8s:ns:prod".parse().unwrap()],
            1,
        ))
        .await
        .unwrap();
    let shown = admin
        .get_entry(apb::EntryId { id: id.to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        shown.invalid,
        "template lets a pod-controlled value share a path segment"
    );
    let reason = denied_on(
        mint(
            &env.server,
            &env.agent_a,
            &id.to_string(),
            evidence(&db, "app", token.clone()),
        )
        .await,
        Factor::Entry,
        "stored colliding template",
    );
    assert!(reason.starts_with("stored template invalid"), "{reason}");
    // Positive control: the pod's default identity on the same setup.
    assert_eq!(
        mint(&env.server, &env.agent_a, "", evidence(&db, "app", token))
            .await
            .unwrap(),
        "spiffe://example.org/ns/prod/sa/db"
    );
    env.cp.stop().await;
}
