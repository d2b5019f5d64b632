//! A passing fault on the server never revokes a valid SVID: while the server's datastore
//! cannot write its audit record, every mint is `Unavailable` (never `Denied`), the agent keeps
//! serving the SVID it holds, counts the outcome, and renews as soon as the store recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use support::{Env, client, leaf_not_after, my_uid, next_before as next, uid_selector};
use sworn_proto::workload::{X509svidRequest, X509svidResponse};
use tokio::time::Instant;

/// Renewal at half-life (~30 s), one 10 s busy wait on the store, then retries capped at 5 s:
/// all well inside the SVID's life.
const TTL_SECONDS: i64 = 60;

fn not_after(msg: &X509svidResponse) -> SystemTime {
    leaf_not_after(&msg.svids[0].x509_svid)
}

/// The agent's count of mint outcomes `outcome` for unix callers.
async fn outcomes(agent: &sworn_agent::RunningAgent, outcome: &str) -> u64 {
    let metrics = sworn_agent::probe::get(agent.health_address(), "/metrics")
        .await
        .unwrap();
    let prefix = format!("sworn_agent_mint_outcomes_total{{mode=\"unix\",outcome=\"{outcome}\"}} ");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_datastore_is_unavailable_and_the_cached_svid_survives_until_renewed() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    env.entry(
        "spiffe://example.org/web",
        &uid_selector(my_uid()),
        &node,
        TTL_SECONDS,
    )
    .await;
    let mut c = client(agent.socket_path().as_path()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        // The entry reaches the agent over Sync; until then the caller is entitled to nothing.
        match c
            .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
            .await
        {
            Ok(s) => break s.into_inner(),
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("no svid: {status:?}"),
        }
    };
    let first = next(&mut stream, deadline).await;
    let expires = not_after(&first);
    assert_eq!(outcomes(&agent, "issued").await, 1);

    // Another process takes the database's write lock (as a backup tool or a stuck migration
    // would): every audit write of the server now fails after its busy timeout.
    let db = env.server.shared.config.database_path();
    let mut lock = SqliteConnection::connect_with(
        &SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display())).unwrap(),
    )
    .await
    .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();

    // The rotation at half-life is answered `Unavailable`.
    let until = Instant::now() + expires.duration_since(SystemTime::now()).unwrap();
    while outcomes(&agent, "unavailable").await == 0 {
        assert!(
            Instant::now() < until,
            "no unavailable outcome before expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(outcomes(&agent, "denied").await, 0);

    // The store recovers; the same open stream carries the renewed SVID before the old expires.
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    let renewed = next(&mut stream, until).await;
    assert!(
        not_after(&renewed) > expires,
        "the next message is the renewal"
    );
    assert!(SystemTime::now() < expires);
    assert_eq!(outcomes(&agent, "denied").await, 0);
    drop(stream);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_svid_expires_while_the_server_is_away_ends_unavailable_not_denied() {
    const SHORT_TTL: i64 = 8;
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let entry = env
        .entry(
            "spiffe://example.org/short",
            &uid_selector(my_uid()),
            &node,
            SHORT_TTL,
        )
        .await;
    tokio::time::timeout(Duration::from_secs(30), agent.entries_synced(&[&entry]))
        .await
        .unwrap()
        .unwrap();
    let mut c = client(agent.socket_path().as_path()).await;
    let mut stream = c
        .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream, Instant::now() + Duration::from_secs(10)).await;
    let expires = not_after(&first);

    // The server goes away for longer than the SVID lives.
    let (_dir, _config) = env.stop_server().await;
    let until = Instant::now()
        + expires
            .duration_since(SystemTime::now())
            .unwrap_or_default()
        + Duration::from_secs(10);
    let ended = loop {
        match tokio::time::timeout_at(until, stream.message()).await {
            Ok(Ok(Some(msg))) => {
                // Anything sent while the server is away is still valid when it arrives.
                assert!(
                    not_after(&msg) > SystemTime::now(),
                    "an expired SVID was sent"
                );
            }
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("the stream still stands after its only SVID expired"),
        }
    };
    assert!(
        SystemTime::now() >= expires,
        "ended before the SVID expired"
    );
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert_eq!(outcomes(&agent, "denied").await, 0);
    agent.shutdown().await.unwrap();
}
