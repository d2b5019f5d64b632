//! A Kubernetes agent renews its SVID by attesting again with a fresh
//! projected token at half-life (DESIGN.md §3.1), without dropping the
//! workloads it serves. The agent SVID TTL is shortened to 20 s so renewal
//! happens within the test; the kubelet stand-in refreshes the agent pod's
//! token, as the kubelet does, because each token attests only once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sworn_dev::k8s::{CgroupStyle, PodParams};
use sworn_e2e::k8s_env::setup_with;
use sworn_proto::admin as apb;

async fn attestations(env: &sworn_e2e::k8s_env::Env, agent_id: &str) -> usize {
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
    let mut n = 0;
    while let Some(ev) = s.message().await.unwrap() {
        if ev.kind == "agent.attest" && ev.decision == "allow" && ev.detail.contains(agent_id) {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_agent_re_attests_with_a_fresh_token_and_keeps_serving() {
    let env = setup_with("agent_svid_ttl = \"20s\"").await;
    let agent_id = env.agents[0].1.agent_id().unwrap().to_string();
    assert_eq!(attestations(&env, &agent_id).await, 1);
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();

    // A fresh token, as the kubelet would project before the old one is reused.
    tokio::time::sleep(Duration::from_secs(5)).await;
    env.kubelet.write_tokens(&env.agent_pods[0]).await.unwrap();
    let mut renewed = false;
    for _ in 0..40 {
        if attestations(&env, &agent_id).await >= 2 {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(renewed, "the agent did not re-attest at half-life");
    // Same agent record (one per agent pod), and workloads still get SVIDs.
    let agents = env
        .server
        .admin()
        .await
        .list_agents(apb::ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert_eq!(agents.iter().filter(|a| a.id == agent_id).count(), 1);
    let v = env
        .fetch_in(&web, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "{v}"
    );
}
