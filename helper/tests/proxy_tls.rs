//! The proxy at the TLS level: SVIDs minted in-process by the sworn CA library and fed to the
//! TLS layer through `MaterialWatch` (the test seam); real TCP on loopback, real rustls.
//! Path: plaintext client → proxy client mode → mTLS → proxy server mode → echo backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::AlertDescription;
use spiffe::SpiffeId;
use support::{
    HOUR, LogCapture, TestCa, alert_of, echo_backend, payload, raw_client, round_trip, tls_exchange,
};
use sworn_helper::Authorizer;
use sworn_helper::metrics::Metrics;
use sworn_helper::proxy::{self, Limits};
use sworn_helper::tls::{self, Material, MaterialUpdater, MaterialWatch, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const FRONTEND: &str = "spiffe://example.org/frontend";
const BACKEND: &str = "spiffe://example.org/backend";

fn ids(list: &[&str]) -> Authorizer {
    Authorizer::ids(list.iter().map(|s| SpiffeId::new(s).unwrap())).unwrap()
}

struct Side {
    addr: SocketAddr,
    updater: MaterialUpdater,
    metrics: Arc<Metrics>,
}

async fn start_server(
    material: Material,
    allow: Authorizer,
    backend: SocketAddr,
    limits: Limits,
    shutdown: &CancellationToken,
) -> Side {
    let (watch, updater) = MaterialWatch::new(material);
    let metrics = Metrics::new();
    let mut options = TlsOptions::new(allow);
    options.on_denial = Some(metrics.denial_hook());
    let config = Arc::new(tls::server_config(watch, options).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy::server::run(
        listener,
        backend.to_string().parse().unwrap(),
        config,
        limits,
        metrics.clone(),
        shutdown.clone(),
    ));
    Side {
        addr,
        updater,
        metrics,
    }
}

async fn start_client(
    material: Material,
    expect: Authorizer,
    upstream: SocketAddr,
    shutdown: &CancellationToken,
) -> Side {
    let (watch, updater) = MaterialWatch::new(material);
    let metrics = Metrics::new();
    let mut options = TlsOptions::new(expect);
    options.on_denial = Some(metrics.denial_hook());
    let config = Arc::new(tls::client_config(watch, options).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy::client::run(
        listener,
        upstream.to_string().parse().unwrap(),
        config,
        Limits::default(),
        metrics.clone(),
        shutdown.clone(),
    ));
    Side {
        addr,
        updater,
        metrics,
    }
}

fn counter(metrics: &Metrics, needle: &str) -> u64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

/// A frontend SVID in the same trust domain goes end to end.
async fn assert_good_client_works(ca: &TestCa, server: SocketAddr) {
    let (chain, key) = ca.mint(FRONTEND, HOUR);
    let data = payload(4096);
    let back = tls_exchange(&raw_client(chain, key), server, &data)
        .await
        .unwrap();
    assert_eq!(back, data);
}

#[tokio::test]
async fn bytes_arrive_intact_through_client_and_server_modes() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let client = start_client(
        ca.material(FRONTEND, &[]),
        ids(&[BACKEND]),
        server.addr,
        &shutdown,
    )
    .await;

    let data = payload(3 * 1024 * 1024 + 17);
    assert_eq!(round_trip(client.addr, &data).await.unwrap(), data);
    // Several at once.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let data = payload(10_000 + i);
        let addr = client.addr;
        tasks.push(tokio::spawn(async move {
            round_trip(addr, &data).await.unwrap() == data
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(
        counter(
            &server.metrics,
            "sworn_helper_handshakes_total{result=\"ok\"}"
        ),
        9
    );
    assert_eq!(
        counter(
            &client.metrics,
            "sworn_helper_handshakes_total{result=\"ok\"}"
        ),
        9
    );
    assert_eq!(
        counter(&server.metrics, "sworn_helper_active_connections"),
        0
    );
    shutdown.cancel();
}

#[tokio::test]
async fn peer_with_another_spiffe_id_is_refused_with_an_alert_and_an_audit_line() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;

    // Directly: the intruder's handshake gets an access_denied alert.
    let (chain, key) = ca.mint("spiffe://example.org/intruder", HOUR);
    let err = tls_exchange(&raw_client(chain, key), server.addr, b"let me in")
        .await
        .expect_err("refused");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::AccessDenied),
        "{err:?}"
    );

    // Through a helper in client mode: the plaintext client gets nothing back.
    let intruder = start_client(
        ca.material("spiffe://example.org/intruder", &[]),
        ids(&[BACKEND]),
        server.addr,
        &shutdown,
    )
    .await;
    let back = round_trip(intruder.addr, b"let me in")
        .await
        .unwrap_or_default();
    assert!(
        back.is_empty(),
        "the backend must not answer a refused peer"
    );

    let denied = logs.lines_with(&[
        "sworn_helper::audit",
        "peer denied",
        "peer_id=spiffe://example.org/intruder",
        "not_authorized",
    ]);
    assert_eq!(denied.len(), 2, "{}", logs.text());
    assert!(
        denied[0].contains("peer_addr=127.0.0.1:"),
        "the audit line names the connection: {}",
        denied[0]
    );
    assert_eq!(
        counter(
            &server.metrics,
            "sworn_helper_denials_total{reason=\"not_authorized\"}"
        ),
        2
    );
    assert_good_client_works(&ca, server.addr).await;
    shutdown.cancel();
}

