//! Sync propagation (docs/architecture.md, "Sync"), measured in counts: messages the server
//! sent, entry rows it read for Sync, streams a change woke, re-checks. Two join-token agents
//! A and B hold open Sync streams (this test client, as a real agent opens them); A has 1000
//! entries, so a path that reads or sends A's whole state shows in the counts at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sworn_e2e::{AgentCreds, TD, TestServer, connect, join_agent};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;
use sworn_server::store::{Entry, EntryTarget};
use sworn_server::telemetry::SyncMessageLabels;
use tonic::Streaming;

const ENTRIES: usize = 1000;

/// What the server counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    full: u64,
    delta: u64,
    rows: u64,
    wakeups: u64,
    rechecks: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            full: self.full - o.full,
            delta: self.delta - o.delta,
            rows: self.rows - o.rows,
            wakeups: self.wakeups - o.wakeups,
            rechecks: self.rechecks - o.rechecks,
        }
    }
}

fn counts(server: &TestServer) -> Counts {
    let m = &server.server.shared.metrics;
    let messages = |kind| {
        m.sync_messages
            .get_or_create(&SyncMessageLabels { kind })
            .get()
    };
    Counts {
        full: messages("full"),
        delta: messages("delta"),
        rows: m.sync_entry_rows_read.get(),
        wakeups: m.sync_wakeups.get(),
        rechecks: m.sync_rechecks.get(),
    }
}

/// `n` unix entries scoped to `agent`, written straight to the server's datastore (no
/// stream is open yet, so nothing needs to hear of them).
async fn entries_for(server: &TestServer, agent: &AgentCreds, n: usize) {
    let store = &server.server.shared.store;
    for i in 0..n {
        let mut e = Entry::unscoped(
            sworn_identity::EntryId::generate(),
            EntryTarget::Id(format!("spiffe://{TD}/bulk/{i}")),
            vec!["unix:uid:4242".parse().unwrap()],
            1,
        );
        e.node = Some(agent.id.parse().unwrap());
        store.create_entry(&e).await.unwrap();
    }
}

/// Creates one entry scoped to `agent` through the admin API; its ID.
async fn create_for(server: &TestServer, agent: &AgentCreds) -> String {
    server
        .admin()
        .await
        .create_entry(apb::CreateEntryRequest {
            spiffe_id: format!("spiffe://{TD}/new"),
            selectors: vec!["unix:uid:1000".into()],
            node: agent.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

/// Opens `agent`'s Sync stream as an agent that applies deltas, from `from` (epoch,
/// revision) when given.
async fn open(
    server: &TestServer,
    agent: &AgentCreds,
    from: Option<&pb::SyncResponse>,
) -> Streaming<pb::SyncResponse> {
    let mut c = connect(server.server.agent_api_addr, Some(agent)).await;
    let request = pb::SyncRequest {
        deltas: true,
        epoch: from.map(|m| m.epoch.clone()).unwrap_or_default(),
        revision: from.map_or(0, |m| m.revision),
    };
    c.sync(request).await.unwrap().into_inner()
}

async fn next(stream: &mut Streaming<pb::SyncResponse>) -> pb::SyncResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("the stream is open")
}

/// A and B with their streams open and their first (full) states read; A has [`ENTRIES`].
async fn two_agents(
    server: &TestServer,
) -> (
    AgentCreds,
    Streaming<pb::SyncResponse>,
    pb::SyncResponse,
    Streaming<pb::SyncResponse>,
) {
    let (a, b) = (join_agent(server).await, join_agent(server).await);
    entries_for(server, &a, ENTRIES).await;
    let mut sa = open(server, &a, None).await;
    let mut sb = open(server, &b, None).await;
    let first = next(&mut sa).await;
    assert!(first.full);
    assert_eq!(first.entries.len(), ENTRIES);
    let first_b = next(&mut sb).await;
    assert!(first_b.full && first_b.entries.is_empty());
    (a, sa, first, sb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_entry_for_a_wakes_only_a_which_gets_a_delta_of_that_entry_and_b_nothing() {
    let server = TestServer::start("").await;
    let (a, mut sa, _, _sb) = two_agents(&server).await;
    let before = counts(&server);

    let id = create_for(&server, &a).await;
    // The signal is counted when sent, so this holds as soon as the call returned.
    assert_eq!(
        (counts(&server) - before).wakeups,
        1,
        "only A's stream is woken"
    );
    let msg = next(&mut sa).await;
    assert!(!msg.full, "a delta");
    let ids: Vec<&str> = msg.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [id.as_str()], "only the new entry");
    assert!(msg.bundle.is_empty(), "the bundle did not change");
    let d = counts(&server) - before;
    assert_eq!(
        (d.full, d.delta, d.rows),
        (0, 1, 1),
        "one message (A's delta, so B got none) and one row read, of {ENTRIES}: {d:?}"
    );

    // Deleting it: A's delta removes it, again reading one row (its tombstone).
    let before = counts(&server);
    server
        .admin()
        .await
        .delete_entry(apb::EntryId { id: id.clone() })
        .await
        .unwrap();
    let msg = next(&mut sa).await;
    assert!(!msg.full && msg.entries.is_empty());
    assert_eq!(msg.removed_entry_ids, [id]);
    let d = counts(&server) - before;
    assert_eq!((d.wakeups, d.full, d.delta, d.rows), (1, 0, 1, 1), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reopening_with_its_revision_gets_a_delta_not_its_full_state() {
    let server = TestServer::start("").await;
    let (a, sa, first, _sb) = two_agents(&server).await;
    drop(sa);
    let id = create_for(&server, &a).await;
    let before = counts(&server);
    let mut sa = open(&server, &a, Some(&first)).await;
    let msg = next(&mut sa).await;
    assert!(!msg.full, "a delta");
    let ids: Vec<&str> = msg.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [id.as_str()], "only what changed while it was away");
    assert!(
        !msg.bundle.is_empty(),
        "a stream's first message carries the bundle"
    );
    assert_eq!(msg.epoch, first.epoch);
    assert!(msg.revision > first.revision);
    let d = counts(&server) - before;
    assert_eq!((d.full, d.delta, d.rows), (0, 1, 1), "{d:?}");

    // A point from another datastore is not trusted: the complete state, flagged.
    let other = pb::SyncResponse {
        epoch: "another-datastore".into(),
        ..msg.clone()
    };
    let mut sa2 = open(&server, &a, Some(&other)).await;
    let full = next(&mut sa2).await;
    assert!(full.full);
    assert_eq!(full.entries.len(), ENTRIES + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_or_read_over_rechecks_with_no_change() {
    let server = TestServer::start("").await;
    server
        .server
        .shared
        .changes
        .set_recheck_period(Duration::from_millis(50));
    let (_a, _sa, _, _sb) = two_agents(&server).await;
    let before = counts(&server);
    // Each stream re-checks every 50 ms; 10 re-checks of the two streams have surely run
    // (the counter is bumped before the re-check's reads).
    sworn_harness::wait_until("10 re-checks", Duration::from_secs(20), || {
        (counts(&server) - before).rechecks >= 12
    })
    .await;
    let d = counts(&server) - before;
    assert_eq!(
        (d.full, d.delta, d.rows, d.wakeups),
        (0, 0, 0, 0),
        "re-checks with no change send and read nothing: {d:?}"
    );
}
