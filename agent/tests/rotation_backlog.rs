//! A rotation backlog larger than one mint request drains: the agent sends due SVIDs in
//! chunks of at most 256 items, and each item keeps its own retry schedule, so a server that
//! comes back after every SVID fell due renews all of them before they expire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use support::{Env, client, leaf_not_after, my_uid, next_before as next, uid_selector};
use sworn_proto::workload::{X509svidRequest, X509svidResponse};
use tokio::time::{Instant, timeout};

/// More than two full mint requests.
const SVIDS: usize = 600;
/// Long enough for 600 first mints and 600 renewals in a debug build on a busy machine.
const TTL_SECONDS: i64 = 60;

/// notAfter of every SVID in a message, by SPIFFE ID.
fn expiries(msg: &X509svidResponse) -> HashMap<String, SystemTime> {
    msg.svids
        .iter()
        .map(|s| (s.spiffe_id.clone(), leaf_not_after(&s.x509_svid)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_svids_due_at_once_are_all_renewed_before_they_expire() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    for i in 0..SVIDS {
        env.entry(
            &format!("spiffe://example.org/backlog/{i}"),
            &uid_selector(my_uid()),
            &node,
            TTL_SECONDS,
        )
        .await;
    }
    let mut c = client(agent.socket_path().as_path()).await;
    let mut stream = c
        .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
        .await
        .expect("the first fetch mints 600 SVIDs in requests of at most 256")
        .into_inner();
    // The entries reach the agent over Sync; the stream answers again on every change.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let msg = next(&mut stream, deadline).await;
        if msg.svids.len() == SVIDS {
            break expiries(&msg);
        }
    };
    let expires = *first.values().min().unwrap();

    // The server goes away before any SVID reaches half-life, and comes back only after every
    // one of them is due and has failed to rotate at least once.
    let (dir, config) = env.stop_server().await;
    let back_at = expires - Duration::from_secs(TTL_SECONDS as u64 / 3);
    tokio::time::sleep(
        back_at
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
    .await;
    let env = Env::restart_server(dir, config).await;

    // Every SVID is renewed before the first of the old ones expires, on the open stream.
    let until = Instant::now()
        + expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
    loop {
        let msg = next(&mut stream, until).await;
        let now = SystemTime::now();
        let current = expiries(&msg);
        assert!(
            current.values().all(|t| *t > now),
            "the stream carried an expired SVID"
        );
        let renewed = current
            .iter()
            .filter(|(id, t)| first.get(*id).is_some_and(|old| *t > old))
            .count();
        if current.len() == SVIDS && renewed == SVIDS {
            break;
        }
    }
    drop(stream);
    timeout(Duration::from_secs(10), agent.shutdown())
        .await
        .unwrap()
        .unwrap();
    drop(env);
}
