//! Bounded input on the agent API and a bounded audit table (docs/architecture.md, "Bounded
//! input" and "Storage"), against the in-process server over its real TLS socket and real
//! SQLite: an unauthenticated `Attest` whose `cluster` is 900 KiB (just under the agent API's 1 MiB message limit) is refused naming the field
//! and its limit, and neither its audit row nor the log carries the value; an attested
//! agent's oversized evidence is denied the same way; audit rows past `audit_retention`
//! are pruned in batches while recent rows and the CA stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sworn_e2e::{TestServer, attest, audit_after, audit_checkpoint, connect, mint_one};
use sworn_harness::trace;
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;
use sworn_server::clock::{FakeClock, unix_now};
use sworn_server::store::retention;
use tonic::Code;

/// A run of the payload byte longer than any preview shows, so finding it means the value
/// leaked.
fn leak(c: char) -> String {
    c.to_string()
        .repeat(sworn_identity::evidence_bounds::PREVIEW_CHARS + 1)
}

/// The one audit row since `checkpoint`, with its detail; fails unless it is small and
/// free of `payload`.
async fn one_small_row(server: &TestServer, checkpoint: i64, payload: &str) -> serde_json::Value {
    let rows = audit_after(server, checkpoint).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let detail = &rows[0].detail;
    assert!(detail.len() < 1024, "audit row is {} bytes", detail.len());
    assert!(
        !detail.contains(payload),
        "the value reached the audit row: {}",
        &detail[..detail.len().min(300)]
    );
    assert_eq!(rows[0].decision, "deny");
    serde_json::from_str(detail).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attest_with_a_900_kib_cluster_is_refused_and_nothing_large_is_stored_or_logged() {
    let server = TestServer::start("").await;
    let audit = audit_checkpoint(&server).await;
    let log = trace::checkpoint();
    let cluster = "c".repeat(900 << 10);
    let mut c = server.agent_client().await;
    let err = attest(
        &mut c,
        pb::attest_request::Method::K8s(pb::K8sAttestation {
            cluster,
            token: "a.b.c".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "field `cluster` is 921600 long, over its limit of 63"
    );
    let row = one_small_row(&server, audit, &leak('c')).await;
    assert_eq!(row["factor"], "cluster", "{row}");
    assert_eq!(row["field"], "cluster", "{row}");
    let lines = trace::lines_since(log);
    let logged: usize = lines.iter().map(String::len).sum();
    assert!(logged < 16 * 1024, "{logged} bytes logged");
    assert!(
        lines.iter().all(|l| !l.contains(&leak('c'))),
        "the value reached the log"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sworn::audit") && l.contains("cluster")),
        "the refusal is logged: {lines:?}"
    );

    // A join token over its limit: refused the same way, factor N1.
    let audit = audit_checkpoint(&server).await;
    let err = attest(
        &mut c,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation {
            token: "j".repeat(900 << 10),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("join_token"), "{err:?}");
    assert_eq!(
        one_small_row(&server, audit, &leak('j')).await["factor"],
        "N1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attested_agents_oversized_evidence_is_denied_naming_the_field() {
    let server = TestServer::start("").await;
    let token = server
        .admin()
        .await
        .generate_join_token(apb::GenerateJoinTokenRequest { ttl_seconds: 600 })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut c = server.agent_client().await;
    let agent = attest(
        &mut c,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation { token }),
    )
    .await
    .unwrap();
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    let entry = "00000000-0000-4000-8000-000000000001";
    let k8s = |pod_name: String| {
        pb::mint_item::Evidence::K8s(pb::K8sEvidence {
            pod_uid: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            container_id: "a".repeat(64),
            pod_name,
            namespace: "default".into(),
            container_name: "app".into(),
            token: "a.b.c".into(),
        })
    };
    let unix = |path: String| {
        pb::mint_item::Evidence::Unix(pb::UnixEvidence {
            uid: 1000,
            gid: 1000,
            path,
            sha256: String::new(),
            supplementary_gids: vec![],
        })
    };
    for (what, entry_id, evidence, factor, field, payload) in [
        (
            "pod name",
            entry,
            k8s("p".repeat(900 << 10)),
            "evidence",
            "pod_name",
            leak('p'),
        ),
        (
            "path",
            entry,
            unix(format!("/{}", "q".repeat(8192))),
            "evidence",
            "path",
            leak('q'),
        ),
    ] {
        let audit = audit_checkpoint(&server).await;
        let r = mint_one(&mut c, entry_id, evidence).await;
        assert_eq!(r.factor, factor, "{what}: {r:?}");
        let row = one_small_row(&server, audit, &payload).await;
        assert_eq!(row["field"], field, "{what}: {row}");
        assert!(
            row["reason"].as_str().unwrap().contains("over its limit"),
            "{what}: {row}"
        );
    }
    // An entry ID of a megabyte: denied (entry), and the row keeps a preview only.
    let audit = audit_checkpoint(&server).await;
    let r = mint_one(&mut c, &"e".repeat(900 << 10), unix("/usr/bin/app".into())).await;
    assert_eq!(r.factor, "entry", "{r:?}");
    one_small_row(&server, audit, &leak('e')).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_past_retention_are_pruned_in_batches_and_recent_rows_and_the_ca_stay() {
    let clock = FakeClock::at_wall_time();
    let server =
        TestServer::start_with_clock("audit_retention = \"1d\"\n", Arc::new(clock.clone())).await;
    let store = server.server.shared.store.clone();
    let roots = store.list_roots().await.unwrap();
    assert!(!roots.is_empty());
    let now = unix_now(&clock);
    let old_rows = 2 * retention::BATCH as usize + 500;
    for _ in 0..old_rows {
        store
            .append_audit(now - 2 * 86_400, "mint", "allow", "{}")
            .await
            .unwrap();
    }
    let recent = store
        .append_audit(now, "mint", "allow", "{\"recent\":true}")
        .await
        .unwrap();
    // The background task prunes on its period of the server's clock.
    clock.advance(retention::PERIOD + Duration::from_secs(1));
    sworn_harness::wait_until_async(
        "old audit rows pruned",
        Duration::from_secs(30),
        async || {
            let rows = store.list_audit(0, 100_000).await.unwrap();
            rows.iter().all(|r| r.at >= unix_now(&clock) - 86_400)
        },
    )
    .await;
    let rows = store.list_audit(0, 100_000).await.unwrap();
    assert!(rows.iter().any(|r| r.id == recent), "the recent row stays");
    assert_eq!(
        store.list_roots().await.unwrap(),
        roots,
        "the CA's roots stay"
    );
    assert_eq!(
        server.server.shared.ca.bundle().roots_der,
        roots.iter().map(|r| r.der.clone()).collect::<Vec<_>>()
    );

    // One pass deletes in statements of at most BATCH rows.
    let now = unix_now(&clock);
    for _ in 0..old_rows {
        store
            .append_audit(now - 2 * 86_400, "mint", "allow", "{}")
            .await
            .unwrap();
    }
    let pruned = retention::prune_once(store.as_ref(), now, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(pruned.audit, old_rows as u64);
    assert!(pruned.batches >= 3, "{pruned:?}");
    let left = store.list_audit(0, 100_000).await.unwrap();
    assert!(left.iter().any(|r| r.id == recent));
    assert!(left.iter().all(|r| r.at >= now - 86_400));
    // The CA still issues: the admin API mints against the kept CA.
    let mut admin = server.admin().await;
    admin
        .mint_x509_svid(apb::MintX509SvidRequest {
            spiffe_id: "spiffe://example.org/after-pruning".into(),
            ttl_seconds: 600,
            csr: sworn_e2e::key_and_csr().1,
            ..Default::default()
        })
        .await
        .unwrap();
}
