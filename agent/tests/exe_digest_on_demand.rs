//! A unix caller's executable is hashed only while some entry of the agent has a
//! `unix:sha256` selector (docs/architecture.md, "Workload attestation"): a uid-only entry
//! costs no hashing, and an entry added later that needs the digest makes the next fetch,
//! and an open stream, hash and get its SVID.
//!
//! Real parts: the server in-process (SQLite, its CA), a join-token agent, its unix socket,
//! and callers that are real processes: the `sworn-agent fetch` binary run under its own
//! uid, and this test process holding a FetchX509SVID stream open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::{
    Env, client, copy_agent_binary, fetch_command, metric, my_uid, next_before, output_text,
    synced, uid_selector,
};
use sworn_proto::workload::X509svidRequest;
use tokio::time::Instant;

/// The caller's uid.
const CALLER_UID: u32 = 30_100;
const MISS: &str = "sworn_agent_exe_digests_total{outcome=\"miss\"}";
const HIT: &str = "sworn_agent_exe_digests_total{outcome=\"hit\"}";

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The digests the agent computed and looked up, as `(miss, hit)`; 0 for a series not
/// exposed (a counter never incremented).
async fn digests(agent: &sworn_agent::RunningAgent) -> (f64, f64) {
    (
        metric(agent, MISS).await.unwrap_or(0.0),
        metric(agent, HIT).await.unwrap_or(0.0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_only_entry_costs_no_hash_and_a_sha256_entry_added_later_is_hashed_and_issued() {
    assert_eq!(
        my_uid(),
        0,
        "the caller runs under its own uid: run as root"
    );
    let env = Env::start().await;
    env.open_to_other_uids();
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let exe = copy_agent_binary(&env.dir.path().join("bin"), "caller");
    let socket = agent.socket_path().as_path().to_owned();
    let by_uid = env
        .entry(
            "spiffe://example.org/by-uid",
            &uid_selector(CALLER_UID),
            &node,
            600,
        )
        .await;
    synced(&agent, &[&by_uid]).await;

    let out = fetch_command(&exe, &socket, Some(CALLER_UID))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("spiffe://example.org/by-uid"));
    assert_eq!(
        digests(&agent).await,
        (0.0, 0.0),
        "no entry needs the digest: the executable is not hashed"
    );

    let selector = vec![format!("unix:sha256:{}", sha256_of(&exe))];
    let by_digest = env
        .entry("spiffe://example.org/by-digest", &selector, &node, 600)
        .await;
    synced(&agent, &[&by_uid, &by_digest]).await;
    let out = fetch_command(&exe, &socket, Some(CALLER_UID))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("spiffe://example.org/by-digest")
            && stdout.contains("spiffe://example.org/by-uid"),
        "{}",
        output_text(&out)
    );
    assert_eq!(
        digests(&agent).await,
        (1.0, 0.0),
        "the entry needs the digest: the next fetch hashes"
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_attested_without_a_digest_gets_a_sha256_entry_added_later() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    env.entry_for_me(&agent, "spiffe://example.org/me").await;
    let mut c = client(agent.socket_path().as_path()).await;
    let mut stream = c
        .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = next_before(&mut stream, deadline).await;
    assert_eq!(first.svids.len(), 1);
    assert_eq!(digests(&agent).await, (0.0, 0.0));

    // An entry for this very process's executable.
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    let selector = vec![format!("unix:sha256:{}", sha256_of(&me))];
    env.entry("spiffe://example.org/my-binary", &selector, &node, 600)
        .await;
    let ids = loop {
        let msg = next_before(&mut stream, deadline).await;
        let ids: Vec<String> = msg.svids.iter().map(|s| s.spiffe_id.clone()).collect();
        if ids.len() == 2 {
            break ids;
        }
    };
    assert!(
        ids.contains(&"spiffe://example.org/my-binary".to_owned()),
        "{ids:?}"
    );
    assert_eq!(
        digests(&agent).await.0,
        1.0,
        "hashed once, on re-inspection"
    );
    drop(stream);
    agent.shutdown().await.unwrap();
}
