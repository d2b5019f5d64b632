//! End to end through a real sworn server and real sworn agents (unix mode, in-process, real
//! unix sockets) with the real `sworn-helper` binary: the proxy in both modes with rotation,
//! a refused peer, files mode with a signalled process, `--once`, and a go-spiffe `spiffetls`
//! client (built from the Go module proxy) talking to the proxy in server mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use rustls_pki_types::ServerName;
use support::agent::{Cluster, Node};
use support::{HelperProcess, echo_backend, key_matches_cert, leaf_serial, payload, round_trip};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const FRONTEND: &str = "spiffe://example.org/frontend";
const BACKEND: &str = "spiffe://example.org/backend";
const INTRUDER: &str = "spiffe://example.org/intruder";

/// Waits (bounded) until each node's agent holds every entry the server has
/// for it, so a caller they match is served at once.
async fn synced(cluster: &Cluster, nodes: &[&Node]) {
    let mut admin = sworn_server::admin::client::connect(&cluster.server.admin_socket)
        .await
        .unwrap();
    let entries = admin
        .list_entries(sworn_proto::admin::ListEntriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .entries;
    for node in nodes {
        let ids: Vec<&str> = entries
            .iter()
            .filter(|e| e.node == node.id)
            .map(|e| e.id.as_str())
            .collect();
        assert!(!ids.is_empty(), "no entry for node {}", node.id);
        tokio::time::timeout(Duration::from_secs(10), node.agent.entries_synced(&ids))
            .await
            .expect("the entries reach the agent in time")
            .unwrap();
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_helper_to_server_helper_through_real_agents_with_rotation_and_a_refused_peer() {
    let cluster = Cluster::start().await;
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let c = cluster.node("c").await;
    // Short SVIDs so the agents rotate during the test (at about half-life).
    // The agents hash each caller's (debug, 100+ MB) executable per connection, which takes
    // seconds here; 16 s SVIDs leave room for that.
    cluster.entitle(&a, FRONTEND, Duration::from_secs(16)).await;
    cluster.entitle(&b, BACKEND, Duration::from_secs(16)).await;
    cluster
        .entitle(&c, INTRUDER, Duration::from_secs(600))
        .await;
    synced(&cluster, &[&a, &b, &c]).await;
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;

    let server = HelperProcess::spawn(&[
        "proxy",
        "server",
        "--socket",
        &b.endpoint(),
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend.to_string(),
        "--allow-id",
        FRONTEND,
        "--metrics",
        "127.0.0.1:0",
    ]);
    let server_addr = server.listening_address("proxy server listening").await;
    let metrics_addr = server.listening_address("metrics listening").await;
    let client = HelperProcess::spawn(&[
        "proxy",
        "client",
        "--socket",
        &a.endpoint(),
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &server_addr.to_string(),
        "--expect-id",
        BACKEND,
    ]);
    let client_addr = client.listening_address("proxy client listening").await;

    // Bytes arrive intact.
    let data = payload(2 * 1024 * 1024 + 3);
    assert_eq!(
        round_trip(client_addr, &data).await.unwrap(),
        data,
        "server log:\n{}",
        server.log()
    );

    // An established connection, then rotation.
    let mut conn = TcpStream::connect(client_addr).await.unwrap();
    let mut buf = [0u8; 5];
    conn.write_all(b"first").await.unwrap();
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"first");

    // Watch the server's SVID from the outside with a frontend SVID minted by the server.
    let (chain, key) = cluster.mint(FRONTEND).await;
    let connector = support::raw_client(chain, key);
    let server_leaf = || {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(server_addr).await.unwrap();
            let tls = connector
                .connect(ServerName::try_from("backend").unwrap(), tcp)
                .await
                .unwrap();
            tls.get_ref().1.peer_certificates().unwrap()[0].clone()
        }
    };
    let first_leaf = server_leaf().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if server_leaf().await != first_leaf {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never presented a rotated svid"
        );
    }
    server
        .wait_for("svid rotated", Duration::from_secs(5))
        .await;
    client
        .wait_for("svid rotated", Duration::from_secs(45))
        .await;
    // The connection made before the rotation still works, and new ones too.
    conn.write_all(b"again").await.unwrap();
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again");
    let data = payload(100_000);
    assert_eq!(round_trip(client_addr, &data).await.unwrap(), data);

    // A workload with another ID (node c) is refused; the audit line names it.
    let intruder = HelperProcess::spawn(&[
        "proxy",
        "client",
        "--socket",
        &c.endpoint(),
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &server_addr.to_string(),
        "--expect-id",
        BACKEND,
    ]);
    let intruder_addr = intruder.listening_address("proxy client listening").await;
    assert!(
        round_trip(intruder_addr, b"let me in")
            .await
            .unwrap_or_default()
            .is_empty()
    );
    let audit = server
        .wait_for(
            &format!("\"peer_id\":\"{INTRUDER}\""),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        audit.contains("\"target\":\"sworn_helper::audit\"") && audit.contains("peer denied"),
        "{audit}"
    );

    let text = http_get(metrics_addr, "/metrics").await;
    assert!(
        text.contains("sworn_helper_denials_total{reason=\"not_authorized\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sworn_helper_handshakes_total{result=\"ok\"}"),
        "{text}"
    );
    assert!(text.contains("sworn_helper_rotations_total"), "{text}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_mode_through_a_real_agent_rotates_and_signals_the_process() {
    let cluster = Cluster::start().await;
    let a = cluster.node("a").await;
    cluster
        .entitle(&a, "spiffe://example.org/db", Duration::from_secs(12))
        .await;
    synced(&cluster, &[&a]).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("svid");
    let seen = out.path().join("seen");
    std::fs::create_dir(&seen).unwrap();
    let pid_file = out.path().join("db.pid");
    // The "database": reloads on SIGHUP by copying what it finds.
    let script = format!(
        "n=0; trap 'n=$((n+1)); cp {d}/svid.pem {s}/$n.pem; cp {d}/svid.key {s}/$n.key; cp {d}/bundle.pem {s}/$n.bundle; touch {s}/$n.done' HUP; echo $$ > {p}.tmp; mv {p}.tmp {p}; while :; do sleep 0.05; done",
        d = dir.display(),
        s = seen.display(),
        p = pid_file.display()
    );
    let mut db = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(support::eventually(Duration::from_secs(5), || pid_file.exists()).await);

    let helper = HelperProcess::spawn(&[
        "files",
        "--socket",
        &a.endpoint(),
        "--dir",
        dir.to_str().unwrap(),
        "--signal",
        "SIGHUP",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    // The first write and two rotations, each followed by a signal; the
    // handler marks each signal done after its copies.
    let third = seen.join("3.done");
    let ok = support::eventually(Duration::from_secs(60), move || third.exists()).await;
    assert!(
        ok,
        "fewer than 3 signals handled; helper log:\n{}",
        helper.log()
    );
    let mut serials = Vec::new();
    for n in 1..=3 {
        let cert = std::fs::read_to_string(seen.join(format!("{n}.pem"))).unwrap();
        let key = std::fs::read_to_string(seen.join(format!("{n}.key"))).unwrap();
        assert!(
            key_matches_cert(&cert, &key),
            "signal {n}: the process saw a mismatched pair"
        );
        assert!(
            std::fs::read_to_string(seen.join(format!("{n}.bundle")))
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        serials.push(leaf_serial(&cert));
    }
    serials.dedup();
    assert_eq!(
        serials.len(),
        3,
        "each signal followed a new svid: {serials:?}"
    );
    db.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_once_writes_and_exits_zero() {
    let cluster = Cluster::start().await;
    let a = cluster.node("a").await;
    cluster
        .entitle(&a, "spiffe://example.org/init", Duration::from_secs(600))
        .await;
    synced(&cluster, &[&a]).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("svid");
    let marker = out.path().join("ran");
    let status = tokio::process::Command::new(support::helper_bin())
        .args(["files", "--once", "--dir", dir.to_str().unwrap()])
        .args([
            "--exec",
            &format!(
                "test -s \"$SWORN_HELPER_DIR/svid.key\" && touch {}",
                marker.display()
            ),
        ])
        .env("SPIFFE_ENDPOINT_SOCKET", a.endpoint())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let cert = std::fs::read_to_string(dir.join("svid.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("svid.key")).unwrap();
    assert!(key_matches_cert(&cert, &key));
    assert!(marker.exists(), "--exec runs after the write");

    // No agent behind the socket: exit 69 (unavailable) after the initial timeout.
    let status = tokio::process::Command::new(support::helper_bin())
        .args([
            "files",
            "--once",
            "--initial-timeout",
            "1s",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .args([
            "--socket",
            &format!("unix://{}/nothing.sock", out.path().display()),
        ])
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(69));
}

/// Builds the go-spiffe client (cached outside the repository); fails loudly without Go.
fn go_spiffetls_client() -> std::path::PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/build.sh");
    let out = std::process::Command::new(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "building the go-spiffe interop client failed (needs `go` >= 1.24 and the Go module proxy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    std::path::PathBuf::from(stdout.lines().last().unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_spiffe_spiffetls_client_talks_to_the_proxy_in_server_mode() {
    let go_client = go_spiffetls_client();
    let cluster = Cluster::start().await;
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    cluster
        .entitle(&a, FRONTEND, Duration::from_secs(600))
        .await;
    cluster.entitle(&b, BACKEND, Duration::from_secs(600)).await;
    synced(&cluster, &[&a, &b]).await;
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let allowing = HelperProcess::spawn(&[
        "proxy",
        "server",
        "--socket",
        &b.endpoint(),
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend.to_string(),
        "--allow-prefix",
        "spiffe://example.org/front",
        "--allow-id",
        FRONTEND,
    ]);
    let allowing_addr = allowing.listening_address("proxy server listening").await;
    let message = "hello from go-spiffe through sworn-helper";
    let out = tokio::process::Command::new(&go_client)
        .args([
            "-addr",
            &allowing_addr.to_string(),
            "-expect-id",
            BACKEND,
            "-socket",
            &a.endpoint(),
            "-message",
            message,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "go client failed: {}\nhelper log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        allowing.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), message);

    // The same client against a proxy that allows someone else: refused with a TLS alert.
    let refusing = HelperProcess::spawn(&[
        "proxy",
        "server",
        "--socket",
        &b.endpoint(),
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend.to_string(),
        "--allow-id",
        "spiffe://example.org/someone-else",
    ]);
    let refusing_addr = refusing.listening_address("proxy server listening").await;
    let out = tokio::process::Command::new(&go_client)
        .args([
            "-addr",
            &refusing_addr.to_string(),
            "-expect-id",
            BACKEND,
            "-socket",
            &a.endpoint(),
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the refused go client got a reply");
    assert!(stderr.contains("access denied"), "{stderr}");
    refusing
        .wait_for(
            &format!("\"peer_id\":\"{FRONTEND}\""),
            Duration::from_secs(5),
        )
        .await;

    // And the Go client refuses a server with an unexpected ID.
    let out = tokio::process::Command::new(&go_client)
        .args([
            "-addr",
            &allowing_addr.to_string(),
            "-expect-id",
            "spiffe://example.org/other",
            "-socket",
            &a.endpoint(),
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    shutdown.cancel();
}