/// In TLS 1.3 a client learns of the refusal only after its own handshake is done, so it may
/// be sending by then (go-spiffe's spiffetls client writes at once). The proxy must still get
/// the alert to it: were the refused socket closed with the client's bytes unread, the kernel
/// would answer with a reset and the client would see "broken pipe" instead of the reason.
#[tokio::test]
async fn a_refused_client_that_keeps_writing_still_reads_the_alert() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let (chain, key) = ca.mint("spiffe://example.org/intruder", HOUR);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = raw_client(chain, key)
        .connect(
            rustls_pki_types::ServerName::try_from("proxy.test").unwrap(),
            tcp,
        )
        .await
        .expect("the client's side of a TLS 1.3 handshake completes before the refusal");
    tls.write_all(&payload(16 * 1024)).await.unwrap();
    tls.flush().await.unwrap();
    // The server has refused and let go of the connection.
    sworn_harness::wait_until(
        "the refused connection to be closed by the proxy",
        Duration::from_secs(10),
        || {
            counter(
                &server.metrics,
                "sworn_helper_handshakes_total{result=\"failed\"}",
            ) == 1
                && counter(&server.metrics, "sworn_helper_active_connections") == 0
        },
    )
    .await;
    let outcome: std::io::Result<usize> = async {
        tls.write_all(b"still talking").await?;
        tls.flush().await?;
        let mut byte = [0u8; 1];
        tls.read(&mut byte).await
    }
    .await;
    let err = outcome.expect_err("a refused client gets no data");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::AccessDenied),
        "the client must read the alert, not a reset: {err:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn peer_from_another_trust_domain_is_refused() {
    let ca = TestCa::new("example.org");
    let other = TestCa::new("other.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;

    // Unknown trust domain: we hold no bundle for it.
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let (chain, key) = other.mint(FRONTEND.replace("example.org", "other.org").as_str(), HOUR);
    let err = tls_exchange(&raw_client(chain.clone(), key.clone()), server.addr, b"x")
        .await
        .expect_err("refused");
    assert_eq!(alert_of(&err), Some(AlertDescription::UnknownCA), "{err:?}");
    assert_eq!(
        counter(
            &server.metrics,
            "sworn_helper_denials_total{reason=\"unknown_trust_domain\"}"
        ),
        1
    );

    // Federated (we hold its bundle, its chain verifies) but only example.org is allowed.
    let federated = start_server(
        ca.material(BACKEND, &[&other]),
        Authorizer::trust_domain(ca.trust_domain()),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let err = tls_exchange(&raw_client(chain, key), federated.addr, b"x")
        .await
        .expect_err("refused");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::AccessDenied),
        "{err:?}"
    );
    assert_eq!(
        counter(
            &federated.metrics,
            "sworn_helper_denials_total{reason=\"not_authorized\"}"
        ),
        1
    );

    // A peer claiming example.org but signed by other.org's CA fails its chain.
    let (forged, key) = other.mint_for_foreign_td_claim();
    let err = tls_exchange(&raw_client(forged, key), federated.addr, b"x")
        .await
        .expect_err("refused");
    assert_eq!(alert_of(&err), Some(AlertDescription::UnknownCA), "{err:?}");
    assert_good_client_works(&ca, federated.addr).await;
    shutdown.cancel();
}

#[tokio::test]
async fn client_mode_refuses_a_server_with_the_wrong_id() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let impostor = start_server(
        ca.material("spiffe://example.org/impostor", &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let client = start_client(
        ca.material(FRONTEND, &[]),
        ids(&[BACKEND]),
        impostor.addr,
        &shutdown,
    )
    .await;
    let back = round_trip(client.addr, b"secret").await.unwrap_or_default();
    assert!(back.is_empty());
    assert_eq!(
        counter(
            &client.metrics,
            "sworn_helper_denials_total{reason=\"not_authorized\"}"
        ),
        1
    );
    assert_eq!(
        counter(
            &client.metrics,
            "sworn_helper_handshakes_total{result=\"failed\"}"
        ),
        1
    );
    shutdown.cancel();
}

#[tokio::test]
async fn rotation_keeps_established_connections_and_new_handshakes_use_the_new_svid() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let client = start_client(
        ca.material(FRONTEND, &[]),
        ids(&[BACKEND]),
        server.addr,
        &shutdown,
    )
    .await;

    // An established connection through both helpers.
    let mut conn = TcpStream::connect(client.addr).await.unwrap();
    let mut buf = [0u8; 5];
    conn.write_all(b"first").await.unwrap();
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"first");
    let old_server_leaf = server.updater.current().chain()[0].clone();

    // Both sides rotate.
    assert!(server.updater.publish(ca.material(BACKEND, &[])));
    assert!(client.updater.publish(ca.material(FRONTEND, &[])));
    let new_server_leaf = server.updater.current().chain()[0].clone();
    assert_ne!(old_server_leaf, new_server_leaf);

    // The established connection keeps working.
    conn.write_all(b"again").await.unwrap();
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again");

    // A new handshake sees the new server SVID.
    let (chain, key) = ca.mint(FRONTEND, HOUR);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = raw_client(chain, key)
        .connect(rustls_pki_types::ServerName::try_from("x").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0],
        new_server_leaf
    );
    drop(tls);
    // And new connections through the client helper (with its new SVID) still go through.
    let data = payload(50_000);
    assert_eq!(round_trip(client.addr, &data).await.unwrap(), data);

    // A trust bundle change applies too: once the server trusts only another CA, the
    // client's next handshake fails while the established connection still works.
    let other = TestCa::new("example.org");
    assert!(server.updater.publish(other.material(BACKEND, &[])));
    assert!(
        round_trip(client.addr, b"blocked")
            .await
            .unwrap_or_default()
            .is_empty()
    );
    conn.write_all(b"still").await.unwrap();
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still");
    shutdown.cancel();
}

