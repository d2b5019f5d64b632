//! Support for cross-component scenarios: an in-process sworn server on
//! loopback, and a test client of the agent API (TLS, optionally with an
//! agent SVID) — the "lying agent" of the deny matrix is this client holding a
//! valid agent SVID.
//!
//! Failures show everything: the server's data dir is a
//! [`sworn_harness::RunDir`] and in-process tracing is captured
//! ([`sworn_harness::trace`]), so a failing test prints the end of the server's
//! and agents' logs and keeps the directory. Wait on conditions with
//! [`sworn_harness::wait_until`] and friends (`sworn-harness` is a dependency
//! of this package, so its tests can name it directly).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod k8s_env;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sworn_harness::RunDir;
use sworn_proto::agent as pb;
use sworn_proto::agent::agent_api_client::AgentApiClient;
use sworn_server::clock::SystemClock;
use sworn_server::config::Config;
use sworn_server::server::RunningServer;
use tonic::transport::{Channel, Endpoint, Uri};

/// Trust domain used by the scenarios.
pub const TD: &str = "example.org";

/// A server started in-process, with its data dir.
#[derive(Debug)]
pub struct TestServer {
    /// The running server.
    pub server: RunningServer,
    /// Its data dir (removed on drop; kept and reported on if a test fails).
    pub dir: RunDir,
}

impl TestServer {
    /// Starts a server; `extra` is appended to the minimal TOML config.
    pub async fn start(extra: &str) -> TestServer {
        let dir = RunDir::new("sworn-e2e-server-").unwrap();
        Self::start_in(dir, extra).await
    }

    /// Starts a server in `dir` (for restarts).
    pub async fn start_in(dir: RunDir, extra: &str) -> TestServer {
        Self::start_in_with_clock(dir, extra, Arc::new(SystemClock)).await
    }

    /// Starts a server on `clock` (a `FakeClock` moves days in a test); `extra` as in
    /// [`TestServer::start`].
    pub async fn start_with_clock(
        extra: &str,
        clock: Arc<dyn sworn_server::clock::Clock>,
    ) -> TestServer {
        let dir = RunDir::new("sworn-e2e-server-").unwrap();
        Self::start_in_with_clock(dir, extra, clock).await
    }

    async fn start_in_with_clock(
        dir: RunDir,
        extra: &str,
        clock: Arc<dyn sworn_server::clock::Clock>,
    ) -> TestServer {
        sworn_harness::trace::capture();
        let text = format!(
            "trust_domain = \"{TD}\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\n{extra}",
            dir.path().join("data").display()
        );
        let config = Config::parse(&text).unwrap();
        let server = sworn_server::server::start(config, clock).await.unwrap();
        TestServer { server, dir }
    }

    /// Stops the server, keeping the data dir.
    pub async fn stop(self) -> RunDir {
        self.server.shutdown(Duration::from_secs(5)).await;
        self.dir
    }

    /// A cluster section for a control plane's kubeconfig.
    pub fn cluster_toml(name: &str, kubeconfig: &Path) -> String {
        format!(
            "[[clusters]]\nname = \"{name}\"\nkubeconfig = \"{}\"\nbundle_configmap = \"sworn-system/sworn-bundle\"\n",
            kubeconfig.display()
        )
    }

    /// Runs an admin CLI-equivalent call through the admin API.
    pub async fn admin(&self) -> sworn_proto::admin::admin_api_client::AdminApiClient<Channel> {
        sworn_server::admin::client::connect(&self.server.admin_socket)
            .await
            .unwrap()
    }

    /// A client of the agent API without a client certificate.
    pub async fn agent_client(&self) -> AgentApiClient<Channel> {
        connect(self.server.agent_api_addr, None).await
    }
}

/// Accepts any server certificate: this test client exercises the server;
/// the real agent pins `spiffe://<td>/sworn/server` against its bundle.
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// An agent identity: its key and SVID chain.
#[derive(Clone, Debug)]
pub struct AgentCreds {
    /// The agent ID.
    pub id: String,
    /// DER chain, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER key.
    pub key: Vec<u8>,
}

/// The TLS client configuration of [`connect`]: TLS 1.3, `h2`, any server certificate,
/// presenting `creds` when given (for tests that speak TLS without gRPC).
pub fn tls_client_config(creds: Option<&AgentCreds>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny));
    let mut config = match creds {
        Some(c) => builder
            .with_client_auth_cert(
                c.chain.iter().cloned().map(CertificateDer::from).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Connects to the agent API, presenting `creds` when given.
pub async fn connect(
    addr: std::net::SocketAddr,
    creds: Option<&AgentCreds>,
) -> AgentApiClient<Channel> {
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(creds));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("sworn-server").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .unwrap();
    AgentApiClient::new(channel)
}

/// A fresh P-256 key and a CSR for it.
pub fn key_and_csr() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    (key.serialize_der(), csr.der().to_vec())
}

