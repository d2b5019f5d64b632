//! The agent without `SO_PEERPIDFD`, forced by its test hook (docs/architecture.md,
//! "Workload attestation": PID reuse without `SO_PEERPIDFD`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::Env;

/// The kernel here has `SO_PEERPIDFD`; the hook makes the agent go without it. It says so
/// once at `warn` at startup, and still serves a caller, now held by a `pidfd_open`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_so_peerpidfd_the_agent_warns_once_and_still_serves() {
    let env = Env::start().await;
    let from = sworn_harness::trace::checkpoint();
    let agent = env
        .agent_with("a", |c| c.danger_ignore_peer_pidfd = true)
        .await;
    env.entry_for_me(&agent, "spiffe://example.org/web").await;
    for _ in 0..2 {
        let svids = sworn_agent::fetch::fetch_x509(agent.socket_path().as_path())
            .await
            .unwrap();
        assert_eq!(svids[0].spiffe_id, "spiffe://example.org/web");
    }
    let lines = sworn_harness::trace::lines_since(from);
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("SO_PEERPIDFD is unavailable"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    // Every caller was held the fallback way.
    let captures: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("unix caller inspected"))
        .collect();
    assert!(!captures.is_empty(), "no inspection was traced");
    assert!(
        captures.iter().all(|l| l.contains("handle=PidfdOpen")),
        "{captures:#?}"
    );
    agent.shutdown().await.unwrap();
}
