//! The agent's side of delta Sync (docs/architecture.md, "Sync"): a real server and real
//! agents; the server's counts show what went over the wire, the agent's state and a
//! workload's open stream show what the agent made of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Env, client, synced};
use sworn_proto::workload::X509svidRequest;
use sworn_server::shared::Affected;
use sworn_server::store::{Entry, EntryTarget};
use sworn_server::telemetry::SyncMessageLabels;
use tonic::Code;

const ENTRIES: usize = 1000;

/// (full messages, deltas, entry rows read) the server counted so far.
fn counts(env: &Env) -> (u64, u64, u64) {
    let m = &env.server.shared.metrics;
    let messages = |kind| {
        m.sync_messages
            .get_or_create(&SyncMessageLabels { kind })
            .get()
    };
    (
        messages("full"),
        messages("delta"),
        m.sync_entry_rows_read.get(),
    )
}

fn since(now: (u64, u64, u64), before: (u64, u64, u64)) -> (u64, u64, u64) {
    (now.0 - before.0, now.1 - before.1, now.2 - before.2)
}

/// Gives `agent` [`ENTRIES`] entries that match no caller here, and waits until it holds them.
async fn bulk(env: &Env, agent: &sworn_agent::RunningAgent) {
    let id = agent.agent_id().unwrap();
    for i in 0..ENTRIES {
        let mut e = Entry::unscoped(
            sworn_identity::EntryId::generate(),
            EntryTarget::Id(format!("spiffe://example.org/bulk/{i}")),
            vec!["unix:uid:4242".parse().unwrap()],
            1,
        );
        e.node = Some(id.clone());
        env.server.shared.store.create_entry(&e).await.unwrap();
    }
    // Written past the admin API, so signalled here.
    env.server.shared.notify_change(&Affected::Agent(id));
    sworn_harness::wait_until(
        "the agent holds its entries",
        Duration::from_secs(20),
        || {
            agent
                .sync_state()
                .is_some_and(|s| s.entries.len() == ENTRIES)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_entry_leaves_the_agent_by_a_delta_and_its_svid_is_redacted() {
    let env = Env::start().await;
    let a = env.agent("a").await;
    let b = env.agent("b").await;
    bulk(&env, &a).await;
    let b_state = b.sync_state().unwrap();
    let before = counts(&env);

    let id = env.entry_for_me(&a, "spiffe://example.org/web").await;
    assert_eq!(
        since(counts(&env), before),
        (0, 1, 1),
        "one delta (A's) reading one row, of {ENTRIES}: (full, delta, rows)"
    );
    let mut stream = client(a.socket_path().as_path())
        .await
        .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    assert_eq!(msg.svids[0].spiffe_id, "spiffe://example.org/web");

    let before = counts(&env);
    env.delete_entry(&id).await;
    // The only SVID is redacted: the stream ends, never with an empty message.
    let ended = tokio::time::timeout(Duration::from_secs(1), stream.message())
        .await
        .expect("redacted within a second");
    assert_eq!(ended.unwrap_err().code(), Code::PermissionDenied);
    let state = a.sync_state().unwrap();
    assert!(
        !state.entries.iter().any(|e| e.id.to_string() == id),
        "the entry left the agent's state"
    );
    assert_eq!(state.entries.len(), ENTRIES, "and nothing else did");
    assert_eq!(
        since(counts(&env), before),
        (0, 1, 1),
        "(full, delta, rows)"
    );
    assert_eq!(b.sync_state().unwrap(), b_state, "B heard nothing");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_agent_resumes_from_its_revision_with_a_delta() {
    let env = Env::start().await;
    let a = env.agent("a").await;
    bulk(&env, &a).await;
    let revision = a.sync_state().unwrap().revision;
    let (dir, config) = env.stop_server().await;
    let env = Env::restart_server(dir, config).await;
    let id = env.entry_for_me(&a, "spiffe://example.org/web").await;
    // The new server counts from zero: the agent's reopened stream and the new entry.
    let (full, deltas, rows) = counts(&env);
    assert_eq!(full, 0, "no full state after the restart");
    assert!(deltas >= 1, "{deltas}");
    assert!(
        rows <= 1,
        "rows read after the restart: {rows} (A holds {ENTRIES})"
    );
    let state = a.sync_state().unwrap();
    assert_eq!(state.entries.len(), ENTRIES + 1);
    assert!(state.revision > revision);
    synced(&a, &[&id]).await;
    a.shutdown().await.unwrap();
}
