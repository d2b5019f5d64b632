//! Interoperability: the public Rust `spiffe` crate's `X509Source`, unmodified, against our
//! agent. It must get the SVID and see a rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use spiffe::X509Source;
use support::{Env, my_uid, uid_selector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_source_gets_the_svid_and_sees_a_rotation() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let entry = env
        .entry(
            "spiffe://example.org/interop",
            &uid_selector(my_uid()),
            &node,
            6,
        )
        .await;
    tokio::time::timeout(Duration::from_secs(10), agent.entries_synced(&[&entry]))
        .await
        .expect("the entry reaches the agent in time")
        .unwrap();

    let source = tokio::time::timeout(
        Duration::from_secs(120),
        X509Source::builder()
            .endpoint(agent.socket_path().to_uri())
            .build(),
    )
    .await
    .expect("the source starts in time")
    .expect("the source starts");
    let svid = source.svid().unwrap();
    assert_eq!(svid.spiffe_id().to_string(), "spiffe://example.org/interop");
    let first_serial = svid.leaf().as_ref().to_vec();
    // The X509-SVID checklist, as the server applies it.
    let chain: Vec<Vec<u8>> = svid
        .cert_chain()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    let roots: Vec<Vec<u8>> = pem::parse_many(std::fs::read(env.server_bundle_file()).unwrap())
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect();
    let td = sworn_identity::parse_trust_domain(support::TD).unwrap();
    sworn_identity::check_x509_svid(
        &chain[0],
        &chain[1..],
        sworn_identity::Expected::MemberOf(&td),
        &roots,
        std::time::SystemTime::now(),
    )
    .expect("the SVID passes the X509-SVID checklist");

    let mut updates = source.updated();
    tokio::time::timeout(Duration::from_secs(30), updates.changed())
        .await
        .expect("a rotation within the SVID lifetime")
        .unwrap();
    let rotated = source.svid().unwrap();
    assert_eq!(
        rotated.spiffe_id().to_string(),
        "spiffe://example.org/interop"
    );
    assert_ne!(rotated.leaf().as_ref(), first_serial.as_slice());
    source.shutdown().await;
    agent.shutdown().await.unwrap();
}
