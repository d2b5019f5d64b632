//! The README walkthrough, as a test: the unix-mode quickstart environment (`sworn-dev up`'s
//! server and agent), two copies of the `sworn-helper` binary told apart by `unix:path`
//! entries, a plaintext backend behind the server-mode helper, a client behind the client-mode
//! helper, and a process with another identity refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{HelperProcess, echo_backend, payload, round_trip};
use sworn_proto::admin::CreateEntryRequest;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_talk_mtls_through_sworn_helper_in_the_unix_quickstart() {
    let dir = tempfile::Builder::new()
        .prefix("swq")
        .tempdir_in("/tmp")
        .unwrap();
    let env = sworn_dev::unix::start(dir.path())
        .await
        .expect("sworn-dev unix environment");
    let agent_id = env.agent.agent_id().unwrap().to_string();
    let mut admin = sworn_server::admin::client::connect(&env.state.admin_socket)
        .await
        .unwrap();

    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let mut paths = Vec::new();
    let mut entries = Vec::new();
    for name in ["frontend", "backend"] {
        let path = bin.join(format!("{name}-helper"));
        std::fs::copy(support::helper_bin(), &path).unwrap();
        let entry = admin
            .create_entry(CreateEntryRequest {
                spiffe_id: format!("spiffe://example.org/{name}"),
                selectors: vec![format!("unix:path:{}", path.display())],
                node: agent_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        entries.push(entry.id);
        paths.push(path);
    }
    let ids: Vec<&str> = entries.iter().map(String::as_str).collect();
    tokio::time::timeout(Duration::from_secs(10), env.agent.entries_synced(&ids))
        .await
        .expect("the entries reach the agent in time")
        .unwrap();
    let socket = format!("unix://{}", env.state.socket.display());
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;

    let server = HelperProcess::spawn_program(
        &paths[1],
        &[
            "proxy",
            "server",
            "--socket",
            &socket,
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend.to_string(),
            "--allow-id",
            "spiffe://example.org/frontend",
            "--spiffe-id",
            "spiffe://example.org/backend",
        ],
    );
    let server_addr = server.listening_address("proxy server listening").await;
    let client = HelperProcess::spawn_program(
        &paths[0],
        &[
            "proxy",
            "client",
            "--socket",
            &socket,
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &server_addr.to_string(),
            "--expect-id",
            "spiffe://example.org/backend",
            "--spiffe-id",
            "spiffe://example.org/frontend",
        ],
    );
    let client_addr = client.listening_address("proxy client listening").await;
    let data = payload(1 << 20);
    assert_eq!(
        round_trip(client_addr, &data).await.unwrap(),
        data,
        "server log:\n{}",
        server.log()
    );
    server
        .wait_for(
            "\"peer_id\":\"spiffe://example.org/frontend\"",
            Duration::from_secs(5),
        )
        .await;

    // The unmodified binary gets the quickstart's uid identity, which is not allowed.
    let other = HelperProcess::spawn(&[
        "proxy",
        "client",
        "--socket",
        &socket,
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &server_addr.to_string(),
        "--expect-id",
        "spiffe://example.org/backend",
    ]);
    let other_addr = other.listening_address("proxy client listening").await;
    assert!(
        round_trip(other_addr, b"hi")
            .await
            .unwrap_or_default()
            .is_empty()
    );
    let line = server
        .wait_for(
            &format!("\"peer_id\":\"{}\"", env.state.spiffe_id),
            Duration::from_secs(5),
        )
        .await;
    assert!(line.contains("peer denied"), "{line}");
    shutdown.cancel();
    drop((server, client, other));
    env.stop().await;
}
