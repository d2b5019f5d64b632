//! TLS to the server's agent API (DESIGN.md §3.1, §5).
//!
//! The server presents an X509-SVID for `spiffe://<td>/sworn/server`. [`ServerVerifier`]
//! checks the chain against the current trust bundle with webpki (no host name check: SVIDs
//! carry no DNS name for the server) and then pins the certificate's single URI SAN to that
//! ID. The roots are swappable, because the bundle rotates (learned on the Sync stream).
//! [`InsecureVerifier`] exists only for `danger_insecure_bootstrap` and is used for the first
//! `Attest` call alone; it still checks the handshake signature, so the peer holds the key of
//! the certificate it sent.

use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No usable root in the bundle.
    #[error("trust bundle has no usable root: {0}")]
    Bundle(String),
    /// rustls refused the configuration (bad key or certificate).
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The process-wide crypto provider: ring (workspace policy).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the server's chain against the bundle and pins its SPIFFE ID.
#[derive(Debug)]
pub struct ServerVerifier {
    roots: RwLock<Option<Arc<RootCertStore>>>,
    expected_id: String,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    /// A verifier pinned to `expected_id` (`spiffe://<td>/sworn/server`) that trusts nothing
    /// until [`ServerVerifier::set_roots`] is called.
    pub fn new(expected_id: String) -> Self {
        Self {
            roots: RwLock::new(None),
            expected_id,
            algs: provider().signature_verification_algorithms,
        }
    }

    /// Replaces the trusted roots (bundle rotation).
    pub fn set_roots(&self, roots: &[Vec<u8>]) -> Result<(), TlsError> {
        let store = Some(Arc::new(root_store(roots)?));
        match self.roots.write() {
            Ok(mut guard) => *guard = store,
            Err(poisoned) => *poisoned.into_inner() = store,
        }
        Ok(())
    }

    /// Whether roots have been set.
    pub fn has_roots(&self) -> bool {
        self.roots().is_some()
    }

    fn roots(&self) -> Option<Arc<RootCertStore>> {
        match self.roots.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn root_store(roots: &[Vec<u8>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) =
        store.add_parsable_certificates(roots.iter().map(|d| CertificateDer::from(d.clone())));
    if added == 0 {
        return Err(TlsError::Bundle(format!(
            "{} certificate(s), none parsable",
            roots.len()
        )));
    }
    Ok(store)
}

/// The single URI SAN of a DER certificate, if it has exactly one.
pub fn single_uri_san(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let first = uris.next()?;
    uris.next().is_none().then(|| first.to_owned())
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let roots = self.roots().ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        match single_uri_san(end_entity) {
            Some(id) if id == self.expected_id => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Accepts any server certificate (`danger_insecure_bootstrap`, first `Attest` only).
#[derive(Debug)]
pub struct InsecureVerifier {
    algs: WebPkiSupportedAlgorithms,
}

impl InsecureVerifier {
    /// The verifier. Callers log a loud warning before using it.
    pub fn new() -> Self {
        Self {
            algs: provider().signature_verification_algorithms,
        }
    }
}

impl Default for InsecureVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A client configuration speaking h2, verifying with `verifier`, presenting `identity`
/// (chain leaf first, PKCS#8 key) when given.
pub fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
    identity: Option<(&[Vec<u8>], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(
            chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
