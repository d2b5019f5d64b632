//! Test support: SVIDs minted in-process by the sworn server's CA library (the test seam of
//! the TLS layer), an echo backend, a log capture, and raw rustls clients for the hostile
//! cases.
//!
//! Failures show everything: each `sworn-helper` child writes its stdout and stderr into its
//! own [`RunDir`], which a failing test keeps and prints the end of. Wait on conditions with
//! `sworn_harness::wait_until` and friends, never a sleep.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod agent;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use spiffe::TrustDomain;
use sworn_harness::RunDir;
use sworn_helper::tls::Material;
use sworn_server::ca::{CaConfig, CertificateAuthority, MintRequest, SvidKeyPair};
use sworn_server::clock::FakeClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const HOUR: Duration = Duration::from_secs(3600);

/// A sworn CA for one trust domain, created three hours in the past so that it can also mint
/// certificates that have already expired.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca: CertificateAuthority,
    pub clock: FakeClock,
    pub td: String,
}

impl TestCa {
    pub fn new(td: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::new(SystemTime::now() - 3 * HOUR);
        let ca = CertificateAuthority::load_or_init(
            dir.path(),
            CaConfig::new(sworn_identity::parse_trust_domain(td).unwrap()),
            Arc::new(clock.clone()),
            false,
        )
        .unwrap();
        clock.set(SystemTime::now());
        TestCa {
            dir,
            ca,
            clock,
            td: td.to_owned(),
        }
    }

    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain::new(&self.td).unwrap()
    }

    pub fn roots(&self) -> Vec<Vec<u8>> {
        self.ca.bundle().roots_der.clone()
    }

    /// A fresh SVID: (chain, PKCS#8 key).
    pub fn mint(&self, id: &str, ttl: Duration) -> (Vec<Vec<u8>>, Vec<u8>) {
        let key = SvidKeyPair::generate().unwrap();
        let issued = self
            .ca
            .mint_x509_svid(MintRequest {
                spiffe_id: sworn_identity::SpiffeIdentity::parse(id).unwrap(),
                csr_der: key.csr_der().unwrap(),
                ttl,
                dns_names: vec![],
            })
            .unwrap();
        (issued.chain_der, key.pkcs8_der().to_vec())
    }

    /// An SVID that expired two hours ago (minted with the clock moved back).
    pub fn mint_expired(&self, id: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        self.clock
            .set(SystemTime::now() - 3 * HOUR + Duration::from_secs(60));
        let out = self.mint(id, HOUR);
        self.clock.set(SystemTime::now());
        out
    }

    /// A leaf signed by this CA's key but with no URI SAN (a DNS SAN only).
    pub fn mint_without_uri_san(&self) -> (Vec<Vec<u8>>, Vec<u8>) {
        let ca_dir = self.dir.path().join("ca");
        let key_der = std::fs::read(ca_dir.join("ca-1.key")).unwrap();
        let ca_key = rcgen::KeyPair::try_from(key_der.as_slice()).unwrap();
        let ca_pem = std::fs::read_to_string(ca_dir.join("ca-1.crt")).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["frontend.example.org".to_owned()]).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&leaf_key, &issuer).unwrap();
        (vec![cert.der().to_vec()], leaf_key.serialize_der())
    }

    /// Material for `id` trusting this CA and `also`.
    pub fn material(&self, id: &str, also: &[&TestCa]) -> Material {
        let (chain, key) = self.mint(id, HOUR);
        self.material_from(chain, key, also)
    }

    pub fn material_from(&self, chain: Vec<Vec<u8>>, key: Vec<u8>, also: &[&TestCa]) -> Material {
        let mut bundles = vec![(self.trust_domain(), self.roots())];
        bundles.extend(also.iter().map(|ca| (ca.trust_domain(), ca.roots())));
        Material::from_der(chain, key, bundles).unwrap()
    }
}

/// An echo server on loopback; stops with `shutdown`.
pub async fn echo_backend(shutdown: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                () = shutdown.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Sends `data` through `addr`, half-closes, and returns everything read back.
pub async fn round_trip(addr: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(data).await?;
        w.shutdown().await
    };
    let mut out = Vec::new();
    let read = r.read_to_end(&mut out);
    let (wr, rd) = tokio::join!(write, read);
    wr?;
    rd?;
    Ok(out)
}

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect()
}

/// Accepts any server certificate: the hostile clients test the *server's* checks.
#[derive(Debug)]
pub struct AcceptAnyServer;

