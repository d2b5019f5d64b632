//! TLS to the server's agent API (docs/architecture.md, Components).
//!
//! The server presents an X509-SVID for `spiffe://<td>/sworn/server`. [`ServerVerifier`] is
//! the shared SPIFFE verifier (`sworn_identity::tls`: webpki path validation to the current
//! bundle plus the X509-SVID profile, no host name check) pinned to that ID. The roots are
//! swappable, because the bundle rotates (learned on the Sync stream).
//! [`InsecureVerifier`] exists only for `danger_insecure_bootstrap` and is used for the first
//! `Attest` call alone; it still checks the handshake signature, so the peer holds the key of
//! the certificate it sent.

use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sworn_identity::TrustDomain;
use sworn_identity::tls::{
    HandshakeSignatures, NoUsableRoot, SvidVerifier, TrustRoots, TrustSource,
};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No usable root in the bundle.
    #[error("trust bundle has no usable root: {0}")]
    Bundle(#[from] NoUsableRoot),
    /// rustls refused the configuration (bad key or certificate).
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The process-wide crypto provider: ring (workspace policy).
pub fn provider() -> Arc<CryptoProvider> {
    sworn_identity::tls::provider()
}

/// The roots the agent trusts: its own trust domain's bundle, replaced on every rotation.
/// The pinned server ID settles the trust domain, so the roots are offered for any.
#[derive(Debug, Default)]
struct ServerRoots(RwLock<Option<TrustRoots>>);

impl ServerRoots {
    fn current(&self) -> Option<TrustRoots> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl TrustSource for ServerRoots {
    fn roots(&self, _trust_domain: &TrustDomain) -> Option<TrustRoots> {
        self.current()
    }
}

/// Verifies the server's chain against the bundle and pins its SPIFFE ID.
#[derive(Debug)]
pub struct ServerVerifier {
    roots: Arc<ServerRoots>,
    inner: SvidVerifier,
}

impl ServerVerifier {
    /// A verifier pinned to `expected_id` (`spiffe://<td>/sworn/server`) that trusts nothing
    /// until [`ServerVerifier::set_roots`] is called.
    pub fn new(expected_id: String) -> Self {
        let roots = Arc::new(ServerRoots::default());
        let inner = SvidVerifier::new(
            roots.clone(),
            Arc::new(move |id| id.as_str() == expected_id),
        );
        Self { roots, inner }
    }

    /// Replaces the trusted roots (bundle rotation). Roots this verifier cannot read are
    /// skipped; a bundle with none it can read is refused and the old roots stay.
    pub fn set_roots(&self, roots: &[Vec<u8>]) -> Result<(), TlsError> {
        let roots = Some(TrustRoots::new(roots.iter().cloned())?);
        match self.roots.0.write() {
            Ok(mut guard) => *guard = roots,
            Err(poisoned) => *poisoned.into_inner() = roots,
        }
        Ok(())
    }

    /// Whether roots have been set.
    pub fn has_roots(&self) -> bool {
        self.roots.current().is_some()
    }
}

/// The single URI SAN of a DER certificate, if it is a SPIFFE ID
/// ([`sworn_identity::leaf_spiffe_id`]).
pub fn single_uri_san(der: &[u8]) -> Option<String> {
    sworn_identity::leaf_spiffe_id(der)
        .ok()
        .map(|id| id.as_str().to_owned())
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(&self.inner, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(&self.inner, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(&self.inner)
    }
}

/// Accepts any server certificate (`danger_insecure_bootstrap`, first `Attest` only).
#[derive(Debug, Default)]
pub struct InsecureVerifier {
    signatures: HandshakeSignatures,
}

impl InsecureVerifier {
    /// The verifier. Callers log a loud warning before using it.
    pub fn new() -> Self {
        Self::default()
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
        self.signatures.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
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
