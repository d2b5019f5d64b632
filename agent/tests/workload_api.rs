//! The Workload API against a real in-process server, over real unix sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Env, client, my_uid, uid_selector};
use sworn_proto::workload::{
    JwtsvidRequest, X509BundlesRequest, X509svidRequest, X509svidResponse,
};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Streaming};

fn with_header<T>(msg: T, values: &[&'static str]) -> Request<T> {
    let mut r = Request::new(msg);
    for v in values {
        r.metadata_mut()
            .append("workload.spiffe.io", MetadataValue::from_static(v));
    }
    r
}

/// Waits (bounded) until the agent's synced state holds `entries`.
async fn synced(agent: &sworn_agent::RunningAgent, entries: &[&str]) {
    tokio::time::timeout(Duration::from_secs(10), agent.entries_synced(entries))
        .await
        .expect("the entries reach the agent in time")
        .unwrap();
}

async fn next(stream: &mut Streaming<X509svidResponse>) -> Result<X509svidResponse, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(120), stream.message())
        .await
        .expect("a stream message in time")
        .map(|m| m.expect("the stream ended without a status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_header_missing_twice_or_miscased_is_invalid_argument() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let socket = agent.socket_path().as_path().to_owned();
    for values in [&[][..], &["true", "true"], &["True"]] {
        let err = client(&socket)
            .await
            .fetch_x509svid(with_header(X509svidRequest {}, values))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{values:?}: {err:?}");
        let err = client(&socket)
            .await
            .fetch_x509_bundles(with_header(X509BundlesRequest {}, values))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{values:?}: {err:?}");
    }
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_without_entry_gets_permission_denied() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    // An entry for someone else on this node, held by the agent before the call.
    let other = env
        .entry(
            "spiffe://example.org/other",
            &uid_selector(my_uid().wrapping_add(4242)),
            &node,
            600,
        )
        .await;
    synced(&agent, &[&other]).await;
    let mut c = client(agent.socket_path().as_path()).await;
    let before = sworn_harness::trace::checkpoint();
    let err = c
        .fetch_x509svid(with_header(X509svidRequest {}, &["true"]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "no identity issued");
    // The agent's audit line names the factor that refused: no entry's selectors match.
    let pid = format!("pid={}", std::process::id());
    let audited: Vec<_> = sworn_harness::trace::lines_since(before)
        .into_iter()
        .filter(|l| l.contains("sworn::audit") && l.contains(&pid))
        .collect();
    assert!(
        audited
            .iter()
            .any(|l| l.contains("factor=policy") && l.contains("no entry matches the caller")),
        "{audited:#?}"
    );
    let err = c
        .fetch_x509_bundles(with_header(X509BundlesRequest {}, &["true"]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entitled_caller_gets_svid_and_bundle_then_redaction_then_permission_denied() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let first = env
        .entry(
            "spiffe://example.org/web",
            &uid_selector(my_uid()),
            &node,
            600,
        )
        .await;
    let second = env
        .entry(
            "spiffe://example.org/db",
            &uid_selector(my_uid()),
            &node,
            600,
        )
        .await;
    // The entries reach the agent over its Sync stream.
    synced(&agent, &[&first, &second]).await;
    let mut c = client(agent.socket_path().as_path()).await;
    let mut stream = c
        .fetch_x509svid(with_header(X509svidRequest {}, &["true"]))
        .await
        .unwrap()
        .into_inner();
    let msg = next(&mut stream).await.unwrap();
    let mut ids: Vec<_> = msg.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["spiffe://example.org/db", "spiffe://example.org/web"]);
    for svid in &msg.svids {
        let chain = sworn_agent::fetch::split_der(&svid.x509_svid).unwrap();
        let leaf = x509_parser::parse_x509_certificate(&chain[0]).unwrap().1;
        // The key in the answer is the key of the certificate (PKCS#8, generated on the agent).
        let key = rcgen::KeyPair::try_from(svid.x509_svid_key.as_slice()).unwrap();
        assert_eq!(
            leaf.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert!(!svid.bundle.is_empty());
    }
    let bundles = c
        .fetch_x509_bundles(with_header(X509BundlesRequest {}, &["true"]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert!(
        bundles.bundles.contains_key("spiffe://example.org"),
        "{:?}",
        bundles.bundles.keys()
    );

    // Deleting one entry redacts it from the open stream within a second.
    let started = std::time::Instant::now();
    env.delete_entry(&first).await;
    let msg = next(&mut stream).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let ids: Vec<_> = msg.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
    assert_eq!(ids, ["spiffe://example.org/db"]);

    // Deleting the last one ends the stream with PermissionDenied, never an empty message.
    env.delete_entry(&second).await;
    let err = next(&mut stream).await.expect_err("stream ends");
    assert_eq!(err.code(), Code::PermissionDenied);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_pushed_to_open_streams() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let entry = env
        .entry(
            "spiffe://example.org/short",
            &uid_selector(my_uid()),
            &node,
            4,
        )
        .await;
    synced(&agent, &[&entry]).await;
    let mut stream = client(agent.socket_path().as_path())
        .await
        .fetch_x509svid(with_header(X509svidRequest {}, &["true"]))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await.unwrap();
    let rotated = next(&mut stream).await.unwrap();
    assert_eq!(rotated.svids[0].spiffe_id, "spiffe://example.org/short");
    assert_ne!(first.svids[0].x509_svid, rotated.svids[0].x509_svid);
    assert_ne!(first.svids[0].x509_svid_key, rotated.svids[0].x509_svid_key);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_methods_are_unimplemented() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let err = client(agent.socket_path().as_path())
        .await
        .fetch_jwtsvid(with_header(
            JwtsvidRequest {
                audience: vec!["x".into()],
                spiffe_id: String::new(),
            },
            &["true"],
        ))
        .await
        .expect_err("unimplemented");
    assert_eq!(err.code(), Code::Unimplemented);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_change_is_pushed_to_open_streams() {
    let clock = std::sync::Arc::new(sworn_server::clock::FakeClock::at_wall_time());
    // Only the server's clock moves, so the agent never renews: its SVID must outlive the
    // jump, or the server ends its Sync stream at the SVID's notAfter.
    let env = Env::start_with_clock(
        |c| c.agent_svid_ttl = Duration::from_secs(20 * 3600),
        clock.clone(),
    )
    .await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let entry = env
        .entry(
            "spiffe://example.org/b",
            &uid_selector(my_uid()),
            &node,
            3600,
        )
        .await;
    synced(&agent, &[&entry]).await;
    let mut c = client(agent.socket_path().as_path()).await;
    let mut svids = c
        .fetch_x509svid(with_header(X509svidRequest {}, &["true"]))
        .await
        .unwrap()
        .into_inner();
    let mut bundles = c
        .fetch_x509_bundles(with_header(X509BundlesRequest {}, &["true"]))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut svids).await.unwrap();
    let roots = |der: &[u8]| sworn_agent::fetch::split_der(der).unwrap().len();
    assert_eq!(roots(&first.svids[0].bundle), 1);
    bundles.message().await.unwrap().unwrap();

    // Half of the CA's life has passed: the server prepares the next key and publishes it.
    clock.advance(Duration::from_secs(12 * 3600 + 60));
    env.server.shared.ca.rotate_if_due().unwrap();
    let pushed = next(&mut svids).await.unwrap();
    assert_eq!(
        roots(&pushed.svids[0].bundle),
        2,
        "the new root reached the stream"
    );
    assert_eq!(
        pushed.svids[0].x509_svid, first.svids[0].x509_svid,
        "same SVID"
    );
    let pushed = tokio::time::timeout(Duration::from_secs(10), bundles.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(roots(&pushed.bundles["spiffe://example.org"]), 2);
    agent.shutdown().await.unwrap();
}
