//! An agent API connection reads its agent's record once and keeps it for the life of the
//! certificate it presents (docs/architecture.md, "Agent API limits"), and a ban through the
//! admin API reaches the very next call on that same connection, audited like any ban.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sworn_e2e::{
    TestServer, audit_after, audit_checkpoint, connect, join_agent, key_and_csr, mint_one,
    server_counter, summary,
};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;

const LOOKUPS: &str = "sworn_server_agent_lookups_total";
/// An entry ID in its one encoding that names no entry: the item is denied (factor `entry`)
/// after the agent was authenticated.
const NO_ENTRY: &str = "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b";

fn evidence() -> pb::mint_item::Evidence {
    pb::mint_item::Evidence::Unix(pb::UnixEvidence {
        uid: 1000,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mints_on_one_connection_read_the_agent_record_once() {
    let server = TestServer::start("").await;
    let agent = join_agent(&server).await;
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    let before = server_counter(&server.server, LOOKUPS).await;
    for _ in 0..50 {
        let r = mint_one(&mut c, NO_ENTRY, evidence()).await;
        assert_eq!(r.factor, "entry", "{}", summary(&r));
    }
    assert_eq!(
        server_counter(&server.server, LOOKUPS).await - before,
        1,
        "one read of the agent record for the connection's 50 calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_refuses_the_next_mint_on_the_same_connection_and_audits_factor_n5() {
    let server = TestServer::start("").await;
    let agent = join_agent(&server).await;
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    // The connection has authenticated, so it holds the agent's (unbanned) record.
    let r = mint_one(&mut c, NO_ENTRY, evidence()).await;
    assert_eq!(r.factor, "entry", "{}", summary(&r));

    server
        .admin()
        .await
        .ban_agent(apb::AgentId {
            id: agent.id.clone(),
        })
        .await
        .unwrap();
    let checkpoint = audit_checkpoint(&server).await;
    let err = c
        .mint_x509_svids(pb::MintX509SvidsRequest {
            items: vec![pb::MintItem {
                entry_id: NO_ENTRY.into(),
                csr: key_and_csr().1,
                evidence: Some(evidence()),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let rows: Vec<(String, serde_json::Value)> = audit_after(&server, checkpoint)
        .await
        .into_iter()
        .filter(|e| e.kind == "mint")
        .map(|e| (e.decision, serde_json::from_str(&e.detail).unwrap()))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (decision, detail) = &rows[0];
    assert_eq!(decision, "deny", "{detail}");
    assert_eq!(detail["factor"], "N5", "{detail}");
    assert_eq!(detail["agent_id"], agent.id.as_str(), "{detail}");
}
