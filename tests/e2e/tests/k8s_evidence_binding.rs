//! An agent's identity binds what it may ask for: a Kubernetes agent mints only
//! with Kubernetes evidence, and only for entries scoped to it (or to any
//! agent). The caller here holds a real Kubernetes agent's credentials — the
//! SVID and key that agent keeps in its data dir after attesting through the
//! real flow — and sends what that agent never would, as a compromised agent
//! could. Each refusal is checked twice: the item's result is `denied`, and the
//! server audited the factor that failed, read after a checkpoint taken just
//! before the call. Each test has a positive control on the same connection. An entry ID
//! the agent sends is read in its one encoding, or denied like an unknown entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sworn_dev::k8s::PodParams;
use sworn_e2e::k8s_env::{Env, k8s_evidence, setup};
use sworn_e2e::{audit_after, audit_checkpoint, connect, issued, mint_one as mint, summary};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;

/// The selectors of the unix entry, and the evidence that satisfies them.
const UID: u32 = 1000;
const GID: u32 = 1000;
const PATH: &str = "/opt/app/bin/server";
/// SHA-256 of the bytes `test`; any digest serves, as no file is read.
const SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

async fn create_entry(env: &Env, req: apb::CreateEntryRequest) -> String {
    let mut admin = env.server.admin().await;
    admin.create_entry(req).await.unwrap().into_inner().id
}

/// Asserts that the result is `denied` and that a `mint` deny event for
/// `entry_id` after `checkpoint` carries `"factor": factor`.
async fn assert_denied_with_factor(
    env: &Env,
    r: &pb::MintResult,
    entry_id: &str,
    checkpoint: i64,
    factor: &str,
) {
    let events = audit_after(&env.server, checkpoint).await;
    let listing: Vec<String> = events
        .iter()
        .map(|e| format!("#{} {} {} {}", e.id, e.kind, e.decision, e.detail))
        .collect();
    assert!(
        matches!(r.result, Some(pb::mint_result::Result::Denied(_))),
        "expected `denied`, got {}; audit since the checkpoint:\n{}",
        summary(r),
        listing.join("\n")
    );
    let factors: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "mint" && e.decision == "deny")
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.detail).unwrap())
        .filter(|d| d["entry_id"] == entry_id)
        .map(|d| d["factor"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        factors.iter().any(|f| f == factor),
        "no mint deny of entry {entry_id} with factor {factor:?} after the checkpoint (factors \
         audited for it: {factors:?}; result: {}); audit since the checkpoint:\n{}",
        summary(r),
        listing.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_agent_sending_unix_evidence_is_denied_with_factor_agent_method() {
    let env = setup().await;
    let agent = env.agent_creds("node-a");
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    // Scoped to this very agent, with selectors the evidence satisfies: only
    // the kind of evidence is wrong for a Kubernetes agent.
    let unix_entry = create_entry(
        &env,
        apb::CreateEntryRequest {
            spiffe_id: "spiffe://example.org/billing/server".into(),
            selectors: vec![
                format!("unix:uid:{UID}"),
                format!("unix:path:{PATH}"),
                format!("unix:sha256:{SHA256}"),
            ],
            node: agent.id.clone(),
            ..Default::default()
        },
    )
    .await;
    let mut c = connect(env.server.server.agent_api_addr, Some(&agent)).await;

    let checkpoint = audit_checkpoint(&env.server).await;
    let r = mint(
        &mut c,
        &unix_entry,
        pb::mint_item::Evidence::Unix(pb::UnixEvidence {
            uid: UID,
            gid: GID,
            path: PATH.into(),
            sha256: SHA256.into(),
            supplementary_gids: Vec::new(),
        }),
    )
    .await;
    assert_denied_with_factor(&env, &r, &unix_entry, checkpoint, "agent_method").await;

    // Positive control: the same connection, with the evidence a Kubernetes
    // agent sends for a real pod on its node, is issued.
    let r = mint(&mut c, "", k8s_evidence(&env, &web)).await;
    assert_eq!(
        issued(&r).as_deref(),
        Some("spiffe://example.org/ns/default/sa/web"),
        "{}",
        summary(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_scoped_to_another_agent_is_denied_with_factor_entry_scope() {
    let env = setup().await;
    let agent = env.agent_creds("node-a");
    let other_agent = env.agent_id("node-b");
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    let selectors = vec!["k8s:ns:default".to_owned(), "k8s:sa:web".to_owned()];
    let theirs = create_entry(
        &env,
        apb::CreateEntryRequest {
            spiffe_id: "spiffe://example.org/web/node-b".into(),
            selectors: selectors.clone(),
            node: other_agent,
            ..Default::default()
        },
    )
    .await;
    let ours = create_entry(
        &env,
        apb::CreateEntryRequest {
            spiffe_id: "spiffe://example.org/web/node-a".into(),
            selectors,
            node: agent.id.clone(),
            ..Default::default()
        },
    )
    .await;
    let mut c = connect(env.server.server.agent_api_addr, Some(&agent)).await;

    // Every other factor holds: a real pod on this agent's node, its own token,
    // selectors that match it.
    let checkpoint = audit_checkpoint(&env.server).await;
    let r = mint(&mut c, &theirs, k8s_evidence(&env, &web)).await;
    assert_denied_with_factor(&env, &r, &theirs, checkpoint, "entry_scope").await;

    // Positive control: the same evidence for the entry scoped to this agent.
    let r = mint(&mut c, &ours, k8s_evidence(&env, &web)).await;
    assert_eq!(
        issued(&r).as_deref(),
        Some("spiffe://example.org/web/node-a"),
        "{}",
        summary(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_id_not_in_its_one_encoding_is_denied_with_factor_entry() {
    let env = setup().await;
    let agent = env.agent_creds("node-a");
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    let entry = create_entry(
        &env,
        apb::CreateEntryRequest {
            spiffe_id: "spiffe://example.org/web/any-node".into(),
            selectors: vec!["k8s:ns:default".to_owned(), "k8s:sa:web".to_owned()],
            ..Default::default()
        },
    )
    .await;
    let mut c = connect(env.server.server.agent_api_addr, Some(&agent)).await;

    // The real entry's ID in upper case names the same UUID in another spelling: it names
    // no entry, like an ID that is no UUID at all. Every other factor holds.
    for bad in [entry.to_uppercase(), "not-a-uuid".to_owned()] {
        let checkpoint = audit_checkpoint(&env.server).await;
        let r = mint(&mut c, &bad, k8s_evidence(&env, &web)).await;
        assert_eq!(r.factor, "entry", "{bad}: {}", summary(&r));
        assert_denied_with_factor(&env, &r, &bad, checkpoint, "entry").await;
    }

    // Positive control: the same evidence, the entry's own ID.
    let r = mint(&mut c, &entry, k8s_evidence(&env, &web)).await;
    assert_eq!(
        issued(&r).as_deref(),
        Some("spiffe://example.org/web/any-node"),
        "{}",
        summary(&r)
    );
}
