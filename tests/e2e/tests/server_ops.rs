//! What operators and agents see of a running server: the health and metrics
//! endpoints, and a CA rotation reaching agents on the Sync stream before
//! the new key signs anything (docs/architecture.md, "The CA", "Observability").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sworn_e2e::{attest, audit_after, audit_checkpoint, connect};
use sworn_identity::Factor;
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;
use sworn_server::clock::FakeClock;
use sworn_server::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_reflect_what_the_server_did() {
    let server = sworn_e2e::TestServer::start("").await;
    let addr = server.server.health_addr;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let mut admin = server.admin().await;
    let token = admin
        .generate_join_token(apb::GenerateJoinTokenRequest { ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut c = server.agent_client().await;
    attest(
        &mut c,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation {
            token: token.clone(),
        }),
    )
    .await
    .unwrap();
    // The same token again: refused, and audited as a failed credential (N1).
    let checkpoint = audit_checkpoint(&server).await;
    let err = attest(
        &mut c,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation { token }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let denied: Vec<Factor> = audit_after(&server, checkpoint)
        .await
        .iter()
        .filter(|e| e.kind == "agent.attest" && e.decision == "deny")
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            detail["factor"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(denied, [Factor::N1], "a replayed join token");
    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("sworn_server_attestations_total{kind=\"join_token\",decision=\"allow\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("sworn_server_attestations_total{kind=\"join_token\",decision=\"deny\"} 1"),
        "{body}"
    );
    assert!(body.contains("sworn_server_bundle_roots 1"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_reaches_agents_before_the_new_key_signs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let config = Config::parse(&format!(
        "trust_domain = \"example.org\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\nca_ttl = \"24h\"\nagent_svid_ttl = \"20h\"\n",
        dir.path().join("data").display()
    ))
    .unwrap();
    let server = sworn_server::server::start(config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let mut admin = sworn_server::admin::client::connect(&server.admin_socket)
        .await
        .unwrap();
    let token = admin
        .generate_join_token(apb::GenerateJoinTokenRequest { ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut c = connect(server.agent_api_addr, None).await;
    let agent = attest(
        &mut c,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation { token }),
    )
    .await
    .unwrap();
    let mut ac = connect(server.agent_api_addr, Some(&agent)).await;
    let mut sync = ac
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = sync.message().await.unwrap().unwrap();
    assert_eq!(first.bundle.len(), 1);

    // Half of the CA's life gone: the next root is prepared and published at once.
    clock.advance(Duration::from_secs(12 * 3600 + 60));
    let next = tokio::time::timeout(Duration::from_secs(15), sync.message())
        .await
        .expect("the agent hears of the new root")
        .unwrap()
        .unwrap();
    assert_eq!(next.bundle.len(), 2, "old and new roots both published");
    // Anything minted now is still signed by the old (active) key, which agents already trust.
    let bundle = admin
        .get_bundle(apb::GetBundleRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bundle.roots, next.bundle);
    server.shutdown(Duration::from_secs(5)).await;
}
