//! The agent API's limits under attack, over real sockets (docs/architecture.md, "Agent API
//! limits"): rate limits keyed per agent after authentication, the cap on attestations in
//! progress, the request size limit, the connection cap and the handshake and idle timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sworn_e2e::{TestServer, attest, connect, join_agent, key_and_csr, tls_client_config};
use sworn_proto::agent as pb;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// `n` unix items naming an entry that does not exist (each is denied, factor `entry`).
fn items(n: usize) -> pb::MintX509SvidsRequest {
    let (_, csr) = key_and_csr();
    pb::MintX509SvidsRequest {
        items: (0..n)
            .map(|_| pb::MintItem {
                entry_id: "entry-that-does-not-exist".into(),
                csr: csr.clone(),
                evidence: Some(pb::mint_item::Evidence::Unix(pb::UnixEvidence {
                    uid: 1000,
                    ..Default::default()
                })),
            })
            .collect(),
    }
}

fn bogus_join() -> pb::attest_request::Method {
    pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation {
        token: "not-a-join-token".into(),
    })
}

/// Whether the server closes `tcp` within `within` (EOF or reset, without us sending).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(within, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_come_from_config_and_mints_are_limited_per_agent_not_per_address() {
    let server = TestServer::start(
        "[agent_api.rate_limits]\nmint_per_second = 0.01\nmint_burst = 3\n\
         attest_per_second = 0.01\nattest_burst = 4\n",
    )
    .await;
    // Two agents on loopback: the same peer address.
    let (a, b) = (join_agent(&server).await, join_agent(&server).await);
    let addr = server.server.agent_api_addr;
    let (mut ca, mut cb) = (connect(addr, Some(&a)).await, connect(addr, Some(&b)).await);
    let over = ca.mint_x509_svids(items(4)).await.unwrap_err();
    assert_eq!(
        over.code(),
        tonic::Code::ResourceExhausted,
        "burst + 1: {over:?}"
    );
    assert_eq!(
        ca.mint_x509_svids(items(3))
            .await
            .unwrap()
            .into_inner()
            .results
            .len(),
        3
    );
    let empty = ca.mint_x509_svids(items(1)).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::ResourceExhausted, "{empty:?}");
    // Agent A's empty bucket does not refuse agent B from the same address.
    assert_eq!(
        cb.mint_x509_svids(items(3))
            .await
            .unwrap()
            .into_inner()
            .results
            .len(),
        3
    );
    // Attestations are keyed by address: two joins above, two more, then refused.
    let mut c = server.agent_client().await;
    for _ in 0..2 {
        let e = attest(&mut c, bogus_join()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    }
    let e = attest(&mut c, bogus_join()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_32_attestations_stalled_the_33rd_is_shed_with_unavailable_at_once() {
    let server = TestServer::start("[agent_api.rate_limits]\nattest_burst = 100\n").await;
    let stalls = &server.server.shared.mint_stalls;
    stalls.hold_attests();
    let c = server.agent_client().await;
    let held: Vec<_> = (0..32)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move { attest(&mut c, bogus_join()).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(20), stalls.attests_held(32))
        .await
        .expect("32 attestations held");
    let started = Instant::now();
    let shed = tokio::time::timeout(Duration::from_secs(2), attest(&mut c.clone(), bogus_join()))
        .await
        .expect("the 33rd is answered without waiting")
        .unwrap_err();
    assert_eq!(shed.code(), tonic::Code::Unavailable, "{shed:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    stalls.release_attests();
    for h in held {
        let e = h.await.unwrap().unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::PermissionDenied,
            "held ones go on: {e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_size_limit_is_refused_on_its_length_and_a_full_batch_fits() {
    let server = TestServer::start("").await;
    let agent = join_agent(&server).await;
    let mut c = connect(server.server.agent_api_addr, Some(&agent)).await;
    // A real batch: 256 Kubernetes items, each with a CSR and a token of a projected
    // service-account token's size.
    let (_, csr) = key_and_csr();
    let full = pb::MintX509SvidsRequest {
        items: (0..256)
            .map(|i| pb::MintItem {
                entry_id: format!("entry-{i:04}"),
                csr: csr.clone(),
                evidence: Some(pb::mint_item::Evidence::K8s(pb::K8sEvidence {
                    pod_uid: "0b0d5b8e-5a49-4a8e-9f55-2f8c7a4d9e10".into(),
                    container_id: format!("containerd://{}", "a".repeat(64)),
                    pod_name: "a".repeat(63),
                    namespace: "a".repeat(63),
                    container_name: "a".repeat(63),
                    token: "t".repeat(1500),
                })),
            })
            .collect(),
    };
    let answered = c.mint_x509_svids(full).await.unwrap().into_inner();
    assert_eq!(answered.results.len(), 256);
    // 2 MiB in one CSR: refused by the length prefix (tonic answers OutOfRange).
    let mut big = items(1);
    big.items[0].csr = vec![0x30; 2 << 20];
    let err = c.mint_x509_svids(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_while_an_established_agent_still_mints() {
    let server =
        TestServer::start("[agent_api]\nmax_connections = 4\nhandshake_timeout = \"30s\"\n").await;
    let addr = server.server.agent_api_addr;
    // Two established connections: an unauthenticated one the agent attests on, and the
    // agent's.
    let mut plain = server.agent_client().await;
    let token = server
        .admin()
        .await
        .generate_join_token(sworn_proto::admin::GenerateJoinTokenRequest { ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner()
        .token;
    let join = pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation { token });
    let agent = attest(&mut plain, join).await.unwrap();
    let mut ac = connect(addr, Some(&agent)).await;
    ac.mint_x509_svids(items(1)).await.unwrap();
    // Ten silent sockets: two fill the cap, eight are closed at once.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut closed = 0;
    for s in &mut silent {
        if closed_within(s, Duration::from_secs(2)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 8, "connections beyond the cap of 4");
    // The established ones are untouched.
    assert_eq!(
        ac.mint_x509_svids(items(1))
            .await
            .unwrap()
            .into_inner()
            .results
            .len(),
        1
    );
    let e = attest(&mut plain, bogus_join()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_at_the_handshake_timeout() {
    let server = TestServer::start("[agent_api]\nhandshake_timeout = \"1s\"\n").await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.server.agent_api_addr)
        .await
        .unwrap();
    assert!(
        closed_within(&mut tcp, Duration::from_secs(5)).await,
        "still open"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed before the timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_an_open_sync_stream_is_not() {
    let server = TestServer::start("[agent_api]\nidle_timeout = \"1s\"\n").await;
    let addr = server.server.agent_api_addr;
    // TLS done, then nothing: no call is ever made.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(None));
    let name = rustls::pki_types::ServerName::try_from("sworn-server").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle connection stays open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A Sync stream with nothing to say for three idle timeouts still hears the next change.
    let agent = join_agent(&server).await;
    let mut c = connect(addr, Some(&agent)).await;
    let mut sync = c
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = sync.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A change for this agent: an entry scoped to it.
    server
        .admin()
        .await
        .create_entry(sworn_proto::admin::CreateEntryRequest {
            spiffe_id: format!("spiffe://{}/quiet", sworn_e2e::TD),
            selectors: vec!["unix:uid:1000".into()],
            node: agent.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), sync.message())
        .await
        .expect("the stream is still open")
        .unwrap()
        .unwrap();
    assert!(next.revision > first.revision);
}
