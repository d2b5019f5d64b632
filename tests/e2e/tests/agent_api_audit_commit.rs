//! A mint request's audit rows are committed together (docs/architecture.md, "Outcomes"):
//! one transaction for all its items, committed before any result leaves the server. So a
//! request costs one commit, and a request whose rows cannot all be stored issues nothing,
//! while what was issued before (an agent's cached SVID) is still served.
//!
//! The fault is real: a trigger added to the server's own SQLite file while it runs refuses
//! the audit row of one entry's mints, as a full disk or a constraint would refuse a write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::str::FromStr;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sworn_e2e::{
    TestServer, attest, audit_after, audit_after_of, audit_checkpoint, audit_checkpoint_of,
    connect, issued, join_agent, key_and_csr, server_counter, summary,
};
use sworn_identity::Serial;
use sworn_proto::admin as apb;
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::agent as pb;
use tonic::transport::Channel;

/// The uid the test's unix evidence reports.
const UID: u32 = 4242;
const COMMITS: &str = "sworn_server_audit_commits_total";
const ROWS: &str = "sworn_server_audit_rows_total";

fn item(entry_id: &str) -> pb::MintItem {
    pb::MintItem {
        entry_id: entry_id.into(),
        csr: key_and_csr().1,
        evidence: Some(pb::mint_item::Evidence::Unix(pb::UnixEvidence {
            uid: UID,
            ..Default::default()
        })),
    }
}

/// An entry for [`UID`] scoped to `node`; its ID.
async fn entry(admin: &mut AdminApiClient<Channel>, spiffe_id: &str, node: &str) -> String {
    admin
        .create_entry(apb::CreateEntryRequest {
            spiffe_id: spiffe_id.into(),
            selectors: vec![format!("unix:uid:{UID}")],
            node: node.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

fn serial_of(der: &[u8]) -> String {
    Serial::of_certificate(der).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_item_mint_request_is_audited_in_one_commit() {
    let server = TestServer::start("").await;
    let agent = join_agent(&server).await;
    let mut admin = server.admin().await;
    let entry = entry(&mut admin, "spiffe://example.org/batch", &agent.id).await;
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    let items: Vec<_> = (0..200).map(|_| item(&entry)).collect();
    let checkpoint = audit_checkpoint(&server).await;
    let (commits, rows) = (
        server_counter(&server.server, COMMITS).await,
        server_counter(&server.server, ROWS).await,
    );

    let results = c
        .mint_x509_svids(pb::MintX509SvidsRequest { items })
        .await
        .unwrap()
        .into_inner()
        .results;

    let serials: BTreeSet<String> = results
        .iter()
        .map(|r| match &r.result {
            Some(pb::mint_result::Result::Svid(s)) => serial_of(&s.chain[0]),
            _ => panic!("not issued: {}", summary(r)),
        })
        .collect();
    assert_eq!(serials.len(), 200);
    let audited: BTreeSet<String> = audit_after(&server, checkpoint)
        .await
        .iter()
        .filter(|e| e.kind == "mint" && e.decision == "allow")
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            detail["serial"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(audited, serials, "every SVID issued has its audit row");
    assert_eq!(server_counter(&server.server, ROWS).await - rows, 200);
    assert_eq!(
        server_counter(&server.server, COMMITS).await - commits,
        1,
        "the request's 200 audit rows are one commit"
    );
}

/// A raw agent of the environment's server (join token, attested on its own connection).
async fn raw_agent(server: &sworn_server::server::RunningServer) -> sworn_e2e::AgentCreds {
    let mut admin = sworn_server::admin::client::connect(&server.admin_socket)
        .await
        .unwrap();
    let token = admin
        .generate_join_token(apb::GenerateJoinTokenRequest { ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner()
        .token;
    attest(
        &mut connect(server.agent_api_addr, None).await,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation { token }),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_request_whose_audit_commit_fails_issues_nothing_and_revokes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A server and a real agent, whose workload (this test, by its uid) holds an SVID.
    let env = sworn_dev::unix::start(dir.path()).await.unwrap();
    let held = sworn_agent::fetch::fetch_x509(&env.state.socket)
        .await
        .unwrap();
    let held_serial = serial_of(&held[0].chain[0]);

    // Another agent asks for three SVIDs of one entry, one of another, and one of an entry
    // that does not exist.
    let agent = raw_agent(&env.server).await;
    let mut admin = sworn_server::admin::client::connect(&env.server.admin_socket)
        .await
        .unwrap();
    let batch = entry(&mut admin, "spiffe://example.org/batch", &agent.id).await;
    let poisoned = entry(&mut admin, "spiffe://example.org/poisoned", &agent.id).await;
    let request = || pb::MintX509SvidsRequest {
        items: vec![
            item(&batch),
            item(&batch),
            item(&poisoned),
            item(&batch),
            item("0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b"),
        ],
    };
    let mut c = connect(env.server.agent_api_addr, Some(&agent)).await;

    // The datastore now refuses the audit row of any mint of the poisoned entry.
    let db = env.server.shared.config.database_path();
    let mut sql = SqliteConnection::connect_with(
        &SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display())).unwrap(),
    )
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_poisoned BEFORE INSERT ON audit
         WHEN NEW.detail LIKE '%spiffe://example.org/poisoned%'
         BEGIN SELECT RAISE(ABORT, 'audit row refused by the test'); END",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    let checkpoint = audit_checkpoint_of(&env.server).await;
    let results = c
        .mint_x509_svids(request())
        .await
        .unwrap()
        .into_inner()
        .results;
    let got: Vec<String> = results.iter().map(summary).collect();
    assert_eq!(
        got,
        vec!["unavailable \"datastore unavailable; retry\" (factor \"store\")"; 5],
        "every item of the request is unavailable, none issued, none denied"
    );
    let stored: Vec<_> = audit_after_of(&env.server, checkpoint)
        .await
        .into_iter()
        .filter(|e| e.kind == "mint")
        .collect();
    assert!(
        stored.is_empty(),
        "no row of the request is stored: {stored:?}"
    );
    // Meanwhile the workload's SVID is still served.
    let during = sworn_agent::fetch::fetch_x509(&env.state.socket)
        .await
        .unwrap();
    assert_eq!(serial_of(&during[0].chain[0]), held_serial);

    // The fault passes: the SVID issued before it is still served, and the same request
    // is decided again, now with its rows stored.
    sqlx::query("DROP TRIGGER refuse_poisoned")
        .execute(&mut sql)
        .await
        .unwrap();
    sql.close().await.unwrap();
    let after = sworn_agent::fetch::fetch_x509(&env.state.socket)
        .await
        .unwrap();
    assert_eq!(serial_of(&after[0].chain[0]), held_serial, "not revoked");
    let results = c
        .mint_x509_svids(request())
        .await
        .unwrap()
        .into_inner()
        .results;
    let ids: Vec<Option<String>> = results.iter().map(issued).collect();
    let batch_id = Some("spiffe://example.org/batch".to_owned());
    assert_eq!(
        ids,
        [
            batch_id.clone(),
            batch_id.clone(),
            Some("spiffe://example.org/poisoned".to_owned()),
            batch_id,
            None
        ]
    );
    assert_eq!(results[4].factor, "entry", "{}", summary(&results[4]));
    env.stop().await;
}
