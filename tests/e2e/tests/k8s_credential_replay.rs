//! An agent token's credential ID is remembered until the token itself has expired
//! (docs/architecture.md, "Node attestation" and "Storage"), against a real kube-apiserver:
//! a token valid for 72 h, used once, is still refused as a replay 49 h later on the
//! server's clock, while the ID of a 10-minute token is forgotten by then (the table stays
//! bounded). The server runs on a `FakeClock`; the API server judges `exp` on the wall
//! clock, so the long token is still valid when it is replayed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sworn_dev::k8s::{PodParams, TokenVolume};
use sworn_e2e::k8s_env::control_plane;
use sworn_e2e::{TestServer, attest, audit_after, audit_checkpoint};
use sworn_harness::trace;
use sworn_proto::agent as pb;
use sworn_server::clock::FakeClock;
use tonic::Code;

fn k8s(token: String) -> pb::attest_request::Method {
    pb::attest_request::Method::K8s(pb::K8sAttestation {
        cluster: "dev".into(),
        token,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_agent_token_stays_single_use_past_48_hours() {
    let (cp, kubelet) = control_plane().await;
    let clock = FakeClock::at_wall_time();
    let server = TestServer::start_with_clock(
        &format!(
            "ca_ttl = \"30d\"\n{}",
            TestServer::cluster_toml("dev", cp.kubeconfig_path())
        ),
        Arc::new(clock.clone()),
    )
    .await;
    let mut p = PodParams::new("sworn-system", "sworn-agent-1", "sworn-agent", "node-a");
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    let pod = kubelet.create_pod(&p).await.unwrap();
    let long = kubelet
        .request_token(&pod, "sworn-agent", 72 * 3600)
        .await
        .unwrap();
    let short = kubelet
        .request_token(&pod, "sworn-agent", 600)
        .await
        .unwrap();
    let mut c = server.agent_client().await;
    attest(&mut c, k8s(long.clone())).await.unwrap();
    attest(&mut c, k8s(short)).await.unwrap();

    // 49 hours later on the server's clock, a retention pass has run: it forgot the short
    // token's ID (expired, plus skew) and kept the long one's.
    let log = trace::checkpoint();
    clock.advance(Duration::from_secs(49 * 3600));
    sworn_harness::wait_until_async(
        "a retention pass after the clock moved",
        Duration::from_secs(30),
        async || {
            trace::lines_since(log)
                .iter()
                .any(|l| l.contains("pruned the datastore"))
        },
    )
    .await;
    let pass: Vec<String> = trace::lines_since(log)
        .into_iter()
        .filter(|l| l.contains("pruned the datastore"))
        .collect();
    assert!(pass[0].contains("credentials=1"), "{pass:?}");

    // The long-lived token, still valid for the API server, is refused as a replay.
    let checkpoint = audit_checkpoint(&server).await;
    let err = attest(&mut c, k8s(long)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let rows: Vec<serde_json::Value> = audit_after(&server, checkpoint)
        .await
        .into_iter()
        .filter(|e| e.kind == "agent.attest" && e.decision == "deny")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["factor"], "N1", "{}", rows[0]);
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("replay"),
        "{}",
        rows[0]
    );
    cp.stop().await;
}