impl ServerCertVerifier for AcceptAnyServer {
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
        sworn_helper::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS 1.3 client presenting exactly `chain`/`key`, accepting any server.
pub fn raw_client(chain: Vec<Vec<u8>>, key: Vec<u8>) -> tokio_rustls::TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(sworn_helper::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
        .with_client_auth_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects with `connector`, writes `data`, and reads until EOF or an error; returns what the
/// handshake/read produced so callers can look for the alert.
pub async fn tls_exchange(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    data: &[u8],
) -> Result<Vec<u8>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from("proxy.test").unwrap(), tcp)
        .await?;
    tls.write_all(data).await?;
    tls.flush().await?;
    let mut out = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut out))
        .await
        .expect("no answer and no alert within 10 s")?;
    Ok(out)
}

/// The TLS alert inside an I/O error, if any.
pub fn alert_of(e: &std::io::Error) -> Option<rustls::AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(a) => Some(*a),
        _ => None,
    }
}

/// Captures log output of the current thread (use with current-thread runtimes).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install(self: &LogCapture) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("sworn_helper=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Lines containing every needle.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The path of the built `sworn-helper` binary.
pub fn helper_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sworn-helper"))
}

/// Whether `f` comes true within `deadline`. Prefer `sworn_harness::wait_until`, which fails naming
/// the condition and the time spent.
pub async fn eventually(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    sworn_harness::poll_for("", deadline, async || f().then_some(()))
        .await
        .is_ok()
}

impl TestCa {
    /// An SVID of *this* CA that claims `spiffe://example.org/frontend`: a forgery from the
    /// point of view of example.org.
    pub fn mint_for_foreign_td_claim(&self) -> (Vec<Vec<u8>>, Vec<u8>) {
        let ca_dir = self.dir.path().join("ca");
        let key_der = std::fs::read(ca_dir.join("ca-1.key")).unwrap();
        let ca_key = rcgen::KeyPair::try_from(key_der.as_slice()).unwrap();
        let ca_pem = std::fs::read_to_string(ca_dir.join("ca-1.crt")).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://example.org/frontend".try_into().unwrap(),
        )];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&leaf_key, &issuer).unwrap();
        (vec![cert.der().to_vec()], leaf_key.serialize_der())
    }
}

/// Whether the PKCS#8 PEM key matches the first certificate of the PEM chain.
pub fn key_matches_cert(cert_pem: &str, key_pem: &str) -> bool {
    let Ok(blocks) = pem::parse_many(cert_pem) else {
        return false;
    };
    let Some(first) = blocks.first() else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(first.contents()) else {
        return false;
    };
    let Ok(key) = rcgen::KeyPair::from_pem(key_pem) else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// The serial (hex) of the first certificate of a PEM chain.
pub fn leaf_serial(cert_pem: &str) -> String {
    let blocks = pem::parse_many(cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(blocks[0].contents()).unwrap();
    cert.raw_serial_as_string()
}

/// A `sworn-helper` child process whose stderr lines are collected. Its stdout and stderr are
/// also written to `<name>.stdout` and `<name>.stderr` in its own [`RunDir`], which a failing
/// test keeps and prints the end of.
pub struct HelperProcess {
    pub child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    // Last: dropped (and reported on) after the child is killed.
    dir: RunDir,
}

impl HelperProcess {
    pub fn spawn(args: &[&str]) -> HelperProcess {
        Self::spawn_program(&helper_bin(), args)
    }

    /// Runs a copy of the binary at `program` (unix-mode entries tell copies apart by path).
    pub fn spawn_program(program: &std::path::Path, args: &[&str]) -> HelperProcess {
        use tokio::io::AsyncBufReadExt;
        let dir = RunDir::new_in("/tmp", "swh-proc").unwrap();
        let name = program.file_name().unwrap().to_string_lossy().into_owned();
        let output = dir.child(&name).unwrap();
        let (stdout, _) = output.stdio().unwrap();
        let mut child = tokio::process::Command::new(program)
            .args(["--log-format", "json"])
            .args(args)
            .env_remove("SPIFFE_ENDPOINT_SOCKET")
            .env("SWORN_HELPER_LOG", "info,sworn_helper=debug")
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut stderr_file = std::fs::File::options()
            .append(true)
            .open(&output.stderr)
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = writeln!(stderr_file, "{line}");
                sink.lock().unwrap().push(line);
            }
        });
        HelperProcess { child, lines, dir }
    }

    /// The directory holding this process's output files.
    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle`.
    pub async fn wait_for(&self, needle: &str, deadline: Duration) -> String {
        let found = eventually(deadline, || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
        })
        .await;
        assert!(
            found,
            "no log line with {needle:?} within {deadline:?}; log:\n{}",
            self.log()
        );
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
            .unwrap()
    }

    /// Waits for the "... listening" line and returns its address.
    pub async fn listening_address(&self, needle: &str) -> SocketAddr {
        let line = self.wait_for(needle, Duration::from_secs(30)).await;
        let start = line.find("\"address\":\"").expect("address field") + 11;
        let end = line[start..].find('"').unwrap() + start;
        line[start..end].parse().unwrap()
    }
}
