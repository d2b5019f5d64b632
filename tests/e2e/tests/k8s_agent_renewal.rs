//! A Kubernetes agent renews its SVID by attesting again with a fresh
//! projected token at half-life (docs/architecture.md, "Node attestation"), without dropping the
//! workloads it serves. The agent SVID TTL is shortened to 20 s so renewal
//! happens within the test; the kubelet stand-in refreshes the agent pod's
//! token, as the kubelet does, because each token attests only once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sworn_dev::k8s::{CgroupStyle, PodParams};
use sworn_e2e::k8s_env::setup_with;
use sworn_e2e::{audit_after, audit_checkpoint, eventually};
use sworn_proto::admin as apb;

/// The allowed attestations of `agent_id` audited after `checkpoint`.
async fn attestations(env: &sworn_e2e::k8s_env::Env, agent_id: &str, checkpoint: i64) -> usize {
    audit_after(&env.server, checkpoint)
        .await
        .iter()
        .filter(|ev| {
            ev.kind == "agent.attest" && ev.decision == "allow" && ev.detail.contains(agent_id)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_agent_re_attests_with_a_fresh_token_and_keeps_serving() {
    let env = setup_with("agent_svid_ttl = \"20s\"").await;
    let agent_id = env.agents[0].1.agent_id().unwrap().to_string();
    assert_eq!(attestations(&env, &agent_id, 0).await, 1);
    let checkpoint = audit_checkpoint(&env.server).await;
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();

    // A fresh token, as the kubelet projects it before the agent needs it
    // again (each token attests only once).
    env.kubelet.write_tokens(&env.agent_pods[0]).await.unwrap();
    // Half of the 20 s SVID plus room for a busy machine.
    let renewed = eventually(Duration::from_secs(30), || async {
        attestations(&env, &agent_id, checkpoint).await >= 1
    })
    .await;
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
