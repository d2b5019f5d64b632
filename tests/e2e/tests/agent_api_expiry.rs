//! An agent's certificate is checked on every call and for the life of a Sync stream, not
//! only when its TLS connection was made (docs/architecture.md, "Agent API limits"): an
//! HTTP/2 connection outlives the certificate it was opened with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use sworn_e2e::{TestServer, connect, join_agent, key_and_csr, not_after};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;

/// One unix item naming an entry that does not exist: the call is served (and the item
/// denied) while the agent is authenticated.
fn one_item() -> pb::MintX509SvidsRequest {
    pb::MintX509SvidsRequest {
        items: vec![pb::MintItem {
            entry_id: "entry-that-does-not-exist".into(),
            csr: key_and_csr().1,
            evidence: Some(pb::mint_item::Evidence::Unix(pb::UnixEvidence {
                uid: 1000,
                ..Default::default()
            })),
        }],
    }
}

/// The first instant the certificate is past `notAfter` to the second, as TLS and the
/// server compare it, plus a margin for the two clocks' rounding.
fn past(not_after: SystemTime) -> Duration {
    (not_after + Duration::from_millis(1200))
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_kept_open_past_the_agent_certificate_expiry_cannot_mint() {
    let server = TestServer::start("agent_svid_ttl = \"5s\"\n").await;
    let agent = join_agent(&server).await;
    let expires = not_after(&agent.chain[0]);
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    let before = c.mint_x509_svids(one_item()).await.unwrap().into_inner();
    assert_eq!(before.results.len(), 1, "served before expiry");
    // The same channel, hence the same HTTP/2 connection, after the certificate expired.
    tokio::time::sleep(past(expires)).await;
    let err = c.mint_x509_svids(one_item()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("expired"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_sync_stream_ends_when_the_agent_certificate_expires() {
    let server = TestServer::start("agent_svid_ttl = \"5s\"\n").await;
    let agent = join_agent(&server).await;
    let expires = not_after(&agent.chain[0]);
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    let mut sync = c
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    sync.message().await.unwrap().expect("the first state");
    // Nothing changes on the server: only the expiry can end the stream.
    let ended = tokio::time::timeout(past(expires) + Duration::from_secs(2), sync.message())
        .await
        .expect("the stream ends at notAfter");
    let err = ended.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(
        SystemTime::now() > expires,
        "the stream ended before notAfter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_through_the_admin_api_ends_an_open_sync_stream_within_a_second() {
    let server = TestServer::start("").await;
    let agent = join_agent(&server).await;
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    let mut sync = c
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    sync.message().await.unwrap().expect("the first state");
    let mut admin = server.admin().await;
    admin
        .ban_agent(apb::AgentId {
            id: agent.id.clone(),
        })
        .await
        .unwrap();
    let banned_at = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(1), sync.message())
        .await
        .expect("the stream ends within 1 s of the ban");
    let err = ended.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(banned_at.elapsed() < Duration::from_secs(1));
    // And the next call on the same connection is refused too.
    let err = c.mint_x509_svids(one_item()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
}