/// Attests with `method`; on success returns the agent's credentials.
pub async fn attest(
    client: &mut AgentApiClient<Channel>,
    method: pb::attest_request::Method,
) -> Result<AgentCreds, tonic::Status> {
    let (key, csr) = key_and_csr();
    let resp = client
        .attest(pb::AttestRequest {
            method: Some(method),
            csr,
        })
        .await?
        .into_inner();
    Ok(AgentCreds {
        id: resp.agent_id,
        chain: resp.svid_chain,
        key,
    })
}

/// A join-token agent of `server`: a token from the admin API, attested on a connection of
/// its own that is closed before this returns.
pub async fn join_agent(server: &TestServer) -> AgentCreds {
    let token = server
        .admin()
        .await
        .generate_join_token(sworn_proto::admin::GenerateJoinTokenRequest { ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut c = server.agent_client().await;
    attest(
        &mut c,
        pb::attest_request::Method::JoinToken(pb::JoinTokenAttestation { token }),
    )
    .await
    .unwrap()
}

/// The `notAfter` of a DER certificate.
pub fn not_after(der: &[u8]) -> std::time::SystemTime {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let secs = u64::try_from(cert.validity().not_after.timestamp()).unwrap();
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

/// The URI SAN of a DER certificate.
pub fn uri_san(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .unwrap()
}

/// The id of the newest audit event (0 if there is none): a checkpoint taken
/// before an action, so that only the events the action caused are read
/// afterwards with [`audit_after`].
pub async fn audit_checkpoint(server: &TestServer) -> i64 {
    audit_checkpoint_of(&server.server).await
}

/// [`audit_checkpoint`] of any running server (one `sworn-dev` started, say).
pub async fn audit_checkpoint_of(server: &RunningServer) -> i64 {
    audit_after_of(server, 0)
        .await
        .iter()
        .map(|e| e.id)
        .max()
        .unwrap_or(0)
}

/// Every audit event with an id greater than `checkpoint`, oldest first.
pub async fn audit_after(
    server: &TestServer,
    checkpoint: i64,
) -> Vec<sworn_proto::admin::AuditEvent> {
    audit_after_of(&server.server, checkpoint).await
}

/// [`audit_after`] of any running server.
pub async fn audit_after_of(
    server: &RunningServer,
    checkpoint: i64,
) -> Vec<sworn_proto::admin::AuditEvent> {
    let mut admin = sworn_server::admin::client::connect(&server.admin_socket)
        .await
        .unwrap();
    let mut s = admin
        .list_audit(sworn_proto::admin::ListAuditRequest {
            follow: false,
            after_id: checkpoint,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(ev) = s.message().await.unwrap() {
        events.push(ev);
    }
    events
}

/// Whether `f` comes true within `deadline` (checked every
/// [`sworn_harness::wait::POLL`]). Prefer [`sworn_harness::wait_until_async`],
/// which fails naming the condition and the time spent.
pub async fn eventually<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    sworn_harness::poll_for("", deadline, async || f().await.then_some(()))
        .await
        .is_ok()
}

/// Sends one mint item on an agent connection and returns its result.
pub async fn mint_one(
    c: &mut AgentApiClient<Channel>,
    entry_id: &str,
    evidence: pb::mint_item::Evidence,
) -> pb::MintResult {
    let (_, csr) = key_and_csr();
    let resp = c
        .mint_x509_svids(pb::MintX509SvidsRequest {
            items: vec![pb::MintItem {
                entry_id: entry_id.into(),
                csr,
                evidence: Some(evidence),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results.len(), 1);
    resp.results.into_iter().next().unwrap()
}

/// The SPIFFE ID issued, after checking the certificate names it.
pub fn issued(r: &pb::MintResult) -> Option<String> {
    match &r.result {
        Some(pb::mint_result::Result::Svid(s)) => {
            assert_eq!(uri_san(&s.chain[0]), s.spiffe_id);
            Some(s.spiffe_id.clone())
        }
        _ => None,
    }
}

/// The value of the server's counter `series` on its `/metrics` page (0 while it is not
/// exposed).
pub async fn server_counter(server: &RunningServer, series: &str) -> u64 {
    let page = sworn_agent::probe::get(server.health_addr, "/metrics")
        .await
        .unwrap();
    sworn_harness::metrics::value(&page.body, series).unwrap_or(0.0) as u64
}

/// A one-line account of a result (without the certificate bytes).
pub fn summary(r: &pb::MintResult) -> String {
    match &r.result {
        Some(pb::mint_result::Result::Svid(s)) => format!("issued {}", s.spiffe_id),
        Some(pb::mint_result::Result::Denied(d)) => format!("denied {d:?} (factor {:?})", r.factor),
        Some(pb::mint_result::Result::Unavailable(u)) => {
            format!("unavailable {u:?} (factor {:?})", r.factor)
        }
        None => "no result".to_owned(),
    }
}
