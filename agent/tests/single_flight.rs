//! Per-entry single flight (docs/architecture.md, "The agent's SVID cache"): a mint that
//! stalls on the server holds up only the callers of its own entry, and callers of the same
//! entry share one mint.
//!
//! Real parts: the server in-process (SQLite, its CA), a join-token agent, its unix socket,
//! and two callers: this test process (uid 0) and go-spiffe (unmodified,
//! `tests/interop/go-fetch`) running as uid 65534. The stall is the server's test hook
//! (`Shared::mint_stalls`, reachable from no configuration): the mint of one SPIFFE ID is
//! held after the server verified it and before it signs, as a slow datastore or CA would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Env, client, my_uid, uid_selector};
use sworn_proto::workload::{X509svidRequest, X509svidResponse};
use tokio::time::{Instant, timeout};

/// How long the server holds the stalled mint.
const STALL: Duration = Duration::from_secs(8);
/// The other caller's uid.
const NOBODY: u32 = 65534;
const STALLED_ID: &str = "spiffe://example.org/stalled";
const OTHER_ID: &str = "spiffe://example.org/other";

fn prerequisite(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run `eval \"$(tests/interop/setup.sh)\"` first (test.sh does this)"
        )
    })
}

/// go-spiffe, copied where uid 65534 can run it, and the agent's directory opened for it.
fn go_fetch_for_nobody(env: &Env) -> PathBuf {
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let go = env.dir.path().join("go-fetch");
    std::fs::copy(prerequisite("SWORN_GO_SPIFFE_FETCH"), &go).unwrap();
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    go
}

/// One fetch by this process: the first message of a FetchX509SVID stream.
async fn fetch(socket: &Path) -> X509svidResponse {
    let mut c = client(socket).await;
    let mut stream = c
        .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("a first message")
}

/// How many SVIDs of `spiffe_id` the server issued, by its audit log.
async fn issued(env: &Env, spiffe_id: &str) -> usize {
    let records = env.server.shared.store.list_audit(0, 10_000).await.unwrap();
    records
        .iter()
        .filter(|r| r.kind == "mint" && r.decision == "allow")
        .filter(|r| {
            let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
            detail["spiffe_id"] == spiffe_id
        })
        .count()
}

/// A server, an agent, and an entry for each caller; the mint of [`STALLED_ID`] stalls.
async fn setup() -> (Env, sworn_agent::RunningAgent) {
    assert_eq!(
        my_uid(),
        0,
        "the second caller runs as uid {NOBODY}: run as root"
    );
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let stalled = env
        .entry(STALLED_ID, &uid_selector(my_uid()), &node, 600)
        .await;
    let other = env.entry(OTHER_ID, &uid_selector(NOBODY), &node, 600).await;
    timeout(
        Duration::from_secs(30),
        agent.entries_synced(&[&stalled, &other]),
    )
    .await
    .unwrap()
    .unwrap();
    env.server.shared.mint_stalls.stall(STALLED_ID, STALL);
    (env, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_mint_for_another_entry_completes_within_a_second_while_one_stalls() {
    let (env, agent) = setup().await;
    let go = go_fetch_for_nobody(&env);
    let socket = agent.socket_path().as_path().to_owned();

    // Caller A asks first; its entry's mint is held on the server.
    let a_asked = Instant::now();
    let caller_a = tokio::spawn(async move {
        let msg = fetch(&socket).await;
        (msg.svids[0].spiffe_id.clone(), a_asked.elapsed())
    });
    timeout(
        Duration::from_secs(30),
        env.server.shared.mint_stalls.held(STALLED_ID),
    )
    .await
    .expect("caller A's mint reaches the server");

    // Caller B, another workload with another entry, while A's mint is held.
    let addr = format!("unix://{}", agent.socket_path().as_path().display());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(go)
            .args(["-addr", &addr, "-timeout", "20s"])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let took = started.elapsed();
    println!("caller B's fetch (process start to exit) took {took:?}");
    let still_held = env.server.shared.mint_stalls.holding(STALLED_ID);
    assert!(
        out.status.success(),
        "caller B got no SVID: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spiffe_id"], OTHER_ID);
    assert!(
        took < Duration::from_secs(1),
        "caller B's first mint took {took:?} while another entry's mint stalled"
    );
    assert!(
        still_held,
        "caller A's mint was still held when B's came back"
    );

    // A is served once the server lets its mint go, after the whole stall.
    let (id, a_took) = timeout(STALL + Duration::from_secs(20), caller_a)
        .await
        .expect("caller A is served after the stall")
        .unwrap();
    assert_eq!(id, STALLED_ID);
    assert!(
        a_took >= Duration::from_secs(5),
        "A's mint stalled {a_took:?}"
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_the_same_entry_share_one_stalled_mint() {
    let (env, agent) = setup().await;
    let socket = agent.socket_path().as_path().to_owned();
    let first = tokio::spawn({
        let socket = socket.clone();
        async move { fetch(&socket).await }
    });
    timeout(
        Duration::from_secs(30),
        env.server.shared.mint_stalls.held(STALLED_ID),
    )
    .await
    .expect("the first caller's mint reaches the server");
    // A second caller with the same evidence (this process again) joins the mint in flight.
    let second = tokio::spawn(async move { fetch(&socket).await });
    let wait = STALL + Duration::from_secs(20);
    let first = timeout(wait, first).await.unwrap().unwrap();
    let second = timeout(wait, second).await.unwrap().unwrap();
    assert_eq!(first.svids[0].spiffe_id, STALLED_ID);
    assert_eq!(
        first.svids[0].x509_svid, second.svids[0].x509_svid,
        "both callers got the certificate of the one mint"
    );
    assert_eq!(issued(&env, STALLED_ID).await, 1, "one mint for both");
    agent.shutdown().await.unwrap();
}