#[tokio::test]
async fn plaintext_expired_no_uri_san_and_stalled_handshakes_are_refused_and_others_served() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let limits = Limits {
        handshake_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        limits,
        &shutdown,
    )
    .await;

    // A handshake that never completes: opened first, left silent.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let stalled_at = Instant::now();

    // Plaintext on the mTLS port: no echo, the connection is closed.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got))
        .await
        .expect("closed");
    assert!(
        !got.windows(3).any(|w| w == b"GET"),
        "plaintext must never reach the backend"
    );
    assert_good_client_works(&ca, server.addr).await;

    // An expired client SVID: certificate_expired.
    let (chain, key) = ca.mint_expired(FRONTEND);
    let err = tls_exchange(&raw_client(chain, key), server.addr, b"x")
        .await
        .expect_err("refused");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::CertificateExpired),
        "{err:?}"
    );
    assert_good_client_works(&ca, server.addr).await;

    // A client certificate from our own CA but without a URI SAN: not an SVID.
    let (chain, key) = ca.mint_without_uri_san();
    let err = tls_exchange(&raw_client(chain, key), server.addr, b"x")
        .await
        .expect_err("refused");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::BadCertificate),
        "{err:?}"
    );
    assert_good_client_works(&ca, server.addr).await;

    // No client certificate at all.
    let anon = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(support::AcceptAnyServer))
        .with_no_client_auth();
    let err = tls_exchange(
        &tokio_rustls::TlsConnector::from(Arc::new(anon)),
        server.addr,
        b"x",
    )
    .await
    .expect_err("refused");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::CertificateRequired),
        "{err:?}"
    );

    // The stalled handshake was closed by the handshake timeout.
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut sink))
        .await
        .expect("the stalled connection is closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        stalled_at.elapsed() >= Duration::from_millis(700),
        "{:?}",
        stalled_at.elapsed()
    );
    assert_eq!(
        counter(
            &server.metrics,
            "sworn_helper_handshakes_total{result=\"timeout\"}"
        ),
        1
    );
    assert_eq!(
        counter(
            &server.metrics,
            "sworn_helper_denials_total{reason=\"chain\"}"
        ),
        1
    );
    assert_eq!(
        counter(
            &server.metrics,
            "sworn_helper_denials_total{reason=\"not_svid\"}"
        ),
        1
    );
    assert_good_client_works(&ca, server.addr).await;
    shutdown.cancel();
}

#[tokio::test]
async fn tls12_is_refused_by_default() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        Limits::default(),
        &shutdown,
    )
    .await;
    let (chain, key) = ca.mint(FRONTEND, HOUR);
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(support::AcceptAnyServer))
        .with_client_auth_cert(
            chain.into_iter().map(Into::into).collect(),
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
    let err = tls_exchange(
        &tokio_rustls::TlsConnector::from(Arc::new(config)),
        server.addr,
        b"x",
    )
    .await
    .expect_err("refused");
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::ProtocolVersion),
        "{err:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn connection_count_is_bounded() {
    let ca = TestCa::new("example.org");
    let shutdown = CancellationToken::new();
    let backend = echo_backend(shutdown.clone()).await;
    let limits = Limits {
        max_connections: 1,
        handshake_timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let server = start_server(
        ca.material(BACKEND, &[]),
        ids(&[FRONTEND]),
        backend,
        limits,
        &shutdown,
    )
    .await;
    // One silent connection takes the only slot until its handshake times out.
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        support::eventually(Duration::from_secs(5), || {
            counter(&server.metrics, "sworn_helper_connections_total") == 1
        })
        .await,
        "the server never took the silent connection"
    );
    let started = Instant::now();
    assert_good_client_works(&ca, server.addr).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "served after {waited:?}: the bound was not applied"
    );
    assert_eq!(
        counter(&server.metrics, "sworn_helper_connections_total"),
        2
    );
    shutdown.cancel();
}
